"""``fedra system``: the federation commands of the admin console, as CLI twins.

``fedra system status`` is ``check_status``, ``fedra system tail site-1 -n 20`` is
``tail site-1 -n 20``, ``fedra system restart client site-1`` is ``restart client site-1``, and
so on for every declared federation command that names a CLI twin
(:mod:`fedra.core.admin_spec`). Each connects with the admin kit (``--kit``, default
``./poc/admin``), runs one command and prints its result as text or, with ``--format json``,
as JSON; the server checks the admin's rights exactly as for the console.
"""

from __future__ import annotations

import typer

from fedra.admin.commands import COMMANDS
from fedra.cli.job import twin

app = typer.Typer(
    help="Status, logs, files and control of a running federation (the console's commands).",
    no_args_is_help=True,
)

for _entry in COMMANDS:
    if _entry.cli and _entry.declaration.group == "federation":
        app.command(_entry.cli)(twin(_entry))
