"""``fedra admin``: the interactive admin console (the admin kit's fl_admin.sh runs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: The help of every ``--kit`` option.
KIT_HELP = "The admin's startup kit (default: ./poc/admin)."


def admin(
    kit: Annotated[Path | None, typer.Option("--kit", help=KIT_HELP, metavar="DIR")] = None,
) -> None:
    """Open the admin console: manage jobs and sites of a running federation (? lists commands).

    Reads commands from stdin when it is not a terminal, so it can be scripted.
    """
    from fedra.admin import AdminConsole, Session

    with Session.connect(kit, wait=False) as session:
        code = AdminConsole(session).run()
    if code:
        raise typer.Exit(code)
