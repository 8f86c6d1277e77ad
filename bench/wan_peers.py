"""The peers over emulated links: ``python -m bench.wan_peers`` (issue 16, deliverable 5).

NVIDIA FLARE 2.9 and Flower 1.42 run the deployment row of the comparison harness
(``bench.compare``: FedAvg over float32 arrays from zero, each site returns ``params + 1``)
with every participant on a host of a bed (:mod:`bench.netbed`): the server on
``server1``, site i on ``site-i``, the admin (FLARE's admin API; Flower's ``flwr run``) on
``admin``, every host on the profile's link. The peers reach their server by its host name
(``server1.fedra.test``), with certificates for that name: FLARE provisioned with
``nvflare provision`` (mutual TLS), Flower's SuperLink with a server certificate for it
(TLS, server side). Each peer runs in its own virtual environment (``bench.compare.venvs``,
installed with pip on first use); its driver (``bench/compare/peers/*_hosts.py``) runs in
the admin's host and is measured from outside as the harness measures its deployment row
(``bench.compare.measure``).

Reported per profile and system: seconds per round (the median of rounds 2..N, as
``bench.wan_round`` and the harness take it; each round timed by the peer's server-side
workflow from broadcast to the aggregated model), against the **link minimum**: the
server's link carries the model to the N sites and back, ``2 x N x model / rate``, plus
one round trip (the same definition as ``bench.wan_round``); the server's peak memory (RSS
of its process tree, summed, during the job); the bytes that crossed the server's link
(both directions, the whole run, from the bed's switch) against the model traffic of the
rounds (``2 x N x model x rounds``); and the final model, checked as the harness checks it
(every weight equals its initial value plus the number of rounds).

The initial model is, by default, not the harness's zeros but a **pattern** of distinct
values (``bench/compare/peers/_common.py``): Flower 1.42 sends arrays as content-addressed
5 MiB chunks and sends identical chunks once, so a model of zeros (or of all 3.0) crosses the
link as a few chunks per array, and a round would beat the link's minimum without moving the
model. ``--init zeros`` gives the harness's workload. Needs root (namespaces). Example:
``--profile lan,wan,far --systems nvflare,flower --size 100MB --sites 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.compare.harness import (
    MODEL_ELEMENTS,
    PEERS_DIR,
    MiB,
    WrongResult,
    check_final,
    later,
)
from bench.compare.harness import peer_env as harness_peer_env
from bench.compare.measure import GiB, Run, run_driver
from bench.compare.venvs import DEFAULT_ROOT, ensure
from bench.netbed import PROFILES, NetBed, Profile

SYSTEMS = ("nvflare", "flower")
SCRIPTS = {"nvflare": "nvflare_hosts.py", "flower": "flower_hosts.py"}
NAMES = {"nvflare": "NVIDIA FLARE 2.9.0", "flower": "Flower 1.42.0"}
SERVER_HOST = "server1"
ADMIN_HOST = "admin"


@dataclass(frozen=True)
class Figures:
    """One peer's job over one profile."""

    profile: str
    system: str
    size: str
    sites: int
    round_s: list[float]
    s_per_round: float
    link_minimum_s: float
    of_link: float
    server_peak_mib: float
    peak_per_model: float
    startup_s: float
    final_model: str
    init: str
    server_link_mb: float
    model_traffic_mb: float
    load: str = ""


def model_bytes(size: str) -> int:
    """Bytes of a harness model (``3x3``, ``100MB``, ``1GB``: float32 elements x 4)."""
    return MODEL_ELEMENTS[size] * 4


def link_minimum(profile: Profile, sites: int, nbytes: int) -> float:
    """Seconds a round needs at least: the server's link carries the model to ``sites``
    sites and back (``2 x sites x model / rate``), plus one round trip."""
    return 2 * sites * nbytes * 8 / (profile.rate_mbit * 1e6) + profile.rtt_ms / 1e3


def site_hosts(sites: int) -> list[str]:
    """``site-1`` … ``site-N``: the sites' host names, also their names in the federation."""
    return [f"site-{i + 1}" for i in range(sites)]


def bed_hosts(sites: int) -> list[str]:
    """Every host of the bed: the server's, the sites', the admin's."""
    return [SERVER_HOST, *site_hosts(sites), ADMIN_HOST]


def peer_command(
    python: Path,
    system: str,
    workdir: Path,
    *,
    server_host: str,
    netns: dict[str, str],
    size: str,
    sites: int,
    rounds: int,
    round_limit: float,
    init: str = "pattern",
) -> list[str]:
    """The peer driver's command line (to run in the admin's host)."""
    command = [str(python), str(PEERS_DIR / SCRIPTS[system]), "--workdir", str(workdir),
               "--server-host", server_host, "--sites", str(sites), "--models", size,
               "--rounds", str(rounds), "--big-rounds", str(rounds),
               "--round-limit", f"{round_limit:.0f}", "--init", init]  # fmt: skip
    for role, namespace in netns.items():
        command += ["--netns", f"{role}={namespace}"]
    return command


def figures_of(
    run: Run,
    profile: Profile,
    system: str,
    size: str,
    sites: int,
    rounds: int,
    *,
    server_link_bytes: int = 0,
    init: str = "pattern",
) -> Figures:
    """A run's figures; WrongResult when the final model is not the initial one plus
    ``rounds`` everywhere. ``server_link_bytes``: what crossed the server's link, both
    directions, over the whole run (start, job upload, rounds)."""
    result = run.result or {}
    job = result.get("jobs", {}).get(size)
    row = f"wan-{profile.name}-{sites}"
    if job is None:
        raise WrongResult(f"WRONG RESULT: system={system} row={row}: no {size} job")
    check_final(system, row, job.get("final"), rounds, size)
    nbytes = model_bytes(size)
    times = [float(t) for t in job["round_s"]]
    per_round = later(times)
    minimum = link_minimum(profile, sites, nbytes)
    peak = run.peaks.get("server", {}).get(size, 0)
    return Figures(
        profile=profile.name,
        system=system,
        size=size,
        sites=sites,
        round_s=[round(t, 2) for t in times],
        s_per_round=round(per_round, 2),
        link_minimum_s=round(minimum, 2),
        of_link=round(minimum / per_round, 3),
        server_peak_mib=round(peak / MiB, 1),
        peak_per_model=round(peak / nbytes, 2),
        startup_s=round(float(result.get("startup_s", 0.0)), 2),
        final_model=f"all {rounds}.0 ({job['final']['elements']} weights)",
        init=init,
        server_link_mb=round(server_link_bytes / 1e6, 1),
        model_traffic_mb=round(2 * sites * rounds * nbytes / 1e6, 1),
    )


def run_one(
    profile: Profile,
    system: str,
    size: str,
    sites: int,
    rounds: int,
    venvs: Path,
    root: Path,
    init: str = "pattern",
) -> Figures:
    """One peer, one job, over ``profile``; raises RuntimeError when it gave no result."""
    python = ensure(system, venvs, venvs / f"{system}-install.log")
    workdir = root / f"{system}-{profile.name}-{sites}-{init}"
    workdir.mkdir(parents=True)
    minimum = link_minimum(profile, sites, model_bytes(size))
    round_limit = max(120.0, 20 * minimum)
    with NetBed(bed_hosts(sites), profile.link) as bed:
        netns = {"server": bed.netns(SERVER_HOST)}
        netns |= {site: bed.netns(site) for site in site_hosts(sites)}
        command = peer_command(
            python, system, workdir, server_host=bed.fqdn(SERVER_HOST), netns=netns,
            size=size, sites=sites, rounds=rounds, round_limit=round_limit, init=init,
        )  # fmt: skip
        timeout = 300 + rounds * round_limit
        env = harness_peer_env(workdir / "home")
        run = run_driver(bed.argv(ADMIN_HOST, command), workdir / "driver.log", timeout, env,
                         workdir, min_available=2 * GiB)  # fmt: skip
        link = bed.stats()[SERVER_HOST]
    if not run.ok:
        raise RuntimeError(f"{system} over {profile.name}: {run.error} (logs: {workdir})")
    moved = link.egress.bytes + link.ingress.bytes
    return figures_of(run, profile, system, size, sites, rounds, server_link_bytes=moved,
                      init=init)  # fmt: skip


def markdown(rows: Sequence[Figures]) -> str:
    """The table of docs/benchmarks.md."""
    lines = [
        "| profile | system | sites | s/round (rounds 1..N) | link minimum | of the link "
        "| server peak | server link, MB (model traffic) | final model |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in rows:
        rounds = ", ".join(f"{t:.1f}" for t in f.round_s)
        lines.append(
            f"| {f.profile.upper()} | {NAMES[f.system]} | {f.sites} | **{f.s_per_round:.2f}** "
            f"({rounds}) | {f.link_minimum_s:.2f} s | {100 * f.of_link:.1f}% "
            f"| {f.server_peak_mib:,.0f} MiB ({f.peak_per_model:.1f}x) "
            f"| {f.server_link_mb:,.0f} ({f.model_traffic_mb:,.0f}) | {f.final_model} |"
        )
    return "\n".join(lines)


def split(text: str, known: Sequence[str], what: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``, each among ``known`` (SystemExit naming the rest)."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in items if x not in known]
    if unknown or not items:
        raise SystemExit(f"unknown {what} {unknown or text!r}; known: {', '.join(known)}")
    return items


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.wan_peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", default="wan", help="lan, wan, far, comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="nvflare, flower")
    parser.add_argument("--size", default="100MB", choices=sorted(MODEL_ELEMENTS))
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venvs", type=Path, default=DEFAULT_ROOT,
                        help="the peers' virtual environments (default .bench-venvs)")  # fmt: skip
    parser.add_argument(
        "--init",
        default="pattern",
        choices=("pattern", "zeros"),
        help="initial model: pattern (default; every weight distinct, so nothing can be "
        "deduplicated or compressed away) or zeros (the harness's rows)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here (JSON list)")
    parser.add_argument("--workdir", type=Path, help="keep the logs here (default: temporary)")
    args = parser.parse_args(argv)
    args.profiles = split(args.profile, sorted(PROFILES), "profiles")
    args.system_list = split(args.systems, SYSTEMS, "systems")
    if args.sites < 1 or args.rounds < 1:
        raise SystemExit("--sites and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every profile x system; print one JSON line each, then the table. 2 on a wrong
    final model, 1 when a peer gave no result."""
    args = parse_args(argv)
    rows: list[Figures] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fedra-wan-peers-") as tmp:
        root = (args.workdir or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        for name in args.profiles:
            for system in args.system_list:
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                try:
                    figures = run_one(PROFILES[name], system, args.size, args.sites,
                                      args.rounds, args.venvs.resolve(), root,
                                      args.init)  # fmt: skip
                except WrongResult as exc:
                    print(f"\n{exc}\n", file=sys.stderr, flush=True)
                    return 2
                except RuntimeError as exc:
                    failures.append(str(exc))
                    print(f"no result: {exc}", file=sys.stderr, flush=True)
                    continue
                figures = replace(figures, load=load)
                print(json.dumps(asdict(figures)), flush=True)
                rows.append(figures)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
        print(markdown(rows), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
