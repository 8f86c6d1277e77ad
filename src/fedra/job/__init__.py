"""Job folders: loading and validation, job zips, the component registry, the Python job API."""

from fedra.core.safezip import MAX_JOB_BYTES
from fedra.job.api import FedJob
from fedra.job.archive import MAX_JOB_FILES, JobArchiveError, job_folder, unzip_job, zip_job
from fedra.job.custom import activate_custom_dirs, load_custom_class
from fedra.job.folder import (
    App,
    JobDefinition,
    build_executors,
    build_filters,
    build_persistor,
    build_result_filters,
    build_workflows,
    check_args,
    load_job,
)
from fedra.job.registry import BUILTINS, builtin

__all__ = [
    "BUILTINS",
    "MAX_JOB_BYTES",
    "MAX_JOB_FILES",
    "App",
    "FedJob",
    "JobArchiveError",
    "JobDefinition",
    "activate_custom_dirs",
    "build_executors",
    "build_filters",
    "build_persistor",
    "build_result_filters",
    "build_workflows",
    "builtin",
    "check_args",
    "job_folder",
    "load_custom_class",
    "load_job",
    "unzip_job",
    "zip_job",
]
