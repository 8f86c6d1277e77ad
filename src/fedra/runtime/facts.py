"""A participant's runtime facts for ``env`` and ``pwd``: what runs it, never its secrets.

``env`` answers the versions, the platform, CPUs, memory and the resources the participant
declared. The process environment variables are never read for it: they hold credentials
(database passwords, tokens) that an admin's ``view`` right does not reach.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from fedra import __version__
from fedra.core.admin_results import EnvInfo, Workspace
from fedra.core.jsonfile import JsonObject
from fedra.runtime.confined import LOG_FILE

#: The packages whose versions ``env`` shows (when installed).
PACKAGES = ("numpy", "msgspec", "grpcio", "protobuf", "cryptography", "torch", "tenseal", "ray")


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def env_info(name: str, resources: JsonObject | None) -> EnvInfo:
    """This process's runtime facts, as participant ``name`` (``resources``: declared)."""
    return EnvInfo(
        name=name,
        fedra=__version__,
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        machine=platform.machine(),
        cpus=os.cpu_count(),
        memory_bytes=_memory_bytes(),
        packages=_packages(),
        resources=resources,
    )


def workspace(name: str, root: Path) -> Workspace:
    """``pwd``: participant ``name``'s folder, and the names admins may give in it."""
    readable = [LOG_FILE, "JOB_ID/PATH (a file of a job you may see)"]
    return Workspace(name=name, root=str(root.resolve()), readable=readable)
