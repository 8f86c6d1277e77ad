"""Job folders: load, validate everything before anything runs, and build the components.

``load_job(path)`` reads meta.json and every app's configs, checks each component against
the registry (or the app's custom/ folder) and each argument against the component's
signature. Errors name the file, the key and what was expected; nothing is half-deployed.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedra.client import Executor
from fedra.core import (
    CLIENT_CONFIG,
    META_FILE,
    SERVER_CONFIG,
    ClientConfig,
    ComponentSpec,
    ConfigError,
    JobMeta,
    JobValidationError,
    ServerConfig,
    Workflow,
    parse_client_config,
    parse_meta,
    parse_server_config,
)
from fedra.core.jsonfile import MAX_JSON_DEPTH, JsonTooDeep, load_json
from fedra.job.custom import custom_module_file, load_custom_class
from fedra.job.registry import Kind, builtin, names
from fedra.serverapp import ModelPersistor

MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class App:
    """One app folder of a job."""

    name: str
    path: Path
    server: ServerConfig | None = None
    client: ClientConfig | None = None

    @property
    def custom_dir(self) -> Path | None:
        """The app's custom/ folder, if it has one."""
        folder = self.path / "custom"
        return folder if folder.is_dir() else None

    def rel(self, file: str) -> str:
        """A file of this app, as error messages name it."""
        return f"{self.name}/{file}"


@dataclass(frozen=True)
class JobDefinition:
    """A validated job folder."""

    root: Path
    meta: JobMeta
    apps: dict[str, App] = field(default_factory=dict)

    @property
    def server_app(self) -> App:
        """The app the server runs."""
        return self.apps[self.meta.server_app()]

    def client_app(self, site: str) -> App | None:
        """The app ``site`` runs, or None when the job does not deploy to it."""
        name = self.meta.app_for_site(site)
        return None if name is None else self.apps[name]


def read_json(path: Path, shown: str) -> object:
    """Parse a JSON file; a syntax error names the file and the line."""
    if not path.is_file():
        raise JobValidationError(shown, "", "this file to exist")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise JobValidationError(shown, "", f"at most {MAX_CONFIG_BYTES} bytes")
    try:
        return load_json(path.read_text(encoding="utf-8"), shown)
    except UnicodeDecodeError as exc:
        raise JobValidationError(shown, "", "UTF-8 text") from exc
    except JsonTooDeep:
        raise JobValidationError(
            shown, "", f"JSON nested at most {MAX_JSON_DEPTH} levels deep"
        ) from None
    except json.JSONDecodeError as exc:
        raise JobValidationError(
            shown, f"line {exc.lineno} column {exc.colno}", f"valid JSON ({exc.msg})"
        ) from exc


def load_job(path: str | Path) -> JobDefinition:
    """Load and fully validate the job folder at ``path``."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"job folder {root} does not exist")
    meta = parse_meta(read_json(root / META_FILE, META_FILE))
    server_app = meta.server_app()
    apps: dict[str, App] = {}
    for name, targets in meta.deploy_map.items():
        app_dir = (root / name).resolve()
        if not app_dir.is_relative_to(root.resolve()) or not app_dir.is_dir():
            raise JobValidationError(
                META_FILE, f"deploy_map.{name}", f"a folder '{name}' in the job"
            )
        server = client = None
        if name == server_app:
            server = parse_server_config(
                read_json(app_dir / SERVER_CONFIG, f"{name}/{SERVER_CONFIG}"),
                f"{name}/{SERVER_CONFIG}",
            )
        if any(t != "server" for t in targets):
            client = parse_client_config(
                read_json(app_dir / CLIENT_CONFIG, f"{name}/{CLIENT_CONFIG}"),
                f"{name}/{CLIENT_CONFIG}",
            )
        apps[name] = App(name, app_dir, server, client)
    job = JobDefinition(root, meta, apps)
    for app in apps.values():
        for spec in _specs(app):
            _check_spec(app, *spec)
    return job


def _specs(app: App) -> list[tuple[ComponentSpec, Kind]]:
    specs: list[tuple[ComponentSpec, Kind]] = []
    if app.server is not None:
        specs += [(w, "workflow") for w in app.server.workflows]
        if app.server.persistor is not None:
            specs.append((app.server.persistor, "persistor"))
        specs += [(f, "filter") for f in app.server.result_filters]
    if app.client is not None:
        specs += [(e, "executor") for e in app.client.executors]
        specs += [(f, "filter") for f in app.client.task_data_filters]
        specs += [(f, "filter") for f in app.client.task_result_filters]
    return specs


def _check_spec(app: App, spec: ComponentSpec, kind: Kind) -> None:
    file, key = spec.origin
    if spec.custom:
        if app.custom_dir is None:
            raise JobValidationError(file, f"{key}.custom", f"a custom/ folder in app '{app.name}'")
        try:
            custom_module_file(app.custom_dir, spec.name)
        except ConfigError as exc:
            raise JobValidationError(file, f"{key}.custom", str(exc)) from exc
        return
    cls = builtin(kind, spec.name)
    if cls is None:
        raise JobValidationError(
            file, f"{key}.class", f"a built-in {kind}: {names(kind)}", spec.name
        )
    check_args(cls, spec.args, file, f"{key}.args")
    # Built-ins are our own code: building one checks its values, and check_app checks the
    # files it needs (a script, an initial model) are in the app.
    try:
        instance = cls(**spec.args)
    except (TypeError, ValueError) as exc:
        raise JobValidationError(file, f"{key}.args", f"valid arguments ({exc})") from exc
    check_app = getattr(instance, "check_app", None)
    try:
        if callable(check_app):
            check_app(app.custom_dir)
        module = getattr(instance, "torch_module", None)
        if isinstance(module, str) and module:
            if app.custom_dir is None:
                raise ConfigError(f"'{module}': the app has no custom/ folder")
            custom_module_file(app.custom_dir, module)
    except ConfigError as exc:
        raise JobValidationError(file, f"{key}.args", str(exc)) from exc


def check_args(cls: type[Any], args: typing.Mapping[str, Any], file: str, key: str) -> None:
    """Check ``args`` against ``cls.__init__``: known names, required ones present, simple types."""
    params, hints = _init_params(cls)
    for name, value in args.items():
        if name not in params:
            known = ", ".join(sorted(params))
            raise JobValidationError.unknown_key(file, f"{key}.{name}", known, "argument")
        hint = hints.get(name)
        if hint is not None and not _matches(value, hint):
            raise JobValidationError(file, f"{key}.{name}", _describe(hint), value)
    for name, param in params.items():
        if param.default is param.empty and name not in args:
            raise JobValidationError(file, f"{key}.{name}", "this required argument")


def _init_params(cls: type[Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    """Named constructor parameters and their hints, following ``**kwargs`` to the base class
    (a FedAvg variant takes FedAvg's arguments through ``**fedavg_args``)."""
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        signature = inspect.signature(init)
        for name, param in signature.parameters.items():
            named = param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
            if named and name != "self" and name not in params:
                params[name] = param
        hints = {**typing.get_type_hints(init), **hints}
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return params, hints


def _matches(value: object, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is not None and origin.__name__ in ("Sequence", "list", "tuple"):
        return isinstance(value, list)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin is not None:
        return "a list" if origin.__name__ in ("Sequence", "list", "tuple") else str(origin)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _instantiate(app: App, spec: ComponentSpec, kind: Kind, allow_custom: bool) -> Any:
    file, key = spec.origin
    cls = (
        load_custom_class(app.custom_dir, spec.name, allow_custom)
        if spec.custom
        else builtin(kind, spec.name)
    )
    assert cls is not None
    try:
        return cls(**spec.args)
    except (TypeError, ValueError) as exc:
        raise JobValidationError(file, f"{key}.args", f"valid arguments ({exc})") from exc


def build_workflows(app: App, allow_custom: bool = True) -> list[Workflow]:
    """Instantiate the server app's workflows, in order."""
    assert app.server is not None
    return [_instantiate(app, w, "workflow", allow_custom) for w in app.server.workflows]


def build_persistor(app: App, allow_custom: bool = True) -> ModelPersistor:
    """The server app's persistor (a default one when the config names none)."""
    assert app.server is not None
    if app.server.persistor is None:
        return ModelPersistor()
    persistor = _instantiate(app, app.server.persistor, "persistor", allow_custom)
    if not isinstance(persistor, ModelPersistor):
        raise ConfigError(f"{app.server.persistor.name} is not a ModelPersistor")
    return persistor


def build_filters(app: App, allow_custom: bool = True) -> tuple[list[Any], list[Any]]:
    """The job's own filter chains of a client app: (task data filters, task result filters)."""
    assert app.client is not None
    data = [_instantiate(app, f, "filter", allow_custom) for f in app.client.task_data_filters]
    result = [_instantiate(app, f, "filter", allow_custom) for f in app.client.task_result_filters]
    return data, result


def build_result_filters(app: App, allow_custom: bool = True) -> list[Any]:
    """The server app's ``result_filters``, run on every incoming result (may be empty)."""
    assert app.server is not None
    return [_instantiate(app, f, "filter", allow_custom) for f in app.server.result_filters]


def build_executors(app: App, allow_custom: bool = True) -> list[tuple[tuple[str, ...], Executor]]:
    """Instantiate a client app's executors with the task names each handles."""
    assert app.client is not None
    built = []
    for spec in app.client.executors:
        executor = _instantiate(app, spec, "executor", allow_custom)
        if not isinstance(executor, Executor):
            file, key = spec.origin
            raise JobValidationError(file, key, "a subclass of fedra.client.Executor", spec.name)
        built.append((spec.tasks, executor))
    return built
