"""The Client API against an in-process bridge: what a training script sees."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import fedra.client as flare
from fedra.client import api
from fedra.client.bridge import RESULT, QueueBridge, SiteInfo
from fedra.core import FLModel

LOGGED: list[tuple[str, float, int | None]] = []


@pytest.fixture
def bridge() -> Iterator[QueueBridge]:
    LOGGED.clear()
    bridge = QueueBridge(
        SiteInfo("site-3", 2, 4, "job-1"), lambda k, v, s: LOGGED.append((k, v, s))
    )
    api._bind_thread(bridge)
    yield bridge
    api._bind_thread(None)


def test_outside_a_site_every_call_explains_itself() -> None:
    with pytest.raises(RuntimeError, match="not connected to a site"):
        flare.init()
    with pytest.raises(RuntimeError, match="not connected to a site"):
        flare.receive()


def test_identity_of_the_site(bridge: QueueBridge) -> None:
    flare.init()
    assert flare.get_site_name() == "site-3"
    assert flare.get_site_index() == 2
    assert flare.get_num_sites() == 4
    assert flare.get_job_id() == "job-1"


def test_task_loop_receive_send(bridge: QueueBridge) -> None:
    weights = np.arange(4.0)
    bridge.inbox.put(("train", FLModel(params={"w": weights}, current_round=1)))
    bridge.inbox.put(None)
    assert flare.is_running()
    assert flare.is_running()  # idempotent while the task is pending
    assert flare.is_train() and not flare.is_evaluate() and not flare.is_submit_model()
    model = flare.receive()
    assert model.current_round == 1
    np.testing.assert_array_equal(model.params["w"], weights)  # type: ignore[index]
    flare.send(FLModel(params={"w": weights + 1}, meta={"num_samples": 5}))
    kind, result, _ = bridge.outbox.get_nowait()
    assert kind == RESULT and result is not None
    np.testing.assert_array_equal(result.params["w"], weights + 1)  # type: ignore[index]
    assert result.num_samples == 5
    assert not flare.is_running()
    assert not flare.is_running()  # stays over
    with pytest.raises(RuntimeError, match="job is over"):
        flare.receive()


def test_send_without_a_task_is_refused(bridge: QueueBridge) -> None:
    with pytest.raises(RuntimeError, match="no task to answer"):
        flare.send(FLModel(metrics={"a": 1}))


def test_send_copies_views_so_later_changes_do_not_leak(bridge: QueueBridge) -> None:
    base = np.zeros(3)
    bridge.inbox.put(("train", FLModel(params={"w": base})))
    flare.receive()
    view = base[:]  # a view whose owner the script keeps changing
    flare.send(FLModel(params={"w": view}))
    base += 7
    _, result, _ = bridge.outbox.get_nowait()
    assert result is not None
    np.testing.assert_array_equal(result.params["w"], np.zeros(3))  # type: ignore[index]


def test_log_and_summary_writer(bridge: QueueBridge) -> None:
    flare.log("loss", 0.5, 3)
    writer = flare.SummaryWriter()
    writer.add_scalar("acc", 0.9, 4)
    writer.add_scalars("val", {"a": 1.0, "b": 2}, 5)
    assert LOGGED == [("loss", 0.5, 3), ("acc", 0.9, 4), ("val/a", 1.0, 5), ("val/b", 2.0, 5)]
    with pytest.raises(ValueError, match="non-empty string"):
        flare.log("", 1.0)
    with pytest.raises(TypeError):
        flare.log("x", "not a number")  # type: ignore[arg-type]


def test_pytorch_format_gives_writable_tensors_and_accepts_them_back() -> None:
    torch = pytest.importorskip("torch")
    bridge = QueueBridge(SiteInfo("site-1", 0, 1, "", "pytorch"), lambda k, v, s: None)
    api._bind_thread(bridge)
    try:
        received = np.arange(6, dtype=np.float32).reshape(2, 3)
        received.flags.writeable = False
        bridge.inbox.put(("train", FLModel(params={"w": received})))
        model = flare.receive()
        tensor = model.params["w"]  # type: ignore[index]
        assert isinstance(tensor, torch.Tensor)
        tensor += 1  # writable: the script's own copy
        net_param = torch.nn.Parameter(tensor.clone())
        flare.send(FLModel(params={"w": net_param}))
        with torch.no_grad():
            net_param.mul_(0)  # training goes on after send
        _, result, _ = bridge.outbox.get_nowait()
        assert result is not None
        np.testing.assert_array_equal(result.params["w"], received + 1)  # type: ignore[index]
    finally:
        api._bind_thread(None)
