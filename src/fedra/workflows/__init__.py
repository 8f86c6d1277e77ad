"""Server-side workflows, written against the Fleet protocol (pure: no sockets, no files)."""

from fedra.workflows.cross_site import CrossSiteEval
from fedra.workflows.cyclic import Cyclic
from fedra.workflows.fedavg import FedAvg
from fedra.workflows.fedopt import FedAdagrad, FedAdam, FedAvgM, FedOpt, FedYogi

__all__ = [
    "CrossSiteEval",
    "Cyclic",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedYogi",
]
