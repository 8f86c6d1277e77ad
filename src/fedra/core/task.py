"""Tasks the server sends to sites, and the results sites send back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fedra.core.model import NUM_SAMPLES, FLModel

#: Standard task names. Executors declare which of them they handle.
TASK_TRAIN = "train"
TASK_VALIDATE = "validate"
TASK_SUBMIT_MODEL = "submit_model"


def new_id() -> str:
    """A fresh random identifier."""
    return uuid.uuid4().hex


@dataclass
class Task:
    """One unit of work for one site."""

    name: str
    data: FLModel
    site: str
    id: str = field(default_factory=new_id)
    job_id: str = ""
    timeout: float | None = None


@dataclass
class TaskResult:
    """A site's answer to a task: a model, or an error with the site's traceback."""

    task_id: str
    task_name: str
    site: str
    data: FLModel | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the site completed the task."""
        return self.error is None


def result_warnings(site: str, task: str, result: FLModel) -> dict[tuple[str, str], str]:
    """What in a site's ``result`` of ``task`` the server reads other than its script likely
    meant, by (site, kind): ``num_samples`` in ``metrics`` (updates are weighted by
    ``meta['num_samples']``, so the site counts as 1 sample), params on a ``validate`` task
    (its params are not used)."""
    found: dict[tuple[str, str], str] = {}
    if NUM_SAMPLES in result.metrics and NUM_SAMPLES not in result.meta:
        found[(site, "num_samples")] = (
            f"{site}: num_samples is in the result's metrics, not its meta: updates are "
            f"weighted by meta['{NUM_SAMPLES}'], so this site's counts as 1 sample; send "
            f"FLModel(..., meta={{'{NUM_SAMPLES}': n}})"
        )
    if task == TASK_VALIDATE and result.params is not None:
        found[(site, "validate_params")] = (
            f"{site}: the result of a 'validate' task has params; they are not used (a "
            "validate task returns metrics only: send FLModel(metrics={...}))"
        )
    return found
