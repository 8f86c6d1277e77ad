"""``fedra job``: work with job folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Validate and inspect job folders.", no_args_is_help=True)


@app.command("validate")
def validate(
    folder: Annotated[Path, typer.Argument(help="The job folder to check.")],
) -> None:
    """Check a job folder: meta.json, configs, component names and arguments."""
    from fedra.job import load_job

    job = load_job(folder)
    apps = ", ".join(f"{name} -> {', '.join(job.meta.deploy_map[name])}" for name in job.apps)
    typer.echo(f"{folder}: job '{job.meta.name}' is valid ({apps})")
