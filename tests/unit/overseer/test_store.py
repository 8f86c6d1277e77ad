"""The overseer's saved state: one contract for every store, and the JSON file's checks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from fedra.overseer import (
    JsonStateFile,
    MemoryStateStore,
    PersistedState,
    ServerInfo,
    StateFileError,
    StateStore,
    state_to_json,
)

STATE = PersistedState(
    ssid=3,
    hot="s2",
    lease_holder="s1",
    servers=(ServerInfo("s1", "h1", 8002, 8003), ServerInfo("s2", "h2", 8102, 8103)),
    seen_ssid=2,
)

STORES: dict[str, Callable[[Path], StateStore]] = {
    "memory": lambda _: MemoryStateStore(),
    "json": lambda folder: JsonStateFile(folder / "sub" / "state.json"),
}


@pytest.mark.parametrize("kind", sorted(STORES))
def test_store_contract(kind: str, tmp_path: Path) -> None:
    store = STORES[kind](tmp_path)
    assert store.load() is None
    store.save(STATE)
    assert store.load() == STATE
    empty = PersistedState(ssid=None, hot=None, lease_holder=None, servers=())
    store.save(empty)
    assert store.load() == empty


def test_json_file_is_replaced_atomically_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = JsonStateFile(tmp_path / "state.json")
    store.save(STATE)
    first = (tmp_path / "state.json").stat().st_ino
    store.save(STATE)
    assert (tmp_path / "state.json").stat().st_ino != first  # a new file renamed over
    assert os.listdir(tmp_path) == ["state.json"]
    assert (tmp_path / "state.json").read_bytes() == state_to_json(STATE) + b"\n"
    assert json.loads(state_to_json(STATE))["version"] == 1


def test_a_failed_save_keeps_the_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JsonStateFile(tmp_path / "state.json")
    store.save(STATE)

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match=r"No space"):
        store.save(PersistedState(ssid=None, hot=None, lease_holder=None, servers=()))
    monkeypatch.undo()
    assert store.load() == STATE
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, r"Invalid value 2 - at `\$.version`"),
        ({"hot": "s9"}, "hot: expected null or one of the servers"),
        ({"lease_holder": "s9"}, "lease_holder: expected null or one of the servers"),
        ({"ssid": "abc"}, r"got `str` - at `\$.ssid`"),
        ({"ssid": None}, "ssid and hot must both be set"),
        ({"seen_ssid": True}, r"got `bool` - at `\$.seen_ssid`"),
        ({"servers": [{"name": "s1"}]}, r"missing required field `host` - at `\$.servers\[0\]`"),
        ({"servers": [STATE.servers[0]] * 2}, "a server is listed twice"),
        ({"servers": "s1"}, r"got `str` - at `\$.servers`"),
        ({"extra": 1}, "unknown field `extra`"),
    ],
)
def test_a_corrupt_state_file_is_refused_naming_the_file(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = tmp_path / "state.json"
    saved = msgspec.to_builtins(STATE)
    path.write_bytes(msgspec.json.encode({**saved, **msgspec.to_builtins(change)}))
    with pytest.raises(StateFileError, match=message) as err:
        JsonStateFile(path).load()
    assert str(path) in str(err.value)
    assert err.value.hint is not None and "every server is stopped" in err.value.hint


def test_a_state_file_that_is_not_json_or_a_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(StateFileError, match=r"not valid JSON"):
        JsonStateFile(path).load()
    path.unlink()
    (tmp_path / "elsewhere.json").write_bytes(state_to_json(STATE))
    path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(StateFileError, match=r"symbolic link"):
        JsonStateFile(path).load()
