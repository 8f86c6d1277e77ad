"""The Client API warns a script (the site's log) of a result the server will misread."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytest

import fedra.client as flare
from fedra.client import api
from fedra.client.bridge import QueueBridge, SiteInfo
from fedra.core import FLModel


@pytest.fixture
def bridge() -> Iterator[QueueBridge]:
    bridge = QueueBridge(SiteInfo("site-w", 0, 1, "job-w"), lambda k, v, s: None)
    api._bind_thread(bridge)
    api._warned.clear()
    yield bridge
    api._bind_thread(None)


def _answer(bridge: QueueBridge, task: str, result: FLModel) -> None:
    bridge.inbox.put((task, FLModel(params={"w": np.zeros(2)}, current_round=1)))
    assert flare.is_running()
    flare.receive()
    flare.send(result)
    bridge.outbox.get_nowait()


def test_num_samples_in_metrics_and_params_on_validate_are_warned_once(
    bridge: QueueBridge, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fedra.client"):
        for _ in range(3):
            _answer(bridge, "train", FLModel(params={"w": np.ones(2)}, metrics={"num_samples": 7}))
            _answer(bridge, "validate", FLModel(params={"w": np.ones(2)}, metrics={"acc": 1.0}))
    messages = [r.getMessage() for r in caplog.records if r.name == "fedra.client"]
    assert len(messages) == 2, messages
    assert messages[0].startswith("site-w: num_samples is in the result's metrics")
    assert messages[1].startswith("site-w: the result of a 'validate' task has params")


def test_a_well_formed_result_is_not_warned(
    bridge: QueueBridge, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fedra.client"):
        _answer(bridge, "train", FLModel(params={"w": np.ones(2)}, meta={"num_samples": 7}))
        _answer(bridge, "validate", FLModel(metrics={"acc": 1.0}))
    assert [r for r in caplog.records if r.name == "fedra.client"] == []
