"""Secure aggregation (SecAgg / SecAgg+): the server learns only the sum of the sites' updates.

A pure protocol package (no I/O): pairwise masks agreed with X25519 and expanded with
AES-CTR, a self mask per site, Shamir sharing of the secrets needed to remove the masks of
sites that drop out, and fixed-point quantization so that masks cancel exactly. The
workflow :class:`fedra.workflows.SecAggFedAvg` and the site wrapper
:class:`fedra.client.SecAggClient` run it over the ordinary task messages.

References: Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", CCS 2017; Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic
Overhead", CCS 2020.
"""

from fedra.secagg.config import SecAggConfig
from fedra.secagg.errors import SecAggError
from fedra.secagg.graph import default_degree, default_threshold, neighbours
from fedra.secagg.messages import (
    PREFIX,
    TASK_ADVERTISE,
    TASK_MASKED_INPUT,
    TASK_SHARE_KEYS,
    TASK_UNMASK,
    TASKS,
    AdvertiseReply,
    AdvertiseRequest,
    MaskedInputReply,
    MaskedInputRequest,
    ShareKeysReply,
    ShareKeysRequest,
    UnmaskReply,
    UnmaskRequest,
)
from fedra.secagg.quantize import Quantizer
from fedra.secagg.server import AggregateResult, SecAggServer, Stage
from fedra.secagg.shamir import PRIME, Share, reconstruct, split
from fedra.secagg.site import SecAggSite, SiteState
from fedra.secagg.vectors import check_layout, split_vector, update_vector, vector_length

__all__ = [
    "PREFIX",
    "PRIME",
    "TASKS",
    "TASK_ADVERTISE",
    "TASK_MASKED_INPUT",
    "TASK_SHARE_KEYS",
    "TASK_UNMASK",
    "AdvertiseReply",
    "AdvertiseRequest",
    "AggregateResult",
    "MaskedInputReply",
    "MaskedInputRequest",
    "Quantizer",
    "SecAggConfig",
    "SecAggError",
    "SecAggServer",
    "SecAggSite",
    "Share",
    "ShareKeysReply",
    "ShareKeysRequest",
    "SiteState",
    "Stage",
    "UnmaskReply",
    "UnmaskRequest",
    "check_layout",
    "default_degree",
    "default_threshold",
    "neighbours",
    "reconstruct",
    "split",
    "split_vector",
    "update_vector",
    "vector_length",
]
