"""A site's resource reports: the same report again (most heartbeats) is not parsed again, and
a different one in between (a reserve answer) is never skipped."""

from __future__ import annotations

import pytest

import fedra.runtime.server_records as server_records
from fedra.runtime.server_records import SiteHandle
from fedra.scheduler import SiteResources
from tests.unit.runtime.server_fakes import FakeConn


def _report(free_cpus: int) -> dict[str, object]:
    return {"total": {"num_cpus": 4}, "free": {"num_cpus": free_cpus}}


def test_an_equal_report_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[object] = []
    real = SiteResources.from_dict

    def counting(data: object, where: str = "resources") -> SiteResources:
        parsed.append(data)
        return real(data, where)

    monkeypatch.setattr(server_records.SiteResources, "from_dict", staticmethod(counting))
    handle = SiteHandle("site-a", "org-a", FakeConn("site-a"))  # type: ignore[arg-type]
    for _ in range(10):
        handle.update_resources(_report(4))
    assert len(parsed) == 2  # total and free, once
    assert handle.free is not None and handle.free.num_cpus == 4


def test_a_different_report_between_two_equal_ones_is_taken() -> None:
    handle = SiteHandle("site-a", "org-a", FakeConn("site-a"))  # type: ignore[arg-type]
    handle.update_resources(_report(4))  # a heartbeat
    handle.update_resources(_report(1))  # a reserve answer
    assert handle.free is not None and handle.free.num_cpus == 1
    handle.update_resources(_report(4))  # the next heartbeat: as the first one
    assert handle.free.num_cpus == 4


def test_a_bad_report_changes_nothing_and_is_not_remembered() -> None:
    handle = SiteHandle("site-a", "org-a", FakeConn("site-a"))  # type: ignore[arg-type]
    handle.update_resources(_report(4))
    handle.update_resources({"total": {"num_cpus": "many"}, "free": {}})
    assert handle.free is not None and handle.free.num_cpus == 4
    handle.update_resources(_report(2))
    assert handle.free.num_cpus == 2
