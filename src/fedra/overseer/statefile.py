"""Where the overseer keeps its state across restarts: a JSON file, or memory (tests).

The file is replaced atomically (write a temporary file next to it, fsync, rename, fsync
the folder), so a crash leaves either the old state or the new one, never half of each.
It is read strictly: anything unexpected is a :class:`StateFileError` naming the file, and
the overseer refuses to start rather than forget who is hot.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from fedra.core import WireError
from fedra.overseer.election import PersistedState
from fedra.overseer.errors import StateFileError
from fedra.overseer.messages import MAX_REQUEST_BYTES, decode, encode

#: Version of the state file's format.
STATE_VERSION = PersistedState.__struct_config__.tag
#: Default file name, in the overseer's kit folder.
STATE_FILE = "overseer_state.json"
_MAX_FILE_BYTES = 64 * MAX_REQUEST_BYTES


class StateStore(Protocol):
    """Loads and saves the overseer's :class:`PersistedState`."""

    def load(self) -> PersistedState | None:
        """The saved state, or ``None`` when nothing was saved yet."""
        ...

    def save(self, state: PersistedState) -> None:
        """Save ``state`` durably (raise ``OSError`` when it cannot)."""
        ...


class MemoryStateStore:
    """A :class:`StateStore` in memory: survives a restart of the service, not the process."""

    def __init__(self) -> None:
        self._state: PersistedState | None = None

    def load(self) -> PersistedState | None:
        """The last saved state."""
        return self._state

    def save(self, state: PersistedState) -> None:
        """Keep ``state``."""
        self._state = state


class JsonStateFile:
    """A :class:`StateStore` in one JSON file, replaced atomically on every save."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> PersistedState | None:
        """The saved state; ``None`` when the file does not exist."""
        try:
            if self.path.is_symlink():
                raise StateFileError(self.path, "is a symbolic link; refusing to read it")
            with open(self.path, "rb") as handle:
                data = handle.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StateFileError(self.path, f"cannot read it: {err.strerror or err}") from err
        try:
            return state_from_json(data)
        except WireError as err:
            raise StateFileError(self.path, str(err)) from err

    def save(self, state: PersistedState) -> None:
        """Write ``state`` to a temporary file, fsync it, and rename it over the file."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(state_to_json(state) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_folder(folder)


def state_to_json(state: PersistedState) -> bytes:
    """The JSON bytes of a saved state (with ``"version": 1``)."""
    return encode(state)


def state_from_json(data: bytes) -> PersistedState:
    """A saved state from its JSON bytes; :class:`WireError` naming what is wrong.

    Besides each field's type and range: no server is listed twice, ``hot`` and
    ``lease_holder`` are among the servers, and ``ssid`` and ``hot`` are set together.
    """
    state = decode(data, PersistedState, limit=_MAX_FILE_BYTES, what="the state file")
    names = [s.name for s in state.servers]
    if len(set(names)) != len(names):
        raise WireError("servers: a server is listed twice")
    for key, value in (("hot", state.hot), ("lease_holder", state.lease_holder)):
        if value is not None and value not in names:
            raise WireError(f"{key}: expected null or one of the servers, got {value!r}")
    if (state.hot is None) != (state.ssid is None):
        raise WireError("ssid and hot must both be set or both be null")
    return state


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
