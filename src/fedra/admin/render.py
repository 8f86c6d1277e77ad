"""How command results look: rich tables for people, JSON for scripts.

Each renderer takes the console, the command's parsed arguments and the Session method's
return value. The console and the ``fedra job`` commands share them, so a result reads the
same in both; ``--format json`` bypasses them and prints the value itself.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeAlias

from rich.console import Console
from rich.table import Table
from rich.text import Text

Renderer: TypeAlias = Callable[[Console, dict[str, Any], Any], None]
JsonView: TypeAlias = Callable[[dict[str, Any], Any], Any]


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


def print_json(out: Console, value: Any) -> None:
    """Print ``value`` as indented JSON, unwrapped and uncoloured (safe to pipe into jq)."""
    out.file.write(json.dumps(value, indent=2, default=str) + "\n")
    out.file.flush()


def as_data(args: dict[str, Any], value: Any) -> Any:
    """The JSON view of most commands: the value itself (``{}`` for None)."""
    return {} if value is None else value


def keyed(key: str) -> JsonView:
    """A JSON view that wraps a plain value: ``{key: value}`` (with ``job_id`` when given)."""

    def view(args: dict[str, Any], value: Any) -> Any:
        data: dict[str, Any] = {}
        if "job_id" in args and key != "job_id":
            data["job_id"] = args["job_id"]
        data[key] = str(value) if isinstance(value, Path) else value
        return data

    return view


def say(template: str) -> Renderer:
    """A renderer printing one line: ``template`` formatted with the arguments and ``value``."""

    def render(out: Console, args: dict[str, Any], value: Any) -> None:
        fields = _Fields(value if isinstance(value, dict) else {})
        fields.update(args, names=" ".join(args.get("names") or []), value=value)
        line = template.format_map(fields)
        out.print(" ".join(line.split()), highlight=False, markup=False, soft_wrap=True)

    return render


class _Fields(dict[str, Any]):
    """Template fields; a field the reply lacks shows as ``?`` instead of failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def show_text(out: Console, args: dict[str, Any], value: Any) -> None:
    """Print text (a log tail, a file) exactly as it came."""
    text = str(value)
    out.file.write(text if text.endswith("\n") or not text else text + "\n")
    out.file.flush()


def show_status(out: Console, args: dict[str, Any], value: Any) -> None:
    """``check_status``: the server's state with its jobs and sites, or a table of sites."""
    if args.get("target") == "client":
        table = Table("Site", "Org", "Connected", "Last seen", "Jobs", title=None)
        for site in value.get("sites", []):
            table.add_row(
                str(site.get("name", "")),
                str(site.get("org", "")),
                "yes" if site.get("connected") else "no",
                _ago(site.get("last_seen_s")),
                ", ".join(str(j) for j in site.get("jobs", [])) or "-",
            )
        out.print(table)
        return
    out.print(f"Engine status: {value.get('status', '?')}", highlight=False, markup=False)
    out.print(f"Start time: {_when(value.get('start_time'))}", highlight=False, markup=False)
    jobs = value.get("jobs", [])
    if jobs:
        out.print(_job_table(out, jobs, {}))
    else:
        out.print("No jobs running.", highlight=False)
    sites = [str(s) for s in value.get("sites", [])]
    out.print(f"Registered clients: {len(sites)}", highlight=False, markup=False)
    if sites:
        out.print("  " + ", ".join(sites), highlight=False, markup=False)


def show_jobs(out: Console, args: dict[str, Any], value: Any) -> None:
    """``list_jobs``: one row per job; with -d, each job's history below the table."""
    if not value:
        out.print("No jobs.", highlight=False)
        return
    out.print(_job_table(out, value, _EXTRA_COLUMNS))
    if args.get("detailed"):
        for job in value:
            out.print()
            _details(out, job)


def show_job(out: Console, args: dict[str, Any], value: Any) -> None:
    """``get_job`` and ``wait``: one job's fields, history, wait reason and failure."""
    grid = Table.grid(padding=(0, 2))
    for key in ("job_id", "name", "status", "submitter", "submitted_at", "duration_s"):
        shown = {"submitted_at": _when, "duration_s": _duration}.get(key, _plain)(value.get(key))
        grid.add_row(Text(key, style="bold"), Text(shown))
    out.print(grid)
    _details(out, value)


def show_data(out: Console, args: dict[str, Any], value: Any) -> None:
    """Any other result: lists of records as tables, other values as ``key: value`` lines."""
    if not isinstance(value, dict):
        out.print(json.dumps(value, indent=2, default=str), highlight=False, markup=False)
        return
    for key, item in value.items():
        if isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
            out.print(Text(f"{key}:", style="bold"))
            columns = list(dict.fromkeys(k for row in item for k in row))
            table = Table(*columns)
            for row in item:
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
_EXTRA_COLUMNS: dict[str, Callable[[dict[str, Any]], str]] = {
    "Submitter": lambda job: str(job.get("submitter", "")),
    "Submitted": lambda job: _when(job.get("submitted_at")),
    "Duration": lambda job: _duration(job.get("duration_s")),
}
_NAME_MIN = 10


def _job_table(
    out: Console, jobs: list[dict[str, Any]], extra: dict[str, Callable[[dict[str, Any]], str]]
) -> Table:
    """Job id, name, status and as many ``extra`` columns as fit the terminal.

    Ids and statuses are never wrapped or cut: people copy them, scripts match them.
    """
    ids = [str(j.get("job_id")) for j in jobs]
    statuses = [_status(j) for j in jobs]
    id_width = max(6, *(len(i) for i in ids))
    status_width = max(6, *(len(s.plain) for s in statuses))
    columns = {name: [cell(j) for j in jobs] for name, cell in extra.items()}

    def needed() -> int:
        widths = [id_width, _NAME_MIN, status_width]
        widths += [max(len(n), *(len(v) for v in vals)) for n, vals in columns.items()]
        return sum(w + 3 for w in widths) + 1

    while columns and needed() > out.width:
        del columns[next(iter(columns))]
    table = Table()
    table.add_column("Job ID", no_wrap=True, min_width=id_width)
    name_width = min(_NAME_MIN, max(len(str(j.get("name"))) for j in jobs))
    table.add_column("Name", min_width=name_width, overflow="fold")
    table.add_column("Status", no_wrap=True, min_width=status_width)
    for name in columns:
        table.add_column(name)
    for row, job in enumerate(jobs):
        cells = [vals[row] for vals in columns.values()]
        table.add_row(ids[row], str(job.get("name", "")), statuses[row], *cells)
    return table


def _details(out: Console, job: dict[str, Any]) -> None:
    history = job.get("history") or []
    if history:
        out.print(Text(f"history of {job.get('job_id')}:", style="bold"))
        for change in history:
            reason = change.get("reason") or ""
            line = f"  {_when(change.get('at'))}  {change.get('status', '?')}"
            out.print(f"{line}  {reason}".rstrip(), highlight=False, markup=False)
    if job.get("waiting"):
        why = str(job["waiting"])
        why = why if why.startswith("waiting") else f"waiting: {why}"
        out.print(f"  {why}", highlight=False, markup=False)
    failure = job.get("failure")
    if failure:
        out.print(Text("  failure:", style="bold red"))
        detail = json.dumps(failure, indent=2, default=str)
        out.print("    " + detail.replace("\n", "\n    "), highlight=False, markup=False)


def _status(job: dict[str, Any]) -> Text:
    status = str(job.get("status", "?"))
    style = "green" if status == "FINISHED:COMPLETED" else "red" if "FAIL" in status else ""
    if status.endswith(("ABORTED", "EXCEPTION")):
        style = "red"
    return Text(status, style=style)


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _when(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _duration(value: Any) -> str:
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


def _ago(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{_duration(value)} ago"
