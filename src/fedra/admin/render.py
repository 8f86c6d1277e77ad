"""How command results look: rich tables for people, JSON for scripts.

Each renderer takes the console, the command's parsed arguments and the Session method's
typed result (:mod:`fedra.core.admin_results`, or a job id, a path, text). The console and the
``fedra job`` commands share them, so a result reads the same in both; ``--format json``
bypasses them and prints the result's JSON form (:func:`json_value`).
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO, TypeAlias

import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fedra.core.admin_results import (
    JobErrors,
    JobInfo,
    Listing,
    RunningJob,
    ServerStatus,
    SitesStatus,
)
from fedra.core.admin_spec import ArgValue
from fedra.core.jsonfile import JsonObject, JsonValue

#: A parsed console or CLI argument: a request argument, or a local path.
ConsoleValue: TypeAlias = ArgValue | Path
#: A command's parsed arguments, by the names of its Session method's parameters.
ConsoleArgs: TypeAlias = dict[str, ConsoleValue]
#: Prints a Session method's result (typed result, id, path, text or None).
Renderer: TypeAlias = Callable[[Console, ConsoleArgs, object], None]
#: The JSON form of a Session method's result, for ``--format json``.
JsonView: TypeAlias = Callable[[ConsoleArgs, object], JsonValue]


class OutputFormat(enum.StrEnum):
    """How a command prints its result."""

    TEXT = "text"
    JSON = "json"


#: Width of tables written to a pipe or a file (a terminal's own width is used otherwise).
PIPE_WIDTH = 200


def make_console(file: TextIO) -> Console:
    """A rich console for ``file``: the terminal's width, or :data:`PIPE_WIDTH` when piped.

    Piped output is not cut to 80 columns, so job ids and statuses stay whole for scripts.
    ``COLUMNS`` in the environment still wins.
    """
    try:
        terminal = file.isatty()
    except (AttributeError, ValueError):
        terminal = False
    width = None if terminal or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(file=file, width=width, highlight=False)


def json_value(value: object) -> JsonValue:
    """A result as JSON values: Structs as objects, enums as their values, paths as text."""
    data: JsonValue = msgspec.to_builtins(value, enc_hook=_encode_other)
    return data


def _encode_other(value: object) -> str:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot show {type(value).__name__} as JSON")


def print_json(out: Console, value: JsonValue) -> None:
    """Print ``value`` as indented JSON, unwrapped and uncoloured (safe to pipe into jq)."""
    out.file.write(json.dumps(value, indent=2, default=str) + "\n")
    out.file.flush()


def as_data(args: ConsoleArgs, value: object) -> JsonValue:
    """The JSON view of most commands: the result itself (``{}`` for None)."""
    return {} if value is None else json_value(value)


def keyed(key: str) -> JsonView:
    """A JSON view that wraps a plain value: ``{key: value}`` (with ``job_id`` when given)."""

    def view(args: ConsoleArgs, value: object) -> JsonValue:
        data: JsonObject = {}
        if "job_id" in args and key != "job_id":
            data["job_id"] = json_value(args["job_id"])
        data[key] = json_value(value)
        return data

    return view


def say(template: str) -> Renderer:
    """A renderer printing one line: ``template`` formatted with the arguments, the result's
    fields and ``value`` (the result itself)."""

    def render(out: Console, args: ConsoleArgs, value: object) -> None:
        data = json_value(value) if isinstance(value, msgspec.Struct) else None
        fields = _Fields(data if isinstance(data, dict) else {})
        names = args.get("names")
        shown = " ".join(names) if isinstance(names, list) else ""
        fields.update(args, names=shown, value=value)
        line = template.format_map(fields)
        out.print(" ".join(line.split()), highlight=False, markup=False, soft_wrap=True)

    return render


class _Fields(dict[str, object]):
    """Template fields; a field the reply lacks shows as ``?`` instead of failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def show_text(out: Console, args: ConsoleArgs, value: object) -> None:
    """Print text (a log tail, a file) exactly as it came."""
    text = str(value)
    out.file.write(text if text.endswith("\n") or not text else text + "\n")
    out.file.flush()


def show_status(out: Console, args: ConsoleArgs, value: object) -> None:
    """``check_status``: the server's state with its jobs and sites, or a table of sites."""
    if isinstance(value, SitesStatus):
        table = Table("Site", "Org", "Connected", "Last seen", "Jobs", title=None)
        for site in value.sites:
            table.add_row(
                site.name,
                site.org,
                "yes" if site.connected else "no",
                _ago(site.last_seen_s),
                ", ".join(site.jobs) or "-",
            )
        out.print(table)
        return
    if not isinstance(value, ServerStatus):
        show_data(out, args, value)
        return
    out.print(f"Engine status: {value.status}", highlight=False, markup=False)
    out.print(f"Start time: {_when(value.start_time)}", highlight=False, markup=False)
    if value.jobs:
        out.print(_job_table(out, value.jobs, {}))
    else:
        out.print("No jobs running.", highlight=False)
    out.print(f"Registered clients: {len(value.sites)}", highlight=False, markup=False)
    if value.sites:
        out.print("  " + ", ".join(value.sites), highlight=False, markup=False)


def show_jobs(out: Console, args: ConsoleArgs, value: object) -> None:
    """``list_jobs``: one row per job; with -d, each job's history below the table."""
    jobs = [job for job in value if isinstance(job, JobInfo)] if isinstance(value, list) else []
    if not jobs:
        out.print("No jobs.", highlight=False)
        return
    columns = {name: [cell(job) for job in jobs] for name, cell in _EXTRA_COLUMNS.items()}
    out.print(_job_table(out, jobs, columns))
    if args.get("detailed"):
        for job in jobs:
            out.print()
            _details(out, job)


def show_job(out: Console, args: ConsoleArgs, value: object) -> None:
    """``get_job`` and ``wait``: one job's fields, history, wait reason and failure."""
    if not isinstance(value, JobInfo):
        show_data(out, args, value)
        return
    grid = Table.grid(padding=(0, 2))
    rows = (
        ("job_id", value.job_id),
        ("name", value.name),
        ("status", value.status.value),
        ("submitter", value.submitter),
        ("submitted_at", _when(value.submitted_at)),
        ("duration_s", _duration(value.duration_s)),
    )
    for key, shown in rows:
        grid.add_row(Text(key, style="bold"), Text(shown))
    out.print(grid)
    _details(out, value)


def show_errors(out: Console, args: ConsoleArgs, value: object) -> None:
    """``show_errors``: the failure record and each error, tracebacks as the lines they are
    (not JSON strings with ``\\n`` in them)."""
    if not isinstance(value, JobErrors):
        show_data(out, args, value)
        return
    if value.failure:
        out.print(Text("failure:", style="bold red"))
        _lines(out, value.failure, "  ")
    else:
        out.print(Text.assemble(("failure: ", "bold"), "none"))
    if not value.errors:
        out.print(Text.assemble(("errors: ", "bold"), "none"))
        return
    out.print(Text("errors:", style="bold"))
    for error in value.errors:
        first, *rest = error.splitlines() or [""]
        _plain_lines(out, [f"  - {first}", *(f"    {line}" for line in rest)])


def show_listing(out: Console, args: ConsoleArgs, value: object) -> None:
    """``ls``: one line per entry (kind, size, modified, name; folders end with ``/``)."""
    if not isinstance(value, Listing):
        show_data(out, args, value)
        return
    for entry in value.entries:
        size = "" if entry.size is None else str(entry.size)
        name = entry.name + ("/" if entry.kind == "dir" else "")
        line = f"{entry.kind:5} {size:>12} {_when(entry.mtime)}  {name}"
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if not value.entries:
        out.print("(empty)", highlight=False)
    if value.truncated:
        out.print("(more entries than shown: name a folder below this one)", highlight=False)


def show_data(out: Console, args: ConsoleArgs, value: object) -> None:
    """Any other result: lists of records as tables, other values as ``key: value`` lines."""
    data = json_value(value)
    if not isinstance(data, dict):
        out.print(json.dumps(data, indent=2, default=str), highlight=False, markup=False)
        return
    for key, item in data.items():
        if isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
            out.print(Text(f"{key}:", style="bold"))
            rows = [row for row in item if isinstance(row, dict)]
            columns = list(dict.fromkeys(k for row in rows for k in row))
            table = Table(*columns)
            for row in rows:
                table.add_row(*(_plain(row.get(c)) for c in columns))
            out.print(table)
        elif isinstance(item, dict | list) and not item:
            out.print(Text.assemble((f"{key}: ", "bold"), "none"))
        elif isinstance(item, dict | list):
            out.print(Text(f"{key}:", style="bold"))
            out.print(json.dumps(item, indent=2, default=str), highlight=False, markup=False)
        else:
            out.print(Text.assemble((f"{key}: ", "bold"), _plain(item)))


# ---------------------------------------------------------------------- helpers


#: Optional columns of job listings, dropped in this order when the terminal is too narrow.
_EXTRA_COLUMNS: dict[str, Callable[[JobInfo], str]] = {
    "Submitter": lambda job: job.submitter,
    "Submitted": lambda job: _when(job.submitted_at),
    "Duration": lambda job: _duration(job.duration_s),
}
_NAME_MIN = 10


def _job_table(
    out: Console, jobs: Sequence[JobInfo | RunningJob], extra: dict[str, list[str]]
) -> Table:
    """Job id, name, status and as many ``extra`` columns (one cell per job) as fit the
    terminal. Ids and statuses are never wrapped or cut: people copy them, scripts match them.
    """
    ids = [j.job_id for j in jobs]
    statuses = [_status(j.status.value) for j in jobs]
    id_width = max(6, *(len(i) for i in ids))
    status_width = max(6, *(len(s.plain) for s in statuses))
    columns = dict(extra)

    def needed() -> int:
        widths = [id_width, _NAME_MIN, status_width]
        widths += [max(len(n), *(len(v) for v in vals)) for n, vals in columns.items()]
        return sum(w + 3 for w in widths) + 1

    while columns and needed() > out.width:
        del columns[next(iter(columns))]
    table = Table()
    table.add_column("Job ID", no_wrap=True, min_width=id_width)
    name_width = min(_NAME_MIN, max(len(j.name) for j in jobs))
    table.add_column("Name", min_width=name_width, overflow="fold")
    table.add_column("Status", no_wrap=True, min_width=status_width)
    for name in columns:
        table.add_column(name)
    for row, job in enumerate(jobs):
        cells = [vals[row] for vals in columns.values()]
        table.add_row(ids[row], job.name, statuses[row], *cells)
    return table


def _details(out: Console, job: JobInfo) -> None:
    if job.history:
        out.print(Text(f"history of {job.job_id}:", style="bold"))
        for change in job.history:
            line = f"  {_when(change.at)}  {change.status.value}"
            out.print(f"{line}  {change.reason}".rstrip(), highlight=False, markup=False)
    if job.waiting:
        why = job.waiting if job.waiting.startswith("waiting") else f"waiting: {job.waiting}"
        out.print(f"  {why}", highlight=False, markup=False)
    if job.failure:
        out.print(Text("  failure:", style="bold red"))
        _lines(out, job.failure, "    ")


def _lines(out: Console, record: JsonObject, indent: str) -> None:
    """``key: value`` lines of a record; a text of several lines (a traceback) below its key,
    one line each, indented."""
    for key, item in record.items():
        if isinstance(item, str) and "\n" in item:
            out.print(Text(f"{indent}{key}:", style="bold"))
            _plain_lines(out, [f"{indent}  {line}" for line in item.rstrip("\n").splitlines()])
        else:
            _plain_lines(out, [f"{indent}{key}: {_plain(item)}"])


def _plain_lines(out: Console, lines: Sequence[str]) -> None:
    """Lines as they are: no markup, no highlighting, no wrapping into other lines."""
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def _status(status: str) -> Text:
    style = "green" if status == "FINISHED:COMPLETED" else "red" if "FAIL" in status else ""
    if status.endswith(("ABORTED", "EXCEPTION")):
        style = "red"
    return Text(status, style=style)


def _plain(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _when(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _duration(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    seconds = float(value)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _ago(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{_duration(value)} ago"
