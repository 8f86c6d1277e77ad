"""``fedra provision``: signed startup kits for every participant of a ``project.yml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PROMPT = "No project.yml found in the current folder. Generate a sample? (y/N)"


def provision(
    project_file: Annotated[
        Path | None,
        typer.Option("-p", "--project-file", help="The project file (default: ./project.yml)."),
    ] = None,
    workspace: Annotated[
        Path, typer.Option("-w", "--workspace", help="Where kits are written.")
    ] = Path("workspace"),
    yes: Annotated[
        bool, typer.Option("-y", "--yes", help="Answer yes: write a sample project.yml.")
    ] = False,
    python: Annotated[
        str, typer.Option("--python", help="Interpreter the kits' scripts run.")
    ] = "python3",
) -> None:
    """Write workspace/<project>/prod_NN/ with one signed kit (folder and zip) per participant.

    Without a project.yml here, offers to write a documented sample to edit first.

    To shut someone out: remove an admin from participants, or add any
    participant's name, or a certificate's "sha256:…" fingerprint, to
    `revoked:` (kept in state/revoked.json); then provision again and hand the
    new kits to everyone still in. Old kits stay valid for the CA; the lists in
    the new kits refuse them (docs/provisioning.md).
    """
    from fedra.provision import PROJECT_FILE, load_project, write_sample
    from fedra.provision import provision as do_provision

    if project_file is None:
        project_file = Path(PROJECT_FILE)
        if not project_file.exists():
            if not (yes or _confirm()):
                typer.echo("No project.yml written; nothing provisioned.")
                return
            write_sample(project_file)
            typer.echo(
                f"{project_file} was created. Edit it to describe your federation, then run "
                f"`fedra provision -p {project_file}`."
            )
            return
    project = load_project(project_file)
    result = do_provision(project, workspace, python=python)
    typer.echo(f"provisioned {project.name} in {result.prod}:")
    for participant in project.participants:
        kit = result.kits[participant.name]
        typer.echo(f"  {participant.type:<8} {kit}  ({result.zips[participant.name].name})")
    if result.project.revoked:
        typer.echo(f"revoked (refused by every new kit): {', '.join(result.project.revoked)}")
    typer.echo("hand each participant its folder or zip; it starts with startup/start.sh")
    if project.admins:
        typer.echo(f"admin:  {result.kits[project.admins[0].name]}/startup/fl_admin.sh")


def _confirm() -> bool:
    try:
        return typer.confirm(PROMPT, default=False, show_default=False)
    except typer.Abort:
        typer.echo("")
        return False
