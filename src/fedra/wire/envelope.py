"""Envelope: the message unit of every hop (site and server, parent and job process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedra.core import FLModel


@dataclass(frozen=True)
class Envelope:
    """A message: what it is (``kind``), JSON-compatible headers, and an optional model.

    ``headers`` travel as strict JSON (no NaN or infinities); the model's arrays travel as raw
    bytes next to them.
    """

    kind: str
    headers: dict[str, Any] = field(default_factory=dict)
    model: FLModel | None = None
