"""Fedra: federated learning from a laptop simulation to a secure production federation.

The names most users need are here: :class:`FLModel`, :class:`ParamsType`,
:func:`simulate` and :class:`FedJob`. Training scripts use ``fedra.client``.
"""

from typing import TYPE_CHECKING, Any

from fedra.core import FLModel, ParamsType

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fedra.job import FedJob
    from fedra.simulator import simulate

__all__ = ["FLModel", "FedJob", "ParamsType", "__version__", "simulate"]


def __getattr__(name: str) -> Any:
    # Lazy: a training script importing fedra.client should not load the simulator.
    if name == "simulate":
        from fedra.simulator import simulate

        return simulate
    if name == "FedJob":
        from fedra.job import FedJob

        return FedJob
    raise AttributeError(f"module 'fedra' has no attribute {name!r}")
