"""Who shares secrets and masks with whom: the SecAgg+ neighbour graph.

Small federations use the complete graph (every pair of sites masks, as in the original
SecAgg). Larger ones use a ring-shaped regular graph of degree ``2 * ceil(degree / 2)``
(each site is joined to the ``ceil(degree / 2)`` sites on either side of it in an order the
server shuffles every round), so each site's work grows with the degree, not the number of
sites (Bell et al., CCS 2020, use a random graph of logarithmic degree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Up to this many sites the complete graph is the default.
FULL_GRAPH_MAX = 16


def default_degree(sites: int) -> int:
    """The degree used when none is configured: complete up to 16 sites, else ~2*log2(n)."""
    if sites <= FULL_GRAPH_MAX:
        return max(sites - 1, 0)
    return min(sites - 1, 2 * math.ceil(math.log2(sites)))


def default_threshold(holders: int) -> int:
    """A strict majority of a secret's share holders (a site and its neighbours)."""
    return holders // 2 + 1


def neighbours(order: Sequence[int], degree: int) -> dict[int, frozenset[int]]:
    """Each node's neighbours: complete if ``degree >= len(order) - 1``, else a ring."""
    count = len(order)
    if len(set(order)) != count:
        raise ValueError(f"graph nodes must be distinct, got {list(order)}")
    if degree < 1 and count > 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    if degree >= count - 1:
        nodes = frozenset(order)
        return {node: nodes - {node} for node in order}
    half = math.ceil(degree / 2)
    graph: dict[int, frozenset[int]] = {}
    for position, node in enumerate(order):
        around = {order[(position + d) % count] for d in range(1, half + 1)}
        around |= {order[(position - d) % count] for d in range(1, half + 1)}
        graph[node] = frozenset(around - {node})
    return graph
