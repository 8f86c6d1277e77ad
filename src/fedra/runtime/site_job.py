"""The site job process (CJ): runs one job's executors on one site.

Started by the site parent as ``python -m fedra.runtime.site_job``; tasks arrive and results
leave through the parent over a Unix socket. User scripts it launches stay in its process
group, so ending the group (abort) ends them too.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fedra.client import SiteContext, SiteRunner
from fedra.core import FedraError, FLModel, release_large_buffers
from fedra.core import Task as CoreTask
from fedra.job import App, activate_custom_dirs, build_executors, build_filters, load_job
from fedra.protocol import (
    TO_SITE_JOB,
    BadMessage,
    JobState,
    Log,
    Ready,
    Result,
    Stop,
    Task,
    decode,
    encode,
)
from fedra.runtime.procs import ROUTER_MMAP_THRESHOLD
from fedra.transport import ChannelClosed, LocalChannel, connect_unix

log = logging.getLogger("fedra.site_job")


def run(args: argparse.Namespace) -> int:
    """Answer tasks until told to stop or the parent goes away."""
    # A big task arrives as a file the parent received it into, mapped copy-on-write: the
    # training code may change the arrays it gets, which never changes the file.
    channel = connect_unix(args.socket, timeout=30.0, accept_files="copy")
    job = load_job(Path(args.job_dir))
    app = job.client_app(args.site)
    if app is None:
        why = f"the job has no app for {args.site}"
        channel.send(encode(JobState(job_id=args.job_id, state="failed", detail=why)))
        return 1
    activate_custom_dirs(app.custom_dir)
    runner, ctx = _runner(args, app, channel)
    channel.send(encode(Ready(job_id=args.job_id)))
    try:
        _serve(args, channel, runner)
    except (ChannelClosed, FedraError, OSError) as exc:
        log.info("stopping: %s", exc)
        ctx.abort.set()
    finally:
        runner.stop()
        channel.close()
    return 0


def _runner(
    args: argparse.Namespace, app: App, channel: LocalChannel
) -> tuple[SiteRunner, SiteContext]:
    """The job's executors and filters on this site, their metrics sent to the parent."""
    from fedra.filters import wrap_chains
    from fedra.runtime.privacy import load_site_filters

    def log_sink(site: str, key: str, value: float, step: int | None) -> None:
        entry = Log(job_id=args.job_id, key=key, value=value, step=step, site=site)
        channel.send(encode(entry))

    ctx = SiteContext(
        site_name=args.site,
        site_index=args.index,
        num_sites=args.num_sites,
        job_id=args.job_id,
        workdir=Path(args.workdir),
        custom_dir=app.custom_dir,
        log_sink=log_sink,
        default_launch="subprocess",
        own_process_group=False,
        startup_dir=Path(args.kit) / "startup" if args.kit else None,
    )
    job_data, job_result = build_filters(app)
    site_data, site_result = load_site_filters(Path(args.kit)) if args.kit else ([], [])
    runner = SiteRunner(
        ctx,
        build_executors(app),
        data_chain=wrap_chains(site_data, job_data, "task_data"),
        result_chain=wrap_chains(site_result, job_result, "task_result"),
    )
    return runner, ctx


def _serve(args: argparse.Namespace, channel: LocalChannel, runner: SiteRunner) -> None:
    """Run each task the parent hands over, until it says stop (ChannelClosed when it goes
    away). A malformed message is refused with one log line."""
    while True:
        env = channel.recv()
        try:
            message = decode(env, TO_SITE_JOB)
        except BadMessage as exc:
            log.warning("refused a malformed message from the site parent: %s", exc)
            continue
        if isinstance(message, Stop):
            return
        if not isinstance(message, Task) or message.job_id != args.job_id:
            log.warning("refused a task of another job from the site parent")
            continue
        task = CoreTask(
            name=message.task_name,
            data=env.model or FLModel(),
            site=args.site,
            id=message.task_id,
            job_id=args.job_id,
        )
        log.info("task %s (%s)", task.name, task.id)
        result = runner.handle(task)
        answer = Result(
            job_id=args.job_id,
            task_id=task.id,
            task_name=task.name,
            site=args.site,
            error=result.error,
        )
        channel.send(encode(answer, result.data))
        del env, task, result  # hold no model while waiting for the next task


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fedra.runtime.site_job``."""
    parser = argparse.ArgumentParser(description="Fedra site job process (started by a site)")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--job-dir", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--num-sites", type=int, required=True)
    parser.add_argument("--kit", default="", help="the site's kit (for local/privacy.json)")
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
