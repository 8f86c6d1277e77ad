"""A site's declared resources (local/resources.json) and its thread-safe resource book."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.runtime.site_resources import (
    SiteResourceBook,
    detected_resources,
    load_site_resources,
)
from fedra.scheduler import ResourceError, SiteResources


def write(root: Path, text: str) -> None:
    (root / "local").mkdir(parents=True, exist_ok=True)
    (root / "local" / "resources.json").write_text(text)


def test_without_a_file_the_site_declares_what_the_machine_has(tmp_path: Path) -> None:
    found = load_site_resources(tmp_path)
    assert found == detected_resources()
    assert found.num_gpus == 0 and found.num_cpus >= 1 and found.memory > 0


def test_the_file_declares_gpus_and_extras_and_keeps_detected_cpus(tmp_path: Path) -> None:
    write(tmp_path, json.dumps({"num_gpus": 4, "mem_per_gpu": 40, "extra": {"fpga": 2}}))
    found = load_site_resources(tmp_path)
    assert (found.num_gpus, found.mem_per_gpu, dict(found.extra)) == (4, 40.0, {"fpga": 2.0})
    assert found.num_cpus == detected_resources().num_cpus


def test_the_provisioned_default_file_is_valid(tmp_path: Path) -> None:
    from fedra.runtime.kit_local import resources

    write(tmp_path, json.dumps(resources(server=False)))
    assert load_site_resources(tmp_path).num_gpus == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"gpus": 2}', "unknown key"),
        ('{"num_gpus": 1.5}', "whole number"),
        ('{"num_gpus": -1}', ">= 0"),
        ('{"extra": {"num_gpus": 1}}', "shadows"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_bad_file_is_a_clear_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_site_resources(tmp_path)
    assert "resources.json" in str(info.value)


def test_reserved_jobs_get_distinct_gpus_and_give_them_back() -> None:
    book = SiteResourceBook("site-1", SiteResources(num_gpus=2, num_cpus=4))
    book.reserve("a", {"num_gpus": 1}, ttl_s=60)
    book.reserve("b", {"num_gpus": 1}, ttl_s=60)
    with pytest.raises(ResourceError, match="site-1 has 0 of 1 GPUs free"):
        book.reserve("c", {"num_gpus": 1}, ttl_s=60)
    first, second = book.allocate("a", {"num_gpus": 1}), book.allocate("b", {"num_gpus": 1})
    assert {first.cuda_visible_devices(), second.cuda_visible_devices()} == {"0", "1"}
    assert book.allocate("a", {"num_gpus": 1}) == first  # asking again changes nothing
    assert book.report()["free"]["num_gpus"] == 0
    assert book.holders() == ["a", "b"]
    book.free("a")
    book.free("b")
    assert book.report()["free"] == book.report()["total"]
    assert book.holders() == []


def test_a_job_without_reservation_gets_what_is_free_or_a_reason() -> None:
    """A job resumed after a restart has no reservation: it is allocated directly if it fits."""
    book = SiteResourceBook("site-1", SiteResources(num_gpus=1))
    assert book.allocate("resumed", {"num_gpus": 1}).gpus == (0,)
    with pytest.raises(ResourceError, match="0 of 1 GPUs"):
        book.allocate("other", {"num_gpus": 1})
    assert book.holders() == ["resumed"]


def test_unknown_resource_keys_are_refused() -> None:
    book = SiteResourceBook("site-1", SiteResources(num_gpus=1, extra={"fpga": 1}))
    with pytest.raises(ResourceError, match="unknown resource 'tpu'"):
        book.reserve("a", {"tpu": 1}, ttl_s=60)
    book.reserve("a", {"fpga": 1}, ttl_s=60)
    assert book.report()["free"]["extra"] == {"fpga": 0.0}
