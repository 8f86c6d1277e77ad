"""The filter contract, its context, and how the job's and the site's chains combine.

A filter takes an :class:`~fedra.core.FLModel` and returns a new one; it never changes the
arrays it was given (they may be read-only views shared with other sites). Two chains run on
every message a site exchanges: the job's own filters and the site's mandatory privacy
policy. :func:`wrap_chains` decides their order so that the site policy always sees what
leaves the site last and what enters it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np

from fedra.core import FedraError, FLModel, Params

Direction: TypeAlias = Literal["task_data", "task_result"]
TASK_DATA: Direction = "task_data"
TASK_RESULT: Direction = "task_result"


class FilterError(FedraError):
    """A filter refused a model (wrong params type, non-finite values, ...)."""


@dataclass(frozen=True)
class FilterContext:
    """Where and when a filter runs; ``rng`` makes randomised filters reproducible.

    On the server (see :class:`~fedra.filters.FilteredFleet`) ``site`` is the site that sent
    the result being filtered.
    """

    site: str
    task_name: str
    direction: Direction
    round: int | None = None
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    #: The model the result answers (the global model the server sent), where known: on the
    #: server for incoming results; None on sites. Lets a filter turn full params into an update.
    reference: Params | None = None
    #: The site's ``startup/`` folder (its kit), where site-held keys live (the HE filters
    #: read their context there); None where the site has no kit.
    startup_dir: Path | None = None


@runtime_checkable
class Filter(Protocol):
    """Turns a model into a filtered copy; must not modify the input in place."""

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the filtered model."""
        ...


class FilterChain:
    """Filters applied one after another, in the order given."""

    def __init__(self, filters: Sequence[Filter] = ()) -> None:
        self.filters: tuple[Filter, ...] = tuple(filters)

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Run every filter in order, each on the previous one's output."""
        for f in self.filters:
            model = f(model, ctx)
        return model

    def __len__(self) -> int:
        return len(self.filters)

    def __repr__(self) -> str:
        return f"FilterChain({list(self.filters)!r})"


def wrap_chains(
    site_policy: Sequence[Filter], job: Sequence[Filter], direction: Direction
) -> FilterChain:
    """Combine a site's mandatory policy with a job's filters for one direction.

    - ``task_result`` (leaving the site): job filters first, then the site policy, so the
      site has the final word on what leaves it.
    - ``task_data`` (entering the site): site policy first, then the job filters, so the
      site checks incoming data before any job code sees it.
    """
    if direction == TASK_RESULT:
        return FilterChain([*job, *site_policy])
    if direction == TASK_DATA:
        return FilterChain([*site_policy, *job])
    raise ValueError(f"direction must be 'task_data' or 'task_result', got {direction!r}")
