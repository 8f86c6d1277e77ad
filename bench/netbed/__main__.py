"""``python -m bench.netbed``: make, use and remove beds of hosts from a shell; measure links.

    python -m bench.netbed up --hosts server1,site-1 --profile wan   # prints the bed's id
    python -m bench.netbed exec site-1 -- getent hosts server1       # in a host's namespace
    python -m bench.netbed link site-1 --delay-ms 40 --loss 0.01     # change a link now
    python -m bench.netbed link site-1 --down                        # cut it (--up restores)
    python -m bench.netbed stats                                     # packets and drops
    python -m bench.netbed down                                      # remove the bed
    python -m bench.netbed down --stale                              # what crashes left
    python -m bench.netbed iperf --profile far --seconds 10          # raw TCP over a profile

With one bed up, commands find it; with several, name it with ``--bed ID``. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import msgspec

from bench.netbed.bed import NetBed, running_beds, stale_beds
from bench.netbed.link import PROFILES, Link
from bench.netbed.probe import Rtt, Tcp

PROBE = [sys.executable, "-m", "bench.netbed.probe"]


def _pick(bed_id: str | None) -> NetBed:
    beds = running_beds()
    if bed_id is None:
        if len(beds) != 1:
            raise SystemExit(f"expected one bed up, found {beds or 'none'}: name one with --bed")
        bed_id = beds[0]
    if bed_id not in beds:
        raise SystemExit(f"no bed {bed_id!r} (beds up: {beds or 'none'})")
    return NetBed.attach(bed_id)


def _link_from(args: argparse.Namespace) -> Link:
    link = PROFILES[args.profile].link if args.profile else Link()
    changes = _changes(args)
    return link.changed(**changes) if changes else link


def _changes(args: argparse.Namespace) -> dict[str, object]:
    keys = ("rate_mbit", "delay_ms", "jitter_ms", "loss", "queue_bytes", "up")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _link_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate-mbit", type=float, help="link rate, Mbit/s per direction")
    parser.add_argument("--delay-ms", type=float, help="one-way delay of each host's link")
    parser.add_argument("--jitter-ms", type=float, help="delay varies by ± this (no reordering)")
    parser.add_argument("--loss", type=float, help="fraction of packets dropped, 0-1")
    parser.add_argument("--queue-bytes", type=int, help="drop-tail limit of the link's queue")


def cmd_up(args: argparse.Namespace) -> None:
    """Make a bed that stays up after this command."""
    bed = NetBed(args.hosts.split(","), _link_from(args), detached=True)
    bed.detach()
    print(json.dumps({"bed": bed.id, "addresses": {h: bed.address(h) for h in bed.hosts}}))


def cmd_down(args: argparse.Namespace) -> None:
    """Remove one bed, the stale ones, or all."""
    if args.all or args.stale:
        ids = running_beds() if args.all else stale_beds()
    else:
        ids = [_pick(args.bed).id]
    for bed_id in ids:
        NetBed.attach(bed_id).close()
        print(f"removed {bed_id}")


def cmd_exec(args: argparse.Namespace) -> None:
    """Replace this process with the command inside the host's namespace."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("expected a command after the host (HOST -- COMMAND …)")
    argv = _pick(args.bed).argv(args.host, command)
    os.execvp(argv[0], argv)


def cmd_link(args: argparse.Namespace) -> None:
    """Change a host's link and print the new one."""
    bed = _pick(args.bed)
    link = bed.set_link(args.host, None, args.direction, **_changes(args))
    bed.detach()
    print(json.dumps(msgspec.to_builtins(link)))


def cmd_stats(args: argparse.Namespace) -> None:
    """Print every host's link counters as JSON."""
    bed = _pick(args.bed)
    stats = bed.stats()
    bed.detach()
    print(json.dumps(msgspec.to_builtins(stats), indent=1))


def cmd_iperf(args: argparse.Namespace) -> None:
    """Raw TCP throughput and the round trip between two hosts on a profile."""
    link = _link_from(args)
    with NetBed(["a", "b"], link, mtu=args.mtu) as bed:
        server = bed.popen("b", [*PROBE, "serve", "--port", "5201"], stdout=-1)
        assert server.stdout is not None
        server.stdout.readline()
        rtt_out = bed.run("a", [*PROBE, "rtt", "b", "--port", "5201"]).stdout
        rtt = msgspec.json.decode(rtt_out, type=Rtt)
        tcp_argv = [*PROBE, "tcp", "b", "--port", "5201", "--seconds", str(args.seconds)]
        tcp_out = bed.run("a", tcp_argv, timeout=args.seconds + 120).stdout
        tcp = msgspec.json.decode(tcp_out, type=Tcp)
        drops = bed.stats()["a"].egress
    rate = link.rate_mbit
    result = {
        "profile": args.profile,
        "link": msgspec.to_builtins(link),
        "mtu": args.mtu,
        "rtt_ms": rtt.median_ms,
        "seconds": round(tcp.seconds, 3),
        "mbit_s": round(tcp.mbit_s, 1),
        "of_link": None if rate is None else round(tcp.mbit_s / rate, 3),
        "dropped": {"loss": drops.dropped_loss, "queue": drops.dropped_queue},
    }
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.netbed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="make a bed of hosts (stays up until `down`)")
    up.add_argument("--hosts", required=True, help="host names, comma-separated")
    up.add_argument("--profile", choices=sorted(PROFILES), help="every host's link")
    _link_options(up)
    down = sub.add_parser("down", help="remove a bed: namespaces, links, hosts files")
    down.add_argument("--bed", help="the bed's id (default: the only one up)")
    down.add_argument(
        "--stale", action="store_true", help="remove the beds whose switch or owner is gone"
    )
    down.add_argument(
        "--all", action="store_true", help="remove every bed, also those of running tests"
    )
    exe = sub.add_parser("exec", help="run a command inside a host: exec HOST -- CMD …")
    exe.add_argument("--bed")
    exe.add_argument("host")
    exe.add_argument("command", nargs=argparse.REMAINDER)
    link = sub.add_parser("link", help="change a host's link now")
    link.add_argument("--bed")
    link.add_argument("host")
    link.add_argument("--direction", choices=("both", "egress", "ingress"), default="both")
    _link_options(link)
    state = link.add_mutually_exclusive_group()
    state.add_argument("--down", dest="up", action="store_false", default=None)
    state.add_argument("--up", dest="up", action="store_true", default=None)
    stats = sub.add_parser("stats", help="packets, bytes and drops of every link")
    stats.add_argument("--bed")
    iperf = sub.add_parser("iperf", help="raw TCP over a profile, in a bed of its own")
    iperf.add_argument("--profile", choices=sorted(PROFILES), default="wan")
    iperf.add_argument("--seconds", type=float, default=10.0)
    iperf.add_argument("--mtu", type=int, default=65000)
    _link_options(iperf)
    args = parser.parse_args(argv)
    commands = {
        "up": cmd_up,
        "down": cmd_down,
        "exec": cmd_exec,
        "link": cmd_link,
        "stats": cmd_stats,
        "iperf": cmd_iperf,
    }
    commands[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
