"""NVIDIA FLARE 2.9 server side of the workload: FLARE's ``FedAvg``, timed per round.

Copied into the job's ``custom/`` folder by FLARE's job API, so it is self-contained (numpy
and nvflare only). ``TimedFedAvg`` is FLARE's own ``FedAvg`` controller (streaming weighted
aggregation, one model saved per round) with three hooks:

* the initial model is made here (float32 zeros, ``arrays`` x ``count``, or one 3x3 array),
  not loaded by a persistor, so no model travels in the job;
* a round is timed from ``send_model`` (the broadcast) to the end of ``save_model`` (after
  aggregation and saving the global model with ``np.savez``), as Fedra and Flower are;
* at the end, the round times and a summary of the final model are written to ``out_path``
  as JSON for the driver script.

``init="pattern"`` starts from ``_common.py``'s pattern instead of zeros (the same values,
made here as this file travels alone) and summarises the final model less that pattern.
"""

from __future__ import annotations

import json
import time

import numpy as np
from nvflare.app_common.abstract.fl_model import FLModel
from nvflare.app_common.workflows.fedavg import FedAvg

SLICE = 1 << 20


def pattern(start, count):
    """``_common.pattern``: float32 in [0, 256), steps of 1/256, from a hash of the index."""
    index = np.arange(start, start + count, dtype=np.uint64)
    hashed = (index * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return (hashed >> np.uint64(16)).astype(np.float32) / np.float32(256)


class TimedFedAvg(FedAvg):
    """FLARE's FedAvg with the initial model made in place and each round timed."""

    def __init__(self, *args, arrays=1, count=9, out_path="", init="zeros", **kwargs):
        kwargs.setdefault("persistor_id", "")
        kwargs.setdefault("save_filename", "FL_global_model.npz")
        super().__init__(*args, **kwargs)
        self.arrays = arrays
        self.count = count
        self.out_path = out_path
        self.init = init
        self._round_started = 0.0
        self._round_s = []
        self._last = None

    def _offset(self, name):
        """Where array ``name`` starts in the pattern (``layer<i>``: i x count)."""
        return 0 if name == "weights" else int(name[len("layer") :]) * self.count

    def load_model(self):
        """Float32 zeros (or the pattern) of the configured shape."""
        if self.arrays == 1 and self.count == 9:
            shapes = {"weights": (3, 3)}
        else:
            shapes = {f"layer{i}": (self.count,) for i in range(self.arrays)}
        params = {}
        for name, shape in shapes.items():
            if self.init == "pattern":
                params[name] = pattern(self._offset(name), int(np.prod(shape))).reshape(shape)
            else:
                params[name] = np.zeros(shape, dtype=np.float32)
        return FLModel(params=params)

    def send_model(self, *args, **kwargs):
        """Start the round's clock, then broadcast."""
        self._round_started = time.perf_counter()
        return super().send_model(*args, **kwargs)

    def save_model_file(self, model, filepath):
        """Save the global model as .npz (Fedra saves .npz too)."""
        with open(filepath, "wb") as handle:
            np.savez(handle, **model.params)

    def save_model(self, model):
        """Save, then stop the round's clock."""
        super().save_model(model)
        self._round_s.append(time.perf_counter() - self._round_started)
        self._last = model

    def run(self):
        """FLARE's FedAvg rounds, then the figures for the driver."""
        super().run()
        final = {"min": float("inf"), "max": float("-inf"), "elements": 0, "arrays": 0}
        if self._last is not None:
            for name, value in self._last.params.items():
                array = np.asarray(value).reshape(-1)
                final["arrays"] += 1
                final["elements"] += int(array.size)
                for start in range(0, array.size, SLICE):
                    part = array[start : start + SLICE]
                    if self.init == "pattern":
                        part = part - pattern(self._offset(name) + start, part.size)
                    final["min"] = min(final["min"], float(part.min()))
                    final["max"] = max(final["max"], float(part.max()))
        if self.out_path:
            with open(self.out_path, "w", encoding="utf-8") as handle:
                json.dump({"round_s": self._round_s, "final": final}, handle)
