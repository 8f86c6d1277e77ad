"""The job format: meta.json and the app configs, parsed from already-loaded JSON values.

Each file is a declared msgspec schema (:class:`JobMeta`, :class:`ServerConfigFile`,
:class:`ClientConfigFile`; ``docs/schemas/`` holds their JSON Schema). Reading files and
checking component names against the registry happen in ``fedra.job``; this module only
checks shapes and types, and every error names the file, the key and what was expected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypeVar

import msgspec

from fedra.core.errors import JobValidationError
from fedra.core.jsonfile import JsonObject, Problem, convert

FORMAT_VERSION: Literal[1] = 1
ALL_SITES = "@ALL"
SERVER = "server"
META_FILE = "meta.json"
SERVER_CONFIG = "config/config_fed_server.json"
CLIENT_CONFIG = "config/config_fed_client.json"
T = TypeVar("T")

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"
Version = Annotated[Literal[1], msgspec.Meta(description=f"{FORMAT_VERSION}")]
Names = Annotated[
    tuple[Annotated[str, msgspec.Meta(min_length=1)], ...],
    msgspec.Meta(description="a list of non-empty strings"),
]
AppName = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$|" + _NAME, description="a plain folder name"),
]


@dataclass(frozen=True)
class ComponentSpec:
    """A component named in a config: a built-in class or a class from the job's custom/."""

    name: str
    args: Mapping[str, object] = field(default_factory=dict)
    custom: bool = False
    tasks: tuple[str, ...] = ()
    #: Where it was declared, for error messages: (file, key).
    origin: tuple[str, str] = ("", "")


class JobMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Contents of meta.json."""

    name: Annotated[
        str,
        msgspec.Meta(
            pattern=_NAME,
            description="a name of letters, digits, '_', '.', '-' (1-128 characters)",
        ),
    ]
    deploy_map: Annotated[
        dict[AppName, Names],
        msgspec.Meta(min_length=1, description="an object mapping app folders to sites"),
    ]
    min_clients: Annotated[int, msgspec.Meta(ge=1, description="an integer >= 1")] = 1
    mandatory_clients: Names = ()
    #: Per site, what the job needs there (``num_gpus``, ``mem_per_gpu`` …; fedra.scheduler).
    resource_spec: dict[str, JsonObject] = {}
    #: Higher runs first among queued jobs (see fedra.scheduler); default 0.
    priority: Annotated[int, msgspec.Meta(description="an integer (higher runs first)")] = 0
    format_version: Version = FORMAT_VERSION

    def server_app(self) -> str:
        """The name of the app the server runs."""
        servers = server_apps(self.deploy_map)
        if len(servers) != 1:
            raise JobValidationError(META_FILE, "deploy_map", f"one app deployed to '{SERVER}'")
        return servers[0]

    def app_for_site(self, site: str) -> str | None:
        """The app a site runs: the one naming it, else the one for '@ALL'; None if neither."""
        for app, targets in self.deploy_map.items():
            if site in targets:
                return app
        for app, targets in self.deploy_map.items():
            if ALL_SITES in targets:
                return app
        return None


def server_apps(deploy_map: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Apps naming 'server' explicitly; failing that, apps deployed to '@ALL'."""
    explicit = [a for a, t in deploy_map.items() if SERVER in t]
    return explicit or [a for a, t in deploy_map.items() if ALL_SITES in t]


@dataclass(frozen=True)
class ServerConfig:
    """Contents of config_fed_server.json."""

    workflows: tuple[ComponentSpec, ...]
    persistor: ComponentSpec | None = None
    #: Filters the server runs on every incoming result before a workflow sees it.
    result_filters: tuple[ComponentSpec, ...] = ()


@dataclass(frozen=True)
class ClientConfig:
    """Contents of config_fed_client.json."""

    executors: tuple[ComponentSpec, ...]
    #: The job's own filters on what a site receives and on what it sends back.
    task_data_filters: tuple[ComponentSpec, ...] = ()
    task_result_filters: tuple[ComponentSpec, ...] = ()


class _Component(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A component entry: ``{"class": ..., "args": {...}}`` or ``{"custom": ..., "args": ...}``."""

    class_: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                description="the name of a built-in component",
            ),
        ]
        | None
    ) = msgspec.field(default=None, name="class")
    custom: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
                description="'module.Class' naming a class in the app's custom/",
            ),
        ]
        | None
    ) = None
    args: JsonObject = {}


class _Executor(_Component, frozen=True):
    """An executor entry: a component and the tasks it handles (``*``: all)."""

    tasks: Names = ("*",)


Filters = Annotated[list[_Component], msgspec.Meta(description="a list of filters")]


class ServerConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """config_fed_server.json as written."""

    workflows: Annotated[
        list[_Component], msgspec.Meta(min_length=1, description="a non-empty list of workflows")
    ]
    persistor: _Component | None = None
    result_filters: Filters = []
    format_version: Version = FORMAT_VERSION


class ClientConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """config_fed_client.json as written."""

    executors: Annotated[
        list[_Executor], msgspec.Meta(min_length=1, description="a non-empty list of executors")
    ]
    task_data_filters: Filters = []
    task_result_filters: Filters = []
    format_version: Version = FORMAT_VERSION


def _read(data: object, schema: type[T], file: str, key: str = "") -> T:
    def fail(problem: Problem) -> JobValidationError:
        if key:
            problem = dataclasses.replace(problem, path=(key, *problem.path))
        if problem.kind == "unknown":
            return JobValidationError.unknown_key(file, problem.key, problem.expected)
        return JobValidationError(file, problem.key, problem.expected, problem.got)

    return convert(data, schema, fail)


def parse_meta(data: object, file: str = META_FILE) -> JobMeta:
    """Validate the contents of meta.json."""
    meta = _read(data, JobMeta, file)
    servers = server_apps(meta.deploy_map)
    if len(servers) != 1:
        raise JobValidationError(
            file,
            "deploy_map",
            f"exactly one app deployed to '{SERVER}' (or '{ALL_SITES}')",
            servers,
        )
    return meta


def parse_component(data: object, file: str, key: str, *, executor: bool = False) -> ComponentSpec:
    """Validate one component entry: ``{"class": ..., "args": {...}}`` or ``{"custom": ...}``."""
    entry = _read(data, _Executor if executor else _Component, file, key)
    return _component(entry, file, key)


def _component(entry: _Component, file: str, key: str) -> ComponentSpec:
    if (entry.class_ is None) == (entry.custom is None):
        raise JobValidationError(
            file, key, "exactly one of 'class' (a built-in) or 'custom' (module.Class in custom/)"
        )
    tasks = entry.tasks if isinstance(entry, _Executor) else ()
    name = entry.custom or entry.class_ or ""
    return ComponentSpec(name, entry.args, entry.custom is not None, tasks, (file, key))


def _components(entries: list[_Component], file: str, key: str) -> tuple[ComponentSpec, ...]:
    return tuple(_component(e, file, f"{key}[{i}]") for i, e in enumerate(entries))


def parse_server_config(data: object, file: str = SERVER_CONFIG) -> ServerConfig:
    """Validate the contents of config_fed_server.json."""
    spec = _read(data, ServerConfigFile, file)
    return ServerConfig(
        workflows=_components(spec.workflows, file, "workflows"),
        persistor=None if spec.persistor is None else _component(spec.persistor, file, "persistor"),
        result_filters=_components(spec.result_filters, file, "result_filters"),
    )


def parse_client_config(data: object, file: str = CLIENT_CONFIG) -> ClientConfig:
    """Validate the contents of config_fed_client.json."""
    spec = _read(data, ClientConfigFile, file)
    return ClientConfig(
        executors=_components(list(spec.executors), file, "executors"),
        task_data_filters=_components(spec.task_data_filters, file, "task_data_filters"),
        task_result_filters=_components(spec.task_result_filters, file, "task_result_filters"),
    )
