"""The explicit registry of built-in components a job config may name with ``"class"``.

Nothing else is ever looked up by name, except classes in the job's own ``custom/`` folder
(``"custom": "module.Class"``), and only where custom code is allowed.
"""

from __future__ import annotations

from typing import Any, Literal

from fedra.client import ScriptExecutor, SecAggScriptExecutor
from fedra.filters import FILTERS
from fedra.serverapp import ModelPersistor
from fedra.workflows import (
    CrossSiteEval,
    Cyclic,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedOpt,
    FedProx,
    FedYogi,
    Scaffold,
    SecAggFedAvg,
)

Kind = Literal["workflow", "executor", "persistor", "filter"]

BUILTINS: dict[Kind, dict[str, type[Any]]] = {
    "workflow": {
        "FedAvg": FedAvg,
        "FedOpt": FedOpt,
        "FedAvgM": FedAvgM,
        "FedAdam": FedAdam,
        "FedYogi": FedYogi,
        "FedAdagrad": FedAdagrad,
        "FedProx": FedProx,
        "Scaffold": Scaffold,
        "SecAggFedAvg": SecAggFedAvg,
        "CrossSiteEval": CrossSiteEval,
        "Cyclic": Cyclic,
    },
    "executor": {"ScriptExecutor": ScriptExecutor, "SecAggScriptExecutor": SecAggScriptExecutor},
    "persistor": {"ModelPersistor": ModelPersistor},
    "filter": dict(FILTERS),
}


def builtin(kind: Kind, name: str) -> type[Any] | None:
    """The built-in class called ``name`` of ``kind``, or None."""
    return BUILTINS[kind].get(name)


def names(kind: Kind) -> list[str]:
    """The built-in names of ``kind``, sorted."""
    return sorted(BUILTINS[kind])
