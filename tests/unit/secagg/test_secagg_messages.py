"""Tampered, short, misrouted and out-of-turn messages give clear errors on both sides."""

from __future__ import annotations

import re

import numpy as np
import pytest
from secagg_harness import names, wire

from fedra.core import FLModel, InvalidTransition
from fedra.secagg import (
    AdvertiseRequest,
    MaskedInputRequest,
    SecAggConfig,
    SecAggError,
    SecAggServer,
    SecAggSite,
    ShareKeysReply,
    ShareKeysRequest,
    UnmaskReply,
    UnmaskRequest,
)

CONFIG = SecAggConfig(clip=1.0, bits=16)
LENGTH = 8


class Stepper:
    """A round with 5 sites, advanced stage by stage by the test."""

    def __init__(self) -> None:
        self.server = SecAggServer(names(5), CONFIG, LENGTH)
        self.sites = {n: SecAggSite(n) for n in names(5)}
        self.share_replies: dict[str, FLModel] = {}
        self.masked_request: FLModel | None = None

    def advertise(self) -> None:
        request = wire(self.server.advertise_request().to_model())
        for name, site in self.sites.items():
            self.server.accept(
                name, wire(site.advertise(AdvertiseRequest.from_model(request)).to_model())
            )
        self.server.advance()

    def share_keys(self) -> None:
        self.advertise()
        request = wire(self.server.share_keys_request().to_model())
        for name, site in self.sites.items():
            reply = wire(site.share_keys(ShareKeysRequest.from_model(request)).to_model())
            self.share_replies[name] = reply
            self.server.accept(name, reply)
        self.server.advance()
        global_model = FLModel(params={"w": np.zeros(LENGTH)})
        self.masked_request = wire(
            self.server.masked_input_request(global_model, "train").to_model()
        )

    def request_for(self, name: str) -> MaskedInputRequest:
        assert self.masked_request is not None
        return MaskedInputRequest.from_model(self.masked_request, self.sites[name].index)

    def mask(self, skip: tuple[str, ...] = ()) -> None:
        self.share_keys()
        for name, site in self.sites.items():
            site.receive_shares(self.request_for(name))
            reply = wire(site.mask(np.full(LENGTH, 0.25), 1).to_model())
            if name not in skip:
                self.server.accept(name, reply)
        self.server.advance()

    def unmask_replies(self) -> dict[str, UnmaskReply]:
        request = UnmaskRequest.from_model(wire(self.server.unmask_request().to_model()))
        return {n: self.sites[n].unmask(request) for n in self.server.targets()}


def _replace(model: FLModel, name: str, value: np.ndarray) -> FLModel:
    params = dict(model.params or {})
    params[name] = value
    return FLModel(
        params=params, params_type=model.params_type, metrics=model.metrics, meta=model.meta
    )


def test_a_short_ciphertext_is_refused_by_the_server() -> None:
    step = Stepper()
    step.advertise()
    request = step.server.share_keys_request().to_model()
    reply = step.sites["site-1"].share_keys(ShareKeysRequest.from_model(request)).to_model()
    assert reply.params is not None
    table = reply.params["_secagg/ct"]
    short = _replace(reply, "_secagg/ct", np.ascontiguousarray(table[:, :-5]))
    message = (
        "site-1, stage share_keys: secagg share-keys reply: '_secagg/ct' must be a uint8 table "
        f"of 168-byte rows, got uint8 of shape ({table.shape[0]}, 163)"
    )
    with pytest.raises(SecAggError, match=re.escape(message)):
        step.server.accept("site-1", short)
    ids = reply.params["_secagg/ct_ids"]
    with pytest.raises(SecAggError, match="'_secagg/ct_ids' must be uint32 of shape"):
        step.server.accept("site-1", _replace(reply, "_secagg/ct_ids", ids[:-1]))
    with pytest.raises(SecAggError, match="repeats an entry"):
        step.server.accept("site-1", _replace(reply, "_secagg/ct_ids", np.zeros_like(ids)))


def test_a_tampered_share_message_fails_authentication_at_its_recipient() -> None:
    step = Stepper()
    step.share_keys()
    request = step.request_for("site-2")
    me = step.sites["site-2"].index
    pair = next(p for p in request.ciphertexts if p[1] == me)
    blob = bytearray(request.ciphertexts[pair])
    blob[40] ^= 0x01
    tampered = MaskedInputRequest(
        request.session,
        request.senders,
        {**request.ciphertexts, pair: bytes(blob)},
        request.model,
        "train",
    )
    with pytest.raises(SecAggError, match="failed authentication"):
        step.sites["site-2"].receive_shares(tampered)


def test_a_share_message_routed_to_the_wrong_site_fails_authentication() -> None:
    step = Stepper()
    step.share_keys()
    request = step.request_for("site-2")
    me = step.sites["site-2"].index
    assert me is not None
    cts = dict(request.ciphertexts)
    first, second = sorted(p for p in cts if p[1] == me)[:2]
    cts[first], cts[second] = cts[second], cts[first]
    with pytest.raises(SecAggError, match="failed authentication"):
        step.sites["site-2"].receive_shares(
            MaskedInputRequest(request.session, request.senders, cts, request.model, "train")
        )


def test_a_missing_share_message_is_named() -> None:
    step = Stepper()
    step.share_keys()
    request = step.request_for("site-3")
    cts = dict(list(request.ciphertexts.items())[1:])
    with pytest.raises(SecAggError, match="expected share messages from sites"):
        step.sites["site-3"].receive_shares(
            MaskedInputRequest(request.session, request.senders, cts, request.model, "train")
        )


def test_share_messages_for_the_wrong_recipients_are_refused_by_the_server() -> None:
    step = Stepper()
    step.advertise()
    request = step.server.share_keys_request().to_model()
    reply = step.sites["site-1"].share_keys(ShareKeysRequest.from_model(request))
    misaddressed = ShareKeysReply(
        reply.session, {j + 10: ct for j, ct in reply.ciphertexts.items()}
    )
    with pytest.raises(SecAggError, match="expected share messages for sites"):
        step.server.accept("site-1", misaddressed.to_model())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a[:-1], "must be a 1-D uint64 array of 9 elements"),
        (lambda a: a.astype(np.int64), "must be a 1-D uint64 array"),
        (lambda a: a.astype(np.float64), "must be a 1-D uint64 array"),
    ],
)
def test_a_masked_vector_of_the_wrong_size_or_type_is_refused(change: object, message: str) -> None:
    step = Stepper()
    step.share_keys()
    site = step.sites["site-1"]
    site.receive_shares(step.request_for("site-1"))
    reply = site.mask(np.zeros(LENGTH), 1).to_model()
    assert reply.params is not None and callable(change)
    bad = _replace(reply, "_secagg/masked", change(reply.params["_secagg/masked"]))
    with pytest.raises(SecAggError, match=re.escape(message)):
        step.server.accept("site-1", bad)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({}, "meta['secagg'] is missing"),
        ({"secagg": {"stage": "unmask", "session": "00" * 16}}, "expected stage 'advertise'"),
        ({"secagg": {"stage": "advertise", "session": "zz"}}, "session must be 16 bytes in hex"),
        ({"secagg": {"stage": "advertise", "session": "00" * 8}}, "session must be 16 bytes"),
    ],
)
def test_bad_headers_are_refused(meta: dict[str, object], message: str) -> None:
    with pytest.raises(SecAggError, match=re.escape(message)):
        AdvertiseRequest.from_model(FLModel(meta=meta))


def test_an_advertise_reply_with_a_short_key_or_extra_params_is_refused() -> None:
    step = Stepper()
    request = step.server.advertise_request().to_model()
    reply = step.sites["site-1"].advertise(AdvertiseRequest.from_model(request)).to_model()
    assert reply.params is not None
    with pytest.raises(SecAggError, match="'_secagg/s_pk' must be 32 bytes, got 31"):
        step.server.accept(
            "site-1", _replace(reply, "_secagg/s_pk", reply.params["_secagg/s_pk"][:31])
        )
    with pytest.raises(SecAggError, match="unexpected parameters"):
        step.server.accept("site-1", _replace(reply, "weights", np.zeros(3)))


def test_the_server_refuses_a_key_share_of_a_survivor() -> None:
    """A site that (wrongly) sends both secrets of a survivor is refused, not stored."""
    step = Stepper()
    step.mask()
    replies = step.unmask_replies()
    honest = replies["site-1"]
    extra = UnmaskReply(honest.session, honest.b_shares, {1: bytes(66)})
    with pytest.raises(SecAggError, match="expected self-mask shares of"):
        step.server.accept("site-1", extra.to_model())
    assert all(not shares for shares in vars(step.server)["_sk_shares"].values())


def test_a_corrupted_self_mask_share_is_caught_by_the_commitment() -> None:
    step = Stepper()
    step.mask()
    replies = step.unmask_replies()
    bad = replies["site-1"]
    target = min(bad.b_shares)
    corrupted = dict(bad.b_shares)
    corrupted[target] = (int.from_bytes(corrupted[target], "big") ^ 1).to_bytes(66, "big")
    step.server.accept("site-1", UnmaskReply(bad.session, corrupted, bad.sk_shares).to_model())
    for name, reply in replies.items():
        if name != "site-1":
            step.server.accept(name, reply.to_model())
    with pytest.raises(SecAggError, match=r"does not match its commitment|inconsistent"):
        step.server.result()


def test_a_corrupted_key_share_is_caught_by_the_public_key() -> None:
    step = Stepper()
    step.mask(skip=("site-4",))
    replies = step.unmask_replies()
    assert "site-4" not in replies
    dropped = step.sites["site-4"].index
    # The server interpolates through the shares of the lowest-indexed holders: corrupt one.
    holders = [n for n, r in replies.items() if dropped in r.sk_shares]
    holder = min(holders, key=lambda n: step.sites[n].index or 0)
    bad = replies[holder]
    corrupted = dict(bad.sk_shares)
    assert dropped is not None
    corrupted[dropped] = (int.from_bytes(corrupted[dropped], "big") ^ 4).to_bytes(66, "big")
    replies[holder] = UnmaskReply(bad.session, bad.b_shares, corrupted)
    for name, reply in replies.items():
        step.server.accept(name, reply.to_model())
    with pytest.raises(SecAggError, match=r"does not match its public key|inconsistent"):
        step.server.result()


class TestSiteHonesty:
    """A site refuses requests that would reveal more than the sum."""

    def test_unmask_refuses_a_site_listed_as_survivor_and_dropped(self) -> None:
        step = Stepper()
        step.mask(skip=("site-4",))
        request = UnmaskRequest.from_model(step.server.unmask_request().to_model())
        survivors = request.survivors
        greedy = UnmaskRequest(request.session, survivors, (*request.dropped, survivors[0]))
        with pytest.raises(SecAggError, match="listed both as survivors and as dropped"):
            step.sites["site-1"].unmask(greedy)

    def test_unmask_refuses_too_few_survivors(self) -> None:
        step = Stepper()
        step.mask()
        request = UnmaskRequest.from_model(step.server.unmask_request().to_model())
        me = step.sites["site-1"].index
        assert me is not None
        others = [i for i in request.survivors if i != me]
        few = UnmaskRequest(request.session, (me, others[0]), tuple(others[1:]))
        with pytest.raises(SecAggError, match="fewer than the threshold 3"):
            step.sites["site-1"].unmask(few)

    def test_unmask_only_once_per_round(self) -> None:
        step = Stepper()
        step.mask()
        request = UnmaskRequest.from_model(step.server.unmask_request().to_model())
        step.sites["site-1"].unmask(request)
        with pytest.raises(SecAggError, match="out of turn"):
            step.sites["site-1"].unmask(request)

    def test_masking_twice_in_a_round_is_refused(self) -> None:
        """Two masked inputs under the same masks would reveal their difference."""
        step = Stepper()
        step.share_keys()
        site = step.sites["site-1"]
        site.receive_shares(step.request_for("site-1"))
        site.mask(np.zeros(LENGTH), 1)
        with pytest.raises(SecAggError, match="cannot mask now"):
            site.mask(np.ones(LENGTH), 1)

    def test_stages_out_of_order_are_refused(self) -> None:
        step = Stepper()
        site = step.sites["site-1"]
        request = AdvertiseRequest.from_model(step.server.advertise_request().to_model())
        with pytest.raises(SecAggError, match="another secure aggregation round"):
            site.unmask(UnmaskRequest(request.session, (0,), ()))
        site.advertise(request)
        with pytest.raises(SecAggError, match="out of turn"):
            site.unmask(UnmaskRequest(request.session, (0,), ()))
        with pytest.raises(InvalidTransition):
            step.server.share_keys_request()

    def test_a_weight_above_max_weight_is_refused(self) -> None:
        step = Stepper()
        step.share_keys()
        site = step.sites["site-1"]
        site.receive_shares(step.request_for("site-1"))
        with pytest.raises(SecAggError, match="max_weight"):
            site.mask(np.zeros(LENGTH), CONFIG.max_weight + 1)
