"""Drives one secure aggregation round between a SecAggServer and SecAggSites in process.

Every message goes through the real wire codec (``encode_model`` / ``decode_model``), so the
FLModel forms are exactly what a networked federation would carry. ``observe`` sees every
reply as the server receives it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from fedra.core import Array, FLModel
from fedra.secagg import (
    AdvertiseRequest,
    AggregateResult,
    MaskedInputRequest,
    SecAggConfig,
    SecAggServer,
    SecAggSite,
    ShareKeysRequest,
    UnmaskRequest,
)
from fedra.wire import decode_model, encode_model

Observer = Callable[[str, str, FLModel], None]


def wire(model: FLModel) -> FLModel:
    """``model`` after a trip through the wire format."""
    return decode_model(encode_model(model))


def names(count: int) -> list[str]:
    return [f"site-{i}" for i in range(1, count + 1)]


@dataclass
class Dropouts:
    """Sites that stop at a stage: they never answer it (nor anything after it)."""

    advertise: Collection[str] = ()
    share_keys: Collection[str] = ()
    masked_input: Collection[str] = ()  # trained, but the masked input never arrived
    unmask: Collection[str] = ()  # sent the masked input, then went away


@dataclass
class Round:
    server: SecAggServer
    sites: dict[str, SecAggSite]
    result: AggregateResult | None = None
    replies: dict[str, dict[str, FLModel]] = field(default_factory=dict)


def run_round(
    inputs: Mapping[str, Array],
    config: SecAggConfig,
    weights: Mapping[str, float] | None = None,
    dropouts: Dropouts | None = None,
    observe: Observer | None = None,
) -> Round:
    """One full round; returns the server, the sites, and the result."""
    drop = dropouts or Dropouts()
    participants = list(inputs)
    length = len(next(iter(inputs.values())))
    server = SecAggServer(participants, config, length)
    sites = {name: SecAggSite(name) for name in participants}
    rnd = Round(server, sites)

    def reply(stage: str, name: str, model: FLModel) -> None:
        received = wire(model)
        rnd.replies.setdefault(stage, {})[name] = received
        if observe is not None:
            observe(stage, name, received)
        server.accept(name, received)

    request = wire(server.advertise_request().to_model(1))
    for name in server.targets():
        if name not in drop.advertise:
            reply(
                "advertise",
                name,
                sites[name].advertise(AdvertiseRequest.from_model(request)).to_model(),
            )
    server.advance()
    request = wire(server.share_keys_request().to_model(1))
    for name in server.targets():
        if name not in drop.share_keys:
            reply(
                "share_keys",
                name,
                sites[name].share_keys(ShareKeysRequest.from_model(request)).to_model(),
            )
    server.advance()
    global_model = FLModel(params={"w": np.zeros(length)}, current_round=1)
    request = wire(server.masked_input_request(global_model, "train").to_model())
    for name in server.targets():
        site = sites[name]
        assert site.index is not None
        site.receive_shares(MaskedInputRequest.from_model(request, recipient=site.index))
        weight = 1.0 if weights is None else weights[name]
        masked = site.mask(inputs[name], weight).to_model()
        if name not in drop.masked_input:
            reply("masked_input", name, masked)
    server.advance()
    request = wire(server.unmask_request().to_model(1))
    for name in server.targets():
        if name not in drop.unmask:
            reply("unmask", name, sites[name].unmask(UnmaskRequest.from_model(request)).to_model())
    rnd.result = server.result()
    return rnd


def quantized(x: Array, clip: float, bits: int) -> Array:
    """Independent fixed-point quantization: round(clip(x) / step) as Python-exact int64."""
    step = clip / (2 ** (bits - 1) - 1)
    return np.rint(np.clip(x, -clip, clip) / step).astype(np.int64)
