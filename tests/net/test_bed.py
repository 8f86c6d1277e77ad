"""The bed itself: names, delay, rate, outages, loss and cleanup, measured from inside hosts.

Bounds are wide enough not to flake on a loaded two-core machine and narrow enough to catch
a link that ignores its settings.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.netbed import Link, NetBed, system
from bench.netbed.bed import STATE_ROOT
from bench.netbed.probe import Rtt, Tcp, Udp
from tests.e2e.conftest import wait_for
from tests.net.conftest import PORT, PROBE, MakeBed, probe, readline, start_server

pytestmark = pytest.mark.timeout(120)


def leftovers(prefix: str) -> list[str]:
    """Whatever a bed with ``prefix`` left behind."""
    found = system.namespaces(prefix)
    found += [str(p) for p in system.NETNS_ETC.glob(f"{prefix}*")]
    found += [p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix[:-1])]
    found += [str(p) for p in STATE_ROOT.glob(prefix[:-1])]
    return found


def test_every_host_resolves_every_other_by_name(make_bed: MakeBed) -> None:
    bed = make_bed(["server1", "site-1", "admin"])
    script = "import socket,sys; print(*(socket.gethostbyname(n) for n in sys.argv[1:]))"
    names = ["server1.fedra.test", "site-1", "admin.fedra.test"]
    out = bed.run("site-1", [sys.executable, "-c", script, *names]).stdout.split()
    assert out == [bed.address("server1"), bed.address("site-1"), bed.address("admin")]
    assert len(set(out)) == 3
    with pytest.raises(socket.gaierror):  # the root namespace's /etc/hosts is untouched
        socket.gethostbyname(f"site-1.{bed.domain}")


def test_round_trip_follows_each_hosts_delay(make_bed: MakeBed) -> None:
    bed = make_bed(["a", "b"], Link(rate_mbit=1000, delay_ms=5))
    start_server(bed, "b")

    def rtt() -> float:
        median = probe(bed, "a", Rtt, "rtt", "b", "--port", str(PORT), "--count", "15").median_ms
        assert median is not None
        return median

    assert abs(rtt() - 20) <= 0.2 * 20 + 2  # 2 x (5 + 5)
    bed.set_link("a", delay_ms=20)
    assert abs(rtt() - 50) <= 0.2 * 50 + 2  # 2 x (20 + 5)
    bed.set_link("b", direction="ingress", delay_ms=45)
    assert abs(rtt() - 90) <= 0.2 * 90 + 2  # 20 + 45 + 5 + 20


def test_jitter_varies_the_delay_without_reordering(make_bed: MakeBed) -> None:
    bed = make_bed(["a", "b"], Link(rate_mbit=1000, delay_ms=10, jitter_ms=8))
    start_server(bed, "b")
    got = probe(bed, "a", Rtt, "rtt", "b", "--port", str(PORT), "--count", "30").rtt_ms
    times = [t for t in got if t is not None]
    assert len(times) == 30 and all(8 <= t <= 80 + 10 for t in times), got
    assert max(times) - min(times) > 4, times  # four jittered links: not a constant delay


def test_a_tcp_stream_gets_most_of_the_rate_and_never_more(make_bed: MakeBed) -> None:
    bed = make_bed(["a", "b"], Link(rate_mbit=100, delay_ms=1))
    start_server(bed, "b")
    result = probe(bed, "a", Tcp, "tcp", "b", "--port", str(PORT), "--seconds", "2")
    assert result.bytes > 0
    assert 60 <= result.mbit_s <= 100 * 1.01, result
    assert bed.stats()["a"].egress.bytes >= result.bytes


def test_a_link_down_stops_traffic_and_a_connection_survives_it(make_bed: MakeBed) -> None:
    bed = make_bed(["a", "b"], Link(rate_mbit=1000, delay_ms=2))
    start_server(bed, "b")
    chat = bed.popen(
        "a",
        [*PROBE, "chat", "b", "--port", str(PORT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert chat.stdin is not None
    assert readline(chat, 30) == b"connected\n"
    chat.stdin.write(b"one\n")
    chat.stdin.flush()
    assert readline(chat, 30) == b"one\n"

    bed.down("b")
    chat.stdin.write(b"two\n")
    chat.stdin.flush()
    wait_for(lambda: bed.stats()["b"].ingress.dropped_down >= 2, 30, "retransmissions dropped")
    assert readline(chat, 0) is None  # nothing got through
    ping = ["rtt", "b", "--port", str(PORT), "--count", "1", "--timeout", "0.5"]
    assert probe(bed, "a", Rtt, *ping).rtt_ms == [None]

    bed.up("b")
    assert readline(chat, 30) == b"two\n"  # the same TCP connection, after retransmitting
    assert chat.poll() is None


def test_loss_drops_about_the_configured_fraction(make_bed: MakeBed) -> None:
    bed = make_bed(["a", "b"], Link(rate_mbit=1000, delay_ms=1))
    start_server(bed, "b")
    bed.set_link("b", direction="ingress", loss=0.2)
    result = probe(bed, "a", Udp, "udp", "b", "--port", str(PORT), "--count", "2000")
    # Binomial(2000, 0.2): standard deviation 18 datagrams; ±100 is 5.6 of them.
    assert 1500 <= result.received <= 1700, result
    assert bed.stats()["b"].ingress.dropped_loss >= 2000 - result.received


def test_close_removes_everything_also_after_an_exception(make_bed: MakeBed) -> None:
    make_bed(["probe"])  # the fixture's checks (skip or fail) have run
    with pytest.raises(RuntimeError, match="inside"), NetBed(["a", "b"]) as bed:
        server = start_server(bed, "b")
        prefix = bed.prefix
        assert len(leftovers(prefix)) >= 5  # 2 namespaces, 2 hosts files, the state folder
        raise RuntimeError("inside the bed")
    assert leftovers(prefix) == []
    assert server.poll() is not None  # the bed's processes were ended


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_bed_goes_away_with_its_process(make_bed: MakeBed, sig: signal.Signals) -> None:
    make_bed(["probe"])
    script = (
        "import sys; from bench.netbed import NetBed\n"
        "bed = NetBed(['a', 'b'])\n"
        "print(bed.prefix, flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        prefix = child.stdout.readline().decode().strip()
        assert prefix.startswith("fb") and system.namespaces(prefix)
        os.kill(child.pid, sig)
        assert child.wait(30) == -sig
        if sig == signal.SIGTERM:  # the bed's own cleanup ran before the process ended
            assert leftovers(prefix) == []
        # SIGKILL: the switch cleans up once it sees its owner gone.
        wait_for(lambda: leftovers(prefix) == [], 30, f"{prefix} to be cleaned up")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for stream in (child.stdin, child.stdout):
            assert stream is not None
            stream.close()


def test_a_block_cuts_one_pair_of_hosts_and_no_other(make_bed: MakeBed) -> None:
    bed = make_bed(["a", "b", "c"], Link(rate_mbit=1000, delay_ms=1))
    for host in ("b", "c"):
        start_server(bed, host)
    ping = ["--port", str(PORT), "--count", "1", "--timeout", "0.5"]

    def reaches(src: str, dst: str) -> bool:
        return probe(bed, src, Rtt, "rtt", dst, *ping).rtt_ms != [None]

    assert bed.block("a", "b") == [("a", "b"), ("b", "a")]
    assert not reaches("a", "b")
    assert reaches("a", "c") and reaches("c", "b")  # a's and b's links are up for c
    assert bed.stats()["a"].egress.dropped_blocked >= 1
    assert bed.unblock("a", "b") == []
    assert reaches("a", "b")
    # One way: a's packets to b are dropped, b's to a pass (a TCP exchange cannot complete).
    assert bed.block("a", "b", one_way=True) == [("a", "b")]
    assert not reaches("a", "b")
    before = bed.stats()["b"].egress.dropped_blocked
    assert not reaches("a", "b")
    assert bed.stats()["b"].egress.dropped_blocked == before
