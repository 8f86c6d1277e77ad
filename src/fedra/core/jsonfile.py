"""Reading a participant's JSON settings files: one object, bounded size, typed values.

Every error is a :class:`~fedra.core.ConfigError` naming the file (and the key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The largest settings file read (a kit's files are a few hundred bytes).
MAX_SETTINGS_BYTES = 1 << 20


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
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from err
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
