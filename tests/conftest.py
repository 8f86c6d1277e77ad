"""Shared fixtures: paths to the repository's examples, and a clean logging state."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def examples() -> Path:
    """The examples/ folder of the repository."""
    return EXAMPLES


@pytest.fixture(autouse=True)
def _restore_fedra_logger() -> Iterator[None]:
    logger = logging.getLogger("fedra")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in logger.handlers:
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)
