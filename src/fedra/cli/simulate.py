"""``fedra simulate``: run a job with simulated sites in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fedra.core import JobStatus, SiteError


def simulate(
    job: Annotated[Path, typer.Argument(help="The job folder (with meta.json).")],
    n_clients: Annotated[
        int | None, typer.Option("-n", "--n-clients", help="Number of sites (site-1 … site-N).")
    ] = None,
    threads: Annotated[
        int, typer.Option("-t", "--threads", help="Sites that run at the same time.")
    ] = 1,
    workspace: Annotated[
        Path, typer.Option("-w", "--workspace", help="Folder for models, metrics and logs.")
    ] = Path("simulator-workspace"),
    clients: Annotated[
        str | None, typer.Option("-c", "--clients", help="Comma-separated site names.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the workspace's last snapshot.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress display.")] = False,
) -> None:
    """Run JOB with simulated sites; results land in the workspace."""
    from fedra.simulator import format_metrics
    from fedra.simulator import simulate as run

    names = [c.strip() for c in clients.split(",") if c.strip()] if clients else None
    summary = run(
        job,
        n_clients=n_clients,
        threads=threads,
        workspace=workspace,
        clients=names,
        show_progress=not quiet,
        resume=resume,
    )
    out = Console()
    if summary.status == JobStatus.FINISHED_COMPLETED:
        out.print(
            f"job {summary.job} finished in {summary.seconds:.2f} s: "
            f"{format_metrics(summary.final_metrics)}",
            highlight=False,
        )
        out.print(
            f"workspace: {summary.workspace}  (summary.json, models/, tb_events/)", highlight=False
        )
        out.print(
            f"metrics:   tensorboard --logdir {summary.workspace / 'tb_events'}", highlight=False
        )
        return
    if summary.failed_site is not None:
        err = Console(stderr=True)
        err.print(f"[bold]traceback from {summary.failed_site}:[/]", highlight=False)
        err.print(summary.site_traceback or "", highlight=False, markup=False)
        raise SiteError(
            summary.failed_site, summary.failed_task or "?", summary.site_traceback or ""
        )
    from fedra.core import WorkflowError

    raise WorkflowError(f"job {summary.job} ended {summary.status.value}: {summary.error}")
