"""The site's side of a secure aggregation round, as an explicit state machine.

:class:`SecAggSite` is pure: each method takes a parsed request and returns the reply, and
refuses anything out of turn (a request of another round, a second masking in one round,
an unmasking request that would reveal both secrets of one site). The executor that wraps
a site's training (:mod:`fedra.client.secagg`) does the I/O around it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from fedra.core import Array, InvalidTransition, MetricValue
from fedra.secagg.config import SecAggConfig
from fedra.secagg.crypto import (
    ENCRYPT,
    MASK,
    commit,
    derive,
    new_private_key,
    new_seed,
    open_sealed,
    prg,
    public_key,
    seal,
)
from fedra.secagg.errors import SecAggError
from fedra.secagg.messages import (
    SHARE_PLAINTEXT_BYTES,
    AdvertiseReply,
    AdvertiseRequest,
    MaskedInputReply,
    MaskedInputRequest,
    ShareKeysReply,
    ShareKeysRequest,
    UnmaskReply,
    UnmaskRequest,
)
from fedra.secagg.shamir import SHARE_BYTES, split


class SiteState(enum.StrEnum):
    """Where a site is in the current round."""

    IDLE = "idle"
    ADVERTISED = "advertised"
    SHARED = "shared"
    RECEIVED = "received"
    MASKED = "masked"
    DONE = "done"


#: Legal transitions. A new round (advertise) may start from any state: a site that dropped
#: out of a round simply joins the next one with fresh keys.
TRANSITIONS: dict[SiteState, frozenset[SiteState]] = {
    SiteState.IDLE: frozenset({SiteState.ADVERTISED}),
    SiteState.ADVERTISED: frozenset({SiteState.ADVERTISED, SiteState.SHARED}),
    SiteState.SHARED: frozenset({SiteState.ADVERTISED, SiteState.RECEIVED}),
    SiteState.RECEIVED: frozenset({SiteState.ADVERTISED, SiteState.MASKED}),
    SiteState.MASKED: frozenset({SiteState.ADVERTISED, SiteState.DONE}),
    SiteState.DONE: frozenset({SiteState.ADVERTISED}),
}


def share_aad(session: bytes, sender: int, recipient: int) -> bytes:
    """The associated data of a share message: binds it to its round, sender and recipient."""
    return (
        b"fedra-secagg/v1/share"
        + session
        + sender.to_bytes(4, "big")
        + recipient.to_bytes(4, "big")
    )


@dataclass
class _Round:
    session: bytes
    index: int
    participants: tuple[str, ...]
    config: SecAggConfig
    c_sk: bytes
    s_sk: bytes
    b_seed: bytes
    c_pks: dict[int, bytes] = field(default_factory=dict)
    s_pks: dict[int, bytes] = field(default_factory=dict)
    neighbours: frozenset[int] = frozenset()
    threshold: int = 0
    own_shares: tuple[bytes, bytes] = (b"", b"")
    received: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    senders: tuple[int, ...] = ()


class SecAggSite:
    """One site's protocol state across rounds (a fresh key set every round)."""

    def __init__(self, site_name: str) -> None:
        self.site_name = site_name
        self.state = SiteState.IDLE
        self._round: _Round | None = None

    @property
    def index(self) -> int | None:
        """This site's index in the current round's participants (None before a round)."""
        return None if self._round is None else self._round.index

    @property
    def config(self) -> SecAggConfig | None:
        """The current round's parameters (None before a round)."""
        return None if self._round is None else self._round.config

    def _move(self, target: SiteState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise InvalidTransition(self.state, target)
        self.state = target

    def _current(self, session: bytes, expected: SiteState, stage: str) -> _Round:
        if self._round is None or self._round.session != session:
            raise SecAggError(
                f"{self.site_name}: the {stage} request belongs to another secure aggregation round"
            )
        if self.state is not expected:
            raise SecAggError(
                f"{self.site_name}: {stage} request out of turn (state '{self.state}', "
                f"expected '{expected}')"
            )
        return self._round

    # -- stage 0 ------------------------------------------------------------------------
    def advertise(self, request: AdvertiseRequest) -> AdvertiseReply:
        """Start a round: fresh key pairs and self-mask seed; publish the public parts."""
        if self.site_name not in request.participants:
            raise SecAggError(f"{self.site_name} is not among the round's participants")
        request.config.check(len(request.participants))
        self._move(SiteState.ADVERTISED)
        index = request.participants.index(self.site_name)
        rnd = _Round(
            session=request.session,
            index=index,
            participants=request.participants,
            config=request.config,
            c_sk=new_private_key(),
            s_sk=new_private_key(),
            b_seed=new_seed(),
        )
        self._round = rnd
        return AdvertiseReply(
            request.session,
            public_key(rnd.c_sk),
            public_key(rnd.s_sk),
            commit(rnd.b_seed, request.session, index),
        )

    # -- stage 1 ------------------------------------------------------------------------
    def share_keys(self, request: ShareKeysRequest) -> ShareKeysReply:
        """Shamir-share the mask key and the self-mask seed among the neighbours, each share
        message encrypted for its recipient."""
        rnd = self._current(request.session, SiteState.ADVERTISED, "share-keys")
        me = rnd.index
        if me not in request.order:
            raise SecAggError(f"{self.site_name} is missing from the share-keys request")
        if any(i >= len(rnd.participants) for i in request.order):
            raise SecAggError("share-keys request names a site index out of range")
        if request.c_pks[me] != public_key(rnd.c_sk) or request.s_pks[me] != (public_key(rnd.s_sk)):
            raise SecAggError(f"the share-keys request does not carry {self.site_name}'s own keys")
        keys = list(request.c_pks.values()) + list(request.s_pks.values())
        if len(set(keys)) != len(keys):
            raise SecAggError("the share-keys request repeats a public key")
        graph, threshold = rnd.config.plan(request.order)
        rnd.c_pks, rnd.s_pks = dict(request.c_pks), dict(request.s_pks)
        rnd.neighbours, rnd.threshold = graph[me], threshold
        holders = [h + 1 for h in sorted(rnd.neighbours | {me})]
        sk_shares = split(rnd.s_sk, threshold, holders)
        b_shares = split(rnd.b_seed, threshold, holders)
        rnd.own_shares = (sk_shares[me + 1].to_bytes(), b_shares[me + 1].to_bytes())
        ciphertexts = {}
        for j in sorted(rnd.neighbours):
            key = derive(rnd.c_sk, rnd.c_pks[j], ENCRYPT, rnd.session, me, j)
            plaintext = (
                me.to_bytes(4, "big")
                + j.to_bytes(4, "big")
                + sk_shares[j + 1].to_bytes()
                + b_shares[j + 1].to_bytes()
            )
            ciphertexts[j] = seal(key, plaintext, share_aad(rnd.session, me, j))
        self._move(SiteState.SHARED)
        return ShareKeysReply(rnd.session, ciphertexts)

    # -- stage 2 ------------------------------------------------------------------------
    def receive_shares(self, request: MaskedInputRequest) -> None:
        """Decrypt and check the share messages of the neighbours that sent theirs."""
        rnd = self._current(request.session, SiteState.SHARED, "masked-input")
        me = rnd.index
        senders = set(request.senders)
        if me not in senders:
            raise SecAggError(f"{self.site_name} is missing from the masked-input request")
        if not senders <= set(rnd.c_pks):
            raise SecAggError("the masked-input request names sites that did not advertise")
        live = rnd.neighbours & senders
        if len(live) + 1 < rnd.threshold:
            raise SecAggError(
                f"{self.site_name}: only {len(live) + 1} holders of its secrets remain, "
                f"threshold {rnd.threshold}"
            )
        mine = {i for (i, j) in request.ciphertexts if j == me}
        if mine != live:
            raise SecAggError(
                f"{self.site_name}: expected share messages from sites {sorted(live)}, "
                f"got {sorted(mine)}"
            )
        for i in sorted(live):
            key = derive(rnd.c_sk, rnd.c_pks[i], ENCRYPT, rnd.session, i, me)
            plain = open_sealed(
                key,
                request.ciphertexts[(i, me)],
                share_aad(rnd.session, i, me),
                f"share message from site {i} to site {me}",
            )
            if len(plain) != SHARE_PLAINTEXT_BYTES or (
                int.from_bytes(plain[:4], "big"),
                int.from_bytes(plain[4:8], "big"),
            ) != (i, me):
                raise SecAggError(f"share message from site {i} to site {me} is malformed")
            rnd.received[i] = (plain[8 : 8 + SHARE_BYTES], plain[8 + SHARE_BYTES :])
        rnd.senders = tuple(request.senders)
        self._move(SiteState.RECEIVED)

    def mask(
        self, update: Array, weight: float = 1.0, metrics: dict[str, MetricValue] | None = None
    ) -> MaskedInputReply:
        """Quantize ``update`` (a flat float vector), weight it, and add the self mask and the
        pairwise masks with every neighbour that sent its shares."""
        rnd = self._round
        if rnd is None or self.state is not SiteState.RECEIVED:
            raise SecAggError(f"{self.site_name}: cannot mask now (state '{self.state}')")
        config = rnd.config
        quantizer = config.quantizer
        quantized = quantizer.quantize(update)
        if config.weighted:
            w = _weight(weight, config.max_weight)
            vector = quantizer.encode(np.append(quantized, np.int64(1)), w)
        else:
            vector = quantizer.encode(quantized)
        dtype = quantizer.dtype
        masked = vector + prg(rnd.b_seed, vector.size, dtype)
        me = rnd.index
        for j in sorted(rnd.neighbours & set(rnd.senders)):
            seed = derive(rnd.s_sk, rnd.s_pks[j], MASK, rnd.session, me, j)
            mask = prg(seed, vector.size, dtype)
            if me < j:
                masked += mask
            else:
                masked -= mask
        self._move(SiteState.MASKED)
        return MaskedInputReply(rnd.session, masked, dict(metrics or {}))

    # -- stage 3 ------------------------------------------------------------------------
    def unmask(self, request: UnmaskRequest) -> UnmaskReply:
        """Reveal shares: of the self-mask seed of each surviving site, of the mask key of
        each dropped one, never both for one site, once per round."""
        rnd = self._current(request.session, SiteState.MASKED, "unmask")
        survivors, dropped = set(request.survivors), set(request.dropped)
        if survivors & dropped:
            raise SecAggError(
                f"{self.site_name} refuses to unmask: sites {sorted(survivors & dropped)} are "
                "listed both as survivors and as dropped (that would reveal their update)"
            )
        if survivors | dropped != set(rnd.senders):
            raise SecAggError(
                f"{self.site_name} refuses to unmask: survivors and dropped sites must be "
                "exactly the sites that sent their shares"
            )
        if rnd.index not in survivors:
            raise SecAggError(f"{self.site_name} refuses to unmask: it is not listed as a survivor")
        if len(survivors) < rnd.threshold:
            raise SecAggError(
                f"{self.site_name} refuses to unmask: {len(survivors)} survivors, fewer than "
                f"the threshold {rnd.threshold}"
            )
        b_shares: dict[int, bytes] = {}
        sk_shares: dict[int, bytes] = {}
        for i, (sk_share, b_share) in rnd.received.items():
            if i in survivors:
                b_shares[i] = b_share
            elif i in dropped:
                sk_shares[i] = sk_share
        b_shares[rnd.index] = rnd.own_shares[1]
        self._move(SiteState.DONE)
        return UnmaskReply(rnd.session, b_shares, sk_shares)


def _weight(value: float, max_weight: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SecAggError(f"the update's weight (num_samples) must be a number, got {value!r}")
    weight = round(value)
    if not 0 <= weight <= max_weight:
        raise SecAggError(
            f"the update's weight (num_samples) {value!r} must be in [0, max_weight={max_weight}]"
        )
    return weight
