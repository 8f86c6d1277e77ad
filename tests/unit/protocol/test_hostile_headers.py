"""Hostile headers, kind by kind: each is refused by :func:`fedra.protocol.decode` with the
field it got wrong, before any reader acts on it."""

from __future__ import annotations

import pytest

from fedra.protocol import (
    FROM_SITE,
    MAX_TEXT,
    TO_SERVER_JOB,
    TO_SITE,
    BadMessage,
    JobState,
    Log,
    MayUpload,
    Message,
    StartJob,
    decode,
)
from fedra.wire import Envelope


def parse(kind: str, headers: dict[str, object], link: frozenset[type[Message]]) -> Message:
    return decode(Envelope(kind, headers), link)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (
            {"job_id": "j", "key": "loss", "value": "abc"},
            r"Expected `float`, got `str` - at `\$.value`",
        ),
        ({"job_id": "j", "key": "loss", "value": True}, r"got `bool` - at `\$.value`"),
        ({"job_id": "j", "key": "loss", "value": 1, "step": "3"}, r"at `\$.step`"),
        ({"job_id": "j", "value": 1}, "missing required field `key`"),
        ({"job_id": "j", "key": ["x"], "value": 1}, r"got `array` - at `\$.key`"),
        ({"job_id": "j", "key": "k" * (MAX_TEXT + 1), "value": 1}, r"length <= 1024 - at `\$.key`"),
    ],
)
def test_a_log_with_a_malformed_field_is_refused(headers: dict[str, object], why: str) -> None:
    good = parse("log", {"job_id": "j", "key": "loss", "value": 1}, FROM_SITE)
    assert isinstance(good, Log) and good.value == 1.0 and good.step is None
    with pytest.raises(BadMessage, match=why):
        parse("log", headers, FROM_SITE)


def test_a_result_needs_its_task_and_a_string_error() -> None:
    with pytest.raises(BadMessage, match="missing required field `task_id`"):
        parse("result", {"job_id": "j", "task_name": "train"}, FROM_SITE)
    with pytest.raises(BadMessage, match=r"at `\$.error`"):
        parse("result", {"job_id": "j", "task_id": "t", "task_name": "x", "error": {}}, FROM_SITE)
    with pytest.raises(BadMessage, match=r"at `\$.task_name`"):
        parse("result", {"job_id": "j", "task_id": "t", "task_name": 3}, FROM_SITE)


def test_other_kinds() -> None:
    assert parse("may_upload", {"id": "g", "job_id": "j"}, FROM_SITE) == MayUpload("g", "j")
    with pytest.raises(BadMessage, match=r"at `\$.id`"):
        parse("may_upload", {"id": None, "job_id": "j"}, FROM_SITE)
    state = parse("job_state", {"job_id": "j", "state": "failed"}, FROM_SITE)
    assert isinstance(state, JobState) and state.detail == ""
    with pytest.raises(BadMessage, match="missing required field `task_id`"):
        parse("task_lost", {}, TO_SERVER_JOB)
    with pytest.raises(BadMessage, match=r"at `\$.sites\[0\]`"):
        parse("start_job", {"job_id": "j", "sites": [1]}, TO_SITE)
    with pytest.raises(BadMessage, match=r"got `str` - at `\$.sites`"):
        parse("start_job", {"job_id": "j", "sites": "a"}, TO_SITE)
    with pytest.raises(BadMessage, match=r"at `\$.args`"):
        parse("request", {"cmd": "tail", "args": [1]}, TO_SITE)
    with pytest.raises(BadMessage, match="missing required field `error`"):
        parse("result_refused", {"job_id": "j", "task_id": "t"}, TO_SITE)


@pytest.mark.parametrize("bad", ["../../etc", "", ".hidden", "a/b", "x" * 129, "a\x00b"])
def test_a_job_id_is_safe_as_a_folder_name(bad: str) -> None:
    with pytest.raises(BadMessage, match=r"at `\$.job_id`"):
        parse("start_job", {"job_id": bad, "sites": ["a"]}, TO_SITE)
    ok = parse("start_job", {"job_id": "5f546080-7418-498a", "sites": []}, TO_SITE)
    assert isinstance(ok, StartJob) and ok.sites == ()
