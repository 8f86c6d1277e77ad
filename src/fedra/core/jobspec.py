"""The job format: meta.json and the app configs, parsed from already-loaded JSON values.

Reading files and checking component names against the registry happen in ``fedra.job``; this
module only checks shapes and types, and every error names the file, the key and what was
expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedra.core.errors import JobValidationError

FORMAT_VERSION = 1
ALL_SITES = "@ALL"
SERVER = "server"
META_FILE = "meta.json"
SERVER_CONFIG = "config/config_fed_server.json"
CLIENT_CONFIG = "config/config_fed_client.json"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ComponentSpec:
    """A component named in a config: a built-in class or a class from the job's custom/."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    custom: bool = False
    tasks: tuple[str, ...] = ()
    #: Where it was declared, for error messages: (file, key).
    origin: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class JobMeta:
    """Contents of meta.json."""

    name: str
    deploy_map: Mapping[str, tuple[str, ...]]
    min_clients: int = 1
    mandatory_clients: tuple[str, ...] = ()
    resource_spec: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Higher runs first among queued jobs (see fedra.scheduler); default 0.
    priority: int = 0

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


def _expect_dict(value: object, file: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise JobValidationError(file, key or "(top level)", "a JSON object", type(value).__name__)
    return value


def _known_keys(obj: Mapping[str, Any], allowed: set[str], file: str, prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{prefix}.{key}" if prefix else key
            raise JobValidationError(
                file, where, f"one of the keys {sorted(allowed)}", "unknown key"
            )


def _format_version(obj: Mapping[str, Any], file: str) -> None:
    version = obj.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
        raise JobValidationError(file, "format_version", f"{FORMAT_VERSION}", version)


def _str_list(value: object, file: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise JobValidationError(file, key, "a list of non-empty strings", value)
    return tuple(value)


def parse_meta(data: object, file: str = META_FILE) -> JobMeta:
    """Validate the contents of meta.json."""
    obj = _expect_dict(data, file, "")
    _known_keys(
        obj,
        {
            "name",
            "deploy_map",
            "min_clients",
            "mandatory_clients",
            "resource_spec",
            "priority",
            "format_version",
        },
        file,
        "",
    )
    _format_version(obj, file)
    name = obj.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise JobValidationError(
            file, "name", "a name of letters, digits, '_', '.', '-' (1-128 characters)", name
        )
    raw_map = obj.get("deploy_map")
    if raw_map is None:
        raise JobValidationError(file, "deploy_map", "an object mapping app folders to sites")
    deploy = _expect_dict(raw_map, file, "deploy_map")
    if not deploy:
        raise JobValidationError(file, "deploy_map", "at least one app", {})
    deploy_map: dict[str, tuple[str, ...]] = {}
    for app, targets in deploy.items():
        if not _IDENT.match(app) and not _NAME.match(app):
            raise JobValidationError(file, f"deploy_map.{app}", "a plain folder name", app)
        deploy_map[app] = _str_list(targets, file, f"deploy_map.{app}")
    meta_min = obj.get("min_clients", 1)
    if isinstance(meta_min, bool) or not isinstance(meta_min, int) or meta_min < 1:
        raise JobValidationError(file, "min_clients", "an integer >= 1", meta_min)
    mandatory = _str_list(obj.get("mandatory_clients", []), file, "mandatory_clients")
    resources = _expect_dict(obj.get("resource_spec", {}), file, "resource_spec")
    for site, spec in resources.items():
        _expect_dict(spec, file, f"resource_spec.{site}")
    priority = obj.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise JobValidationError(file, "priority", "an integer (higher runs first)", priority)
    meta = JobMeta(
        name=name,
        deploy_map=deploy_map,
        min_clients=meta_min,
        mandatory_clients=mandatory,
        resource_spec={k: dict(v) for k, v in resources.items()},
        priority=priority,
    )
    servers = server_apps(deploy_map)
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
    obj = _expect_dict(data, file, key)
    allowed = {"class", "custom", "args"} | ({"tasks"} if executor else set())
    _known_keys(obj, allowed, file, key)
    if ("class" in obj) == ("custom" in obj):
        raise JobValidationError(
            file, key, "exactly one of 'class' (a built-in) or 'custom' (module.Class in custom/)"
        )
    if "class" in obj:
        name = obj["class"]
        if not isinstance(name, str) or not _IDENT.match(name):
            raise JobValidationError(file, f"{key}.class", "the name of a built-in component", name)
        custom = False
    else:
        name = obj["custom"]
        if not isinstance(name, str) or not _DOTTED.match(name):
            raise JobValidationError(
                file, f"{key}.custom", "'module.Class' naming a class in the app's custom/", name
            )
        custom = True
    args = _expect_dict(obj.get("args", {}), file, f"{key}.args")
    tasks: tuple[str, ...] = ()
    if executor:
        tasks = _str_list(obj.get("tasks", ["*"]), file, f"{key}.tasks")
    return ComponentSpec(name=name, args=dict(args), custom=custom, tasks=tasks, origin=(file, key))


def parse_server_config(data: object, file: str = SERVER_CONFIG) -> ServerConfig:
    """Validate the contents of config_fed_server.json."""
    obj = _expect_dict(data, file, "")
    _known_keys(obj, {"format_version", "workflows", "persistor", "result_filters"}, file, "")
    _format_version(obj, file)
    raw = obj.get("workflows")
    if not isinstance(raw, list) or not raw:
        raise JobValidationError(file, "workflows", "a non-empty list of workflows", raw)
    workflows = tuple(parse_component(w, file, f"workflows[{i}]") for i, w in enumerate(raw))
    persistor = None
    if "persistor" in obj:
        persistor = parse_component(obj["persistor"], file, "persistor")
    items = obj.get("result_filters", [])
    if not isinstance(items, list):
        raise JobValidationError(file, "result_filters", "a list of filters", items)
    result_filters = tuple(
        parse_component(f, file, f"result_filters[{i}]") for i, f in enumerate(items)
    )
    return ServerConfig(workflows=workflows, persistor=persistor, result_filters=result_filters)


def parse_client_config(data: object, file: str = CLIENT_CONFIG) -> ClientConfig:
    """Validate the contents of config_fed_client.json."""
    obj = _expect_dict(data, file, "")
    keys = {"format_version", "executors", "task_data_filters", "task_result_filters"}
    _known_keys(obj, keys, file, "")
    _format_version(obj, file)
    raw = obj.get("executors")
    if not isinstance(raw, list) or not raw:
        raise JobValidationError(file, "executors", "a non-empty list of executors", raw)
    executors = tuple(
        parse_component(e, file, f"executors[{i}]", executor=True) for i, e in enumerate(raw)
    )
    chains: dict[str, tuple[ComponentSpec, ...]] = {}
    for key in ("task_data_filters", "task_result_filters"):
        items = obj.get(key, [])
        if not isinstance(items, list):
            raise JobValidationError(file, key, "a list of filters", items)
        chains[key] = tuple(parse_component(f, file, f"{key}[{i}]") for i, f in enumerate(items))
    return ClientConfig(executors=executors, **chains)
