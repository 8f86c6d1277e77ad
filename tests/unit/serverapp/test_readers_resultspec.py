"""A result is checked against its task's model (names, dtypes, shapes, size) from its header,
and the task board refuses one that does not fit (its task then counts as answered)."""

from __future__ import annotations

import threading

import numpy as np

from fedra.core import FLModel, Task, TaskResult
from fedra.serverapp import TaskBoard
from fedra.serverapp.resultspec import MIN_RESULT_BYTES, Expectation, heads_of
from fedra.wire import Envelope, TensorHead, peek_frame, prepare_envelope

TASK = FLModel(params={"w": np.zeros((4, 3), np.float32), "b": np.zeros(3, np.float32)})


def tensors(**arrays: np.ndarray) -> tuple[TensorHead, ...] | None:
    return heads_of(FLModel(params=dict(arrays)))


def test_a_result_like_the_tasks_model_is_accepted() -> None:
    expected = Expectation.of_task(TASK)
    assert expected.check(tensors(w=np.ones((4, 3), np.float32), b=np.ones(3, np.float32))) is None
    assert expected.check(tensors(w=np.ones((4, 3), np.float64))) is None  # wider float, subset
    assert expected.check(tensors(w=np.ones((4, 3), np.uint8))) is None  # quantized
    assert expected.check(None) is None  # metrics only


def test_wrong_names_shapes_or_dtypes_are_refused() -> None:
    expected = Expectation.of_task(TASK)
    why = expected.check(tensors(w=np.ones((4, 4), np.float32)))
    assert why == "param 'w' has shape (4, 4), the task's model has (4, 3)"
    why = expected.check(tensors(extra=np.ones(3, np.float32)))
    assert why == "param 'extra' is not a param of the task's model"
    why = expected.check(tensors(w=np.ones((4, 3), np.complex128)))
    assert why == "param 'w' has dtype complex128, wider than the task's float32"


def test_the_declared_size_is_bounded() -> None:
    huge = (TensorHead("__he_ckks__", "uint8", (3 << 30,), 3 << 30),)
    assert "at most" in (Expectation.of_task(TASK).check(huge) or "")
    assert "at most" in (Expectation.of_task(None).check(huge) or "")
    small = (TensorHead("x", "uint8", (1000,), 1000),)
    assert Expectation.of_task(None).check(small) is None  # a task without params
    assert Expectation.of_task(None).max_bytes == MIN_RESULT_BYTES


def test_the_check_reads_only_the_header_of_a_frame() -> None:
    result = FLModel(params={"w": np.ones((4, 4), np.float32)})
    head = prepare_envelope(Envelope("result", {"task_id": "t"}, result)).head
    frame = peek_frame(head)
    assert frame is not None and frame.kind == "result" and frame.headers == {"task_id": "t"}
    assert frame.tensors == (TensorHead("w", "float32", (4, 4), 64),)
    assert Expectation.of_task(TASK).check(frame.tensors) is not None
    assert peek_frame(head[:10]) is None


def test_the_board_refuses_a_result_that_does_not_fit_and_goes_on() -> None:
    sent: list[Task] = []
    board = TaskBoard(["a", "b"], sent.append, check_results=True)
    results: list[TaskResult] = []
    done = threading.Event()

    def run() -> None:
        results.extend(board.broadcast("train", TASK))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    deadline = threading.Event()
    while len(sent) < 2:
        deadline.wait(0.01)
    by_site = {t.site: t for t in sent}
    bad = FLModel(params={"w": np.ones((1000, 1000), np.float32)})
    verdict = board.submit(TaskResult(by_site["a"].id, "train", "a", data=bad))
    assert not verdict.accepted
    assert verdict.reason.endswith("param 'w' has shape (1000, 1000), the task's model has (4, 3)")
    good = FLModel(params={"w": np.ones((4, 3), np.float32), "b": np.ones(3, np.float32)})
    assert board.submit(TaskResult(by_site["b"].id, "train", "b", data=good)).accepted
    assert done.wait(5)
    assert [r.site for r in results] == ["b"]
