"""A site's mandatory privacy policy: ``local/privacy.json``, wrapping every job's filters.

Format (the provisioned ``privacy.json.default``)::

    {"default_scope": "public",
     "scopes": [{"name": "public", "task_data_filters": [...], "task_result_filters": [...]}]}

or simply ``{"task_data_filters": [...], "task_result_filters": [...]}``; each filter is
``{"class": "GaussianPrivacy", "args": {...}}`` naming a built-in of ``fedra.filters``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedra.core import ConfigError
from fedra.filters import FILTERS


def _build(items: object, where: str) -> list[Any]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list of filters")
    built = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("class") not in FILTERS:
            raise ConfigError(f"{where}[{i}]: expected {{'class': one of {sorted(FILTERS)}}}")
        args = item.get("args", {})
        if not isinstance(args, dict):
            raise ConfigError(f"{where}[{i}].args: expected an object")
        try:
            built.append(FILTERS[item["class"]](**args))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}[{i}]: {exc}") from exc
    return built


def load_site_filters(kit_root: Path) -> tuple[list[Any], list[Any]]:
    """The site's mandatory (task data, task result) filters; empty without a policy file."""
    path = kit_root / "local" / "privacy.json"
    if not path.is_file():
        return [], []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    scope: Any = data
    if "scopes" in data:
        name, scopes = data.get("default_scope"), data["scopes"]
        if not isinstance(scopes, list):
            raise ConfigError(f"{path}: scopes: expected a list of {{name, filters}} objects")
        scope = next((s for s in scopes if isinstance(s, dict) and s.get("name") == name), None)
        if scope is None:
            raise ConfigError(f"{path}: default_scope {name!r} is not one of the scopes")
    return (
        _build(scope.get("task_data_filters", []), f"{path}: task_data_filters"),
        _build(scope.get("task_result_filters", []), f"{path}: task_result_filters"),
    )
