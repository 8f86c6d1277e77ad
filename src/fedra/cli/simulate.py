"""``fedra simulate``: run a job with simulated sites in one process."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from fedra.core import JobStatus, SiteError

if TYPE_CHECKING:
    from fedra.simulator import RayOptions, RunSummary


def simulate(
    job: Annotated[Path, typer.Argument(help="The job folder (with meta.json).")],
    n_clients: Annotated[
        int | None, typer.Option("-n", "--n-clients", help="Number of sites (site-1 … site-N).")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("-t", "--threads", help="Sites that run at the same time (default 1)."),
    ] = None,
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
    backend: Annotated[
        str, typer.Option("--backend", help="Where sites run: 'thread' (this process) or 'ray'.")
    ] = "thread",
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray: the cluster to join (default: as ray.init())."),
    ] = None,
    site_cpus: Annotated[
        float | None, typer.Option("--site-cpus", help="Ray: CPUs per site actor (default 1).")
    ] = None,
    site_gpus: Annotated[
        float | None, typer.Option("--site-gpus", help="Ray: GPUs per site actor (default 0).")
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(
            "--actors", help="Ray: site actors = sites at once (default: CPUs / site-cpus)."
        ),
    ] = None,
    keep_sites: Annotated[
        int | None,
        typer.Option("--keep-sites", help="Ray: sites each actor keeps started (default 0)."),
    ] = None,
    kits: Annotated[
        Path | None,
        typer.Option(
            "--kits",
            help="Startup kits (as `fedra poc prepare` writes them) holding the keys, e.g. HE.",
        ),
    ] = None,
) -> None:
    """Run JOB with simulated sites; results land in the workspace."""
    from fedra.simulator import simulate as run

    ray_options = _ray_options(
        backend,
        threads,
        address=address,
        site_cpus=site_cpus,
        site_gpus=site_gpus,
        actors=actors,
        keep_sites=keep_sites,
    )
    summary = run(
        job,
        n_clients=n_clients,
        threads=1 if threads is None else threads,
        workspace=workspace,
        clients=[c.strip() for c in clients.split(",") if c.strip()] if clients else None,
        show_progress=not quiet,
        resume=resume,
        backend=backend,
        ray_options=ray_options,
        kits=kits,
    )
    _report(summary)


def _ray_options(
    backend: str,
    threads: int | None,
    *,
    address: str | None,
    site_cpus: float | None,
    site_gpus: float | None,
    actors: int | None,
    keep_sites: int | None,
) -> RayOptions | None:
    """The Ray options the flags give (None unless ``backend`` is ray); ConfigError on flags
    that do not belong to the chosen backend."""
    from fedra.core import ConfigError
    from fedra.simulator import RayOptions

    given = {
        "--address": address,
        "--site-cpus": site_cpus,
        "--site-gpus": site_gpus,
        "--actors": actors,
        "--keep-sites": keep_sites,
    }
    if backend == "ray" and threads is not None:
        raise ConfigError("-t/--threads is for the thread backend; with --backend ray use --actors")
    if backend != "ray" and any(v is not None for v in given.values()):
        options = ", ".join(k for k, v in given.items() if v is not None)
        raise ConfigError(f"{options}: only used with --backend ray")
    if backend != "ray":
        return None
    defaults = RayOptions()
    return RayOptions(
        address=address,
        site_cpus=defaults.site_cpus if site_cpus is None else site_cpus,
        site_gpus=defaults.site_gpus if site_gpus is None else site_gpus,
        actors=actors,
        keep_sites=defaults.keep_sites if keep_sites is None else keep_sites,
    )


def _report(summary: RunSummary) -> None:
    """Print where a completed run's results are; raise the error of one that failed."""
    from fedra.core import WorkflowError
    from fedra.simulator import format_metrics

    if summary.status == JobStatus.FINISHED_COMPLETED:
        out = Console()
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
    raise WorkflowError(f"job {summary.job} ended {summary.status.value}: {summary.error}")
