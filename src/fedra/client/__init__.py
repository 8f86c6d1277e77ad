"""The site side: the Client API for training scripts, executors and the site runner.

Training scripts use the module-level functions::

    import fedra.client as flare
    flare.init(); flare.is_running(); flare.receive(); flare.send(model); flare.log(k, v, step)
"""

from fedra.client.api import (
    SummaryWriter,
    get_job_id,
    get_num_sites,
    get_site_index,
    get_site_name,
    get_task_name,
    init,
    is_evaluate,
    is_running,
    is_submit_model,
    is_train,
    log,
    receive,
    send,
)
from fedra.client.executor import Executor, SiteContext, SiteRunner
from fedra.client.fedprox import proximal_term, received_mu
from fedra.client.scaffold import ScaffoldHelper
from fedra.client.script import ScriptExecutor
from fedra.client.secagg import SecAggClient, SecAggScriptExecutor

__all__ = [
    "Executor",
    "ScaffoldHelper",
    "ScriptExecutor",
    "SecAggClient",
    "SecAggScriptExecutor",
    "SiteContext",
    "SiteRunner",
    "SummaryWriter",
    "get_job_id",
    "get_num_sites",
    "get_site_index",
    "get_site_name",
    "get_task_name",
    "init",
    "is_evaluate",
    "is_running",
    "is_submit_model",
    "is_train",
    "log",
    "proximal_term",
    "receive",
    "received_mu",
    "send",
]
