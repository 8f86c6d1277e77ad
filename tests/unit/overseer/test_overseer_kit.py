"""The overseer from a provisioned kit: settings, checks, ``fedra overseer`` as a process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.cli import main as cli_main
from fedra.core import ConfigError
from fedra.overseer import (
    OverseerAnswer,
    OverseerError,
    OverseerKit,
    ServerHeartbeat,
    ServerState,
    client_for_kit,
    serve_kit,
)
from fedra.pki import KitTampered
from fedra.provision import ProvisionResult, load_project, provision


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PROJECT = """\
api_version: 1
name: ha
participants:
  - {{name: overseer, type: overseer, org: acme, host: 127.0.0.1, port: {port}}}
  - {{name: server1, type: server, org: acme, host: 127.0.0.1,
      fed_learn_port: {s1}, admin_port: {s1a}}}
  - {{name: server2, type: server, org: acme, host: 127.0.0.1,
      fed_learn_port: {s2}, admin_port: {s2a}}}
  - {{name: site-1, type: client, org: acme}}
  - {{name: admin@acme.org, type: admin, org: acme, role: project_admin}}
"""


@pytest.fixture
def kits(tmp_path: Path) -> ProvisionResult:
    """A project with an overseer and two servers on 127.0.0.1, provisioned."""
    ports = [free_port() for _ in range(5)]
    text = PROJECT.format(port=ports[0], s1=ports[1], s1a=ports[2], s2=ports[3], s2a=ports[4])
    (tmp_path / "project.yml").write_text(text)
    return provision(load_project(tmp_path / "project.yml"), tmp_path / "ws")


def test_local_settings_override_the_defaults(kits: ProvisionResult) -> None:
    root = kits.kits["overseer"]
    (root / "local" / "overseer.json").write_text(
        json.dumps({"comment": "mine", "lease": 20, "heartbeat_timeout": 30})
    )
    settings = OverseerKit.load(root).settings
    assert (settings.lease, settings.heartbeat_timeout, settings.heartbeat_interval) == (20, 30, 2)
    (root / "local" / "overseer.json").write_text(json.dumps({"lease": 1}))
    with pytest.raises(ConfigError, match=r"local/overseer.json: overseer setting lease \(1\)"):
        OverseerKit.load(root)
    (root / "local" / "overseer.json").write_text(json.dumps({"leese": 9}))
    with pytest.raises(ConfigError, match=r"unknown key 'leese'"):
        OverseerKit.load(root)


def test_a_kit_without_overseer_or_config(tmp_path: Path) -> None:
    (tmp_path / "startup").mkdir()
    with pytest.raises(ConfigError, match=r"none of fed_server.json"):
        client_for_kit(tmp_path)
    (tmp_path / "startup" / "fed_client.json").write_text(json.dumps({"name": "site-1"}))
    with pytest.raises(ConfigError, match=r"no overseer block"):
        client_for_kit(tmp_path)
    with pytest.raises(ConfigError, match=r"fed_overseer.json not found"):
        OverseerKit.load(tmp_path)


def test_a_tampered_kit_is_refused(kits: ProvisionResult) -> None:
    root = kits.kits["overseer"]
    config = root / "startup" / "fed_overseer.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "servers": ["server1", "evil"]}))
    with pytest.raises(KitTampered, match=r"fed_overseer.json"):
        serve_kit(root, threading.Event())


def test_serve_kit_in_process(kits: ProvisionResult) -> None:
    stop = threading.Event()
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(serve_kit(kits.kits["overseer"], stop)))
    thread.start()
    try:
        answer = _wait_for_answer(kits.kits["server1"], "server1")
        assert answer.holds_lease("server1")
    finally:
        stop.set()
        thread.join(30)
    assert code == [0]
    saved = json.loads((kits.kits["overseer"] / "overseer_state.json").read_text())
    assert (saved["hot"], saved["ssid"]) == ("server1", 1)


@pytest.fixture
def overseer_process(kits: ProvisionResult) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m fedra.cli overseer start --kit`` in its own process group."""
    root = kits.kits["overseer"]
    with open(root / "stdout.txt", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedra.cli", "overseer", "start", "--kit", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _wait_for_answer(kit: Path, name: str, timeout: float = 60.0) -> OverseerAnswer:
    config = json.loads((kit / "startup" / "fed_server.json").read_text())
    beat = ServerHeartbeat(
        name, "127.0.0.1", config["fed_learn_port"], config["admin_port"], ServerState.READY
    )
    client = client_for_kit(kit, timeout=2)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.heartbeat(beat)
        except OverseerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``fedra ARGV`` in this process: exit code, stdout, stderr."""
    try:
        code = cli_main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_fedra_overseer_start_status_promote(
    kits: ProvisionResult,
    overseer_process: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _wait_for_answer(kits.kits["server1"], "server1").holds_lease("server1")
    assert not _wait_for_answer(kits.kits["server2"], "server2").holds_lease("server2")
    admin = str(kits.kits["admin@acme.org"])

    code, out, _ = cli(capsys, "overseer", "status", "--kit", admin, "--format", "json")
    assert code == 0
    state = json.loads(out)
    assert state["hot"]["name"] == "server1" and state["ssid"] == 1
    assert [s["info"]["name"] for s in state["servers"]] == ["server1", "server2"]

    code, out, _ = cli(capsys, "overseer", "promote", "server2", "--kit", admin)
    assert code == 0
    assert "hot server: server2" in out and "ssid: 2" in out

    site = str(kits.kits["site-1"])
    code, _, err = cli(capsys, "overseer", "promote", "server1", "--kit", site)
    assert code == 10
    assert "refused the request (403)" in err and "role 'client'" in err

    os.killpg(overseer_process.pid, signal.SIGTERM)
    assert overseer_process.wait(30) == 0
    log = (kits.kits["overseer"] / "log.txt").read_text()
    assert "hot server is now server2 (was server1), ssid 2: promoted by admin@acme.org" in log
    saved = json.loads((kits.kits["overseer"] / "overseer_state.json").read_text())
    assert (saved["hot"], saved["ssid"], saved["lease_holder"]) == ("server2", 2, "server1")
