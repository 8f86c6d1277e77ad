"""ModelPersistor: where a job's initial global model comes from.

The initial model is read from an ``.npz`` file in the app's ``custom/`` folder, or built by
instantiating a ``torch.nn.Module`` class from ``custom/`` and taking its ``state_dict``.
Without either, the first round goes out without params and sites start from their own
initialisation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedra.core import ConfigError, FLModel, as_array

ClassLoader = Callable[[str], Any]


class ModelPersistor:
    """Provides the initial model and the metric that picks the best one."""

    def __init__(
        self,
        initial_npz: str | None = None,
        torch_module: str | None = None,
        key_metric: str = "accuracy",
        higher_is_better: bool = True,
        seed: int = 0,
    ) -> None:
        if initial_npz and torch_module:
            raise ValueError("give either initial_npz or torch_module, not both")
        self.initial_npz = initial_npz
        self.torch_module = torch_module
        self.key_metric = key_metric
        self.higher_is_better = higher_is_better
        self.seed = seed

    def check_app(self, custom_dir: Path | None) -> None:
        """Refuse a job whose initial model file is missing, or would expand to more than a
        job may unpack (checked from the file's headers, before it runs)."""
        if self.initial_npz:
            self._check_size(self._npz_path(custom_dir))

    def _check_size(self, path: Path) -> None:
        from fedra.core import WireError
        from fedra.core.safezip import MAX_JOB_BYTES
        from fedra.serverapp.runstore import npz_nbytes

        try:
            need = npz_nbytes(path)
        except WireError as exc:
            raise ConfigError(f"initial_npz '{self.initial_npz}': {exc}") from exc
        if need > MAX_JOB_BYTES:
            raise ConfigError(
                f"initial_npz '{self.initial_npz}': its arrays take {need} bytes once loaded, "
                f"more than a job may unpack ({MAX_JOB_BYTES})"
            )

    def _npz_path(self, custom_dir: Path | None) -> Path:
        assert self.initial_npz
        if custom_dir is None:
            raise ConfigError("initial_npz needs the app's custom/ folder")
        path = (custom_dir / self.initial_npz).resolve()
        if not path.is_relative_to(custom_dir.resolve()) or not path.is_file():
            raise ConfigError(f"initial_npz '{self.initial_npz}' not found in {custom_dir}")
        return path

    def initial_model(self, custom_dir: Path | None, load_class: ClassLoader) -> FLModel | None:
        """Build the initial global model, or None when none is configured."""
        if self.initial_npz:
            from fedra.serverapp.runstore import load_npz

            path = self._npz_path(custom_dir)
            self._check_size(path)
            return FLModel(params=load_npz(path))
        if self.torch_module:
            import torch

            cls = load_class(self.torch_module)
            torch.manual_seed(self.seed)  # the same initial model on every run
            module = cls()
            state = module.state_dict()
            return FLModel(params={k: as_array(v, k).copy() for k, v in state.items()})
        return None
