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
from typing import NotRequired, TypedDict

from fedra.core import (
    ALL_SITES,
    CLIENT_CONFIG,
    META_FILE,
    SERVER_CONFIG,
    ConfigError,
    JsonCompatible,
)
from fedra.job.folder import JobDefinition, load_job

APP = "app"

#: A component as a job config names it: a built-in ``class`` or a ``custom`` one, its
#: ``args``, and (executors) the ``tasks`` it runs. ("class" is a keyword: no class syntax.)
Component = TypedDict(
    "Component",
    {"class": str, "custom": str, "args": dict[str, JsonCompatible], "tasks": list[str]},
    total=False,
)


class MetaDocument(TypedDict):
    """meta.json as :class:`FedJob` writes it."""

    name: str
    deploy_map: dict[str, list[str]]
    min_clients: int
    mandatory_clients: NotRequired[list[str]]
    resource_spec: NotRequired[dict[str, dict[str, JsonCompatible]]]
    priority: NotRequired[int]


class ServerDocument(TypedDict):
    """The app's server config as :class:`FedJob` writes it."""

    format_version: int
    workflows: list[Component]
    persistor: NotRequired[Component]
    result_filters: NotRequired[list[Component]]


class ClientDocument(TypedDict):
    """The app's client config as :class:`FedJob` writes it."""

    format_version: int
    executors: list[Component]
    task_data_filters: NotRequired[list[Component]]
    task_result_filters: NotRequired[list[Component]]


def _component(
    class_name: str | None, custom: str | None, args: dict[str, JsonCompatible]
) -> Component:
    if class_name is not None and custom is None:
        entry: Component = {"class": class_name}
    elif custom is not None and class_name is None:
        entry = {"custom": custom}
    else:
        raise ConfigError("give either a built-in class name or custom='module.Class'")
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
        resource_spec: dict[str, dict[str, JsonCompatible]] | None = None,
        priority: int = 0,
    ) -> None:
        self.name = name
        self.min_clients = min_clients
        self.mandatory_clients = list(mandatory_clients)
        self.resource_spec = dict(resource_spec or {})
        self.priority = priority
        self.workflows: list[Component] = []
        self.executors: list[Component] = []
        self.persistor: Component | None = None
        self.server_filters: list[Component] = []
        self.filters: dict[str, list[Component]] = {
            "task_data_filters": [],
            "task_result_filters": [],
        }
        self.files: list[tuple[Path, str]] = []

    def add_workflow(
        self, class_name: str | None = None, *, custom: str | None = None, **args: JsonCompatible
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
        **args: JsonCompatible,
    ) -> FedJob:
        """Add a site executor for ``tasks`` (default: every task)."""
        entry = _component(class_name, custom, args)
        entry["tasks"] = list(tasks)
        self.executors.append(entry)
        return self

    def add_filter(
        self, class_name: str, *, direction: str = "task_result", **args: JsonCompatible
    ) -> FedJob:
        """Add a filter (fedra.filters) on what sites receive (``task_data``) or send back."""
        key = f"{direction}_filters"
        if key not in self.filters:
            raise ConfigError("direction must be 'task_data' or 'task_result'")
        self.filters[key].append(_component(class_name, None, args))
        return self

    def add_server_filter(self, class_name: str, **args: JsonCompatible) -> FedJob:
        """Add a filter the server runs on every incoming result (``result_filters``)."""
        self.server_filters.append(_component(class_name, None, args))
        return self

    def set_persistor(self, class_name: str = "ModelPersistor", **args: JsonCompatible) -> FedJob:
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

    def to_dict(self) -> dict[str, MetaDocument | ServerDocument | ClientDocument]:
        """The JSON documents of the job, by file name."""
        meta: MetaDocument = {
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
        server: ServerDocument = {"format_version": 1, "workflows": self.workflows}
        if self.persistor is not None:
            server["persistor"] = self.persistor
        if self.server_filters:
            server["result_filters"] = self.server_filters
        client: ClientDocument = {"format_version": 1, "executors": self.executors}
        if self.filters["task_data_filters"]:
            client["task_data_filters"] = self.filters["task_data_filters"]
        if self.filters["task_result_filters"]:
            client["task_result_filters"] = self.filters["task_result_filters"]
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
