"""FLModel: what travels between the server workflow and a site's training code.

Params are named numpy arrays (never arbitrary objects), either the full model or a diff
against the model the site received. Metrics are plain numbers or strings; meta holds
JSON-compatible values such as ``num_samples``, the weight a site's update gets in FedAvg.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

Array: TypeAlias = npt.NDArray[Any]
Params: TypeAlias = dict[str, Array]
MetricValue: TypeAlias = float | int | str
JSONValue: TypeAlias = Any  # a value json.dumps accepts: dict, list, str, int, float, bool, None

#: meta key a site sets to weight its update by the number of samples it trained on.
NUM_SAMPLES = "num_samples"


class ParamsType(enum.StrEnum):
    """Whether params hold the whole model or the difference to the model received."""

    FULL = "full"
    DIFF = "diff"


@dataclass
class FLModel:
    """A model (or a model update) with its metrics and meta data."""

    params: Params | None = None
    params_type: ParamsType = ParamsType.FULL
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    meta: dict[str, JSONValue] = field(default_factory=dict)
    current_round: int | None = None
    total_rounds: int | None = None

    def __post_init__(self) -> None:
        self.params_type = ParamsType(self.params_type)
        if self.params is not None:
            if not isinstance(self.params, Mapping):
                raise TypeError("FLModel.params must be a mapping of names to arrays")
            self.params = {str(k): as_array(v, str(k)) for k, v in self.params.items()}

    @property
    def num_samples(self) -> float:
        """The weight of this update: ``meta['num_samples']``, or 1 when absent."""
        value = self.meta.get(NUM_SAMPLES, 1)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"meta['{NUM_SAMPLES}'] must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"meta['{NUM_SAMPLES}'] must be finite and >= 0, got {value!r}")
        return float(value)

    def nbytes(self) -> int:
        """Total size of the params in bytes."""
        return sum(a.nbytes for a in (self.params or {}).values())


def as_array(value: object, name: str = "value") -> Array:
    """Convert a numpy array, a torch tensor or a number to a numpy array.

    Torch tensors are detected by duck typing so that core never imports torch.
    """
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if callable(detach):
        tensor = detach()
        tensor = tensor.cpu() if hasattr(tensor, "cpu") else tensor
        return np.asarray(tensor.numpy())
    if isinstance(value, int | float | bool | np.generic):
        return np.asarray(value)
    if isinstance(value, list | tuple):
        return np.asarray(value)
    raise TypeError(f"param '{name}': expected an array or tensor, got {type(value).__name__}")


def readonly(params: Params) -> Params:
    """Read-only views of ``params``: shared with many sites, changed by none."""
    views: Params = {}
    for name, array in params.items():
        view = array.view()
        view.flags.writeable = False
        views[name] = view
    return views
