"""Reading a participant's JSON settings files: one object, bounded size, typed values.

Every error is a :class:`~fedra.core.ConfigError` naming the file (and the key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
) -> dict[str, Any]:
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


def typed(
    data: dict[str, Any], path: Path, key: str, kind: type | tuple[type, ...], default: Any = None
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
