"""JSON from outside is nested at most MAX_JSON_DEPTH levels: deeper input is a clean error
naming the file, never 'maximum recursion depth exceeded'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.core import ConfigError, JobValidationError, WireError
from fedra.core.jsonfile import MAX_JSON_DEPTH, read_json_object
from fedra.job import load_job
from fedra.wire import Envelope, decode_envelope, encode_envelope
from fedra.wire._json import load_object


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_deeply_nested_meta_json_names_the_file(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "meta.json").write_text('{"name": "x", "deploy_map": ' + nested(100_000) + "}")
    with pytest.raises(JobValidationError) as refused:
        load_job(job)
    assert (
        str(refused.value)
        == f"meta.json: expected JSON nested at most {MAX_JSON_DEPTH} levels deep"
    )
    (job / "meta.json").write_text('{"name": "x", "deploy_map": ' + nested(200) + "}")
    with pytest.raises(JobValidationError, match="nested at most"):
        load_job(job)


def test_a_deep_settings_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "fed_server.json"
    path.write_text('{"a": ' + nested(5000) + "}")
    with pytest.raises(
        ConfigError, match=f"fed_server.json: JSON nested deeper than {MAX_JSON_DEPTH}"
    ):
        read_json_object(path)
    path.write_text(json.dumps({"a": [[[1]]]}))
    assert read_json_object(path) == {"a": [[[1]]]}


def test_deep_message_headers_are_a_wire_error() -> None:
    with pytest.raises(WireError, match="headers: JSON nested deeper than"):
        load_object('{"a": ' + nested(MAX_JSON_DEPTH + 1) + "}", "headers")
    deep: list[object] = []
    for _ in range(MAX_JSON_DEPTH + 5):
        deep = [deep]
    frame = encode_envelope(Envelope("log", {"value": deep}))
    with pytest.raises(WireError, match="nested deeper"):
        decode_envelope(frame)
    assert load_object('{"a": ' + nested(MAX_JSON_DEPTH - 1) + "}", "headers")
