"""Filters that select params by name, and one that refuses non-finite values."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from fedra.core import FLModel, Params
from fedra.filters._util import replace_params
from fedra.filters.base import FilterContext, FilterError


class _NameSelector:
    """Match params by exact name or by a regex (``re.fullmatch``), compiled once."""

    def __init__(self, names: Iterable[str] | None = None, pattern: str | None = None) -> None:
        if names is None and pattern is None:
            raise ValueError(f"{type(self).__name__} needs names, a pattern, or both")
        self.names: frozenset[str] = frozenset(names or ())
        try:
            self.pattern: re.Pattern[str] | None = (
                re.compile(pattern) if pattern is not None else None
            )
        except re.error as err:
            raise ValueError(f"{type(self).__name__}: invalid regex {pattern!r}: {err}") from err

    def matches(self, name: str) -> bool:
        """Whether ``name`` is listed or fully matches the pattern."""
        return name in self.names or (
            self.pattern is not None and self.pattern.fullmatch(name) is not None
        )

    def _select(self, model: FLModel, keep_matching: bool) -> FLModel:
        if model.params is None:
            return replace_params(model, None)
        kept: Params = {n: a for n, a in model.params.items() if self.matches(n) == keep_matching}
        return replace_params(model, kept)

    def __repr__(self) -> str:
        pattern = self.pattern.pattern if self.pattern is not None else None
        return f"{type(self).__name__}(names={sorted(self.names)!r}, pattern={pattern!r})"


class ExcludeVars(_NameSelector):
    """Drop params by exact name or regex, so they never leave (or enter) the site.

    Protects: layers a site must not share (e.g. a personalised head, embeddings of
    private vocabulary). Parameters: ``names`` (exact names), ``pattern`` (regex matched
    with ``re.fullmatch``); a param matching either is dropped.
    """

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the model without the matching params."""
        return self._select(model, keep_matching=False)


class IncludeVars(_NameSelector):
    """Keep only params matching exact names or a regex; drop the rest.

    Protects: everything not explicitly allowed (an allow-list, safer than a deny-list).
    Parameters: ``names`` (exact names), ``pattern`` (regex matched with ``re.fullmatch``).
    """

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the model with only the matching params."""
        return self._select(model, keep_matching=True)


class RejectNonFinite:
    """Refuse a model whose float params hold NaN or Inf.

    Protects: the aggregate from a broken or malicious update (on the server, for
    incoming results) and the server from a site's diverged training (on a site, for
    outgoing results). No parameters; raises :class:`FilterError` naming the param.
    """

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the model unchanged, or raise FilterError on the first bad param."""
        for name in sorted(model.params or {}):
            array = (model.params or {})[name]
            if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
                raise FilterError(
                    f"param '{name}' has non-finite values (NaN or Inf) "
                    f"in {ctx.direction} of task '{ctx.task_name}' at site '{ctx.site}'"
                )
        return model

    def __repr__(self) -> str:
        return "RejectNonFinite()"
