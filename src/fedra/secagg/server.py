"""The server's side of a secure aggregation round, as an explicit state machine.

:class:`SecAggServer` is pure: the workflow sends each stage's request to the sites it names
(:meth:`SecAggServer.targets`), hands every reply to :meth:`accept` (or reports a site that
failed or did not answer with :meth:`drop`), and calls :meth:`advance` to close the stage.
Masked inputs are summed modulo ``2**modulus_bits`` as they arrive, so the server never holds
a site's update, masked or not, beyond the one reply being added.

Stages and the sets of sites they leave (Bonawitz et al. 2017):

- ``advertise``: U1, the sites that published keys; the neighbour graph is drawn over U1.
- ``share_keys``: U2, the sites that sent their encrypted shares; sites left with fewer than
  ``threshold`` live holders of their secrets are pruned.
- ``masked_input``: U3, the sites whose masked input arrived; the others are dropped.
- ``unmask``: shares of the self-mask seeds of U3 and of the mask keys of the dropped sites;
  then :meth:`result` removes every mask and returns the sum.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fedra.core import Array, FLModel, InvalidTransition
from fedra.secagg.config import SecAggConfig
from fedra.secagg.crypto import (
    MASK,
    SEED_BYTES,
    SESSION_BYTES,
    commit,
    derive,
    new_session,
    prg,
    public_key,
)
from fedra.secagg.errors import SecAggError
from fedra.secagg.messages import (
    AdvertiseReply,
    AdvertiseRequest,
    MaskedInputReply,
    MaskedInputRequest,
    ShareKeysReply,
    ShareKeysRequest,
    UnmaskReply,
    UnmaskRequest,
)
from fedra.secagg.shamir import Share, reconstruct


class Stage(enum.StrEnum):
    """The stage a round is in."""

    ADVERTISE = "advertise"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    UNMASK = "unmask"
    DONE = "done"


#: Each stage closes into the next one; there is no other transition.
TRANSITIONS: dict[Stage, Stage] = {
    Stage.ADVERTISE: Stage.SHARE_KEYS,
    Stage.SHARE_KEYS: Stage.MASKED_INPUT,
    Stage.MASKED_INPUT: Stage.UNMASK,
    Stage.UNMASK: Stage.DONE,
}


@dataclass
class AggregateResult:
    """What a round reveals: the sum of the surviving sites' (weighted) quantized updates."""

    #: The exact sum of the quantized (weighted) updates, as signed integers.
    total: Array
    #: The sum of the weights (the number of survivors when unweighted).
    weight: int
    #: ``total`` as floats, divided by ``weight``: the average update.
    mean: Array
    survivors: list[str]
    dropped: dict[str, str] = field(default_factory=dict)


class SecAggServer:
    """One round of secure aggregation of vectors of ``length`` floats over ``participants``."""

    def __init__(
        self,
        participants: Sequence[str],
        config: SecAggConfig,
        length: int,
        *,
        session: bytes | None = None,
    ) -> None:
        if len(set(participants)) != len(participants):
            raise SecAggError(f"participants must be distinct, got {list(participants)}")
        config.check(len(participants))
        if length < 1:
            raise SecAggError(f"the vector to aggregate must have >= 1 element, got {length}")
        self.participants = list(participants)
        self.config = config
        self.length = length
        self.session = new_session() if session is None else session
        if len(self.session) != SESSION_BYTES:
            raise SecAggError(f"a session id must be {SESSION_BYTES} bytes")
        self.stage = Stage.ADVERTISE
        self.dropped: dict[str, str] = {}
        self._index = {name: i for i, name in enumerate(self.participants)}
        self._answered: set[int] = set()
        self._c_pks: dict[int, bytes] = {}
        self._s_pks: dict[int, bytes] = {}
        self._commits: dict[int, bytes] = {}
        self._order: list[int] = []
        self._graph: dict[int, frozenset[int]] = {}
        self.threshold = 0
        self._ciphertexts: dict[tuple[int, int], bytes] = {}
        self._u2: list[int] = []
        self._u3: list[int] = []
        quantizer = config.quantizer
        self._width = length + (1 if config.weighted else 0)
        self._sum = np.zeros(self._width, dtype=quantizer.dtype)
        self._b_shares: dict[int, dict[int, bytes]] = {}
        self._sk_shares: dict[int, dict[int, bytes]] = {}

    # -- requests -----------------------------------------------------------------------
    def targets(self) -> list[str]:
        """The sites the current stage's request goes to."""
        live = {
            Stage.ADVERTISE: range(len(self.participants)),
            Stage.SHARE_KEYS: self._order,
            Stage.MASKED_INPUT: self._u2,
            Stage.UNMASK: self._u3,
            Stage.DONE: (),
        }[self.stage]
        return [self.participants[i] for i in sorted(live)]

    def advertise_request(self) -> AdvertiseRequest:
        """Stage ``advertise``: the participants and the parameters."""
        self._expect(Stage.ADVERTISE)
        return AdvertiseRequest(self.session, tuple(self.participants), self.config)

    def share_keys_request(self) -> ShareKeysRequest:
        """Stage ``share_keys``: the advertised public keys, in graph order."""
        self._expect(Stage.SHARE_KEYS)
        return ShareKeysRequest(
            self.session,
            tuple(self._order),
            {i: self._c_pks[i] for i in self._order},
            {i: self._s_pks[i] for i in self._order},
        )

    def masked_input_request(self, model: FLModel, train_task: str) -> MaskedInputRequest:
        """Stage ``masked_input``: the model to train and the share messages among U2."""
        self._expect(Stage.MASKED_INPUT)
        live = set(self._u2)
        cts = {p: ct for p, ct in self._ciphertexts.items() if p[0] in live and p[1] in live}
        return MaskedInputRequest(self.session, tuple(self._u2), cts, model, train_task)

    def unmask_request(self) -> UnmaskRequest:
        """Stage ``unmask``: who survived and who dropped out."""
        self._expect(Stage.UNMASK)
        dropped = tuple(i for i in self._u2 if i not in set(self._u3))
        return UnmaskRequest(self.session, tuple(self._u3), dropped)

    # -- replies ------------------------------------------------------------------------
    def accept(self, site: str, model: FLModel | None) -> MaskedInputReply | None:
        """Take ``site``'s reply to the current stage; the masked input's reply is returned
        (for its metrics) after it was added to the running sum."""
        index = self._site_index(site)
        if self.stage is Stage.DONE or site not in self.targets():
            raise SecAggError(f"{site} was not asked for a {self.stage} reply")
        if index in self._answered:
            raise SecAggError(f"{site} answered the {self.stage} stage twice")
        if site in self.dropped:
            raise SecAggError(f"{site} already dropped out of this round")
        try:
            reply = self._accept(index, model)
        except SecAggError as exc:
            raise SecAggError(f"{site}, stage {self.stage}: {exc}") from exc
        self._answered.add(index)
        return reply

    def _accept(self, i: int, model: FLModel | None) -> MaskedInputReply | None:
        if self.stage is Stage.ADVERTISE:
            advert = AdvertiseReply.from_model(model)
            self._check_session(advert.session)
            self._c_pks[i], self._s_pks[i], self._commits[i] = (
                advert.c_pk,
                advert.s_pk,
                advert.b_commit,
            )
        elif self.stage is Stage.SHARE_KEYS:
            shares = ShareKeysReply.from_model(model)
            self._check_session(shares.session)
            if set(shares.ciphertexts) != set(self._graph[i]):
                raise SecAggError(
                    f"expected share messages for sites {sorted(self._graph[i])}, "
                    f"got {sorted(shares.ciphertexts)}"
                )
            for j, ct in shares.ciphertexts.items():
                self._ciphertexts[(i, j)] = ct
        elif self.stage is Stage.MASKED_INPUT:
            masked = MaskedInputReply.from_model(model, self.config.quantizer.dtype, self._width)
            self._check_session(masked.session)
            self._sum += masked.masked  # wraps modulo 2**modulus_bits
            return MaskedInputReply(masked.session, np.empty(0, self._sum.dtype), masked.metrics)
        else:
            unmask = UnmaskReply.from_model(model)
            self._check_session(unmask.session)
            self._take_shares(i, unmask)
        return None

    def _take_shares(self, i: int, reply: UnmaskReply) -> None:
        survivors = set(self._u3)
        dropped = set(self._u2) - survivors
        holds = self._graph[i] | {i}
        b_expected = {j for j in survivors if j in holds}
        sk_expected = {j for j in dropped if j in self._graph[i]}
        if set(reply.b_shares) != b_expected or set(reply.sk_shares) != sk_expected:
            raise SecAggError(
                f"expected self-mask shares of {sorted(b_expected)} and key shares of "
                f"{sorted(sk_expected)}, got {sorted(reply.b_shares)} and {sorted(reply.sk_shares)}"
            )
        for j, share in reply.b_shares.items():
            self._b_shares.setdefault(j, {})[i] = share
        for j, share in reply.sk_shares.items():
            self._sk_shares.setdefault(j, {})[i] = share

    def drop(self, site: str, reason: str) -> None:
        """``site`` failed or did not answer the current stage: it leaves the round."""
        index = self._site_index(site)
        if index in self._answered:
            raise SecAggError(f"{site} already answered the {self.stage} stage")
        self.dropped.setdefault(site, f"{self.stage}: {reason}")

    # -- closing stages -----------------------------------------------------------------
    def advance(self) -> None:
        """Close the current stage (sites that did not answer are out) and open the next."""
        if self.stage in (Stage.UNMASK, Stage.DONE):
            raise InvalidTransition(self.stage, "next stage (the unmask stage ends with result())")
        answered = [i for i in self._index.values() if i in self._answered]
        for name in self.targets():
            if self._index[name] not in self._answered:
                self.dropped.setdefault(name, f"{self.stage}: no answer")
        if self.stage is Stage.ADVERTISE:
            self._open_share_keys(answered)
        elif self.stage is Stage.SHARE_KEYS:
            self._open_masked_input(answered)
        elif self.stage is Stage.MASKED_INPUT:
            self._open_unmask(answered)
        self.stage = TRANSITIONS[self.stage]
        self._answered = set()

    def _open_share_keys(self, u1: list[int]) -> None:
        keys = [self._c_pks[i] for i in u1] + [self._s_pks[i] for i in u1]
        if len(set(keys)) != len(keys):
            raise SecAggError("two sites advertised the same public key")
        if len(u1) < 2:
            raise SecAggError(
                f"only {len(u1)} sites advertised keys; at least 2 are needed{self._why()}"
            )
        order = list(u1)
        random.SystemRandom().shuffle(order)
        self._graph, self.threshold = self.config.plan(order)
        self._order = order

    def _open_masked_input(self, u2: list[int]) -> None:
        live = set(u2)
        changed = True
        while changed:  # prune sites whose secrets too few live holders could recover
            changed = False
            for i in sorted(live):
                if len(self._graph[i] & live) + 1 < self.threshold:
                    live.discard(i)
                    self.dropped.setdefault(
                        self.participants[i], "share_keys: too few neighbours left"
                    )
                    changed = True
        self._require(len(live), "sites sent their shares")
        self._u2 = [i for i in self._order if i in live]

    def _open_unmask(self, u3: list[int]) -> None:
        survivors = set(u3)
        self._require(len(survivors), "masked inputs arrived")
        for i in self._u2:
            holders = (self._graph[i] | {i}) & survivors
            if len(holders) < self.threshold:
                raise SecAggError(
                    f"too many sites dropped out: the secrets of {self.participants[i]} have "
                    f"{len(holders)} surviving holders, threshold {self.threshold}{self._why()}"
                )
        self._u3 = [i for i in self._u2 if i in survivors]

    def _require(self, count: int, what: str) -> None:
        if count < self.threshold:
            raise SecAggError(
                f"too many sites dropped out: {count} {what}, threshold {self.threshold}"
                f"{self._why()}"
            )

    # -- the outcome --------------------------------------------------------------------
    def result(self) -> AggregateResult:
        """Close the unmask stage, remove every mask and return the sum."""
        self._expect(Stage.UNMASK)
        for name in self.targets():
            if self._index[name] not in self._answered:
                self.dropped.setdefault(name, "unmask: no answer")
        quantizer = self.config.quantizer
        dtype = quantizer.dtype
        total = self._sum.copy()
        survivors = set(self._u3)
        for j in self._u3:
            seed = self._recover(j, self._b_shares, "self-mask seed")
            if commit(seed, self.session, j) != self._commits[j]:
                raise SecAggError(
                    f"the self-mask seed recovered for {self.participants[j]} does not match its "
                    "commitment: a share was corrupted"
                )
            total -= prg(seed, self._width, dtype)
        for i in self._u2:
            if i in survivors:
                continue
            secret = self._recover(i, self._sk_shares, "mask key")
            if public_key(secret) != self._s_pks[i]:
                raise SecAggError(
                    f"the mask key recovered for {self.participants[i]} does not match its "
                    "public key: a share was corrupted"
                )
            for j in sorted(self._graph[i] & survivors):
                seed = derive(secret, self._s_pks[j], MASK, self.session, i, j)
                mask = prg(seed, self._width, dtype)
                if j < i:
                    total -= mask  # survivor j added it
                else:
                    total += mask  # survivor j subtracted it
        signed = quantizer.signed(total)
        weight = int(signed[-1]) if self.config.weighted else len(self._u3)
        values = signed[: self.length]
        if weight <= 0:
            raise SecAggError(f"the surviving sites' weights sum to {weight}; nothing to average")
        self.stage = Stage.DONE
        return AggregateResult(
            total=values,
            weight=weight,
            mean=quantizer.dequantize(values, weight),
            survivors=[self.participants[i] for i in sorted(self._u3)],
            dropped=dict(self.dropped),
        )

    def _recover(self, owner: int, shares: dict[int, dict[int, bytes]], what: str) -> bytes:
        held = shares.get(owner, {})
        if len(held) < self.threshold:
            raise SecAggError(
                f"too many sites dropped out: {len(held)} shares of the {what} of "
                f"{self.participants[owner]} arrived, threshold {self.threshold}"
            )
        parsed = [Share.from_bytes(h + 1, data) for h, data in held.items()]
        return reconstruct(parsed, self.threshold, SEED_BYTES)

    # -- helpers ------------------------------------------------------------------------
    def _why(self, shown: int = 3) -> str:
        """The first dropouts and their reasons, for an error message."""
        if not self.dropped:
            return ""
        items = [f"{site} ({reason})" for site, reason in list(self.dropped.items())[:shown]]
        more = len(self.dropped) - shown
        return "; dropped: " + ", ".join(items) + (f" and {more} more" if more > 0 else "")

    def _expect(self, stage: Stage) -> None:
        if self.stage is not stage:
            raise InvalidTransition(self.stage, stage)

    def _check_session(self, session: bytes) -> None:
        if session != self.session:
            raise SecAggError("the reply belongs to another secure aggregation round")

    def _site_index(self, site: str) -> int:
        index = self._index.get(site)
        if index is None:
            raise SecAggError(f"{site} is not a participant of this round")
        return index
