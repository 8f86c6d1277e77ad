"""The server job process (SJ): runs one job's workflows, talking only to its server parent.

Started by the server parent as ``python -m fedra.runtime.server_job``; every task goes out
and every result comes back through the parent over a Unix socket. With ``--resume`` the
workflows continue from the last snapshot in the job's workspace. When the parent goes away
the run is aborted and the process exits (the parent resumes it when it comes back).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fedra.core import FedraError, FLModel, MetricValue, Task, TaskResult, release_large_buffers
from fedra.filters import FilteredFleet
from fedra.job import (
    activate_custom_dirs,
    build_persistor,
    build_result_filters,
    build_workflows,
    load_custom_class,
    load_job,
)
from fedra.protocol import (
    TO_SERVER_JOB,
    Abort,
    BadMessage,
    Broadcast,
    Done,
    Go,
    Log,
    Ready,
    Result,
    Round,
    SiteFailed,
    SiteLost,
    Sites,
    Target,
    TaskLost,
    decode,
    encode,
)
from fedra.protocol import Task as TaskMessage
from fedra.runtime.procs import ROUTER_MMAP_THRESHOLD
from fedra.serverapp import EventLog, MetricsSink, RunStore, ServerRun, TaskBoard
from fedra.transport import ChannelClosed, LocalChannel, Spool, connect_unix

log = logging.getLogger("fedra.server_job")


class _Reporter:
    """Forwards finished rounds to the parent (for show_stats and progress in the log), with
    the sites whose results each round counted.

    Each with its place in the run's history (``recorded``: how many records the history
    holds, this round's included), so that the parent's record of a resumed job replaces
    the rounds run again instead of listing them twice.
    """

    def __init__(self, channel: LocalChannel, recorded: Callable[[], int]) -> None:
        self._channel = channel
        self._recorded = recorded
        self._started = time.monotonic()
        self._counted: list[str] = []

    def round_started(self, workflow: str, round_num: int, total_rounds: int, sites: int) -> None:
        del workflow, round_num, total_rounds, sites
        self._started = time.monotonic()
        self._counted = []

    def result_received(self, workflow: str, round_num: int, site: str) -> None:
        del workflow, round_num
        self._counted.append(site)

    def round_finished(
        self, workflow: str, round_num: int, metrics: Mapping[str, MetricValue]
    ) -> None:
        seconds = round(time.monotonic() - self._started, 4)
        index = max(self._recorded() - 1, 0)
        message = Round(
            workflow, round_num, dict(metrics), seconds, index=index, sites=tuple(self._counted)
        )
        self._counted = []
        self._channel.send(encode(message))


def _read(
    channel: LocalChannel,
    board: TaskBoard,
    tracking: MetricsSink,
    go: threading.Event,
    slot: threading.Semaphore,
    parent_gone: threading.Event,
) -> None:
    """Route what the parent sends: results, metrics, site changes, abort.

    Back-pressure: a result is read only once the workflow has consumed the previous one
    (``slot``), so at most one site result is in this process at a time; the rest wait in
    the transport, whose flow control holds them back at the sites. A malformed message is
    logged and skipped: it never ends this reader (the job would wait for ever).
    """
    try:
        while True:
            slot.acquire()
            env = channel.recv()
            held = aborted = False
            try:
                message = decode(env, TO_SERVER_JOB)
                aborted = isinstance(message, Abort)
                held = _route(message, env.model, board, tracking, go)
            except BadMessage as exc:
                log.warning(
                    "refused a malformed %r message from the parent: %s", env.kind[:40], exc
                )
            except Exception:  # one message must not end the reader: the job would hang
                log.exception("could not handle a %r message from the parent", env.kind)
            if not held:
                slot.release()
            if aborted:
                return
            del env  # hold nothing while waiting for the next message
    except (ChannelClosed, FedraError, OSError) as exc:
        board.abort(f"the server parent went away ({exc})")
        go.set()
    finally:
        parent_gone.set()


def _route(
    message: object,
    model: FLModel | None,
    board: TaskBoard,
    tracking: MetricsSink,
    go: threading.Event,
) -> bool:
    """Act on one message from the parent; True when an accepted result now holds the slot."""
    match message:
        case Result():
            result = TaskResult(
                task_id=message.task_id,
                task_name=message.task_name,
                site=message.site,
                data=model if message.error is None else None,
                error=message.error,
            )
            verdict = board.submit(result)
            del result
            if not verdict.accepted:
                log.info("result refused: %s", verdict.reason)
            return verdict.accepted
        case Log(site=site, key=key, value=value, step=step):
            tracking.add(site, key, value, step)
        case SiteFailed(site=site, detail=detail):
            board.fail_site(site, detail)
        case Go():
            go.set()
        case Sites(sites=sites):
            board.set_sites(list(sites))
        case TaskLost(task_id=task_id):
            board.cancel_task(task_id)
        case SiteLost(site=site):
            count = board.cancel_site(site)
            log.info("site %s left: %d outstanding tasks given up", site, count)
        case Abort(reason=reason):
            board.abort(reason)
            go.set()
    return False


def run(args: argparse.Namespace) -> int:
    """Run the job; report its outcome to the parent; return the process exit code."""
    # Big results arrive as read-only files the parent received them into.
    channel = connect_unix(args.socket, timeout=30.0, accept_files="read")
    job = load_job(Path(args.job_dir))
    app = job.server_app
    activate_custom_dirs(app.custom_dir)  # the server app's code only (what BYOC checked)
    workspace = Path(args.workspace)
    persistor = build_persistor(app)
    workflows = build_workflows(app)
    server_filters = build_result_filters(app)

    def deliver(task: Task) -> None:
        message = TaskMessage(args.job_id, task.id, task.name, task.site)
        channel.send(encode(message, task.data))

    sites = [s for s in args.sites.split(",") if s]

    def deliver_many(tasks: list[Task]) -> None:
        # One message for a broadcast: the parent fans the model out to the sites.
        targets = tuple(Target(t.site, t.id) for t in tasks)
        message = Broadcast(args.job_id, tasks[0].name, targets)
        channel.send(encode(message, tasks[0].data))

    slot = threading.Semaphore(1)
    board = TaskBoard(
        sites,
        deliver,
        job_id=args.job_id,
        consumed=lambda _r: slot.release(),
        deliver_many=deliver_many,
        check_results=True,  # at latest here, before a workflow sees a result
    )
    tracking = MetricsSink(workspace / "tb_events")
    go = threading.Event()
    parent_gone = threading.Event()
    reader = threading.Thread(
        target=_read, args=(channel, board, tracking, go, slot, parent_gone), daemon=True
    )
    reader.start()

    def load_class(name: str) -> object:
        return load_custom_class(app.custom_dir, name)

    events = EventLog()
    events.display = _Reporter(channel, lambda: len(events.rounds))
    server_run = ServerRun(
        workflows,
        FilteredFleet(board, server_filters) if server_filters else board,
        RunStore(workspace),
        events,
        # Not kept in a local: the workflow owns the initial model and drops it after round 1.
        initial=None if args.resume else persistor.initial_model(app.custom_dir, load_class),
        key_metric=persistor.key_metric,
        higher_is_better=persistor.higher_is_better,
        startup_dir=Path(args.kit) / "startup" if args.kit else None,
        # The global model waits on disk while a round's results come in.
        park=Spool(workspace / "spool").park,
    )
    channel.send(encode(Ready(args.job_id)))
    go.wait()  # the parent has told the sites to start the job (or the run was aborted)
    outcome = server_run.run(resume=args.resume)
    tracking.close()
    done = Done(
        outcome.status.value,
        outcome.error,
        outcome.failed_site,
        outcome.failed_task,
        outcome.site_traceback,
    )
    try:
        channel.send(encode(done))
    except (ChannelClosed, OSError):
        return 1
    # Let the parent read DONE and end us first: closing a socket that still has unread
    # incoming data resets the connection, and the parent could lose DONE with it.
    parent_gone.wait(30.0)
    channel.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fedra.runtime.server_job``."""
    parser = argparse.ArgumentParser(description="Fedra server job process (started by the server)")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--job-dir", required=True, help="the extracted job folder")
    parser.add_argument("--workspace", required=True, help="where the run's outputs go")
    parser.add_argument("--socket", required=True, help="the server parent's Unix socket")
    parser.add_argument("--sites", required=True, help="comma-separated sites of the job")
    parser.add_argument("--resume", action="store_true", help="continue from the last snapshot")
    parser.add_argument("--kit", default="", help="the server's kit (for keys in startup/)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    release_large_buffers(ROUTER_MMAP_THRESHOLD)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
