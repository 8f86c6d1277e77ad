"""Tables of the comparison: medians per system, Fedra/peer ratios, and the docs block.

Results are kept as plain data (``Results``) so that runs of some rows can be merged into
the results of earlier runs (``--rows`` runs the harness in parts) and the table in
``docs/benchmarks.md`` is always written from everything measured so far.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SYSTEM_TITLES = {"fedra": "Fedra", "nvflare": "FLARE 2.9.0", "flower": "Flower 1.42.0"}
BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str) -> str:
    """A figure with a sensible number of digits."""
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.0f}%"
    if unit in ("MiB", "MB/s"):
        return f"{value:.0f}"
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.4f}"


def ratio(fedra: float | None, peer: float | None) -> str:
    """Fedra / peer, or '-' when either is missing."""
    if fedra is None or peer is None or peer == 0:
        return "-"
    value = fedra / peer
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


class Results:
    """Figures per (row, metric, system), errors per (row, system), row metadata."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data or {"rows": {}, "limits": {}, "machine": {}}

    @classmethod
    def load(cls, path: Path) -> Results:
        """Results saved by an earlier run (empty when there is none)."""
        if path.exists():
            return cls(json.loads(path.read_text(encoding="utf-8")))
        return cls()

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.data, indent=1) + "\n", encoding="utf-8")

    def start_row(
        self,
        row: str,
        title: str,
        order: int,
        when: str,
        settings: str,
        systems: Sequence[str],
    ) -> None:
        """Forget ``systems``' earlier figures of ``row`` (others' stay); describe this run.

        A row run for some systems only keeps the other systems' figures of an earlier run;
        ``when`` then lists both dates.
        """
        old = self.data["rows"].get(row)
        entry: dict[str, Any] = {"title": title, "order": order, "when": when,
                                 "settings": settings, "metrics": {}, "errors": {}}  # fmt: skip
        if old is not None:
            kept = False
            for metric, values in old["metrics"].items():
                others = {s: v for s, v in values["values"].items() if s not in systems}
                if others:
                    kept = True
                    entry["metrics"][metric] = {**values, "values": others}
            entry["errors"] = {s: e for s, e in old["errors"].items() if s not in systems}
            kept = kept or bool(entry["errors"])
            if kept and old["when"] != when:
                entry["when"] = f"{when}; other systems {old['when'].split('; ')[0]}"
            if kept and old["settings"] != settings:
                entry["settings"] = f"{settings} (other systems: {old['settings']})"
        self.data["rows"][row] = entry

    def add(self, row: str, metric: str, unit: str, system: str, value: float) -> None:
        """One measured value."""
        metrics = self.data["rows"][row]["metrics"]
        entry = metrics.setdefault(metric, {"unit": unit, "order": len(metrics), "values": {}})
        entry["values"].setdefault(system, []).append(value)

    def error(self, row: str, system: str, text: str) -> None:
        """A run that gave no figure (timeout, crash, low memory)."""
        self.data["rows"][row]["errors"].setdefault(system, []).append(text)

    def medians(self, row: str, metric: str) -> dict[str, float | None]:
        """Median per system of one metric."""
        values = self.data["rows"][row]["metrics"][metric]["values"]
        return {system: median(v) for system, v in values.items()}

    def table(self, systems: Sequence[str]) -> tuple[list[str], list[list[str]]]:
        """Headers and rows of the comparison table (medians; Fedra/peer ratios)."""
        peers = [s for s in systems if s != "fedra"]
        headers = ["row", "metric", *(SYSTEM_TITLES[s] for s in systems)]
        headers += [f"Fedra/{SYSTEM_TITLES[p].split()[0]}" for p in peers if "fedra" in systems]
        rows: list[list[str]] = []
        ordered = sorted(self.data["rows"].items(), key=lambda kv: kv[1]["order"])
        for name, row in ordered:
            for metric, entry in sorted(row["metrics"].items(), key=lambda kv: kv[1]["order"]):
                meds = self.medians(name, metric)
                unit = entry["unit"]
                cells = [row["title"], f"{metric} ({unit})" if unit else metric]
                for system in systems:
                    value = meds.get(system)
                    if value is None and row["errors"].get(system):
                        cells.append(short_error(row["errors"][system][0]))
                    else:
                        cells.append(fmt(value, unit))
                if "fedra" in systems:
                    cells += [ratio(meds.get("fedra"), meds.get(p)) for p in peers]
                rows.append(cells)
        return headers, rows


def short_error(text: str) -> str:
    """A table cell for a run without figures."""
    text = text.split(" (log:", 1)[0]
    if text.startswith("timeout"):
        return text.replace("timeout after", "no result in")
    if text.startswith("low memory"):
        return "stopped: low memory"
    return "failed"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first two columns left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |"]
    out.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def render_block(results: Results, systems: Sequence[str], command: str) -> str:
    """The Markdown block written between the markers in docs/benchmarks.md."""
    data = results.data
    machine = data.get("machine", {})
    lines = [
        f"Latest run: {machine.get('date', '?')} with `{command}` (each row below gives the "
        "date and settings of its own runs). Machine: "
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')}, {machine.get('ram', '?')} RAM, "
        f"Python {machine.get('python', '?')}; load average at the start "
        f"{machine.get('load average at start (1/5/15 min)', '?')}.",
        "",
    ]
    headers, rows = results.table(systems)
    lines += [markdown_table(headers, rows), ""]
    limits = data.get("limits", {})
    if limits:
        parts = [f"{name}: {value:.0f} MB/s" for name, value in limits.items()]
        lines += [
            "Physical limits (best run, used for the % of limit figures): "
            + "; ".join(parts)
            + ".",
            "",
        ]
    lines.append("Rows (each with its own settings and date, as rows may be run in parts):")
    lines.append("")
    for _, row in sorted(data["rows"].items(), key=lambda kv: kv[1]["order"]):
        lines.append(f"- **{row['title']}** ({row['when']}): {row['settings']}")
        for system, errors in sorted(row["errors"].items()):
            lines.append(f"  - {SYSTEM_TITLES[system]}: {errors[0].split(' (log:', 1)[0]}")
    return "\n".join(lines)


def write_docs(path: Path, block: str) -> None:
    """Replace what lies between the markers in ``path`` (append the markers if absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{BEGIN}\n{block}\n{END}{tail}"
    else:
        text = (
            text.rstrip("\n")
            + "\n\n## Comparison with NVIDIA FLARE and Flower\n\n"
            + f"{BEGIN}\n{block}\n{END}\n"
        )
    path.write_text(text, encoding="utf-8")
