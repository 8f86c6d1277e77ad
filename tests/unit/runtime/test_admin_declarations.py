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


def test_the_generated_command_reference_is_current() -> None:
    """docs/admin-commands.md's tables are what the declarations generate now."""
    from fedra.admin.reference import SECTIONS, render

    doc = DOCS.read_text(encoding="utf-8")
    for name in SECTIONS:
        assert f"<!-- BEGIN generated: {name} -->" in doc, name
    assert render(doc) == doc, (
        "docs/admin-commands.md is stale: run python -m fedra.admin.reference "
        "docs/admin-commands.md"
    )


def test_the_staleness_check_sees_a_changed_table() -> None:
    from fedra.admin.reference import render

    doc = DOCS.read_text(encoding="utf-8")
    doc = doc.replace("| `get_job` | `view` |", "| `get_job` | `any` |")
    assert render(doc) != doc


def test_every_result_type_is_a_frozen_struct_and_each_server_command_has_a_handler() -> None:
    import msgspec

    for command in ADMIN_COMMANDS:
        assert command.results, command.name
        for kind in command.results:
            assert issubclass(kind, msgspec.Struct) and kind.__struct_config__.frozen
