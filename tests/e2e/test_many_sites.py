"""A hundred provisioned sites on one real server, through the load generator of
``bench.many_sites`` (the thousand-site benchmark, CI-sized): each site's own certificate
over mutual-TLS gRPC, heartbeats, and a 3x3 FedAvg job with min_clients = 100 that the real
server job process runs over all of them."""

from __future__ import annotations

from pathlib import Path

from bench.many_sites import parse_args, run

SITES = 100
ROUNDS = 2


def test_a_server_serves_a_hundred_connected_sites_through_a_fedavg_job(tmp_path: Path) -> None:
    """Before: the FL port served 64 connections, so 36 of the sites never got in."""
    args = parse_args(
        ["--sites", str(SITES), "--rounds", str(ROUNDS), "--procs", "2", "--idle", "1",
         "--connect-timeout", "60", "--job-timeout", "120", "--workdir", str(tmp_path)]
    )  # fmt: skip
    figures = run(args)
    assert figures["final_model"] == f"ok: every weight = {ROUNDS}"
    assert len(figures["round_s"]) == ROUNDS  # type: ignore[arg-type]
    load = figures["load"]
    assert isinstance(load, list) and len(load) == 2
    assert sum(int(s["connects"]) for s in load) == SITES
    assert sum(int(s["tasks"]) for s in load) == SITES * ROUNDS
    assert all(not s["errors"] and not s["connect_failures"] for s in load), load
    server = figures["server"]
    assert isinstance(server, dict) and server["peak_fds"] > SITES
