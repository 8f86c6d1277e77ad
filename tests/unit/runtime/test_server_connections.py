"""How many site connections a server serves at once: from its project, sized to its sites;
and the open files it needs for them."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

import pytest

import fedra.runtime.server_parent as server_parent
from fedra.core import ConfigError
from fedra.provision import parse_project, provision
from fedra.runtime.config import CONNECTION_ROOM, ServerKit
from fedra.runtime.fdlimit import ensure_open_files, open_files_needed
from fedra.runtime.server_parent import ServerParent
from tests.unit.transport.certs_helper import make_federation


def _kit(tmp_path: Path, **extra: object) -> ServerKit:
    startup = tmp_path / "startup"
    startup.mkdir(exist_ok=True)
    (startup / "fed_server.json").write_text(json.dumps({"name": "server", **extra}))
    return ServerKit.load(tmp_path)


def _sites(count: int) -> list[str]:
    return [f"site-{i}" for i in range(count)]


def test_a_kit_listing_its_sites_serves_them_all_and_some_room(tmp_path: Path) -> None:
    assert _kit(tmp_path, sites=_sites(1000)).max_connections == 1000 + CONNECTION_ROOM


def test_a_kit_without_a_site_list_keeps_the_room_only(tmp_path: Path) -> None:
    assert _kit(tmp_path).max_connections == CONNECTION_ROOM


def test_an_explicit_max_connections_wins(tmp_path: Path) -> None:
    kit = _kit(tmp_path, sites=_sites(10), max_connections=5000)
    assert kit.max_connections == 5000


@pytest.mark.parametrize("value", [0, 100_001, "many", 2.5])
def test_max_connections_out_of_bounds_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        _kit(tmp_path, max_connections=value)


PROJECT = """\
api_version: 1
name: sized
participants:
  - {{name: server1, type: server, org: a, host: 127.0.0.1{extra}}}
  - {{name: site-1, type: client, org: a}}
  - {{name: site-2, type: client, org: a}}
"""


def test_project_yml_max_connections_reaches_the_signed_server_kit(tmp_path: Path) -> None:
    project = parse_project(PROJECT.format(extra=", max_connections: 3000"))
    kits = provision(project, tmp_path / "ws", python=sys.executable).kits
    assert ServerKit.load(kits["server1"]).max_connections == 3000
    default = parse_project(PROJECT.format(extra=""))
    kits = provision(default, tmp_path / "ws2", python=sys.executable).kits
    assert ServerKit.load(kits["server1"]).max_connections == 2 + CONNECTION_ROOM


def test_project_yml_refuses_a_bad_max_connections() -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        parse_project(PROJECT.format(extra=", max_connections: 0"))


def test_the_server_parent_sizes_its_fl_port_by_its_kit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the FL port served 64 connections whatever the project (the 65th site of a
    100-site project was refused)."""
    federation = make_federation()
    kit = _kit(tmp_path, sites=_sites(100))
    (kit.startup / "rootCA.pem").write_bytes(federation.ca.cert)
    (kit.startup / "server.crt").write_bytes(federation.server.cert)
    (kit.startup / "server.key").write_bytes(federation.server.key)
    sized: list[int] = []

    class Recorder:
        def __init__(self, *args: Any, max_workers: int = 64, **kwargs: Any) -> None:
            sized.append(max_workers)

    monkeypatch.setattr(server_parent, "TransportServer", Recorder)
    server = ServerParent(kit)
    try:
        assert sized[0] == 100 + CONNECTION_ROOM  # the FL port; then the admin port's own
    finally:
        server.store.close()


# -- open files ---------------------------------------------------------------------------
def test_a_short_soft_limit_is_raised_towards_what_the_connections_need() -> None:
    limits = [(1024, 65536)]
    got = ensure_open_files(open_files_needed(2000), get=lambda: limits[-1], set_=limits.append)
    assert got == open_files_needed(2000)
    assert limits[-1] == (open_files_needed(2000), 65536)


def test_the_soft_limit_stops_at_the_hard_limit_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = [(1024, 1500)]
    got = ensure_open_files(5000, get=lambda: limits[-1], set_=limits.append)
    assert got == 1500 and limits[-1] == (1500, 1500)
    assert "raise it" in caplog.text


def test_a_soft_limit_high_enough_is_left_alone() -> None:
    limits = [(20000, 20000)]
    assert ensure_open_files(5000, get=lambda: limits[-1], set_=limits.append) == 20000
    assert limits == [(20000, 20000)]


def test_an_unlimited_hard_limit_gives_what_is_needed() -> None:
    limits = [(1024, resource.RLIM_INFINITY)]
    assert ensure_open_files(5000, get=lambda: limits[-1], set_=limits.append) == 5000
