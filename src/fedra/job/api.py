"""The Python job API: build a job folder in code instead of writing JSON by hand.

::

    job = FedJob("hello-numpy", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=3, min_clients=2)
    job.add_executor("ScriptExecutor", script="train.py")
    job.add_file("train.py")
    job.export("jobs/hello-numpy")       # validated exactly like a hand-written folder
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedra.core import ALL_SITES, CLIENT_CONFIG, META_FILE, SERVER_CONFIG, ConfigError
from fedra.job.folder import JobDefinition, load_job

APP = "app"


def _component(class_name: str | None, custom: str | None, args: dict[str, Any]) -> dict[str, Any]:
    if (class_name is None) == (custom is None):
        raise ConfigError("give either a built-in class name or custom='module.Class'")
    entry: dict[str, Any] = {"class": class_name} if class_name else {"custom": custom}
    if args:
        entry["args"] = args
    return entry


class FedJob:
    """A job with one app deployed to the server and every site."""

    def __init__(
        self,
        name: str,
        min_clients: int = 1,
        mandatory_clients: Sequence[str] = (),
        resource_spec: dict[str, dict[str, Any]] | None = None,
        priority: int = 0,
    ) -> None:
        self.name = name
        self.min_clients = min_clients
        self.mandatory_clients = list(mandatory_clients)
        self.resource_spec = dict(resource_spec or {})
        self.priority = priority
        self.workflows: list[dict[str, Any]] = []
        self.executors: list[dict[str, Any]] = []
        self.persistor: dict[str, Any] | None = None
        self.server_filters: list[dict[str, Any]] = []
        self.filters: dict[str, list[dict[str, Any]]] = {
            "task_data_filters": [],
            "task_result_filters": [],
        }
        self.files: list[tuple[Path, str]] = []

    def add_workflow(
        self, class_name: str | None = None, *, custom: str | None = None, **args: Any
    ) -> FedJob:
        """Append a server workflow (built-in by name, or ``custom='module.Class'``)."""
        self.workflows.append(_component(class_name, custom, args))
        return self

    def add_executor(
        self,
        class_name: str | None = None,
        *,
        custom: str | None = None,
        tasks: Sequence[str] = ("*",),
        **args: Any,
    ) -> FedJob:
        """Add a site executor for ``tasks`` (default: every task)."""
        entry = _component(class_name, custom, args)
        entry["tasks"] = list(tasks)
        self.executors.append(entry)
        return self

    def add_filter(self, class_name: str, *, direction: str = "task_result", **args: Any) -> FedJob:
        """Add a filter (fedra.filters) on what sites receive (``task_data``) or send back."""
        key = f"{direction}_filters"
        if key not in self.filters:
            raise ConfigError("direction must be 'task_data' or 'task_result'")
        self.filters[key].append(_component(class_name, None, args))
        return self

    def add_server_filter(self, class_name: str, **args: Any) -> FedJob:
        """Add a filter the server runs on every incoming result (``result_filters``)."""
        self.server_filters.append(_component(class_name, None, args))
        return self

    def set_persistor(self, class_name: str = "ModelPersistor", **args: Any) -> FedJob:
        """Configure where the initial model comes from and how the best one is picked."""
        self.persistor = _component(class_name, None, args)
        return self

    def add_file(self, path: str | Path, dest: str | None = None) -> FedJob:
        """Copy a file (or folder) into the app's custom/ folder on export."""
        source = Path(path)
        if not source.exists():
            raise ConfigError(f"{source} does not exist")
        self.files.append((source, dest or source.name))
        return self

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The JSON documents of the job, by file name."""
        meta: dict[str, Any] = {
            "name": self.name,
            "deploy_map": {APP: [ALL_SITES]},
            "min_clients": self.min_clients,
        }
        if self.mandatory_clients:
            meta["mandatory_clients"] = self.mandatory_clients
        if self.resource_spec:
            meta["resource_spec"] = self.resource_spec
        if self.priority:
            meta["priority"] = self.priority
        server: dict[str, Any] = {"format_version": 1, "workflows": self.workflows}
        if self.persistor is not None:
            server["persistor"] = self.persistor
        if self.server_filters:
            server["result_filters"] = self.server_filters
        client: dict[str, Any] = {"format_version": 1, "executors": self.executors}
        client.update({k: v for k, v in self.filters.items() if v})
        return {
            META_FILE: meta,
            f"{APP}/{SERVER_CONFIG}": server,
            f"{APP}/{CLIENT_CONFIG}": client,
        }

    def export(self, folder: str | Path) -> JobDefinition:
        """Write the job folder (replacing an older export) and validate it."""
        root = Path(folder)
        if root.exists():
            if not (root / META_FILE).is_file():
                raise ConfigError(f"{root} exists and is not a job folder; refusing to replace it")
            shutil.rmtree(root)
        for relative, document in self.to_dict().items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        custom = root / APP / "custom"
        for source, dest in self.files:
            target = custom / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        return load_job(root)
