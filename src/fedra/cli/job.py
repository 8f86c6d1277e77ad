"""``fedra job``: check job folders, and submit and manage jobs on a running federation.

``validate`` works offline. The other commands are built from the declared admin commands
that name a CLI command (:mod:`fedra.core.admin_spec`, bound in :data:`fedra.admin.COMMANDS`):
each connects with the admin kit, calls one Session method and prints its typed result as
text or, with ``--format json``, as JSON.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from fedra.admin.commands import COMMANDS, Command
from fedra.admin.render import ConsoleArgs, ConsoleValue, OutputFormat, make_console
from fedra.cli.admin import KIT_HELP
from fedra.core.admin_results import JobInfo
from fedra.core.admin_spec import ArgSpec

app = typer.Typer(
    help="Validate job folders; submit, watch, download and manage jobs.", no_args_is_help=True
)


@app.command("validate")
def validate(
    folder: Annotated[Path, typer.Argument(help="The job folder (or a zip of one) to check.")],
) -> None:
    """Check a job folder: meta.json, configs, component names and arguments."""
    from fedra.job import job_folder, load_job

    with job_folder(folder) as root:
        job = load_job(root)
    apps = ", ".join(f"{name} -> {', '.join(job.meta.deploy_map[name])}" for name in job.apps)
    typer.echo(f"{folder}: job '{job.meta.name}' is valid ({apps})")


_TYPES: dict[str, type] = {"int": int, "float": float, "path": Path, "bool": bool}


def _parameter(param: ArgSpec) -> inspect.Parameter:
    """The typer parameter for one declared argument."""
    kind: object = list[str] if param.type == "names" else _TYPES.get(param.type, str)
    if not param.required and not param.is_switch and param.default is None:
        kind = kind | None  # type: ignore[operator]
    metavar = param.metavar or None
    info: object
    if param.positional:
        default = ... if param.required else param.default
        info = typer.Argument(default, help=param.help, metavar=metavar)
    else:
        info = typer.Option(param.default, *param.flags, help=param.help, metavar=metavar)
    return inspect.Parameter(
        param.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind
    )


def _command(command: Command) -> Callable[..., None]:
    """A typer command that runs ``command`` with the admin kit and prints its result."""

    def run(**kwargs: ConsoleValue) -> None:
        from fedra.admin.commands import execute, present
        from fedra.admin.session import Session, check_job_folder

        kit = kwargs.pop("kit")
        fmt = OutputFormat(str(kwargs.pop("output_format")))
        if command.name == "submit_job":
            check_job_folder(Path(str(kwargs["folder"])))  # a malformed job fails early
        args: ConsoleArgs = dict(kwargs)
        # A stopped server is said at once, not after the connect timeout.
        kit_path = kit if isinstance(kit, Path) else None
        with Session.connect(kit_path, wait=False) as session:
            value = execute(session, command, args)
        present(make_console(sys.stdout), command, args, value, fmt)
        if command.name == "wait" and isinstance(value, JobInfo):
            _fail_unless_completed(value)

    extra = [
        inspect.Parameter(
            "kit",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--kit", help=KIT_HELP, metavar="DIR"),
            annotation=Path | None,
        ),
        inspect.Parameter(
            "output_format",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(OutputFormat.TEXT, "--format", help="text, or json for scripts."),
            annotation=OutputFormat,
        ),
    ]
    parameters = [_parameter(p) for p in command.params] + extra
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    run.__doc__ = f"{command.help}\n\nConsole: {command.usage}\n\nNeeds the right: {command.needs}"
    run.__name__ = command.cli or command.name
    return run


def _fail_unless_completed(job: JobInfo) -> None:
    """``fedra job wait`` exits non-zero unless the job completed, so scripts can rely on it."""
    from fedra.admin.errors import AdminError
    from fedra.core import JobStatus

    if job.status is not JobStatus.FINISHED_COMPLETED:
        raise AdminError(
            f"job {job.job_id} ended {job.status.value}",
            hint=f"see why with: fedra job errors {job.job_id}",
        )


def twin(command: Command) -> Callable[..., None]:
    """The typer command of a declared admin command (``fedra job`` and ``fedra system``)."""
    return _command(command)


for _entry in COMMANDS:
    if _entry.cli and _entry.declaration.group == "jobs":
        app.command(_entry.cli)(_command(_entry))
