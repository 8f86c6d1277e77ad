"""Reading settings files: one object, bounded size, typed values.

Files are read into plain values (bounded in size and depth) and converted to declared
``msgspec.Struct`` schemas with :func:`convert`; a value that does not fit becomes a
:class:`Problem` that names the key (``participants[2].org``) and what was expected (the
``description`` of the value's ``msgspec.Meta``). Every error of :func:`read_json_as` is a
:class:`~fedra.core.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar, Union

import msgspec

#: The largest settings file read (a kit's files are a few hundred bytes).
MAX_SETTINGS_BYTES = 1 << 20
#: The deepest nesting of arrays and objects accepted in JSON that comes from outside (job
#: folders, settings, message headers): deeper input is refused with a clean error instead
#: of exhausting the interpreter's recursion limit.
MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_JSON_DEPTH` levels (the message names the input)."""


def check_depth(value: object, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """JsonTooDeep when ``value`` (parsed JSON) nests arrays/objects deeper than ``limit``.

    Iterative: safe on any input json.loads returned."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise JsonTooDeep(f"{what}: JSON nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def load_json(text: str | bytes, what: str, **options: Any) -> Any:
    """``json.loads(text, **options)`` with nesting bounded (:func:`check_depth`).

    json.JSONDecodeError for invalid JSON, JsonTooDeep for JSON nested too deep."""
    try:
        value = json.loads(text, **options)
    except RecursionError:
        raise JsonTooDeep(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_depth(value, what)
    return value


def read_json_object(
    path: Path, *, required: bool = True, what: str = "a startup kit folder"
) -> dict[str, Any]:  # Any: fedra.overseer.kit narrows its values by hand
    """The JSON object in ``path``; ``{}`` for a missing file unless ``required``."""
    from fedra.core.errors import ConfigError

    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError as err:
        if not required:
            return {}
        raise ConfigError(f"{path} not found: is this {what}?") from err
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    if len(raw) > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SETTINGS_BYTES} bytes")
    try:
        data = load_json(raw.decode("utf-8"), str(path))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from err
    except JsonTooDeep as err:
        raise ConfigError(str(err)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def read_json_as(path: Path, schema: type[T], *, what: str = "a startup kit folder") -> T:
    """The JSON object in ``path`` as a ``schema``; errors name the file and the key."""
    from fedra.core.errors import ConfigError

    data = read_json_object(path, what=what)
    return convert(data, schema, lambda p: ConfigError(f"{path}: {p.key}: {p.message}"))


def typed(
    data: JsonObject, path: Path, key: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    """``data[key]`` (or ``default``) checked to be a ``kind`` (a bool is not an int)."""
    from fedra.core.errors import ConfigError

    value = data.get(key, default)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (
        value is None
        or not isinstance(value, kinds)
        or (isinstance(value, bool) and bool not in kinds)
    ):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{path}: {key}: expected {names}, got {value!r}")
    return value


# -- typed reading: msgspec schemas, and errors that name the key --------------------------
if TYPE_CHECKING:
    #: Any JSON value; what users write freely (a component's ``args``, metrics).
    JsonValue: TypeAlias = (
        str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
    )
else:  # msgspec checks no deeper than "came from JSON"; mypy sees the recursive type
    JsonValue = Any
#: A JSON object of arbitrary values.
JsonObject: TypeAlias = dict[str, JsonValue]

#: A key of a document: an object's key or a list's index.
Key = str | int
T = TypeVar("T")

_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """Why a document does not fit its schema: where (``path`` from the root) and what.

    ``kind`` is ``missing`` (a required key), ``unknown`` (a key the schema does not have) or
    ``invalid`` (a value: ``expected`` says what would do, ``got`` is what is there).
    """

    kind: Literal["missing", "unknown", "invalid"]
    path: tuple[Key, ...]
    expected: str
    got: object = None
    #: What holds the key, e.g. ``a server`` for the participant of type server.
    owner: str = ""

    @property
    def key(self) -> str:
        """The path as ``participants[2].org``."""
        return dotted(self.path)

    @property
    def message(self) -> str:
        """One line: ``expected an integer 1-65535, got 'abc'`` and the like."""
        if self.kind == "missing":
            return "missing; this key is required"
        if self.kind == "unknown":
            owner = f" for {self.owner}" if self.owner else ""
            return f"unknown key{owner} (expected one of: {self.expected})"
        return f"expected {self.expected}, got {self.got!r}"


def dotted(path: tuple[Key, ...]) -> str:
    """``("participants", 2, "org")`` as ``participants[2].org``."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def convert(data: object, schema: type[T], fail: Callable[[Problem], Exception]) -> T:
    """``data`` (parsed JSON or YAML) as a ``schema``; ``fail(problem)`` is raised otherwise."""
    try:
        return msgspec.convert(data, type=schema)
    except msgspec.ValidationError as err:
        raise fail(explain(err, data, schema)) from None


def explain(err: msgspec.ValidationError, data: object, schema: object) -> Problem:
    """The :class:`Problem` behind msgspec's ``err`` on ``data``: a path of keys, and what was
    expected in words (the ``description`` of the value's ``msgspec.Meta`` when it has one)."""
    text, _, where = str(err).partition(" - at `")
    in_key = where.startswith("key` in `")
    where = where.removeprefix("key` in `").rstrip("`")
    tokens = [m.group(1) or m.group(2) for m in _TOKEN.finditer(where)]
    tp, value, path = schema, data, []
    for token in tokens:
        tp, value, key = _step(tp, value, token)
        path.append(key)
    if in_key:
        tp, value, key = _bad_key(tp, value)
        path.append(key)
    field = re.match(r"Object (missing required|contains unknown) field `(.*)`", text)
    struct = _struct(tp, value)
    owner = _owner(struct)
    if field and field.group(1).startswith("missing"):
        return Problem("missing", (*path, field.group(2)), "this key", owner=owner)
    if field:
        names = ", ".join(f.encode_name for f in msgspec.structs.fields(struct)) if struct else ""
        return Problem("unknown", (*path, field.group(2)), names, owner=owner)
    return Problem("invalid", tuple(path), _expected(tp, text), value)


def _unwrap(tp: Any, value: object) -> tuple[Any, str]:
    """``tp`` without ``Annotated`` and ``None`` (the branch of a union ``value`` takes), and
    the outermost description found on the way."""
    description = ""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp, *metas = typing.get_args(tp)
            found = [m.description for m in metas if isinstance(m, msgspec.Meta) and m.description]
            description = description or (found[0] if found else "")
        elif origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = _branch(options, value) if len(options) > 1 else options[0]
            if isinstance(tp, list):  # a tagged union the value matches no branch of
                return tp, description
        else:
            return tp, description


def _branch(options: list[Any], value: object) -> Any:
    tagged = [o for o in options if _tag(o) is not None]
    if not tagged or not isinstance(value, dict):
        return options[0]
    field = tagged[0].__struct_config__.tag_field
    return next((o for o in tagged if _tag(o) == value.get(field)), tagged)


def _tag(tp: Any) -> str | None:
    config = getattr(tp, "__struct_config__", None)
    return str(config.tag) if config is not None and config.tag is not None else None


def _struct(tp: Any, value: object) -> Any:
    inner, _ = _unwrap(tp, value)
    if isinstance(inner, list):
        return None
    return inner if isinstance(inner, type) and issubclass(inner, msgspec.Struct) else None


def _owner(struct: Any) -> str:
    tag = _tag(struct)
    if tag is None:
        return ""
    return f"an {tag}" if tag[0] in "aeiou" else f"a {tag}"


def _step(tp: Any, value: object, token: str) -> tuple[Any, object, Key]:
    """The type and value one key down, and the key (``[...]``: the first entry that fails)."""
    inner, _ = _unwrap(tp, value)
    if isinstance(inner, list):  # the tag of a tagged union
        return inner, value.get(token) if isinstance(value, dict) else None, token
    if token.isdigit():
        item = typing.get_args(inner)[0] if typing.get_args(inner) else Any
        index = int(token)
        got = value[index] if isinstance(value, list) and index < len(value) else None
        return item, got, index
    if token == "...":  # noqa: S105 - a dict entry msgspec does not name
        item = typing.get_args(inner)[-1] if typing.get_args(inner) else Any
        entries = value.items() if isinstance(value, dict) else ()
        bad = next(((k, v) for k, v in entries if not _fits(v, item)), ("...", None))
        return item, bad[1], bad[0]
    struct = _struct(inner, value)
    fields = {f.encode_name: f.type for f in msgspec.structs.fields(struct)} if struct else {}
    got = value.get(token, _MISSING) if isinstance(value, dict) else _MISSING
    return fields.get(token, Any), None if got is _MISSING else got, token


def _bad_key(tp: Any, value: object) -> tuple[Any, object, Key]:
    inner, _ = _unwrap(tp, value)
    key_type = typing.get_args(inner)[0] if typing.get_args(inner) else str
    keys = list(value) if isinstance(value, dict) else []
    bad = next((k for k in keys if not _fits(k, key_type)), "")
    return key_type, bad, bad


def _fits(value: object, tp: Any) -> bool:
    try:
        msgspec.convert(value, type=tp)
    except msgspec.ValidationError:
        return False
    return True


def _expected(tp: Any, text: str) -> str:
    """What a value of type ``tp`` should be, in words."""
    inner, description = _unwrap(tp, None)
    if description:
        return description
    if isinstance(inner, list):
        return "one of " + ", ".join(str(_tag(o)) for o in inner)
    if typing.get_origin(inner) is Literal:
        return "one of " + ", ".join(str(v) for v in typing.get_args(inner))
    text = re.sub(r", got `[^`]*`$", "", text).removeprefix("Expected ")
    return re.sub(
        r"`([^`]*)`", lambda m: " or ".join(_NAMES.get(t, t) for t in m[1].split(" | ")), text
    )
