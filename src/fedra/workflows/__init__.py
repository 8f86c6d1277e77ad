"""Server-side workflows, written against the Fleet protocol (pure: no sockets, no files)."""

from fedra.workflows.cross_site import CrossSiteEval
from fedra.workflows.cyclic import Cyclic
from fedra.workflows.fedavg import FedAvg
from fedra.workflows.fedopt import FedAdagrad, FedAdam, FedAvgM, FedOpt, FedYogi
from fedra.workflows.fedprox import FEDPROX_MU, FedProx
from fedra.workflows.scaffold import CONTROL_PREFIX, SCAFFOLD_META, Scaffold
from fedra.workflows.secagg import SecAggFedAvg

__all__ = [
    "CONTROL_PREFIX",
    "FEDPROX_MU",
    "SCAFFOLD_META",
    "CrossSiteEval",
    "Cyclic",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedProx",
    "FedYogi",
    "Scaffold",
    "SecAggFedAvg",
]
