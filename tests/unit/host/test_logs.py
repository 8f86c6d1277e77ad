"""log_to_folder: log.txt, and a copy on stdout unless stdout is log.txt itself."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.host import log_to_folder


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    before, level = list(logger.handlers), logger.level
    try:
        yield logger
    finally:
        for handler in logger.handlers:
            if handler not in before:
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(level)


def test_stdout_sent_to_log_txt_gets_each_line_once(
    tmp_path: Path, root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "log.txt", "a", encoding="utf-8") as stdout:  # as start.sh does
        monkeypatch.setattr(sys, "stdout", stdout)
        log_to_folder(tmp_path)
        logging.getLogger("fedra.test").info("one line")
        for handler in root_logger.handlers:
            handler.flush()
    assert (tmp_path / "log.txt").read_text().count("one line") == 1


def test_another_stdout_gets_a_copy(
    tmp_path: Path, root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "terminal.txt", "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        log_to_folder(tmp_path)
        logging.getLogger("fedra.test").info("one line")
        for handler in root_logger.handlers:
            handler.flush()
    assert (tmp_path / "log.txt").read_text().count("one line") == 1
    assert (tmp_path / "terminal.txt").read_text().count("one line") == 1
