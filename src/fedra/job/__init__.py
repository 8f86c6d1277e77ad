"""Job folders: loading and validation, the component registry, and the Python job API."""

from fedra.job.api import FedJob
from fedra.job.custom import activate_custom_dirs, load_custom_class
from fedra.job.folder import (
    App,
    JobDefinition,
    build_executors,
    build_persistor,
    build_workflows,
    check_args,
    load_job,
)
from fedra.job.registry import BUILTINS, builtin

__all__ = [
    "BUILTINS",
    "App",
    "FedJob",
    "JobDefinition",
    "activate_custom_dirs",
    "build_executors",
    "build_persistor",
    "build_workflows",
    "builtin",
    "check_args",
    "load_custom_class",
    "load_job",
]
