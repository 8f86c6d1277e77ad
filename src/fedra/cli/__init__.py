"""The ``fedra`` command line: one module per command group, errors as one clear line."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from fedra import __version__
from fedra.cli import admin as admin_cli
from fedra.cli import job as job_cli
from fedra.cli import overseer as overseer_cli
from fedra.cli import poc as poc_cli
from fedra.cli import provision as provision_cli
from fedra.cli import schema as schema_cli
from fedra.cli import simulate as simulate_cli
from fedra.cli import system as system_cli
from fedra.core import FedraError

app = typer.Typer(
    name="fedra",
    help="Fedra: federated learning. Simulate a job, run a federation, manage it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("simulate")(simulate_cli.simulate)
app.add_typer(job_cli.app, name="job")
app.command("admin")(admin_cli.admin)
app.add_typer(poc_cli.app, name="poc")
app.command("provision")(provision_cli.provision)
app.add_typer(system_cli.app, name="system")
app.add_typer(overseer_cli.app, name="overseer")
app.command("schema")(schema_cli.schema)


@app.command("version")
def version() -> None:
    """Print Fedra's version."""
    typer.echo(__version__)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a FedraError prints one line (and a hint) and sets the exit code."""
    try:
        app(args=argv)
    except FedraError as exc:
        console = Console(stderr=True)
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        if exc.hint:
            console.print(f"hint: {exc.hint}", highlight=False, markup=False)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
