"""The job store: job records, their status history, zips and run folders, behind one interface.

:class:`JobStore` is the interface; :class:`SqliteJobStore` is the embedded default and
:class:`MemoryJobStore` the in-memory one. One contract test runs against both.
"""

from fedra.store.errors import (
    JobExists,
    JobNotFound,
    JobStillActive,
    JobStoreError,
    StatusConflict,
    StoreCorrupt,
)
from fedra.store.files import JOBS_DIR, WORKSPACE_DIR, ZIP_FILE, JobFiles
from fedra.store.memory import MemoryJobStore
from fedra.store.protocol import JobStore
from fedra.store.record import (
    FAILURE_KEYS,
    JobRecord,
    check_job_id,
    is_job_id,
    meta_as_dict,
    new_job_id,
)
from fedra.store.sqlite import DB_FILE, SCHEMA_VERSION, SqliteJobStore

__all__ = [
    "DB_FILE",
    "FAILURE_KEYS",
    "JOBS_DIR",
    "SCHEMA_VERSION",
    "WORKSPACE_DIR",
    "ZIP_FILE",
    "JobExists",
    "JobFiles",
    "JobNotFound",
    "JobRecord",
    "JobStillActive",
    "JobStore",
    "JobStoreError",
    "MemoryJobStore",
    "SqliteJobStore",
    "StatusConflict",
    "StoreCorrupt",
    "check_job_id",
    "is_job_id",
    "meta_as_dict",
    "new_job_id",
]
