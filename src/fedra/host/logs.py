"""How every long-lived Fedra process logs: to ``log.txt`` in its folder and to stdout."""

from __future__ import annotations

import logging
import os
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
    """Send INFO and above of every logger to ``root/log.txt`` (appended) and to stdout,
    unless stdout is that file already (``start.sh`` sends it there): each line once."""
    fmt = logging.Formatter(LOG_FORMAT)
    logger = logging.getLogger()
    logger.setLevel(logging.INFO)
    path = root / "log.txt"
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
    if not _is_file(sys.stdout, path):
        handlers.append(_Copy(sys.stdout))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)


def _is_file(stream: object, path: Path) -> bool:
    """Whether ``stream`` writes to the file at ``path``."""
    try:
        fileno = getattr(stream, "fileno", None)
        mine, theirs = os.fstat(fileno()) if callable(fileno) else None, os.stat(path)
    except (OSError, ValueError):
        return False
    return mine is not None and (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
