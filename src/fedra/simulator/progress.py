"""What the simulator shows while it runs: a bar per round and a line per finished round."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from fedra.core import MetricValue


def format_metrics(metrics: Mapping[str, MetricValue]) -> str:
    """``key=value`` pairs, numbers to 4 significant digits."""
    parts = []
    for key, value in sorted(metrics.items()):
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts) or "(no metrics)"


class ProgressDisplay:
    """Events sink drawing a rich progress bar per round."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("sites"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def round_started(self, workflow: str, round_num: int, total_rounds: int, sites: int) -> None:
        """Show a fresh bar for the round."""
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(
            f"{workflow} round {round_num}/{total_rounds}", total=sites
        )

    def result_received(self, workflow: str, round_num: int, site: str) -> None:
        """Advance the bar."""
        if self._task is not None:
            self._progress.advance(self._task)

    def round_finished(
        self, workflow: str, round_num: int, metrics: Mapping[str, MetricValue]
    ) -> None:
        """Print the round's aggregated metrics."""
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.console.print(f"{workflow} round {round_num}: {format_metrics(metrics)}")
