"""The script hop's messages: their own kinds, round trips, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from fedra.core import FLModel
from fedra.protocol import (
    FROM_SCRIPT,
    TO_SCRIPT,
    TO_SITE_JOB,
    BadMessage,
    ScriptError,
    ScriptHello,
    ScriptLog,
    ScriptMessage,
    ScriptResult,
    ScriptStop,
    ScriptTask,
    decode,
    decode_script,
    encode_script,
)
from fedra.wire import Envelope, decode_envelope, encode_envelope


@pytest.mark.parametrize(
    ("message", "link"),
    [
        (ScriptHello(site_name="site-1", site_index=0, num_sites=2, job_id="j"), TO_SCRIPT),
        (ScriptTask(name="train"), TO_SCRIPT),
        (ScriptStop(), TO_SCRIPT),
        (ScriptResult(), FROM_SCRIPT),
        (ScriptLog(key="loss", value=0.5, step=3), FROM_SCRIPT),
        (ScriptError(detail="Traceback ..."), FROM_SCRIPT),
    ],
)
def test_round_trip_through_the_wire(
    message: ScriptMessage, link: frozenset[type[ScriptMessage]]
) -> None:
    envelope = encode_script(message)
    assert envelope.kind.startswith("script.")
    assert decode_script(decode_envelope(encode_envelope(envelope)), link) == message


def test_a_task_carries_its_data() -> None:
    model = FLModel(params={"w": np.ones(3, np.float32)})
    envelope = encode_script(ScriptTask(name="train"), model)
    assert envelope.model is model


def test_the_hops_do_not_mix() -> None:
    with pytest.raises(BadMessage, match="not expected"):
        decode_script(Envelope("task", {"name": "train"}), TO_SCRIPT)  # a runtime kind
    with pytest.raises(BadMessage, match="not expected"):
        decode(encode_script(ScriptStop()), TO_SITE_JOB)  # a script-hop kind
    with pytest.raises(BadMessage, match="not expected"):
        decode_script(encode_script(ScriptResult()), TO_SCRIPT)  # the other direction


@pytest.mark.parametrize(
    ("kind", "headers", "field"),
    [
        ("script.log", {"key": "loss", "value": "high"}, "value"),
        ("script.log", {"key": "loss", "value": 1.0, "step": True}, "step"),
        ("script.hello", {"site_name": "s", "site_index": "0", "num_sites": 1}, "site_index"),
        ("script.task", {}, "name"),
    ],
)
def test_malformed_headers_are_refused(kind: str, headers: dict[str, object], field: str) -> None:
    link = FROM_SCRIPT if kind == "script.log" else TO_SCRIPT
    with pytest.raises(BadMessage, match=field):
        decode_script(Envelope(kind, headers), link)
