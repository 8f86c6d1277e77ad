"""Aggregators: how the results of a round become one model (pure: no I/O)."""

from fedra.aggregators.dp import DPGaussianAggregator
from fedra.aggregators.he import HEWeightedAggregator
from fedra.aggregators.robust import (
    AGGREGATORS,
    Aggregator,
    KrumAggregator,
    MedianAggregator,
    TrimmedMeanAggregator,
    krum_scores,
    make_aggregator,
    start_round,
    use_keys,
)
from fedra.aggregators.weighted import WeightedAggregator, apply_update

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "DPGaussianAggregator",
    "HEWeightedAggregator",
    "KrumAggregator",
    "MedianAggregator",
    "TrimmedMeanAggregator",
    "WeightedAggregator",
    "apply_update",
    "krum_scores",
    "make_aggregator",
    "start_round",
    "use_keys",
]
