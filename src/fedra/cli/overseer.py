"""``fedra overseer``: run the overseer, and ask it which server is hot or to promote one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedra.admin.render import OutputFormat as Format

if TYPE_CHECKING:
    from fedra.overseer import OverseerAnswer

app = typer.Typer(
    help="The overseer of a high-availability federation (several servers).",
    no_args_is_help=True,
)


Kit = Annotated[
    Path,
    typer.Option("--kit", help="An admin's startup kit (its overseer block).", metavar="DIR"),
]
FormatOption = Annotated[Format, typer.Option("--format", help="text, or json for scripts.")]


@app.command("start")
def start(
    kit: Annotated[Path, typer.Option("--kit", help="The overseer's startup kit.", metavar="DIR")],
) -> None:
    """Run the overseer of this kit in the foreground until SIGTERM or Ctrl-C."""
    from fedra.overseer import serve_kit

    code = serve_kit(kit)
    if code:
        raise typer.Exit(code)


@app.command("status")
def status(kit: Kit, output_format: FormatOption = Format.TEXT) -> None:
    """Show the hot server, the SSID, every server, site and admin (admin roles only).

    A server's state is the one it reported in its last heartbeat; under a server that is
    not live (or whose state misleads) a line says why, and when a standby takes over.
    """
    from fedra.overseer import client_for_kit

    _print(client_for_kit(kit).state(), output_format)


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="The server to make hot.")],
    kit: Kit,
    output_format: FormatOption = Format.TEXT,
) -> None:
    """Make a live, ready server hot now (project_admin only).

    It starts serving once the previous hot server's lease has run out.
    """
    from fedra.overseer import client_for_kit

    _print(client_for_kit(kit).promote(name), output_format)


@app.command("active")
def active(kit: Kit, output_format: FormatOption = Format.TEXT) -> None:
    """Show the hot server and the service session id (console: get_active_sp)."""
    from fedra.overseer import client_for_kit

    answer = client_for_kit(kit).state()
    hot = answer.hot.name if answer.hot else None
    if output_format is Format.JSON:
        typer.echo(json.dumps({"hot": hot, "ssid": answer.ssid}))
        return
    typer.echo(f"hot server: {hot or 'none yet'}")
    typer.echo(f"ssid: {answer.ssid if answer.ssid is not None else 'none yet'}")


def _print(answer: OverseerAnswer, output_format: Format) -> None:
    import msgspec

    from fedra.overseer import answer_to_json

    if output_format is Format.JSON:
        typer.echo(msgspec.json.format(answer_to_json(answer), indent=2).decode())
        return
    hot = answer.hot
    typer.echo(f"hot server: {hot.name} ({hot.address})" if hot else "hot server: none yet")
    typer.echo(f"ssid: {answer.ssid if answer.ssid is not None else 'none yet'}")
    for server in answer.servers:
        state = server.state.value if server.state else "unknown"
        seen = "never" if server.age is None else f"{server.age:.1f} s ago"
        mark = "*" if server.hot else " "
        live = "live" if server.live else "silent"
        typer.echo(f"{mark} {server.info.name:24} {state:9} {live:7} seen {seen}")
        if server.note:  # why the state it reported is not the whole story
            typer.echo(f"    {server.note}")
    for person in answer.participants:
        typer.echo(f"  {person.name:24} {person.role:14} seen {person.age:.1f} s ago")
