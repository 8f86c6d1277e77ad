"""Loading classes from a job's own ``custom/`` folder, and nowhere else.

``"net.Net"`` means the class ``Net`` in ``custom/net.py`` (``"pkg.mod.Cls"``:
``custom/pkg/mod.py``). The file must resolve inside ``custom/``; the folder is put on
``sys.path`` so the job's modules can import each other.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from typing import Any

from fedra.core import ConfigError

_LOCK = threading.Lock()
_ACTIVE: set[str] = set()


def activate_custom_dirs(*custom_dirs: Path | None) -> None:
    """Make ``custom_dirs`` the job code this process imports, forgetting earlier jobs'.

    Several jobs simulated one after another in one process (a notebook, a test run) often
    ship modules with the same name (``net.py``); without this, the second job would silently
    get the first job's module from ``sys.modules``.
    """
    wanted = [str(d.resolve()) for d in custom_dirs if d is not None]
    with _LOCK:
        stale = _ACTIVE - set(wanted)
        for folder in stale:
            while folder in sys.path:
                sys.path.remove(folder)
            for name, module in list(sys.modules.items()):
                origin = getattr(module, "__file__", None)
                if name == "__main__":  # never the program's own main module
                    continue
                if origin and Path(origin).resolve().is_relative_to(folder):
                    del sys.modules[name]
            _ACTIVE.discard(folder)
        for folder in wanted:
            if folder not in sys.path:
                sys.path.insert(0, folder)
            _ACTIVE.add(folder)


def custom_module_file(custom_dir: Path, dotted: str) -> Path:
    """The file that defines the module part of ``dotted`` (checked to be inside custom/)."""
    module, _, _cls = dotted.rpartition(".")
    if not module:
        raise ConfigError(f"'{dotted}' must be 'module.Class'")
    relative = Path(*module.split("."))
    base = custom_dir.resolve()
    for candidate in (base / relative.with_suffix(".py"), base / relative / "__init__.py"):
        resolved = candidate.resolve()
        if resolved.is_relative_to(base) and resolved.is_file():
            return resolved
    raise ConfigError(f"'{dotted}': no file {relative}.py in {custom_dir}")


def load_custom_class(custom_dir: Path | None, dotted: str, allow_custom: bool = True) -> Any:
    """Import ``module.Class`` from ``custom_dir``."""
    if not allow_custom:
        raise ConfigError(f"'{dotted}': custom code is not allowed on this site")
    if custom_dir is None:
        raise ConfigError(f"'{dotted}': the app has no custom/ folder")
    custom_module_file(custom_dir, dotted)
    module_name, _, class_name = dotted.rpartition(".")
    folder = str(custom_dir.resolve())
    activate_custom_dirs(custom_dir)
    with _LOCK:
        module = importlib.import_module(module_name)
    origin = Path(getattr(module, "__file__", "") or "").resolve()
    if not origin.is_relative_to(Path(folder)):
        raise ConfigError(
            f"'{dotted}': module '{module_name}' resolves to {origin}, outside {custom_dir} "
            "(rename it: it shadows an installed module)"
        )
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"'{dotted}': {module_name}.py has no class {class_name}")
    return cls
