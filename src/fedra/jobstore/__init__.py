"""The job store: job records, their status history, zips and run folders, behind one interface.

:class:`JobStore` is the interface; :class:`SqliteJobStore` is the embedded default,
:class:`PostgresJobStore` the one several servers share for high availability, and
:class:`MemoryJobStore` the in-memory one. One contract test runs against all three.
:func:`open_store` opens the one a server's configuration names. Writes can be fenced by a
service session id (:class:`FencedJobStore`, :class:`StaleSession`).

What the backends share is written once: argument checks and the transition rules in
``_base.py`` (every backend), the operations over the two SQL tables in ``_sql.py`` (SQLite and
PostgreSQL); each backend's module keeps its own locking, fencing and connection.
"""

from fedra.jobstore.errors import (
    JobExists,
    JobNotFound,
    JobStillActive,
    JobStoreError,
    StaleSession,
    StatusConflict,
    StoreCorrupt,
)
from fedra.jobstore.factory import BACKENDS, StoreConfig, open_store
from fedra.jobstore.fencing import MAX_SSID, FencedJobStore, check_ssid
from fedra.jobstore.files import JOBS_DIR, WORKSPACE_DIR, ZIP_FILE, JobFiles
from fedra.jobstore.memory import MemoryJobStore
from fedra.jobstore.postgres import PG_SCHEMA_VERSION, PostgresJobStore
from fedra.jobstore.protocol import JobStore
from fedra.jobstore.record import (
    FAILURE_KEYS,
    JobRecord,
    check_job_id,
    is_job_id,
    meta_as_dict,
    new_job_id,
)
from fedra.jobstore.sqlite import DB_FILE, SCHEMA_VERSION, SqliteJobStore

__all__ = [
    "BACKENDS",
    "DB_FILE",
    "FAILURE_KEYS",
    "JOBS_DIR",
    "MAX_SSID",
    "PG_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "WORKSPACE_DIR",
    "ZIP_FILE",
    "FencedJobStore",
    "JobExists",
    "JobFiles",
    "JobNotFound",
    "JobRecord",
    "JobStillActive",
    "JobStore",
    "JobStoreError",
    "MemoryJobStore",
    "PostgresJobStore",
    "SqliteJobStore",
    "StaleSession",
    "StatusConflict",
    "StoreConfig",
    "StoreCorrupt",
    "check_job_id",
    "check_ssid",
    "is_job_id",
    "meta_as_dict",
    "new_job_id",
    "open_store",
]
