"""The router's table of a job's outstanding tasks, indexed by task id and by site.

With a thousand sites a job has a thousand tasks out in every round. Whether a site still
has a task (asked at each upload request and each refused result) and which tasks a leaving
site had are looked up in the site index, not by a scan of every task: the cost of one
site's message does not grow with the number of sites.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

from fedra.serverapp.resultspec import Expectation


@dataclass
class OutstandingTask:
    """A task sent to ``site`` and not answered yet."""

    site: str
    expected: Expectation
    #: Its result passed the receive gate and is being received.
    admitted: bool = False


class TaskTable(MutableMapping[str, OutstandingTask]):
    """Task id -> :class:`OutstandingTask`, with each site's task ids beside it."""

    def __init__(self) -> None:
        self._tasks: dict[str, OutstandingTask] = {}
        self._by_site: dict[str, set[str]] = {}

    def __getitem__(self, task_id: str) -> OutstandingTask:
        return self._tasks[task_id]

    def __setitem__(self, task_id: str, task: OutstandingTask) -> None:
        if task_id in self._tasks:
            del self[task_id]
        self._tasks[task_id] = task
        self._by_site.setdefault(task.site, set()).add(task_id)

    def __delitem__(self, task_id: str) -> None:
        task = self._tasks.pop(task_id)
        ids = self._by_site[task.site]
        ids.discard(task_id)
        if not ids:
            del self._by_site[task.site]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def clear(self) -> None:
        """Forget every task."""
        self._tasks.clear()
        self._by_site.clear()

    def has_site(self, site: str) -> bool:
        """Whether ``site`` has a task outstanding."""
        return site in self._by_site

    def of_site(self, site: str) -> list[str]:
        """The ids of the tasks outstanding at ``site``."""
        return sorted(self._by_site.get(site, ()))
