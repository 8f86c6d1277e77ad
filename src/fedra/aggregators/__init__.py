"""Aggregators: how the results of a round become one model (pure: no I/O)."""

from fedra.aggregators.weighted import WeightedAggregator, apply_update

__all__ = ["WeightedAggregator", "apply_update"]
