"""Message kinds between the processes of a federation, and small helpers.

::

    site parent (CP) <-- gRPC/mTLS --> server parent (SP) <-- unix socket --> server job (SJ)
          |                                                      one SJ per running job
          +-- unix socket --> site job (CJ), one per running job

Every message is a :class:`fedra.wire.Envelope`; the header keys used by each kind are
listed next to it. Bytes (job zips) travel as a uint8 array named ``zip``.
"""

from __future__ import annotations

import numpy as np

from fedra.core import FLModel

# site -> server
HELLO = "hello"  # {}
HEARTBEAT = "heartbeat"  # {"jobs": [job ids running here]}
RESULT = "result"  # {"job_id", "task_id", "task_name", "site", "error"} + model
LOG = "log"  # {"job_id", "site", "key", "value", "step"}
JOB_STATE = "job_state"  # {"job_id", "state": started|failed|ended, "detail"}
REPLY = "reply"  # {"id", "ok", "data", "error", "hint"} (+ zip)
SESSION = "session"  # {"ssid"}: the site leaves for this newer service session (HA)
MAY_UPLOAD = "may_upload"  # {"id", "job_id"}: a big result is ready, sent after UPLOAD_OK

# server -> site
WELCOME = "welcome"  # {"server": name}
START_JOB = "start_job"  # {"job_id", "sites": [...]} + zip of the job folder
TASK = "task"  # {"job_id", "task_id", "task_name", "site"} + model
ABORT_JOB = "abort_job"  # {"job_id", "reason"}
END_JOB = "end_job"  # {"job_id"}
REQUEST = "request"  # {"id", "cmd", "args"}: sys_info, tail, cat, shutdown, restart
UPLOAD_OK = "upload_ok"  # {"id"}: send that result now (a RESULT with {"grant": id})
RESULT_REFUSED = "result_refused"  # {"job_id", "task_id", "error"}: a result was refused

# server parent <-> server job
READY = "ready"  # {"job_id"}
ROUND = "round"  # {"workflow", "round", "metrics", "seconds"}
DONE = "done"  # {"status", "error", "failed_site", "failed_task", "traceback"}
SITES = "sites"  # {"sites": [connected sites of the job]}
GO = "go"  # {}: the sites have been told to start the job; the workflow may begin
ABORT = "abort"  # {"reason"}
STOP = "stop"  # {}

# admin
ADMIN = "admin"  # {"id", "cmd", "args"} (+ zip)

#: A site asks (MAY_UPLOAD) before sending a result with more model bytes than this: the
#: server lets one big result of a job come in at a time, and a site that waits its turn
#: then holds nothing in the server (not even a stream's receive window).
UPLOAD_ASK_BYTES = 1 << 20

#: Exit code of a parent process asking its start script to start it again.
RESTART_EXIT_CODE = 75


def zip_model(data: bytes) -> FLModel:
    """Bytes as a model with one uint8 array (how archives travel)."""
    return FLModel(params={"zip": np.frombuffer(data, dtype=np.uint8)})


def model_zip(model: FLModel | None) -> bytes | None:
    """The bytes carried by :func:`zip_model`, or None."""
    if model is None or model.params is None or "zip" not in model.params:
        return None
    array = model.params["zip"]
    if array.dtype != np.uint8 or array.ndim != 1:
        return None
    return array.tobytes()
