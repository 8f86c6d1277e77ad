"""``fedra job``: check job folders, and submit and manage jobs on a running federation.

``validate`` works offline. The other commands are built from the admin command table
(:data:`fedra.admin.COMMANDS`): each connects with the admin kit, calls one Session method and
prints its result as text or, with ``--format json``, as JSON.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from fedra.admin.commands import COMMANDS, Command, Param
from fedra.admin.render import OutputFormat, make_console
from fedra.cli.admin import KIT_HELP
from fedra.core import JsonObject

app = typer.Typer(
    help="Validate job folders; submit, watch, download and manage jobs.", no_args_is_help=True
)


@app.command("validate")
def validate(
    folder: Annotated[Path, typer.Argument(help="The job folder to check.")],
) -> None:
    """Check a job folder: meta.json, configs, component names and arguments."""
    from fedra.job import load_job

    job = load_job(folder)
    apps = ", ".join(f"{name} -> {', '.join(job.meta.deploy_map[name])}" for name in job.apps)
    typer.echo(f"{folder}: job '{job.meta.name}' is valid ({apps})")


_TYPES: dict[str, type] = {"int": int, "float": float, "path": Path, "flag": bool}


def _parameter(param: Param) -> inspect.Parameter:
    """The typer parameter for one argument of the table."""
    kind: Any = _TYPES.get(param.kind, str)
    if param.kind == "names":
        kind = list[str]
    if not param.required and param.kind != "flag" and param.default is None:
        kind = kind | None
    metavar = param.metavar or None
    info: Any
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

    def run(**kwargs: Any) -> None:
        from fedra.admin import Session
        from fedra.admin.commands import execute, present
        from fedra.admin.session import check_job_folder

        kit: Path | None = kwargs.pop("kit")
        fmt = OutputFormat(kwargs.pop("output_format"))
        if command.name == "submit_job":
            check_job_folder(kwargs["folder"])  # a malformed job fails before connecting
        with Session.connect(kit) as session:
            value = execute(session, command, kwargs)
        present(make_console(sys.stdout), command, kwargs, value, fmt)
        if command.name == "wait":
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
    run.__doc__ = f"{command.help}\n\nConsole: {command.usage}"
    run.__name__ = command.cli or command.name
    return run


def _fail_unless_completed(job: JsonObject) -> None:
    """``fedra job wait`` exits non-zero unless the job completed, so scripts can rely on it."""
    from fedra.admin import AdminError

    status = str(job.get("status"))
    if status != "FINISHED:COMPLETED":
        raise AdminError(
            f"job {job.get('job_id')} ended {status}",
            hint=f"see why with: fedra job errors {job.get('job_id')}",
        )


for _entry in COMMANDS:
    if _entry.cli:
        app.command(_entry.cli)(_command(_entry))
