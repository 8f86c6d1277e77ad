"""fed_server.json's receive_window: read and bounded (the server hands it to gRPC)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.runtime.config import ServerKit


def _kit(tmp_path: Path, **extra: object) -> ServerKit:
    startup = tmp_path / "startup"
    startup.mkdir()
    (startup / "fed_server.json").write_text(json.dumps({"name": "server", **extra}))
    return ServerKit.load(tmp_path)


def test_the_default_window_is_the_transports(tmp_path: Path) -> None:
    assert _kit(tmp_path).receive_window is None


def test_a_bigger_window_for_long_round_trips_is_read(tmp_path: Path) -> None:
    assert _kit(tmp_path, receive_window=4 << 20).receive_window == 4 << 20


@pytest.mark.parametrize("value", [1024, 1 << 30, "1MB", 2.5])
def test_a_window_out_of_bounds_or_not_an_integer_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="receive_window"):
        _kit(tmp_path, receive_window=value)
