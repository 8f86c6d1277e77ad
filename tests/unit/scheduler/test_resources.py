"""ResourceManager: check, reserve with expiry, allocate with GPU indices, free."""

from __future__ import annotations

import pytest

from fedra.scheduler import ResourceError, ResourceManager, SiteResources

TOTAL = SiteResources(num_gpus=4, mem_per_gpu=24, num_cpus=16, memory=64, extra={"fpga": 1})


class Clock:
    """A fake clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _manager() -> tuple[ResourceManager, Clock]:
    clock = Clock()
    return ResourceManager("site-2", TOTAL, clock), clock


def test_check_fits_and_names_site_and_resource() -> None:
    rm, _ = _manager()
    assert rm.check("j1", {"num_gpus": 4, "mem_per_gpu": 16}) is None
    rm.reserve("j0", {"num_gpus": 3}, ttl_s=10)
    assert rm.check("j1", {"num_gpus": 2}) == "site-2 has 1 of 2 GPUs free"
    assert "site-2 has 24 GiB per GPU" in (rm.check("j1", {"num_gpus": 1, "mem_per_gpu": 32}) or "")
    assert rm.check("j0", {"num_gpus": 3}) is None  # its own reservation counts as free


def test_unknown_key_is_a_resource_error_unless_declared() -> None:
    rm, _ = _manager()
    with pytest.raises(ResourceError, match="unknown resource 'tpu'"):
        rm.check("j1", {"tpu": 1})
    assert rm.check("j1", {"fpga": 1}) is None
    with pytest.raises(ResourceError, match="must be a number"):
        rm.check("j1", {"num_gpus": "two"})


def test_reserve_expire_allocate_free_returns_to_totals() -> None:
    rm, clock = _manager()
    rm.reserve("a", {"num_gpus": 2, "num_cpus": 4, "memory": 8}, ttl_s=30)
    rm.reserve("b", {"num_gpus": 1, "fpga": 1}, ttl_s=5)
    assert rm.free_resources().num_gpus == 1
    assert rm.free_resources().extra["fpga"] == 0
    clock.now += 10
    assert rm.free_resources().num_gpus == 2  # b's reservation has lapsed
    with pytest.raises(ResourceError, match="no live reservation"):
        rm.allocate("b")
    assert rm.expire() == ["b"]
    alloc = rm.allocate("a")
    assert alloc.cuda_visible_devices() == "0,1"
    assert rm.free_resources().num_cpus == 12
    with pytest.raises(ResourceError, match="already has an allocation"):
        rm.reserve("a", {"num_gpus": 1}, ttl_s=5)
    rm.free("a")
    rm.free("a")  # idempotent
    rm.free("never-seen")
    assert rm.free_resources() == TOTAL
    assert not rm.reservations
    assert not rm.allocations


def test_reserve_refuses_what_does_not_fit() -> None:
    rm, _ = _manager()
    rm.reserve("a", {"num_gpus": 3}, ttl_s=30)
    with pytest.raises(ResourceError, match="site-2 has 1 of 2 GPUs free"):
        rm.reserve("b", {"num_gpus": 2}, ttl_s=30)


def test_gpu_indices_are_distinct_and_reused_after_free() -> None:
    rm, _ = _manager()
    got = {}
    for job, n in (("a", 1), ("b", 2), ("c", 1)):
        rm.reserve(job, {"num_gpus": n}, ttl_s=30)
        got[job] = rm.allocate(job).gpus
    assert got == {"a": (0,), "b": (1, 2), "c": (3,)}
    rm.free("b")
    rm.reserve("d", {"num_gpus": 2}, ttl_s=30)
    assert rm.allocate("d").gpus == (1, 2)
    assert rm.free_resources().num_gpus == 0
    for job in ("a", "c", "d"):
        rm.free(job)
    assert rm.free_resources() == TOTAL


def test_many_cycles_return_to_totals() -> None:
    rm, clock = _manager()
    for i in range(50):
        job = f"j{i}"
        rm.reserve(job, {"num_gpus": 1 + i % 4, "memory": 1.5, "fpga": i % 2}, ttl_s=3)
        if i % 3 == 0:
            clock.now += 5
            rm.expire()
        else:
            rm.allocate(job)
            rm.free(job)
    assert rm.free_resources() == TOTAL


def test_site_resources_reject_bad_values() -> None:
    with pytest.raises(ResourceError):
        SiteResources(num_gpus=-1)
    with pytest.raises(ResourceError, match="shadows"):
        SiteResources(extra={"num_gpus": 1})


def test_resources_round_trip_through_their_json_form() -> None:
    resources = SiteResources(num_gpus=2, mem_per_gpu=16, num_cpus=8, memory=64, extra={"fpga": 1})
    assert SiteResources.from_dict(resources.as_dict()) == resources
    assert SiteResources.from_dict({}) == SiteResources()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"gpus": 1}, "unknown key"),
        ({"num_cpus": "8"}, "must be a number"),
        ({"extra": [1]}, "extra: expected an object"),
        ({"extra": {"fpga": "x"}}, "extra"),
        (None, "expected a JSON object"),
    ],
)
def test_a_bad_json_form_names_the_problem(data: object, message: str) -> None:
    with pytest.raises(ResourceError, match=message):
        SiteResources.from_dict(data, "site-1 resources")
