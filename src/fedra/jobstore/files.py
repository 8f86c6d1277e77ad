"""The files of stored jobs: ``<root>/jobs/<job_id>/job.zip`` and ``.../workspace/``.

Shared by every store backend, so a job's files sit in the same place whatever keeps its
record. Zips are written to a temporary file and renamed into place: a crash never leaves a
half-written zip under a job's name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from fedra.jobstore.errors import StoreCorrupt

JOBS_DIR = "jobs"
ZIP_FILE = "job.zip"
WORKSPACE_DIR = "workspace"


class JobFiles:
    """Paths and file operations for the jobs under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.jobs = self.root / JOBS_DIR
        self.jobs.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        """The folder of one job (``job_id`` must already be checked)."""
        return self.jobs / job_id

    def write_zip(self, job_id: str, data: bytes) -> None:
        """Store the job's zip, replacing any leftovers of an earlier job of that id."""
        folder = self.folder(job_id)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{ZIP_FILE}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / ZIP_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_zip(self, job_id: str) -> bytes:
        """The job's zip."""
        path = self.folder(job_id) / ZIP_FILE
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreCorrupt(path, f"the zip of job {job_id!r} is missing") from exc

    def workspace(self, job_id: str) -> Path:
        """The job's run folder, created if needed."""
        path = self.folder(job_id) / WORKSPACE_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove(self, job_id: str) -> None:
        """Remove all of the job's files."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
