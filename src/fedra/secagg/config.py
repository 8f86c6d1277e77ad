"""The parameters of a secure aggregation round, chosen by the server and sent to the sites."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fedra.secagg.errors import SecAggError
from fedra.secagg.graph import default_degree, default_threshold, neighbours
from fedra.secagg.quantize import Quantizer


@dataclass(frozen=True)
class SecAggConfig:
    """What every site of a round must agree on.

    - ``clip``, ``bits``, ``modulus_bits``: the quantization (see :class:`Quantizer`).
    - ``weighted``: each site multiplies its quantized update by its integer weight (its
      ``num_samples``, at most ``max_weight``) and adds the weight as one more masked
      element, so the server learns the weighted sum and the total weight, never a site's
      weight. Otherwise every site counts once.
    - ``degree``: neighbours per site (None: :func:`default_degree`).
    - ``threshold``: shares needed to recover a secret (None: a strict majority of its
      holders, the site and its neighbours).
    """

    clip: float = 1.0
    bits: int = 24
    modulus_bits: int = 64
    weighted: bool = True
    max_weight: int = 1 << 20
    degree: int | None = None
    threshold: int | None = None

    def __post_init__(self) -> None:
        self.quantizer  # noqa: B018 - validates clip, bits and modulus_bits
        if not isinstance(self.weighted, bool):
            raise SecAggError(f"weighted must be true or false, got {self.weighted!r}")
        _positive("max_weight", self.max_weight)
        if self.degree is not None:
            _positive("degree", self.degree)
        if self.threshold is not None:
            _positive("threshold", self.threshold)
            if self.threshold < 2:
                raise SecAggError("threshold must be >= 2: one share would reveal the secret")

    @property
    def quantizer(self) -> Quantizer:
        """The quantizer these parameters describe."""
        return Quantizer(self.clip, self.bits, self.modulus_bits)

    def degree_for(self, sites: int) -> int:
        """The number of neighbours of each site in a round of ``sites`` sites."""
        full = max(sites - 1, 0)
        return min(full, default_degree(sites) if self.degree is None else self.degree)

    def threshold_for(self, holders: int) -> int:
        """Shares needed out of ``holders`` (a site and its neighbours)."""
        chosen = default_threshold(holders) if self.threshold is None else self.threshold
        if chosen > holders:
            raise SecAggError(
                f"threshold {chosen} exceeds the {holders} holders of each secret "
                "(a site and its neighbours): lower threshold or raise degree"
            )
        return chosen

    def plan(self, order: Sequence[int]) -> tuple[dict[int, frozenset[int]], int]:
        """The neighbour graph over ``order`` and the threshold that goes with it.

        Sites and server both call this on the same order, so they agree on both.
        """
        self.check(len(order))
        graph = neighbours(order, self.degree_for(len(order)))
        holders = 1 + max(len(n) for n in graph.values())
        return graph, self.threshold_for(holders)

    def check(self, sites: int) -> None:
        """Refuse a round of ``sites`` sites these parameters cannot serve."""
        if sites < 2:
            raise SecAggError(f"secure aggregation needs at least 2 sites, got {sites}")
        self.quantizer.check_capacity(sites, self.max_weight if self.weighted else 1)
        self.threshold_for(self.degree_for(sites) + 1)

    def to_json(self) -> dict[str, Any]:
        """The JSON form sent to the sites."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> SecAggConfig:
        """Parse and validate the JSON form; a SecAggError names what is wrong."""
        if not isinstance(data, dict):
            raise SecAggError(f"secagg config must be an object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise SecAggError(f"secagg config has unknown keys {sorted(unknown)}")
        return cls(**data)


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SecAggError(f"{name} must be an integer >= 1, got {value!r}")
