"""ServerRun: outcomes, the job lifecycle, and resuming from the latest snapshot."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from fedra.core import FLModel, JobStatus, JsonObject, Snapshot, Task, TaskResult
from fedra.serverapp import EventLog, RunStore, ServerRun, TaskBoard
from fedra.workflows import FedAvg

SITES = ["site-1", "site-2", "site-3"]
Train = Callable[[str, FLModel], FLModel]


def _number(site: str) -> int:
    return int(site.rsplit("-", 1)[1])


def _train(site: str, model: FLModel) -> FLModel:
    assert model.params is not None
    n = _number(site)
    return FLModel(
        params={k: v + n for k, v in model.params.items()},
        metrics={"accuracy": 0.5},
        meta={"num_samples": n},
    )


def _validate(site: str, model: FLModel) -> FLModel:
    return FLModel(metrics={"accuracy": 0.5})


class Crash(Exception):
    """Stands for the server process dying."""


def _board(train: Train, sent: list[Task] | None = None) -> TaskBoard:
    log = [] if sent is None else sent

    def deliver(task: Task) -> None:
        log.append(task)
        handler = train if task.name == "train" else _validate
        try:
            result = TaskResult(task.id, task.name, task.site, data=handler(task.site, task.data))
        except Crash:
            raise
        except Exception:
            result = TaskResult(task.id, task.name, task.site, error=traceback.format_exc())
        assert board.submit(result).accepted

    board = TaskBoard(SITES, deliver)
    return board


def _initial() -> FLModel:
    return FLModel(params={"w": np.zeros(3)})


def test_success(tmp_path: Path) -> None:
    run = ServerRun(
        [FedAvg(num_rounds=2, wait_time_after_min_received=0)],
        _board(_train),
        RunStore(tmp_path),
        EventLog(),
        initial=_initial(),
    )
    outcome = run.run()
    assert outcome.status is JobStatus.FINISHED_COMPLETED
    assert outcome.error is None and outcome.failed_site is None
    assert [c.status for c in run.lifecycle.history] == [
        JobStatus.SUBMITTED,
        JobStatus.DISPATCHED,
        JobStatus.RUNNING,
        JobStatus.FINISHED_COMPLETED,
    ]
    assert outcome.final is not None and outcome.final.params is not None
    # Each round adds (1*1 + 2*2 + 3*3) / 6 to every entry.
    np.testing.assert_allclose(outcome.final.params["w"], np.full(3, 2 * 14 / 6), rtol=1e-12)
    assert [(r.workflow, r.round) for r in run.events.rounds][:2] == [("FedAvg", 1), ("FedAvg", 2)]


def test_site_error_is_an_execution_exception(tmp_path: Path) -> None:
    def train(site: str, model: FLModel) -> FLModel:
        if site == "site-2":
            raise RuntimeError("CUDA out of memory on site-2's GPU")
        return _train(site, model)

    run = ServerRun(
        [FedAvg(num_rounds=2)], _board(train), RunStore(tmp_path), EventLog(), initial=_initial()
    )
    outcome = run.run()
    assert outcome.status is JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert outcome.failed_site == "site-2"
    assert outcome.site_traceback is not None
    assert outcome.site_traceback.startswith("Traceback")
    assert "RuntimeError: CUDA out of memory" in outcome.site_traceback
    assert outcome.error is not None and "site-2" in outcome.error
    assert run.lifecycle.status is JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert run.lifecycle.history[-1].reason == outcome.error


def test_workflow_error_is_an_execution_exception(tmp_path: Path) -> None:
    run = ServerRun([FedAvg(min_clients=4)], _board(_train), RunStore(tmp_path), EventLog())
    outcome = run.run()
    assert outcome.status is JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert outcome.error is not None and "WorkflowError" in outcome.error
    assert outcome.failed_site is None


def test_abort_gives_finished_aborted(tmp_path: Path) -> None:
    board = _board(_train)
    board.abort("stopped by admin")
    run = ServerRun([FedAvg()], board, RunStore(tmp_path), EventLog(), initial=_initial())
    outcome = run.run()
    assert outcome.status is JobStatus.FINISHED_ABORTED
    assert run.lifecycle.status is JobStatus.FINISHED_ABORTED


def test_resume_after_crash_runs_only_the_remaining_rounds(tmp_path: Path) -> None:
    reference = ServerRun(
        [FedAvg(num_rounds=4)], _board(_train), RunStore(tmp_path / "ref"), EventLog(), _initial()
    ).run()
    assert reference.final is not None and reference.final.params is not None

    def crash_in_round_3(site: str, model: FLModel) -> FLModel:
        if model.current_round == 3:
            raise Crash
        return _train(site, model)

    store = RunStore(tmp_path / "run")
    first = ServerRun(
        [FedAvg(num_rounds=4)], _board(crash_in_round_3), store, EventLog(), _initial()
    )
    try:
        first.run()
    except Crash:
        pass
    else:
        raise AssertionError("the crash did not propagate")

    sent: list[Task] = []
    second = ServerRun([FedAvg(num_rounds=4)], _board(_train, sent), store, EventLog(), _initial())
    outcome = second.run(resume=True)
    assert outcome.status is JobStatus.FINISHED_COMPLETED
    assert second.lifecycle.history[2].reason == "resumed"
    assert sorted({t.data.current_round for t in sent if t.name == "train"}) == [3, 4]
    assert outcome.final is not None and outcome.final.params is not None
    assert np.array_equal(outcome.final.params["w"], reference.final.params["w"])


def _rounds(run: ServerRun) -> list[tuple[str, int]]:
    return [(r.workflow, r.round) for r in run.events.rounds]


ALL_ROUNDS = [("FedAvg", n) for n in (1, 2, 3, 4)] + [("FedAvg (final validation)", 4)]


def test_a_resumed_run_keeps_the_history_of_the_rounds_before(tmp_path: Path) -> None:
    def crash_in_round_3(site: str, model: FLModel) -> FLModel:
        if model.current_round == 3:
            raise Crash
        return _train(site, model)

    store = RunStore(tmp_path)
    first = ServerRun(
        [FedAvg(num_rounds=4)], _board(crash_in_round_3), store, EventLog(), _initial()
    )
    with pytest.raises(Crash):
        first.run()
    second = ServerRun([FedAvg(num_rounds=4)], _board(_train), store, EventLog(), _initial())
    assert second.run(resume=True).status is JobStatus.FINISHED_COMPLETED
    assert _rounds(second) == ALL_ROUNDS
    assert second.events.rounds[0].metrics == {"accuracy": 0.5}  # as recorded before the crash


class _CrashAtSnapshot(RunStore):
    """A store whose process dies while writing the snapshot of ``round``."""

    def __init__(self, root: Path, round_num: int) -> None:
        super().__init__(root)
        self.round_num = round_num

    def save_snapshot(
        self, index: int, snapshot: Snapshot, history: Sequence[JsonObject] = ()
    ) -> None:
        if snapshot.state.get("round") == self.round_num:
            raise Crash
        super().save_snapshot(index, snapshot, history)


def test_a_round_recorded_but_not_in_the_snapshot_is_listed_once(tmp_path: Path) -> None:
    first = ServerRun(
        [FedAvg(num_rounds=4)],
        _board(_train),
        _CrashAtSnapshot(tmp_path, 3),
        EventLog(),
        _initial(),
    )
    with pytest.raises(Crash):
        first.run()
    assert _rounds(first)[-1] == ("FedAvg", 3)  # recorded; the snapshot is of round 2
    second = ServerRun([FedAvg(num_rounds=4)], _board(_train), RunStore(tmp_path), EventLog())
    assert second.run(resume=True).status is JobStatus.FINISHED_COMPLETED
    assert _rounds(second) == ALL_ROUNDS  # round 3 run again replaced its first record
