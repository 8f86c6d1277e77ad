"""The pure scheduling decision: fit, mandatory sites, priorities, FIFO, max_jobs, starvation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedra.core.jobspec import JobMeta
from fedra.scheduler import Dispatch, QueuedJob, SiteResources, Wait, schedule

GPU4 = SiteResources(num_gpus=4, mem_per_gpu=24, num_cpus=8, memory=32)


def _job(
    job_id: str,
    spec: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    priority: int = 0,
    at: float = 0.0,
    min_clients: int = 1,
    mandatory: tuple[str, ...] = (),
) -> QueuedJob:
    meta = JobMeta(
        name=job_id,
        deploy_map={"app": ("@ALL",)},
        min_clients=min_clients,
        mandatory_clients=mandatory,
        resource_spec=spec or {},
    )
    return QueuedJob(job_id, meta, priority, at)


def _by_id(decisions: list[Dispatch | Wait]) -> dict[str, Dispatch | Wait]:
    return {d.job_id: d for d in decisions}


def test_fits_dispatches_to_sites_that_can_hold_it() -> None:
    sites = {"site-1": GPU4, "site-2": SiteResources(num_gpus=1)}
    out = schedule(
        [_job("a", {"site-1": {"num_gpus": 2}, "site-2": {"num_gpus": 2}})], sites, 0, 4, 0
    )
    assert out == [Dispatch("a", ("site-1",))]


def test_does_not_fit_reason_names_site_and_resource() -> None:
    sites = {"site-2": SiteResources(num_gpus=1)}
    [decision] = schedule([_job("a", {"site-2": {"num_gpus": 2}})], sites, 0, 4, 0)
    assert isinstance(decision, Wait)
    assert "site-2 has 1 of 2 GPUs free" in decision.reason


def test_mandatory_site_missing_or_short() -> None:
    sites = {"site-1": GPU4}
    [d] = schedule([_job("a", mandatory=("site-3",))], sites, 0, 4, 0)
    assert d == Wait("a", "mandatory site site-3 not connected")
    [d] = schedule([_job("b", {"site-1": {"num_gpus": 8}}, mandatory=("site-1",))], sites, 0, 4, 0)
    assert isinstance(d, Wait)
    assert "site-1 has 4 of 8 GPUs free" in d.reason


def test_min_clients() -> None:
    sites = {"site-1": GPU4, "site-2": SiteResources(num_gpus=0)}
    job = _job("a", {"site-1": {"num_gpus": 1}, "site-2": {"num_gpus": 1}}, min_clients=2)
    [d] = schedule([job], sites, 0, 4, 0)
    assert isinstance(d, Wait)
    assert d.reason.startswith("needs 2 sites, 1 can run it")


def test_unknown_key_waits_with_reason() -> None:
    [d] = schedule([_job("a", {"site-1": {"tpu": 1}})], {"site-1": GPU4}, 0, 4, 0)
    assert isinstance(d, Wait)
    assert "unknown resource 'tpu'" in d.reason


def test_priority_first_then_fifo() -> None:
    sites = {"site-1": GPU4}
    spec = {"site-1": {"num_gpus": 2}}
    queue = [
        _job("low", spec, at=1),
        _job("mid-late", spec, priority=5, at=3),
        _job("mid-early", spec, priority=5, at=2),
        _job("high", spec, priority=9, at=4),
    ]
    out = schedule(queue, sites, 0, 10, 5)
    assert [d.job_id for d in out if isinstance(d, Dispatch)] == ["high", "mid-early"]
    assert [d.job_id for d in out] == ["high", "mid-early", "mid-late", "low"]


def test_resources_subtracted_between_dispatches() -> None:
    sites = {"site-1": GPU4}
    queue = [_job(f"j{i}", {"site-1": {"num_gpus": 1, "memory": 10}}, at=i) for i in range(5)]
    out = _by_id(schedule(queue, sites, 0, 10, 10))
    assert [j for j, d in out.items() if isinstance(d, Dispatch)] == ["j0", "j1", "j2"]
    assert isinstance(out["j3"], Wait)


def test_max_jobs() -> None:
    queue = [_job(f"j{i}", at=i) for i in range(4)]
    out = schedule(queue, {"site-1": GPU4}, 1, 3, 10)
    assert [d.job_id for d in out if isinstance(d, Dispatch)] == ["j0", "j1"]
    assert out[2] == Wait("j2", "3 jobs running (the maximum)")


def test_backfill_on_other_sites_is_allowed() -> None:
    sites = {"site-1": SiteResources(num_gpus=1), "site-2": GPU4}
    big = _job("big", {"site-1": {"num_gpus": 4}}, mandatory=("site-1",), at=0)
    small_other = _job("small", {"site-1": {"num_gpus": 1}, "site-2": {"num_gpus": 1}}, at=1)
    out = _by_id(schedule([big, small_other], sites, 0, 10, 2))
    assert isinstance(out["big"], Wait)
    assert out["small"] == Dispatch("small", ("site-2",))  # site-1's GPUs are held for big
    cpu_only = _job("cpu", {"site-1": {"num_cpus": 0}}, mandatory=("site-1",), at=1)
    assert isinstance(_by_id(schedule([big, cpu_only], sites, 0, 10, 2))["cpu"], Dispatch)


def test_small_job_needing_held_site_waits() -> None:
    sites = {"site-1": SiteResources(num_gpus=1)}
    big = _job("big", {"site-1": {"num_gpus": 4}}, at=0)
    small = _job("small", {"site-1": {"num_gpus": 1}}, at=1)
    out = _by_id(schedule([big, small], sites, 0, 10, 2))
    assert isinstance(out["small"], Wait)
    assert "held for an earlier waiting job" in out["small"].reason


def _simulate(queue_fn: Any, steps: int, *, aging_s: float = 300.0) -> list[str]:
    """Run ``steps`` scheduling rounds on one 4-GPU site; each job runs 3 rounds."""
    total = 4
    running: dict[str, tuple[int, int]] = {"s-a": (1, 1), "s-b": (1, 2), "s-c": (1, 3)}
    queue: list[QueuedJob] = []
    started: list[str] = []
    for step in range(steps):
        running = {j: (g, end) for j, (g, end) in running.items() if end > step}
        queue.extend(queue_fn(step))
        free = SiteResources(num_gpus=total - sum(g for g, _ in running.values()))
        for d in schedule(queue, {"site-1": free}, len(running), 10, float(step), aging_s):
            if isinstance(d, Dispatch):
                job = next(q for q in queue if q.job_id == d.job_id)
                running[d.job_id] = (int(job.meta.resource_spec["site-1"]["num_gpus"]), step + 3)
                queue.remove(job)
                started.append(d.job_id)
    return started


def test_large_job_is_not_starved_by_a_stream_of_small_ones() -> None:
    def arrivals(step: int) -> list[QueuedJob]:
        jobs = [_job(f"small-{step}", {"site-1": {"num_gpus": 1}}, at=float(step))]
        if step == 0:
            jobs.insert(0, _job("big", {"site-1": {"num_gpus": 4}}, at=-0.5))
        return jobs

    started = _simulate(arrivals, 12)
    assert "big" in started
    assert started.index("big") <= 2  # only what was already free before big queued


def test_low_priority_large_job_ages_past_high_priority_stream() -> None:
    def arrivals(step: int) -> list[QueuedJob]:
        jobs = [_job(f"hi-{step}", {"site-1": {"num_gpus": 1}}, priority=9, at=float(step))]
        if step == 0:
            jobs.insert(0, _job("big", {"site-1": {"num_gpus": 4}}, at=-0.5))
        return jobs

    assert "big" not in _simulate(arrivals, 12, aging_s=1e9)  # priority alone would starve it
    assert "big" in _simulate(arrivals, 20, aging_s=5)
