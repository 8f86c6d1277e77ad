"""The server config's ``result_filters``: parsed, validated against the registry, built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.core import SERVER_CONFIG, JobValidationError, parse_server_config
from fedra.filters import ClipNorm, RejectNonFinite
from fedra.job import FedJob, build_result_filters, load_job


def _job() -> FedJob:
    job = FedJob("server-filters", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=1, min_clients=2)
    job.add_executor("ScriptExecutor", script="train.py")
    return job


def test_parsed_in_order_with_their_origin() -> None:
    config = parse_server_config(
        {
            "workflows": [{"class": "FedAvg"}],
            "result_filters": [
                {"class": "RejectNonFinite"},
                {"class": "ClipNorm", "args": {"max_norm": 5}},
            ],
        }
    )
    assert [f.name for f in config.result_filters] == ["RejectNonFinite", "ClipNorm"]
    assert config.result_filters[1].args == {"max_norm": 5}
    assert config.result_filters[1].origin == (SERVER_CONFIG, "result_filters[1]")
    assert parse_server_config({"workflows": [{"class": "FedAvg"}]}).result_filters == ()
    with pytest.raises(JobValidationError, match="result_filters: expected a list of filters"):
        parse_server_config({"workflows": [{"class": "FedAvg"}], "result_filters": {}})


def test_job_api_round_trip_builds_the_filters(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("pass\n")
    job = _job().add_file(tmp_path / "train.py")
    job.add_server_filter("RejectNonFinite").add_server_filter("ClipNorm", max_norm=2.5)
    definition = job.export(tmp_path / "job")
    written = json.loads((tmp_path / "job" / "app" / SERVER_CONFIG).read_text())
    assert written["result_filters"] == [
        {"class": "RejectNonFinite"},
        {"class": "ClipNorm", "args": {"max_norm": 2.5}},
    ]
    built = build_result_filters(definition.server_app)
    assert isinstance(built[0], RejectNonFinite) and isinstance(built[1], ClipNorm)
    assert built[1].max_norm == 2.5
    plain = _job().add_file(tmp_path / "train.py").export(tmp_path / "plain")
    assert build_result_filters(plain.server_app) == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"class": "NoSuchFilter"}, r"result_filters\[0\]\.class: expected a built-in filter"),
        ({"class": "ClipNorm"}, r"result_filters\[0\]\.args\.max_norm: expected this required"),
        ({"class": "ClipNorm", "args": {"max_norm": "big"}}, r"args\.max_norm: expected a number"),
        ({"class": "ClipNorm", "args": {"max_norm": -1}}, r"args: expected valid arguments"),
    ],
)
def test_mistakes_name_the_file_and_key(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    (tmp_path / "train.py").write_text("pass\n")
    _job().add_file(tmp_path / "train.py").export(tmp_path / "job")
    config_file = tmp_path / "job" / "app" / SERVER_CONFIG
    config = json.loads(config_file.read_text())
    config["result_filters"] = [entry]
    config_file.write_text(json.dumps(config))
    with pytest.raises(JobValidationError, match=message):
        load_job(tmp_path / "job")
