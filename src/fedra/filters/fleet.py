"""FilteredFleet: the server's result filters, run on every result before a workflow sees it.

The job's server config may list ``result_filters`` (built-ins of :data:`fedra.filters.FILTERS`,
such as RejectNonFinite and ClipNorm). The runtime wraps the Fleet it hands the workflows in a
:class:`FilteredFleet`, so every workflow (FedAvg, FedOpt, cyclic, cross-site evaluation …) gets
filtered results without knowing about filters.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from fedra.core import Fleet, FLModel, TaskResult
from fedra.filters.base import TASK_RESULT, Filter, FilterChain, FilterContext, FilterError

log = logging.getLogger("fedra.filters")


@dataclass(frozen=True)
class Rejection:
    """A result a server filter refused: who sent it, for which task and round, and why."""

    site: str
    task_name: str
    round: int | None
    reason: str


class FilteredFleet:
    """A Fleet whose results pass through ``chain`` on the server.

    - A result that carries a model is filtered with a :class:`FilterContext` naming the site
      that sent it, the task, the round of the model sent, and the model sent as
      ``reference`` (so a filter can clip full params as an update).
    - A filter raising :class:`FilterError` rejects the result: it is dropped and logged with
      the site and the reason (and kept in :attr:`rejections`), not fatal to the round. A
      broadcast then yields fewer results, and the workflow's own rules (``min_clients``)
      decide whether the round can go on. Note that the fleet underneath still counted the
      dropped result as an answer (for ``min_responses`` and ``wait_after_min``).
    - :meth:`send` (one task, one site) cannot drop its only result: a rejected one comes back
      as an error result naming the filter's reason, which the workflow reports as that
      site's failure.
    - Error results and results without a model pass unchanged. Any other exception from a
      filter is a bug and propagates.
    """

    def __init__(
        self,
        fleet: Fleet,
        chain: FilterChain | Sequence[Filter],
        rng: np.random.Generator | None = None,
    ) -> None:
        self._fleet = fleet
        self.chain = chain if isinstance(chain, FilterChain) else FilterChain(chain)
        self._rng = rng if rng is not None else np.random.default_rng()
        #: Every rejection so far, oldest first.
        self.rejections: list[Rejection] = []

    def sites(self) -> list[str]:
        """The sites of the fleet underneath."""
        return self._fleet.sites()

    def aborted(self) -> bool:
        """Whether the fleet underneath was aborted."""
        return self._fleet.aborted()

    def broadcast(
        self,
        task_name: str,
        data: FLModel,
        targets: Sequence[str] | None = None,
        *,
        min_responses: int | None = None,
        wait_after_min: float = 0.0,
        timeout: float | None = None,
    ) -> Iterator[TaskResult]:
        """The fleet's broadcast, yielding only the results the chain lets through."""
        results = self._fleet.broadcast(
            task_name,
            data,
            targets,
            min_responses=min_responses,
            wait_after_min=wait_after_min,
            timeout=timeout,
        )
        return self._filtered(results, data)

    def send(
        self, task_name: str, data: FLModel, target: str, *, timeout: float | None = None
    ) -> TaskResult:
        """The fleet's send; a rejected result becomes an error result with the reason."""
        result = self._fleet.send(task_name, data, target, timeout=timeout)
        kept, reason = self._apply(result, data)
        if kept is not None:
            return kept
        return TaskResult(
            result.task_id,
            result.task_name,
            result.site,
            error=f"result rejected by the server's result filters: {reason}",
        )

    def _filtered(self, results: Iterator[TaskResult], sent: FLModel) -> Iterator[TaskResult]:
        try:
            for result in results:
                kept, _reason = self._apply(result, sent)
                del result  # the fleet's back-pressure counts on results being let go
                if kept is not None:
                    yield kept
                del kept
        finally:
            close = getattr(results, "close", None)
            if callable(close):
                close()  # an abandoned broadcast releases what it still holds

    def _apply(self, result: TaskResult, sent: FLModel) -> tuple[TaskResult | None, str]:
        """The filtered result, or None and the reason it was rejected."""
        if not result.ok or result.data is None or not len(self.chain):
            return result, ""
        ctx = FilterContext(
            site=result.site,
            task_name=result.task_name,
            direction=TASK_RESULT,
            round=sent.current_round,
            rng=self._rng,
            reference=sent.params,
        )
        try:
            data = self.chain(result.data, ctx)
        except FilterError as exc:
            rejection = Rejection(result.site, result.task_name, sent.current_round, str(exc))
            self.rejections.append(rejection)
            log.warning(
                "server result filter rejected the result of site %s for task '%s' (round %s): %s",
                rejection.site,
                rejection.task_name,
                rejection.round,
                rejection.reason,
            )
            return None, rejection.reason
        return dataclasses.replace(result, data=data), ""
