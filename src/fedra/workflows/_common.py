"""Small helpers shared by the built-in workflows."""

from __future__ import annotations

import logging
import math
import threading

from fedra.core import (
    Array,
    FLModel,
    RunAborted,
    SiteError,
    Snapshot,
    TaskResult,
    WorkflowContext,
    WorkflowError,
    result_warnings,
)

GLOBAL = "global"
log = logging.getLogger("fedra.workflows")
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def checked(result: TaskResult, *, need_params: bool = False) -> FLModel:
    """The model in ``result``; a SiteError when the site failed, a WorkflowError when empty."""
    if not result.ok:
        raise SiteError(result.site, result.task_name, result.error or "")
    if result.data is None:
        raise WorkflowError(f"site {result.site} answered task '{result.task_name}' with nothing")
    if need_params and result.data.params is None:
        raise WorkflowError(f"site {result.site} answered task '{result.task_name}' without params")
    for key, warning in result_warnings(result.site, result.task_name, result.data).items():
        with _warned_lock:
            if key in _warned:
                continue
            _warned.add(key)
        log.warning("%s", warning)  # once per site and kind: the server's log.txt
    return result.data


def stop_if_aborted(ctx: WorkflowContext) -> None:
    """Raise RunAborted once the run was asked to stop."""
    if ctx.fleet.aborted():
        raise RunAborted("the run was aborted")


def is_better(value: object, best: float | None, higher_is_better: bool) -> bool:
    """Whether a metric ``value`` beats ``best`` (None: nothing yet)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if higher_is_better else value < best


def params_or_empty(model: FLModel | None) -> dict[str, Array]:
    """The params of ``model``, or an empty dict."""
    return dict(model.params) if model is not None and model.params is not None else {}


def positive_int(name: str, value: int) -> int:
    """Validate a positive integer argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def state_round(snapshot: Snapshot) -> int:
    """The round ``snapshot`` was taken after (``state["round"]``); WorkflowError when the
    state holds no round number (a snapshot written by something else, or damaged)."""
    value = snapshot.state.get("round")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WorkflowError(
            f"{snapshot.workflow} snapshot: 'round' must be an integer >= 0, got {value!r}"
        )
    return value


def state_number(snapshot: Snapshot, key: str) -> float | None:
    """``state[key]`` as a float (None when absent or null); WorkflowError when not a number."""
    value = snapshot.state.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkflowError(
            f"{snapshot.workflow} snapshot: {key!r} must be a number, got {value!r}"
        )
    return float(value)
