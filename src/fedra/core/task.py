"""Tasks the server sends to sites, and the results sites send back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fedra.core.model import FLModel

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
