"""The server side of a job: task dispatch, the workflow runner, run files and tracking."""

from fedra.server.persistor import ModelPersistor
from fedra.server.runner import EventLog, RoundRecord, RunOutcome, ServerRun
from fedra.server.store import RunStore, load_npz, write_json
from fedra.server.taskboard import TaskBoard, Verdict
from fedra.server.tracking import MetricsSink

__all__ = [
    "EventLog",
    "MetricsSink",
    "ModelPersistor",
    "RoundRecord",
    "RunOutcome",
    "RunStore",
    "ServerRun",
    "TaskBoard",
    "Verdict",
    "load_npz",
    "write_json",
]
