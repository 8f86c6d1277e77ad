"""Federation benchmark persistor: the initial model is built by the server job, not shipped.

A job may hold at most ``fedra.job.archive.MAX_JOB_BYTES`` (1 GiB) unpacked, so a model
above that cannot travel in the job as an ``.npz``. :class:`ZerosPersistor` instead builds
float32 zeros of a layout given as an argument (``{"layer0": [625000000], ...}``) in the
server job process. ``np.zeros`` takes fresh pages from the kernel that are not touched until
used, so building even a 4 GB model costs no memory until the model is read.

Used as ``{"custom": "zeros_persistor.ZerosPersistor", "args": {"layout": {...}}}`` in the
server config, with this file in the app's ``custom/`` folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedra import FLModel
from fedra.serverapp.persistor import ModelPersistor


def check_layout(layout: object) -> dict[str, tuple[int, ...]]:
    """``{name: [dim, ...]}`` as ``{name: shape}``; a ``ValueError`` names what is wrong."""
    if not isinstance(layout, Mapping) or not layout:
        raise ValueError(f"layout must be a non-empty object of name -> shape, not {layout!r}")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in layout.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"layout: array names must be non-empty strings, not {name!r}")
        if not isinstance(shape, Sequence) or isinstance(shape, str):
            raise ValueError(f"layout[{name!r}]: a shape is a list of integers, not {shape!r}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ValueError(f"layout[{name!r}]: dimensions must be integers >= 0, not {shape!r}")
        shapes[name] = tuple(shape)
    return shapes


class ZerosPersistor(ModelPersistor):
    """The initial model: float32 zeros of ``layout`` (array name -> shape), built in place."""

    def __init__(
        self,
        layout: dict[str, list[int]],
        key_metric: str = "accuracy",
        higher_is_better: bool = True,
    ) -> None:
        super().__init__(key_metric=key_metric, higher_is_better=higher_is_better)
        self.layout = check_layout(layout)

    def initial_model(
        self, custom_dir: Path | None, load_class: Callable[[str], Any]
    ) -> FLModel | None:
        """Zeros of the layout (untouched pages: no memory is used until they are read)."""
        return FLModel(
            params={name: np.zeros(shape, dtype=np.float32) for name, shape in self.layout.items()}
        )
