"""``fedra provision``: signed startup kits for every participant of a ``project.yml``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fedra.provision import ProjectSource

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
        str,
        typer.Option(
            "--python",
            help="Interpreter the kits' scripts run (default python3 from the PATH; "
            "FEDRA_PYTHON overrides it on each machine at start).",
        ),
    ] = "python3",
    convert: Annotated[
        Path | None,
        typer.Option(
            "--convert",
            metavar="OUT",
            help="Write the Fedra project.yml converted from a FLARE project file to OUT "
            "and stop (no kits). Never replaces OUT.",
        ),
    ] = None,
) -> None:
    """Write workspace/<project>/prod_NN/ with one signed kit (folder and zip) per participant.

    Without a project.yml here, offers to write a documented sample to edit first.

    A FLARE 2.x project.yml (api_version 2 or 3) is read too, no flag needed: it is
    converted to Fedra's (api_version 1), each mapped or skipped builder and key is
    listed with its line, and prod_NN/project.yml is the converted file. To see and
    keep the conversion first: `fedra provision -p flare.yml --convert project.yml`
    (docs/migrating-from-flare.md).

    To shut someone out: remove an admin from participants, or add any
    participant's name, or a certificate's "sha256:…" fingerprint, to
    `revoked:` (kept in state/revoked.json); then provision again and hand the
    new kits to everyone still in. Old kits stay valid for the CA; the lists in
    the new kits refuse them (docs/provisioning.md).
    """
    from fedra.provision import PROJECT_FILE, read_project, write_sample
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
    source = read_project(project_file)
    project = source.project
    _report_flare(source, project_file)
    if convert is not None:
        _write_converted(convert, source.text if source.flare is not None else None, project_file)
        return
    text = source.text if source.flare is not None else None
    result = do_provision(project, workspace, python=python, project_text=text)
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


def _report_flare(source: ProjectSource, project_file: Path) -> None:
    """List what a FLARE project file's conversion mapped and skipped, with the lines."""
    if source.flare is None:
        return
    typer.echo(f"{project_file} is a FLARE project file (api_version {source.flare.api_version}):")
    for note in source.flare.notes:
        typer.echo(f"  {note}")


def _write_converted(out: Path, text: str | None, project_file: Path) -> None:
    """Write the converted project file ``text`` to ``out``, never replacing a file."""
    from fedra.core import ConfigError

    if text is None:
        err = ConfigError(
            f"{project_file} is already a Fedra project file (api_version 1): nothing to convert"
        )
        err.hint = f"provision it with `fedra provision -p {project_file}`"
        raise err
    try:
        with open(out, "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError as err:
        raise ConfigError(f"{out} already exists: not replacing it") from err
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err}") from err
    typer.echo(f"wrote {out}; nothing provisioned. Provision it with `fedra provision -p {out}`.")
