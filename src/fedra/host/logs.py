"""How every long-lived Fedra process logs: to ``log.txt`` in its folder and to stdout."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

#: One line per record: time, level, logger, message.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Copy(logging.StreamHandler):  # type: ignore[type-arg]
    """The copy on stdout: once stdout is gone (a closed terminal, a closed pipe), records
    still go to log.txt, and no record turns into a "Logging error" traceback on stderr
    (which a parent sends to log.txt: see fedra.host.stderr_log)."""

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the copy quietly."""


def log_to_folder(root: Path) -> None:
    """Send INFO and above of every logger to ``root/log.txt`` (appended) and to stdout."""
    fmt = logging.Formatter(LOG_FORMAT)
    logger = logging.getLogger()
    logger.setLevel(logging.INFO)
    for handler in (
        logging.FileHandler(root / "log.txt", encoding="utf-8"),
        _Copy(sys.stdout),
    ):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
