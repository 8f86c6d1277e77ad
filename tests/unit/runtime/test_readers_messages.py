"""Each message kind's headers are parsed in one place: a malformed field is a BadMessage."""

from __future__ import annotations

import pytest

from fedra.runtime.messages import (
    MAX_TEXT,
    BadMessage,
    JobState,
    LogHeaders,
    Lost,
    MayUpload,
    Request,
    ResultHeaders,
    ResultRefused,
    StartJob,
    TaskHeaders,
)


def test_a_log_with_a_non_numeric_value_is_refused() -> None:
    good = LogHeaders.from_headers({"job_id": "j", "site": "s", "key": "loss", "value": 1})
    assert good.value == 1.0 and good.step is None
    for bad, why in [
        ({"key": "loss", "value": "abc"}, "'value' must be a number, got str"),
        ({"key": "loss", "value": True}, "'value' must be a number, got bool"),
        ({"key": "loss", "value": 10**400}, "'value' is out of range"),
        ({"key": "loss", "value": 1, "step": "3"}, "'step' must be an integer, got str"),
        ({"value": 1}, "no 'key'"),
        ({"key": ["x"], "value": 1}, "'key' must be a string, got list"),
        ({"key": "k" * (MAX_TEXT + 1), "value": 1}, "at most 1024 allowed"),
    ]:
        with pytest.raises(BadMessage, match=why.replace("(", r"\(").replace(")", r"\)")):
            LogHeaders.from_headers(bad)


def test_a_result_needs_its_task_and_a_string_error() -> None:
    head = ResultHeaders.from_headers({"job_id": "j", "task_id": "t", "task_name": "train"})
    assert (head.job_id, head.task_id, head.error, head.grant) == ("j", "t", None, None)
    with pytest.raises(BadMessage, match="no 'task_id'"):
        ResultHeaders.from_headers({"job_id": "j", "task_name": "train"})
    with pytest.raises(BadMessage, match="'error' must be a string"):
        ResultHeaders.from_headers({"task_id": "t", "task_name": "x", "error": {"a": 1}})
    with pytest.raises(BadMessage, match="'task_name' must be a string"):
        ResultHeaders.from_headers({"task_id": "t", "task_name": 3})


def test_other_kinds() -> None:
    assert MayUpload.from_headers({"id": "g", "job_id": "j"}) == MayUpload("g", "j")
    with pytest.raises(BadMessage, match="'id' must be a string"):
        MayUpload.from_headers({"id": None, "job_id": "j"})
    assert JobState.from_headers({"job_id": "j", "state": "failed"}).detail == ""
    with pytest.raises(BadMessage, match="'state' must be one of"):
        JobState.from_headers({"job_id": "j", "state": "exploded"})
    assert Lost.from_headers({"site": "s"}) == Lost(None, "s")
    with pytest.raises(BadMessage, match="neither"):
        Lost.from_headers({})
    assert StartJob.from_headers({"job_id": "j", "sites": ["a"]}).sites == ["a"]
    with pytest.raises(BadMessage, match="'sites' must list strings"):
        StartJob.from_headers({"job_id": "j", "sites": [1]})
    with pytest.raises(BadMessage, match="'sites' must be a list"):
        StartJob.from_headers({"job_id": "j", "sites": "a"})
    assert TaskHeaders.from_headers({"task_id": "t", "task_name": "n"}).job_id == ""
    with pytest.raises(BadMessage, match="'args' must be an object"):
        Request.from_headers({"cmd": "tail", "args": [1]})
    with pytest.raises(BadMessage, match="no 'error'"):
        ResultRefused.from_headers({"job_id": "j", "task_id": "t"})


def test_a_job_id_is_safe_as_a_folder_name() -> None:
    for bad in ("../../etc", "", ".hidden", "a/b", "x" * 129, "a\x00b"):
        with pytest.raises(BadMessage, match=r"is not a job id"):
            StartJob.from_headers({"job_id": bad, "sites": ["a"]})
    assert StartJob.from_headers({"job_id": "5f546080-7418-498a", "sites": []}).sites == []
