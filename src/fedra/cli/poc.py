"""``fedra poc``: a proof-of-concept federation on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Prepare, start and stop a proof-of-concept federation.", no_args_is_help=True
)

Workspace = Annotated[Path, typer.Option("-w", "--workspace", help="The POC folder.")]


@app.command("prepare")
def prepare(
    n_clients: Annotated[int, typer.Option("-n", "--n-clients", help="Number of sites.")] = 2,
    workspace: Workspace = Path("poc"),
    port: Annotated[int, typer.Option("--port", help="FL port (sites connect here).")] = 8002,
    admin_port: Annotated[int, typer.Option("--admin-port", help="Admin port.")] = 8003,
    host: Annotated[str, typer.Option("--host", help="The server's host name.")] = "localhost",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing workspace.")] = False,
    he: Annotated[
        bool,
        typer.Option("--he", help="Also write homomorphic-encryption (CKKS) key files."),
    ] = False,
) -> None:
    """Write server/, site-1…site-N/ and admin/, each with certificates and startup scripts."""
    from fedra.poc import prepare as do_prepare

    layout = do_prepare(
        workspace, n_clients, host=host, fed_port=port, admin_port=admin_port, force=force, he=he
    )
    typer.echo(f"prepared {layout.root}: server, {', '.join(layout.sites)}, admin")
    if he:
        typer.echo("HE keys: site-N/startup/he_context.tenseal (secret), server/startup/")
        typer.echo("         he_public_context.tenseal (public); simulate with --kits")
    typer.echo(f"start:  fedra poc start -w {layout.root}   (or each */startup/start.sh)")
    typer.echo(f"admin:  {layout.admin}/startup/fl_admin.sh")


@app.command("start")
def start(
    workspace: Workspace = Path("poc"),
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 60.0,
) -> None:
    """Start the server, then every site; wait until the sites are connected."""
    from fedra.poc import PocLayout
    from fedra.poc import start as do_start

    layout = PocLayout.load(workspace)
    do_start(layout, timeout=timeout)
    typer.echo(f"federation up: server and {', '.join(layout.sites)} connected")


@app.command("stop")
def stop(
    workspace: Workspace = Path("poc"),
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 60.0,
) -> None:
    """Stop every site, then the server."""
    from fedra.poc import PocLayout
    from fedra.poc import stop as do_stop

    stopped = do_stop(PocLayout.load(workspace), timeout=timeout)
    typer.echo("stopped " + (", ".join(stopped) if stopped else "nothing (nothing was running)"))
