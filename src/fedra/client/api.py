"""The Client API: four calls that make an existing training script a federated one.

::

    import fedra.client as flare
    flare.init()
    while flare.is_running():
        model = flare.receive()          # the global model (fedra.FLModel)
        ...                              # the script's own training code
        flare.send(fedra.FLModel(params=new_weights, metrics={"accuracy": acc},
                                 meta={"num_samples": n}))

The same script runs inside a site's worker thread (in-process) or as its own process; the
functions find their site through a thread-local or the ``FEDRA_CLIENT_SOCKET`` variable.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from fedra.client.bridge import Bridge, ChannelBridge, socket_from_env
from fedra.core import (
    TASK_SUBMIT_MODEL,
    TASK_TRAIN,
    TASK_VALIDATE,
    FLModel,
    as_array,
    readonly,
    result_warnings,
)


@dataclass
class _State:
    bridge: Bridge
    pending: tuple[str, FLModel] | None = None
    finished: bool = False


_local = threading.local()
_warned: set[tuple[str, str]] = set()
_logger = logging.getLogger("fedra.client")
_process_state: _State | None = None
_process_lock = threading.Lock()


def _bind_thread(bridge: Bridge | None) -> None:
    """Attach ``bridge`` to the calling thread (used by the in-process ScriptExecutor)."""
    _local.state = None if bridge is None else _State(bridge)


def _state() -> _State:
    state: _State | None = getattr(_local, "state", None)
    if state is not None:
        return state
    if _process_state is not None:
        return _process_state
    raise RuntimeError(
        "fedra.client is not connected to a site: call flare.init() in a script run by "
        "`fedra simulate` or a Fedra site (it cannot be used from a plain `python train.py`)"
    )


def init() -> None:
    """Connect to the site runtime. Safe to call more than once."""
    global _process_state
    if getattr(_local, "state", None) is not None:
        return
    with _process_lock:
        if _process_state is not None:
            return
        path = socket_from_env()
        if path is None:
            _state()  # raises the explanatory error
        assert path is not None
        _process_state = _State(ChannelBridge(path))
        _install_excepthook(_process_state.bridge)


def _install_excepthook(bridge: Bridge) -> None:
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        try:
            bridge.send_error("".join(traceback.format_exception(kind, exc, tb)))
        finally:
            previous(kind, exc, tb)

    sys.excepthook = hook


def is_running() -> bool:
    """Wait for the next task: True when one arrived, False when the job is over."""
    state = _state()
    if state.pending is not None:
        return True
    if state.finished:
        return False
    nxt = state.bridge.next_task()
    if nxt is None:
        state.finished = True
        return False
    state.pending = nxt
    return True


def receive() -> FLModel:
    """The data of the current task: the global model, with round numbers in it."""
    state = _state()
    if state.pending is None and not is_running():
        raise RuntimeError("receive(): the job is over, there is no task to receive")
    assert state.pending is not None
    model = state.pending[1]
    if model.params is None:
        return model
    if state.bridge.info.params_format == "pytorch":
        return _as_torch(model)
    # Read-only in every launch mode: in process the arrays are shared with other sites.
    model.params = readonly(model.params)
    return model


def _as_torch(model: FLModel) -> FLModel:
    import torch

    params: dict[str, Any] = {
        name: torch.from_numpy(np.array(array, copy=True))
        for name, array in (model.params or {}).items()
    }
    converted = FLModel(
        params=None,
        params_type=model.params_type,
        metrics=dict(model.metrics),
        meta=dict(model.meta),
        current_round=model.current_round,
        total_rounds=model.total_rounds,
    )
    converted.params = params
    return converted


def send(model: FLModel) -> None:
    """Return the result of the current task (params, metrics, meta such as num_samples)."""
    state = _state()
    if state.pending is None:
        raise RuntimeError("send(): there is no task to answer; call receive() first")
    if not isinstance(model, FLModel):
        raise TypeError(f"send() takes a fedra.FLModel, got {type(model).__name__}")
    if model.params is not None:
        # A view (a tensor's numpy view, a slice) would follow later changes of its owner:
        # copy it. Arrays that own their data are handed over as they are (no copy), so
        # the script must not change them after sending.
        model.params = {
            k: np.array(v, copy=True) if not v.flags.owndata or v.base is not None else v
            for k, v in ((k, as_array(v, k)) for k, v in model.params.items())
        }
    _warn_if_misplaced(state.bridge.info.site_name, state.pending[0], model)
    state.pending = None
    state.bridge.send_result(model)


def _warn_if_misplaced(site: str, task: str, model: FLModel) -> None:
    """Warn (once per script) of a result the server will read other than the script meant:
    ``num_samples`` in metrics (FedAvg weights by ``meta``), params on a validate task."""
    for key, warning in result_warnings(site, task, model).items():
        with _process_lock:
            if key in _warned:
                continue
            _warned.add(key)
        _logger.warning("%s", warning)


def log(key: str, value: float, step: int | None = None) -> None:
    """Stream a scalar metric to the server's TensorBoard files for this site."""
    if not isinstance(key, str) or not key:
        raise ValueError("log(): key must be a non-empty string")
    item = getattr(value, "item", None)  # numpy scalars, one-element tensors
    number = item() if callable(item) else value
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise TypeError(f"log(): value of '{key}' must be a number, got {type(value).__name__}")
    _state().bridge.send_log(key, float(number), None if step is None else int(step))


def get_site_name() -> str:
    """This site's name, such as ``site-1``."""
    return _state().bridge.info.site_name


def get_site_index() -> int:
    """This site's 0-based index among the job's sites (to pick a data partition)."""
    return _state().bridge.info.site_index


def get_num_sites() -> int:
    """How many sites the job runs on."""
    return _state().bridge.info.num_sites


def get_job_id() -> str:
    """The id of the running job."""
    return _state().bridge.info.job_id


def get_task_name() -> str:
    """The name of the current task: ``train``, ``validate`` or ``submit_model``."""
    state = _state()
    if state.pending is None:
        raise RuntimeError("get_task_name(): no current task; call is_running() first")
    return state.pending[0]


def is_train() -> bool:
    """Whether the current task asks for training."""
    return get_task_name() == TASK_TRAIN


def is_evaluate() -> bool:
    """Whether the current task asks to evaluate the received model."""
    return get_task_name() == TASK_VALIDATE


def is_submit_model() -> bool:
    """Whether the current task asks for this site's local model."""
    return get_task_name() == TASK_SUBMIT_MODEL


class SummaryWriter:
    """A small TensorBoard-style writer whose scalars go through :func:`log`."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> None:
        """Record one scalar."""
        log(tag, scalar_value, global_step)

    def add_scalars(
        self, main_tag: str, values: dict[str, float], global_step: int | None = None
    ) -> None:
        """Record several scalars under ``main_tag/``."""
        for tag, value in values.items():
            log(f"{main_tag}/{tag}", value, global_step)

    def flush(self) -> None:
        """Nothing to flush: every value is sent at once."""

    def close(self) -> None:
        """Nothing to close."""
