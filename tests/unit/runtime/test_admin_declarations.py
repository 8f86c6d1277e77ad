"""Server, console and docs agree with the one declaration of admin commands (a walk)."""

from __future__ import annotations

import re
from pathlib import Path

from fedra.admin import COMMANDS
from fedra.core.admin_spec import ADMIN_COMMANDS
from fedra.runtime.admin_service import handlers

DOCS = Path(__file__).resolve().parents[3] / "docs" / "admin-commands.md"


def test_every_server_handler_is_declared_and_every_server_declaration_has_one() -> None:
    served = {c.name for c in ADMIN_COMMANDS if c.served_by == "server"}
    assert set(handlers()) == served


def test_the_console_covers_each_declared_command_and_declares_nothing_else() -> None:
    console = {c.name for c in COMMANDS}
    assert console == {c.name for c in ADMIN_COMMANDS}
    for command in COMMANDS:
        assert command.declaration.right in command.needs


def test_the_docs_list_each_command_with_its_right_and_object() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)`(?: \+ `(\w+)`)? \| (\w+) \|", DOCS.read_text(), re.M)
    documented = {name: (right, extra or None, acts_on) for name, right, extra, acts_on in rows}
    declared = {c.name: (c.right, c.object_right, c.acts_on) for c in ADMIN_COMMANDS}
    assert documented == declared
