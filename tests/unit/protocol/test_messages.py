"""The typed messages: every kind round-trips, and hostile headers are refused."""

from __future__ import annotations

import numpy as np
import pytest

from fedra.core import FLModel
from fedra.protocol import (
    FROM_ADMIN,
    FROM_SERVER_JOB,
    FROM_SITE,
    FROM_SITE_JOB,
    KINDS,
    TO_SERVER_JOB,
    TO_SITE,
    TO_SITE_JOB,
    BadMessage,
    Broadcast,
    JobState,
    Result,
    StartJob,
    Target,
    Task,
    decode,
    encode,
    model_zip,
    zip_model,
)
from fedra.wire import Envelope, decode_envelope, encode_envelope

LINKS = (FROM_SITE, TO_SITE, FROM_SERVER_JOB, TO_SERVER_JOB, FROM_SITE_JOB, TO_SITE_JOB, FROM_ADMIN)

SAMPLES = {
    "hello": {"site": "site-a", "resources": {"total": {"num_cpus": 2}, "free": {}}, "ssid": 3},
    "heartbeat": {"jobs": ["j1"]},
    "session": {"ssid": 4},
    "result": {"job_id": "j1", "task_id": "t1", "task_name": "train", "error": None},
    "log": {"job_id": "j1", "key": "loss", "value": 0.5, "step": 2},
    "job_state": {"job_id": "j1", "state": "failed", "detail": "no GPU"},
    "may_upload": {"id": "g1", "job_id": "j1"},
    "reply": {"id": "r1", "ok": True, "data": {"rows": [1, 2]}},
    "welcome": {"server": "server1", "ssid": None},
    "start_job": {"job_id": "j1", "sites": ["site-a"], "signature": "c2ln", "certificate": "x"},
    "task": {"job_id": "j1", "task_id": "t1", "task_name": "train", "site": "site-a"},
    "abort_job": {"job_id": "j1", "reason": "admin"},
    "end_job": {"job_id": "j1"},
    "request": {"id": "r1", "cmd": "tail", "args": {"lines": 5}},
    "upload_ok": {"id": "g1"},
    "result_refused": {"job_id": "j1", "task_id": "t1", "error": "late"},
    "ready": {"job_id": "j1"},
    "broadcast": {"job_id": "j1", "task_name": "train", "targets": [{"site": "a", "task_id": "t"}]},
    "round": {
        "workflow": "fedavg",
        "round": 1,
        "metrics": {"acc": 0.9},
        "seconds": 1.5,
        "sites": ["a"],
    },
    "done": {"status": "FINISHED:COMPLETED"},
    "sites": {"sites": ["a", "b"]},
    "go": {},
    "abort": {"reason": "stop"},
    "task_lost": {"task_id": "t1"},
    "site_lost": {"site": "a"},
    "site_failed": {"site": "a", "detail": "crashed"},
    "stop": {},
    "admin": {"id": "r1", "cmd": "list_jobs", "args": {}},
}


def test_every_kind_has_a_sample_and_a_link() -> None:
    assert set(SAMPLES) == set(KINDS)
    carried = set().union(*LINKS)
    assert carried == set(KINDS.values()), "a kind no link carries"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_through_the_wire(kind: str) -> None:
    link = next(link for link in LINKS if KINDS[kind] in link)
    message = decode(Envelope(kind, SAMPLES[kind]), link)
    # Through real frames: the headers stay JSON and come back as the same message.
    back = decode(decode_envelope(encode_envelope(encode(message))), link)
    assert back == message


def test_a_link_refuses_kinds_it_does_not_carry() -> None:
    with pytest.raises(BadMessage, match="not expected"):
        decode(Envelope("go", {}), FROM_SITE)  # a site may not start a workflow
    with pytest.raises(BadMessage, match="not expected"):
        decode(Envelope("no-such-kind", {}), TO_SITE)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"job_id": "../etc", "task_id": "t", "task_name": "n"}, "job_id"),
        ({"job_id": ".hidden", "task_id": "t", "task_name": "n"}, "job_id"),
        ({"job_id": "j", "task_id": "t" * 1025, "task_name": "n"}, "task_id"),
        ({"job_id": "j", "task_id": 7, "task_name": "n"}, "task_id"),
        ({"job_id": "j", "task_name": "n"}, "task_id"),
        ({"job_id": "j", "task_id": "t", "task_name": "n", "error": ["x"]}, "error"),
    ],
)
def test_hostile_result_headers_are_refused(headers: dict[str, object], why: str) -> None:
    with pytest.raises(BadMessage, match=why):
        decode(Envelope("result", headers), FROM_SITE)


def test_bools_are_not_numbers_and_states_are_a_closed_set() -> None:
    with pytest.raises(BadMessage, match="step"):
        decode(Envelope("log", {"job_id": "j", "key": "k", "value": 1, "step": True}), FROM_SITE)
    with pytest.raises(BadMessage, match="state"):
        decode(Envelope("job_state", {"job_id": "j", "state": "exploded"}), FROM_SITE)
    with pytest.raises(BadMessage, match="sites"):
        decode(Envelope("start_job", {"job_id": "j", "sites": ["a"] * 10_001}), TO_SITE)


def test_models_travel_beside_the_message() -> None:
    model = FLModel(params={"w": np.arange(3, dtype=np.float32)})
    envelope = encode(Task(job_id="j", task_id="t", task_name="train", site="a"), model)
    assert envelope.kind == "task" and envelope.model is model
    message = decode(envelope, TO_SITE)
    assert isinstance(message, Task) and message.site == "a"
    archive = encode(StartJob(job_id="j", sites=("a",)), zip_model(b"PK\x03\x04"))
    assert model_zip(archive.model) == b"PK\x03\x04"
    assert model_zip(FLModel(params={"zip": np.zeros(2, dtype=np.float32)})) is None


def test_messages_are_frozen_values() -> None:
    result = Result(job_id="j", task_id="t", task_name="n")
    with pytest.raises(AttributeError):
        result.site = "x"  # type: ignore[misc]
    broadcast = Broadcast(job_id="j", task_name="n", targets=(Target("a", "t1"),))
    assert encode(broadcast).headers["targets"] == ({"site": "a", "task_id": "t1"},)
    assert JobState(job_id="j", state="ended") == decode(
        Envelope("job_state", {"job_id": "j", "state": "ended"}), FROM_SITE_JOB
    )
