"""What a site's result may be, from the task it answers: checked on the result's header.

A result answers one task. From the task's model the server knows what may come back:

* **plain training tasks** (the task carries params that are not encrypted and is no step of
  a secure-aggregation protocol): every param of the result is named like a param of the
  task, has that param's shape, and a numeric dtype of at most ``max(8, the task's itemsize)``
  bytes per element (a float32 model may come back as float32, float64, or quantized as
  float16/uint8). Params may be left out (a site's filter may drop some).
* **encrypted results** (the two arrays of :mod:`fedra.he`) and **protocol steps**
  (secure aggregation, tasks without params): only their size is bounded.

Every result is bounded in size: at most :data:`EXPANSION` times the task's params (CKKS
ciphertexts are about 20 times a float32 model), and never less than
:data:`MIN_RESULT_BYTES`. The check needs only what a frame's header declares (names,
dtypes, shapes, sizes), so the server parent runs it before a big result's body is received,
and the server job runs it again on every result before the workflow sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from fedra.core import FLModel
from fedra.he.codec import CIPHERTEXT, LAYOUT
from fedra.wire import ALLOWED_DTYPES, TensorHead

#: A result may be this many times the size of its task's params (encrypted results).
EXPANSION = 32
#: The size bound of a result is never below this (tasks with small or no params).
MIN_RESULT_BYTES = 256 << 20
#: Meta key of a secure-aggregation protocol step (see fedra.secagg.messages.META).
SECAGG_META = "secagg"
#: The param names of an encrypted model.
ENCRYPTED_NAMES = frozenset({CIPHERTEXT, LAYOUT})


@dataclass(frozen=True)
class ParamSpec:
    """One param of a task's model: its dtype name and shape."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Expectation:
    """What a result of one task may be (see the module's docstring)."""

    #: The task's params by name when results must match them (plain training tasks).
    params: Mapping[str, ParamSpec] | None
    #: The largest size (bytes of params) a result may declare.
    max_bytes: int

    @classmethod
    def of_task(cls, model: FLModel | None) -> Expectation:
        """The expectation for the results of a task that carries ``model``."""
        params = model.params if model is not None else None
        if not params:
            return cls(None, MIN_RESULT_BYTES)
        size = sum(int(a.nbytes) for a in params.values())
        bound = max(MIN_RESULT_BYTES, EXPANSION * size)
        protocol = model is not None and SECAGG_META in model.meta
        if protocol or params.keys() >= ENCRYPTED_NAMES:
            return cls(None, bound)
        specs = {name: ParamSpec(a.dtype.name, tuple(a.shape)) for name, a in params.items()}
        return cls(specs, bound)

    def check(self, tensors: Iterable[TensorHead] | None) -> str | None:
        """Why a result declaring ``tensors`` (None: no params) is refused, or None."""
        if tensors is None:
            return None
        declared = list(tensors)
        total = sum(t.nbytes for t in declared)
        if total > self.max_bytes:
            return f"its params are {total} bytes, at most {self.max_bytes} for this task"
        if self.params is None or {t.name for t in declared} == ENCRYPTED_NAMES:
            return None
        for tensor in declared:
            why = _mismatch(tensor, self.params.get(tensor.name))
            if why is not None:
                return f"param '{tensor.name[:100]}' {why}"
        return None

    def check_model(self, model: FLModel | None) -> str | None:
        """:meth:`check` on a decoded result."""
        return self.check(heads_of(model))


def _mismatch(tensor: TensorHead, spec: ParamSpec | None) -> str | None:
    if spec is None:
        return "is not a param of the task's model"
    if tensor.shape != spec.shape:
        return f"has shape {tensor.shape[:8]}, the task's model has {spec.shape}"
    dtype = ALLOWED_DTYPES.get(tensor.dtype)
    if dtype is None:
        return f"has dtype {tensor.dtype[:20]!r}, which cannot travel"
    allowed = max(8, np.dtype(spec.dtype).itemsize)
    if dtype.itemsize > allowed:
        return f"has dtype {tensor.dtype}, wider than the task's {spec.dtype}"
    return None


def heads_of(model: FLModel | None) -> tuple[TensorHead, ...] | None:
    """The tensors of a decoded model as a header declares them (None: no params)."""
    if model is None or model.params is None:
        return None
    return tuple(
        TensorHead(name, a.dtype.name, tuple(a.shape), int(a.nbytes))
        for name, a in model.params.items()
    )
