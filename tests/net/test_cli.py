"""The command line: a bed that outlives the command, used and removed from a shell, and
the removal of what a crash left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from bench.netbed import NetBed, running_beds, stale_beds, system
from tests.net.conftest import MakeBed

CLI = [sys.executable, "-m", "bench.netbed"]


def cli(*args: str) -> str:
    """Run the command line; its output (the test fails on a non-zero exit)."""
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_up_exec_link_down(make_bed: MakeBed) -> None:
    made = json.loads(cli("up", "--hosts", "x,y", "--profile", "wan"))
    bed_id = made["bed"]
    try:
        assert made["addresses"] == {"x": "10.200.0.1", "y": "10.200.0.2"}
        assert bed_id in running_beds() and bed_id not in stale_beds()
        resolved = cli("exec", "--bed", bed_id, "x", "--", "getent", "hosts", "y.fedra.test")
        assert resolved.split()[0] == "10.200.0.2"
        link = json.loads(cli("link", "--bed", bed_id, "y", "--down", "--delay-ms", "40"))
        assert link["up"] is False and link["delay_ms"] == 40
        handle = NetBed.attach(bed_id)
        assert handle.stats()["y"].ingress.link.up is False
        handle.detach()  # lets go of the control connection, leaves the bed
    finally:
        assert cli("down", "--bed", bed_id).strip() == f"removed {bed_id}"
    assert bed_id not in running_beds() and system.namespaces(f"{bed_id}-") == []


def test_down_stale_removes_what_a_crash_left(make_bed: MakeBed) -> None:
    bed = make_bed(["a"])  # a live bed of this process: never stale
    made = json.loads(cli("up", "--hosts", "p,q"))
    crashed = NetBed.attach(made["bed"])
    os.kill(crashed._switch_pid, signal.SIGKILL)  # the switch dies without cleaning up
    system.wait_gone([crashed._switch_pid], 10)
    assert crashed.id in stale_beds() and bed.id not in stale_beds()
    assert system.namespaces(crashed.prefix)  # its namespaces are still there
    assert cli("down", "--stale").split() == ["removed", crashed.id]
    assert system.namespaces(crashed.prefix) == [] and crashed.id not in running_beds()
    assert bed.id in running_beds()
