"""The command reference of docs/admin-commands.md, generated from the declarations.

The tables between the ``<!-- BEGIN generated: NAME -->`` and ``<!-- END generated: NAME -->``
markers of the doc come from :mod:`fedra.core.admin_spec` (usage, CLI name, right, object,
help, result type), the :class:`~fedra.admin.Session` method signatures and the result types
of :mod:`fedra.core.admin_results`. A test fails when the doc is stale; to refresh it::

    python -m fedra.admin.reference docs/admin-commands.md
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import msgspec

from fedra.admin.commands import COMMANDS, Command
from fedra.core.admin_spec import AdminCommand

_MARKED = re.compile(
    r"(<!-- BEGIN generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END generated: (?P=name) -->)",
    re.S,
)
_SERVED = {"server": "", "console": "served by the console", "overseer": "served by the overseer"}
_CHECKED = {
    "nothing": "{right}: a scope other than none",
    "job": "{right} on the job's owner",
    "participant": "{right} on the participant's org",
    "sites": "{right} on every participant it acts on",
    "file": "{right} on the file's participant or job",
    "folder": "{right} on the participant (its workspace) or on the job (a job's folder)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"


def _signature(command: Command) -> str:
    """``name(args) -> result`` of the command's Session method."""
    sig = inspect.signature(command.method)
    params = []
    for param in list(sig.parameters.values())[1:]:
        default = "" if param.default is inspect.Parameter.empty else f"={param.default!r}"
        params.append(f"{param.name}{default}")
    returns = sig.return_annotation
    shown = returns if isinstance(returns, str) else getattr(returns, "__name__", str(returns))
    return f"{command.method.__name__}({', '.join(params)}) -> {shown}"


def _results(declared: AdminCommand) -> str:
    return " or ".join(f"`{kind.__name__}`" for kind in declared.results)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def commands_table(group: str) -> str:
    """The console, CLI and Session face of each command of ``group``, with its result."""
    rows = []
    for command in COMMANDS:
        declared = command.declaration
        if declared.group != group:
            continue
        cli = f"{declared.cli_path} {declared.usage.partition(' ')[2]}".rstrip()
        rows.append(
            [
                _code(declared.usage),
                _code(cli) if declared.cli_path else "(console)",
                _code(_signature(command)),
                f"{_cell(declared.help)} Reply: {_results(declared)}.",
            ]
        )
    return _table(["console", "CLI", "Session method", "what it does; reply"], rows)


def rights_table() -> str:
    """Each command's right, the object it acts on, and who serves it."""
    rows = []
    for command in COMMANDS:
        declared = command.declaration
        right = f"`{declared.right}`"
        if declared.object_right:
            right += f" + `{declared.object_right}`"
        checked = [_SERVED[declared.served_by] or _CHECKED[declared.acts_on]]
        checked[0] = checked[0].format(right=declared.right)
        if declared.object_right:
            checked = [f"{declared.right}, and {declared.object_right} on the original"]
        if declared.note:
            checked.append(declared.note)
        rows.append([f"`{declared.name}`", right, declared.acts_on, _cell("; ".join(checked))])
    return _table(["command", "right", "acts on", "what is checked"], rows)


def results_table() -> str:
    """Every result type with its fields (``?``: may be absent or null)."""
    kinds: dict[str, type[msgspec.Struct]] = {}
    for command in COMMANDS:
        for kind in command.declaration.results:
            kinds.setdefault(kind.__name__, kind)
            for field in msgspec.structs.fields(kind):
                _nested(field.type, kinds)
    rows = []
    for name, kind in kinds.items():
        fields = []
        for field in msgspec.structs.fields(kind):
            optional = field.required is False and field.default is None
            fields.append(f"`{field.name}{'?' if optional else ''}`")
        rows.append([f"`{name}`", ", ".join(fields) or "(empty: `{}`)", _cell(_doc(kind))])
    return _table(["result", "fields", "meaning"], rows)


def _nested(annotation: object, kinds: dict[str, type[msgspec.Struct]]) -> None:
    """Add the Struct types used inside ``annotation`` (lists, optionals) to ``kinds``."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        if annotation.__name__ not in kinds:
            kinds[annotation.__name__] = annotation
            for field in msgspec.structs.fields(annotation):
                _nested(field.type, kinds)
        return
    for arg in getattr(annotation, "__args__", ()):
        _nested(arg, kinds)


def _doc(kind: type) -> str:
    return " ".join((kind.__doc__ or "").replace("``", "`").split())


SECTIONS = {
    "jobs": lambda: commands_table("jobs"),
    "federation": lambda: commands_table("federation"),
    "ha": lambda: commands_table("ha"),
    "results": results_table,
    "rights": rights_table,
}


def render(doc: str) -> str:
    """``doc`` with every generated section replaced by its current text."""

    def fill(match: re.Match[str]) -> str:
        make = SECTIONS.get(match["name"])
        if make is None:
            raise ValueError(f"unknown generated section {match['name']!r}")
        return match.group(1) + make() + match.group(4)

    return _MARKED.sub(fill, doc)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated sections of the given doc files in place."""
    for name in argv if argv is not None else sys.argv[1:]:
        path = Path(name)
        path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
