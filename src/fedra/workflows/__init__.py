"""Server-side workflows, written against the Fleet protocol (pure: no sockets, no files)."""

from fedra.workflows.cross_site import CrossSiteEval
from fedra.workflows.cyclic import Cyclic
from fedra.workflows.fedavg import FedAvg

__all__ = ["CrossSiteEval", "Cyclic", "FedAvg"]
