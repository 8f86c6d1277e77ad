"""What runs without namespaces: the switch's link model (rate, queue limit,
delay, jitter without reordering, loss, outages; on a virtual clock) and the skip policy."""

from __future__ import annotations

import random

import pytest

from bench.netbed.link import PROFILES, Link
from bench.netbed.switch import Queue

MTU = 65000


def test_the_rate_spaces_packets_and_a_full_queue_drops_the_tail() -> None:
    queue = Queue(Link(rate_mbit=8, delay_ms=10, queue_bytes=3 * MTU), random.Random(1))
    leaves = [queue.admit(0.0, MTU) for _ in range(4)]  # 8 Mbit/s: 1 MB/s, 65 ms a packet
    assert leaves[:3] == pytest.approx([0.065 + 0.01, 0.130 + 0.01, 0.195 + 0.01])
    assert leaves[3] is None and queue.dropped_queue == 1  # 3 packets already wait
    assert queue.admit(0.2, MTU) == pytest.approx(0.2 + 0.065 + 0.01)  # drained: starts now


def test_jitter_varies_the_delay_but_never_reorders() -> None:
    queue = Queue(Link(rate_mbit=None, delay_ms=10, jitter_ms=9), random.Random(2))
    sparse = [(n * 0.02, queue.admit(n * 0.02, 100)) for n in range(500)]  # 20 ms apart
    delays = [t - sent for sent, t in sparse if t is not None]
    assert len(delays) == 500 and min(delays) >= 0.001 and max(delays) <= 0.019
    assert max(delays) - min(delays) > 0.015  # uniform in 10 ± 9 ms
    dense = [queue.admit(10 + n * 1e-4, 100) for n in range(2000)]  # 0.1 ms apart
    times = [t for t in dense if t is not None]
    assert len(times) == 2000 and times == sorted(times)  # packets never overtake


def test_loss_and_outages_drop_and_are_counted() -> None:
    queue = Queue(Link(rate_mbit=None, loss=0.3), random.Random(3))
    kept = sum(queue.admit(0.0, 100) is not None for _ in range(10_000))
    assert 6_700 <= kept <= 7_300  # Binomial(10000, 0.7): standard deviation 46
    assert queue.dropped_loss == 10_000 - kept
    queue.set(Link(up=False))
    assert queue.admit(1.0, 100) is None and queue.dropped_down == 1


def test_profiles_give_their_path_between_two_hosts() -> None:
    for profile in PROFILES.values():
        link = profile.link
        assert 4 * link.delay_ms == profile.rtt_ms
        assert abs((1 - (1 - link.loss) ** 2) - profile.loss) < 1e-12
        assert link.queue_limit >= profile.bdp_bytes or link.queue_limit == 1 << 20


def test_without_namespaces_the_tests_skip_but_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.net import conftest

    monkeypatch.setattr(conftest, "unavailable", lambda: "network namespaces need root")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        conftest.require_beds()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest.require_beds()
