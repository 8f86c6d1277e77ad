"""SCAFFOLD on the site (Karimireddy et al., ICML 2020): the site control variate ``c_i``.

A training task of the :class:`~fedra.workflows.Scaffold` workflow carries the global model
``x`` and the server control variate ``c`` (params prefixed with the string in
``meta["scaffold_control_prefix"]``). :class:`ScaffoldHelper` splits them, corrects the local
gradients by ``c - c_i``, and after local training computes option II of the paper::

    c_i_new = c_i - c + (x - y_i) / (K * lr)

(``y_i`` the trained model, ``K`` local SGD steps of learning rate ``lr``) and the result:
the diff ``y_i - x`` plus ``c_i_new - c_i`` under the prefixed names. ``c_i`` lives in the
helper (the script keeps one helper for the whole job) and, given ``state_file``, in a
site-local ``.npz`` file that survives a restart of the script.

Usage with numpy (``grad`` a dict of gradients by param name)::

    helper = ScaffoldHelper()
    model = helper.receive(flare.receive())     # control variates removed from the params
    for step in range(K):
        grad = ...
        for k, corr in helper.correction.items():
            grad[k] += corr
        w = {k: w[k] - lr * grad[k] for k in w}
    flare.send(helper.result(w, steps=K, lr=lr, meta={"num_samples": n}))

With PyTorch, call ``helper.correct_gradients(net)`` between ``loss.backward()`` and
``optimizer.step()`` (plain SGD: option II assumes it). torch is imported only then.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedra.core import Array, FLModel, MetricValue, Params, ParamsType, as_array

if TYPE_CHECKING:
    import torch

#: Meta key of a SCAFFOLD training task (the value is the control-variate prefix); the same
#: string as ``fedra.workflows.SCAFFOLD_META``.
SCAFFOLD_META = "scaffold_control_prefix"


class ScaffoldHelper:
    """The site half of SCAFFOLD: keeps ``c_i``, corrects gradients, builds the result.

    ``state_file``: an ``.npz`` path where ``c_i`` is saved after each round and loaded from
    at construction (one file per site and run; without it ``c_i`` lives only as long as
    the helper). A task without control variates (validation, or a non-SCAFFOLD workflow)
    passes through :meth:`receive` unchanged and leaves :attr:`active` False.
    """

    def __init__(self, state_file: str | Path | None = None) -> None:
        self.state_file = None if state_file is None else Path(state_file)
        self._ci: Params = {}
        if self.state_file is not None and self.state_file.exists():
            with np.load(self.state_file, allow_pickle=False) as data:
                self._ci = {name: np.array(data[name]) for name in data.files}
        self._prefix: str | None = None
        self._x: Params = {}
        self._c: Params = {}
        self._correction: Params = {}
        self._torch_correction: dict[str, torch.Tensor] = {}

    @property
    def active(self) -> bool:
        """Whether the last task received was a SCAFFOLD training task."""
        return self._prefix is not None

    @property
    def site_control(self) -> Params:
        """``c_i`` by param name (read-only views)."""
        return {k: _readonly(a) for k, a in self._ci.items()}

    @property
    def correction(self) -> Params:
        """``c - c_i`` by param name for the current task, in the params' dtypes (read-only).

        Add it to each step's gradient. Empty when the task is not a SCAFFOLD one.
        """
        return self._correction

    def receive(self, model: FLModel) -> FLModel:
        """``model`` without the control variates (load its params into the network).

        Remembers ``x`` and ``c`` for :meth:`result`. Params may be numpy arrays or torch
        tensors (``params_format: pytorch``); the returned params are of the same kind.
        """
        prefix = model.meta.get(SCAFFOLD_META)
        self._torch_correction = {}
        if prefix is None or model.params is None:
            self._prefix, self._x, self._c, self._correction = None, {}, {}, {}
            return model
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"meta['{SCAFFOLD_META}'] must be a non-empty string, got {prefix!r}")
        raw = model.params  # numpy arrays, or torch tensors with params_format: pytorch
        own = {k: v for k, v in raw.items() if not k.startswith(prefix)}
        x = {k: np.array(as_array(v, k), copy=True) for k, v in own.items()}
        c = {
            k[len(prefix) :]: np.array(as_array(v, k), copy=True)
            for k, v in raw.items()
            if k.startswith(prefix)
        }
        for name, cv in c.items():
            if name not in x:
                raise ValueError(f"control variate '{name}' names no param of the model")
            if cv.shape != x[name].shape:
                raise ValueError(
                    f"control variate '{name}' has shape {cv.shape}, the param {x[name].shape}"
                )
            ci = self._ci.get(name)
            if ci is not None and ci.shape != cv.shape:
                raise ValueError(
                    f"site control variate '{name}' has shape {ci.shape}, the task {cv.shape}: "
                    "a state file from another model?"
                )
            if ci is None:
                self._ci[name] = np.zeros_like(cv)
        self._prefix, self._x, self._c = prefix, x, c
        self._correction = {
            k: _readonly((cv.astype(np.float64) - self._ci[k]).astype(cv.dtype))
            for k, cv in c.items()
        }
        stripped = FLModel(
            params=None,
            params_type=model.params_type,
            metrics=dict(model.metrics),
            meta=dict(model.meta),
            current_round=model.current_round,
            total_rounds=model.total_rounds,
        )
        stripped.params = own  # as received: arrays or tensors
        return stripped

    def correct_gradients(self, net: torch.nn.Module) -> None:
        """Add ``c - c_i`` to the ``.grad`` of every parameter of ``net`` that has one.

        Call after ``loss.backward()`` and before ``optimizer.step()``. Does nothing when the
        task is not a SCAFFOLD one.
        """
        if not self._correction:
            return
        import torch

        for name, p in net.named_parameters():
            corr = self._correction.get(name)
            if p.grad is None or corr is None:
                continue
            tensor = self._torch_correction.get(name)
            if tensor is None or tensor.device != p.grad.device:
                tensor = torch.from_numpy(np.array(corr, copy=True)).to(
                    device=p.grad.device, dtype=p.grad.dtype
                )
                self._torch_correction[name] = tensor
            p.grad.add_(tensor)

    def result(
        self,
        params: Mapping[str, Any],
        steps: int,
        lr: float,
        metrics: Mapping[str, MetricValue] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> FLModel:
        """The answer to the SCAFFOLD task: ``y - x`` and ``c_i_new - c_i``; updates ``c_i``.

        ``params``: the trained model ``y`` (arrays or tensors, every param of ``x``);
        ``steps``: the number of local SGD steps ``K``; ``lr``: their learning rate.
        """
        if self._prefix is None:
            raise RuntimeError("result(): the last task received was not a SCAFFOLD training task")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        missing = sorted(set(self._x) - set(params))
        if missing:
            raise KeyError(f"params lack {missing[:5]} of the model received")
        out: Params = {}
        y64: dict[str, Array] = {}
        for name, x in self._x.items():
            y = as_array(params[name], name)
            if y.shape != x.shape:
                raise ValueError(f"param '{name}' has shape {y.shape}, received {x.shape}")
            if np.issubdtype(x.dtype, np.floating):
                y64[name] = y.astype(np.float64)
                out[name] = (y64[name] - x.astype(np.float64)).astype(x.dtype)
            else:
                out[name] = (y.astype(x.dtype) - x).astype(x.dtype)
        new_ci: Params = {}
        scale = 1.0 / (steps * float(lr))
        for name, c in self._c.items():
            ci = self._ci[name].astype(np.float64)
            x64 = self._x[name].astype(np.float64)
            updated = ci - c.astype(np.float64) + (x64 - y64[name]) * scale
            new_ci[name] = updated.astype(c.dtype)
            out[self._prefix + name] = (updated - ci).astype(c.dtype)
        self._ci.update(new_ci)
        self._save()
        self._prefix, self._x, self._c, self._correction = None, {}, {}, {}
        self._torch_correction = {}
        return FLModel(
            params=out,
            params_type=ParamsType.DIFF,
            metrics=dict(metrics or {}),
            meta=dict(meta or {}),
        )

    def _save(self) -> None:
        """Write ``c_i`` to ``state_file`` atomically (a temporary file renamed into place)."""
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, suffix=".tmp")
        try:
            with (
                os.fdopen(fd, "wb") as handle,
                zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive,
            ):
                for name, array in self._ci.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _readonly(array: Array) -> Array:
    view = array.view()
    view.flags.writeable = False
    return view
