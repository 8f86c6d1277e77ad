"""Flow-control settings: project.yml's ``network`` -> the signed kit -> the runtime config,
``local/network.json`` on top, bad values refused naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.core.kitfile import DEFAULT_WINDOW, NetworkEntry
from fedra.provision import ProjectError, parse_project, provision
from fedra.runtime.config import ServerKit, SiteKit

PROJECT = """\
api_version: 1
name: net
participants:
  - name: server1
    type: server
    org: central
    network: {network}
  - {{name: site-1, type: client, org: a{site_network}}}
  - {{name: admin@central.org, type: admin, org: central, role: project_admin}}
"""


def _kit(tmp_path: Path, **extra: object) -> ServerKit:
    startup = tmp_path / "startup"
    startup.mkdir()
    (startup / "fed_server.json").write_text(json.dumps({"name": "server", **extra}))
    return ServerKit.load(tmp_path)


def _provision(tmp_path: Path, network: str, site_network: str = "") -> dict[str, Path]:
    project = parse_project(PROJECT.format(network=network, site_network=site_network))
    return provision(project, tmp_path / "workspace").kits


# -- the window a path asks for ------------------------------------------------------------
def test_a_path_asks_for_four_bandwidth_delay_products_in_whole_64_kib() -> None:
    wan = NetworkEntry(path_mbit=1000, path_rtt_ms=50)  # 6.25 MB in flight fills it
    assert wan.window() == 25_000_000 // (64 << 10) * (64 << 10) + (64 << 10)
    assert NetworkEntry(path_mbit=1, path_rtt_ms=1).window() == 256 << 10  # the floor
    assert NetworkEntry(path_mbit=10_000, path_rtt_ms=300).window() == 64 << 20  # the cap


def test_a_window_given_wins_over_a_path_and_half_a_path_names_none() -> None:
    both = NetworkEntry(receive_window=1 << 20, path_mbit=1000, path_rtt_ms=50)
    assert both.window() == 1 << 20
    assert NetworkEntry(path_mbit=1000).window() is None
    assert NetworkEntry().window() is None


# -- fed_server.json (POC kits), and the default ------------------------------------------
def test_a_server_without_settings_gets_the_default_window(tmp_path: Path) -> None:
    assert _kit(tmp_path).receive_window == DEFAULT_WINDOW


def test_the_older_receive_window_key_still_works(tmp_path: Path) -> None:
    assert _kit(tmp_path, receive_window=4 << 20).receive_window == 4 << 20


def test_network_in_the_kit_wins_over_the_older_key(tmp_path: Path) -> None:
    kit = _kit(tmp_path, receive_window=4 << 20, network={"receive_window": 8 << 20})
    assert kit.receive_window == 8 << 20


@pytest.mark.parametrize("value", [1024, 1 << 30, "1MB", 2.5])
def test_a_window_out_of_bounds_or_not_an_integer_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="receive_window"):
        _kit(tmp_path, receive_window=value)


# -- project.yml -> kit -> runtime ----------------------------------------------------------
def test_project_network_reaches_the_signed_kit_and_the_server(tmp_path: Path) -> None:
    kits = _provision(tmp_path, "{path_mbit: 1000, path_rtt_ms: 50}")
    server = json.loads((kits["server1"] / "startup" / "fed_server.json").read_text())
    assert server["network"] == {"path_mbit": 1000.0, "path_rtt_ms": 50.0}
    assert ServerKit.load(kits["server1"]).receive_window == 25_034_752  # 382 x 64 KiB
    default = json.loads((kits["server1"] / "local" / "network.json.default").read_text())
    assert default["path_mbit"] == 1000.0 and "network.json" in default["comment"]
    # A site without settings leaves its download window to gRPC (BDP probing).
    assert SiteKit.load(kits["site-1"]).receive_window is None
    assert "receive_window" not in json.loads(
        (kits["site-1"] / "local" / "network.json.default").read_text()
    )


def test_a_site_may_have_its_own_download_window(tmp_path: Path) -> None:
    kits = _provision(tmp_path, "{}", ", network: {receive_window: 8388608}")
    assert SiteKit.load(kits["site-1"]).receive_window == 8 << 20


def test_a_server_default_file_names_the_default_window(tmp_path: Path) -> None:
    kits = _provision(tmp_path, "null")
    default = json.loads((kits["server1"] / "local" / "network.json.default").read_text())
    assert default["receive_window"] == DEFAULT_WINDOW


@pytest.mark.parametrize(
    ("network", "key"),
    [
        ("{receive_window: 1000}", "participants[0].network.receive_window"),
        ("{path_mbit: -5, path_rtt_ms: 50}", "participants[0].network.path_mbit"),
        ("{window: 4}", "window"),
    ],
)
def test_bad_network_settings_in_the_project_are_refused(
    tmp_path: Path, network: str, key: str
) -> None:
    with pytest.raises(ProjectError, match=key.replace("[", r"\[").replace("]", r"\]")):
        _provision(tmp_path, network)


# -- local/network.json ---------------------------------------------------------------------
def test_local_network_json_replaces_the_kits_settings(tmp_path: Path) -> None:
    kits = _provision(tmp_path, "{receive_window: 4194304}")
    local = kits["server1"] / "local" / "network.json"
    local.write_text(json.dumps({"comment": "far sites", "path_mbit": 200, "path_rtt_ms": 150}))
    assert ServerKit.load(kits["server1"]).receive_window == 15_007_744  # 4 x 3.75 MB in 64 KiB


def test_a_copied_default_file_changes_nothing(tmp_path: Path) -> None:
    kits = _provision(tmp_path, "{receive_window: 4194304}")
    local = kits["server1"] / "local"
    (local / "network.json").write_text((local / "network.json.default").read_text())
    assert ServerKit.load(kits["server1"]).receive_window == 4 << 20


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"receive_window": 10}, r"network.json: receive_window: expected an integer 65536-"),
        ({"path_rtt_ms": "fast"}, r"network.json: path_rtt_ms"),
        ({"rtt": 50}, r"network.json: .*rtt"),
    ],
)
def test_a_bad_local_file_is_refused_naming_file_and_key(
    tmp_path: Path, content: object, expected: str
) -> None:
    kits = _provision(tmp_path, "null")
    (kits["server1"] / "local" / "network.json").write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=expected):
        ServerKit.load(kits["server1"])
