"""The server side of a job: task dispatch, the workflow runner, run files and tracking."""

from fedra.serverapp.persistor import ModelPersistor
from fedra.serverapp.runner import EventLog, RoundRecord, RunOutcome, ServerRun
from fedra.serverapp.runstore import RunStore, load_npz, write_json
from fedra.serverapp.taskboard import TaskBoard, Verdict
from fedra.serverapp.tracking import MetricsSink

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
