"""The protocol's messages and their one conversion to and from :class:`~fedra.core.FLModel`.

Everything travels as an ordinary FLModel under the reserved param prefix ``_secagg/``: a
site's public keys as 32-byte uint8 arrays; ciphertexts and shares as uint8 tables (one row
per message, so a message with hundreds of them stays a few tensors) with a uint32 array of
the site indices each row belongs to; the masked vector as one unsigned integer param; the
rest (stage, session id, site indices, parameters) as JSON in ``meta["secagg"]``. Every
``from_model`` checks the stage, the session, each name, dtype and size, and raises
:class:`SecAggError` naming what is wrong.

Sites are named by their index in the round's participant list; Shamir share ``x`` is
index + 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedra.core import Array, FLModel, MetricValue, ParamsType
from fedra.secagg.config import SecAggConfig
from fedra.secagg.crypto import KEY_BYTES, NONCE_BYTES, SESSION_BYTES, TAG_BYTES
from fedra.secagg.errors import SecAggError
from fedra.secagg.shamir import SHARE_BYTES

PREFIX = "_secagg/"
META = "secagg"
TASK_ADVERTISE = "secagg_advertise"
TASK_SHARE_KEYS = "secagg_share_keys"
TASK_MASKED_INPUT = "secagg_masked_input"
TASK_UNMASK = "secagg_unmask"
TASKS = (TASK_ADVERTISE, TASK_SHARE_KEYS, TASK_MASKED_INPUT, TASK_UNMASK)

#: A share message: sender and recipient (4 bytes each), then the two Shamir share values.
SHARE_PLAINTEXT_BYTES = 8 + 2 * SHARE_BYTES
CIPHERTEXT_BYTES = NONCE_BYTES + SHARE_PLAINTEXT_BYTES + TAG_BYTES
MASKED = PREFIX + "masked"


def _as_u8(data: bytes) -> Array:
    return np.frombuffer(data, dtype=np.uint8)


def _header(model: FLModel | None, stage: str, what: str) -> tuple[bytes, dict[str, Any], FLModel]:
    if not isinstance(model, FLModel):
        raise SecAggError(f"{what}: expected an FLModel, got {type(model).__name__}")
    header = model.meta.get(META)
    if not isinstance(header, dict):
        raise SecAggError(f"{what}: meta['{META}'] is missing (is the site a SecAggClient?)")
    if header.get("stage") != stage:
        raise SecAggError(f"{what}: expected stage '{stage}', got {header.get('stage')!r}")
    session = header.get("session")
    try:
        raw = bytes.fromhex(session) if isinstance(session, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != SESSION_BYTES:
        raise SecAggError(f"{what}: session must be {SESSION_BYTES} bytes in hex, got {session!r}")
    return raw, header, model


def _meta(stage: str, session: bytes, **fields: Any) -> dict[str, Any]:
    return {META: {"stage": stage, "session": session.hex(), **fields}}


def _bytes(params: Mapping[str, Array], name: str, size: int, what: str) -> bytes:
    array = params.get(name)
    if array is None:
        raise SecAggError(f"{what}: '{name}' is missing")
    if array.dtype != np.uint8 or array.ndim != 1:
        raise SecAggError(f"{what}: '{name}' must be a 1-D uint8 array, got {array.dtype}")
    if array.size != size:
        raise SecAggError(f"{what}: '{name}' must be {size} bytes, got {array.size}")
    return array.tobytes()


def _indices(value: object, what: str, key: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise SecAggError(f"{what}: '{key}' must be a list of site indices, got {value!r}")
    if len(set(value)) != len(value):
        raise SecAggError(f"{what}: '{key}' repeats a site index")
    return tuple(value)


def _pack(
    name: str, rows: Mapping[Any, bytes], width: int, *, pairs: bool = False
) -> dict[str, Array]:
    """``rows`` (by site index, or by pair of indices) as two params: a uint8 table of
    ``width``-byte rows, ``_secagg/<name>``, and their keys, ``_secagg/<name>_ids`` (uint32)."""
    keys = sorted(rows)
    table = np.frombuffer(b"".join(rows[k] for k in keys), dtype=np.uint8)
    ids = np.array(keys, dtype=np.uint32).reshape((len(keys), 2) if pairs else (len(keys),))
    return {PREFIX + name: table.reshape(len(keys), width), PREFIX + name + "_ids": ids}


def _unpack(
    params: Mapping[str, Array], name: str, width: int, what: str, *, pairs: bool = False
) -> dict[Any, bytes]:
    """The rows :func:`_pack` wrote, checked: by index (or by pair of indices)."""
    table, ids = params.get(PREFIX + name), params.get(PREFIX + name + "_ids")
    if table is None or ids is None:
        raise SecAggError(f"{what}: '{PREFIX}{name}' or '{PREFIX}{name}_ids' is missing")
    if table.dtype != np.uint8 or table.ndim != 2 or table.shape[1] != width:
        raise SecAggError(
            f"{what}: '{PREFIX}{name}' must be a uint8 table of {width}-byte rows, "
            f"got {table.dtype} of shape {table.shape}"
        )
    shape = (table.shape[0], 2) if pairs else (table.shape[0],)
    if ids.dtype != np.uint32 or ids.shape != shape:
        raise SecAggError(
            f"{what}: '{PREFIX}{name}_ids' must be uint32 of shape {shape}, "
            f"got {ids.dtype} of shape {ids.shape}"
        )
    keys: list[Any] = [tuple(int(v) for v in row) for row in ids] if pairs else ids.tolist()
    if len(set(keys)) != len(keys):
        raise SecAggError(f"{what}: '{PREFIX}{name}_ids' repeats an entry")
    return {key: table[row].tobytes() for row, key in enumerate(keys)}


def _only(params: Mapping[str, Array] | None, allowed: Iterable[str], what: str) -> None:
    extra = set(params or {}) - set(allowed)
    if extra:
        raise SecAggError(f"{what}: unexpected parameters {sorted(extra)[:5]}")


def _names(*tables: str) -> list[str]:
    return [PREFIX + t + suffix for t in tables for suffix in ("", "_ids")]


@dataclass(frozen=True)
class AdvertiseRequest:
    """Stage 0, server to sites: the round's participants and parameters."""

    session: bytes
    participants: tuple[str, ...]
    config: SecAggConfig

    def to_model(self, round_num: int | None = None) -> FLModel:
        """As an FLModel (meta only)."""
        meta = _meta(
            "advertise",
            self.session,
            participants=list(self.participants),
            config=self.config.to_json(),
        )
        return FLModel(meta=meta, current_round=round_num)

    @classmethod
    def from_model(cls, model: FLModel | None) -> AdvertiseRequest:
        """Parse and validate."""
        what = "secagg advertise request"
        session, header, model = _header(model, "advertise", what)
        names = header.get("participants")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise SecAggError(f"{what}: 'participants' must be a list of site names")
        if len(set(names)) != len(names):
            raise SecAggError(f"{what}: 'participants' repeats a site")
        return cls(session, tuple(names), SecAggConfig.from_json(header.get("config")))


@dataclass(frozen=True)
class AdvertiseReply:
    """Stage 0, site to server: its two public keys and a commitment to its self-mask seed."""

    session: bytes
    c_pk: bytes
    s_pk: bytes
    b_commit: bytes

    def to_model(self) -> FLModel:
        """As an FLModel."""
        params = {
            PREFIX + "c_pk": _as_u8(self.c_pk),
            PREFIX + "s_pk": _as_u8(self.s_pk),
            PREFIX + "b_commit": _as_u8(self.b_commit),
        }
        return FLModel(params=params, meta=_meta("advertise", self.session))

    @classmethod
    def from_model(cls, model: FLModel | None) -> AdvertiseReply:
        """Parse and validate."""
        what = "secagg advertise reply"
        session, _, model = _header(model, "advertise", what)
        params = model.params or {}
        names = [PREFIX + n for n in ("c_pk", "s_pk", "b_commit")]
        _only(params, names, what)
        c_pk, s_pk, commit = (_bytes(params, n, KEY_BYTES, what) for n in names)
        return cls(session, c_pk, s_pk, commit)


@dataclass(frozen=True)
class ShareKeysRequest:
    """Stage 1, server to sites: who advertised (in graph order) and their public keys."""

    session: bytes
    order: tuple[int, ...]
    c_pks: dict[int, bytes]
    s_pks: dict[int, bytes]

    def to_model(self, round_num: int | None = None) -> FLModel:
        """As an FLModel."""
        params = _pack("c_pk", {i: self.c_pks[i] for i in self.order}, KEY_BYTES)
        params.update(_pack("s_pk", {i: self.s_pks[i] for i in self.order}, KEY_BYTES))
        meta = _meta("share_keys", self.session, order=list(self.order))
        return FLModel(params=params, meta=meta, current_round=round_num)

    @classmethod
    def from_model(cls, model: FLModel | None) -> ShareKeysRequest:
        """Parse and validate."""
        what = "secagg share-keys request"
        session, header, model = _header(model, "share_keys", what)
        order = _indices(header.get("order"), what, "order")
        params = model.params or {}
        _only(params, _names("c_pk", "s_pk"), what)
        c_pks = _unpack(params, "c_pk", KEY_BYTES, what)
        s_pks = _unpack(params, "s_pk", KEY_BYTES, what)
        if set(c_pks) != set(order) or set(s_pks) != set(order):
            raise SecAggError(f"{what}: the public keys do not match 'order'")
        return cls(session, order, c_pks, s_pks)


@dataclass(frozen=True)
class ShareKeysReply:
    """Stage 1, site to server: one encrypted share message per neighbour, by recipient."""

    session: bytes
    ciphertexts: dict[int, bytes]

    def to_model(self) -> FLModel:
        """As an FLModel."""
        params = _pack("ct", self.ciphertexts, CIPHERTEXT_BYTES)
        return FLModel(params=params, meta=_meta("share_keys", self.session))

    @classmethod
    def from_model(cls, model: FLModel | None) -> ShareKeysReply:
        """Parse and validate."""
        what = "secagg share-keys reply"
        session, _, model = _header(model, "share_keys", what)
        params = model.params or {}
        _only(params, _names("ct"), what)
        return cls(session, _unpack(params, "ct", CIPHERTEXT_BYTES, what))


@dataclass(frozen=True)
class MaskedInputRequest:
    """Stage 2, server to sites: the global model to train, the sites that sent shares, and
    every share message, each readable by its recipient only (by ``(sender, recipient)``)."""

    session: bytes
    senders: tuple[int, ...]
    ciphertexts: dict[tuple[int, int], bytes]
    model: FLModel
    train_task: str

    def to_model(self) -> FLModel:
        """As an FLModel: the global model's params and meta plus the protocol's."""
        params = dict(self.model.params or {})
        reserved = [n for n in params if n.startswith(PREFIX)]
        if reserved:
            raise SecAggError(f"model parameter names may not start with '{PREFIX}': {reserved}")
        params.update(_pack("ct", self.ciphertexts, CIPHERTEXT_BYTES, pairs=True))
        meta = dict(self.model.meta)
        meta.update(
            _meta(
                "masked_input",
                self.session,
                senders=list(self.senders),
                train_task=self.train_task,
            )
        )
        return FLModel(
            params=params,
            params_type=self.model.params_type,
            meta=meta,
            current_round=self.model.current_round,
            total_rounds=self.model.total_rounds,
        )

    @classmethod
    def from_model(cls, model: FLModel | None, recipient: int | None = None) -> MaskedInputRequest:
        """Parse and validate; with ``recipient``, keep only the messages meant for it."""
        what = "secagg masked-input request"
        session, header, model = _header(model, "masked_input", what)
        senders = _indices(header.get("senders"), what, "senders")
        train_task = header.get("train_task")
        if not isinstance(train_task, str) or not train_task:
            raise SecAggError(f"{what}: 'train_task' must be a task name")
        params = model.params or {}
        protocol = {n: a for n, a in params.items() if n.startswith(PREFIX)}
        _only(protocol, _names("ct"), what)
        cts = _unpack(protocol, "ct", CIPHERTEXT_BYTES, what, pairs=True)
        if recipient is not None:
            cts = {pair: ct for pair, ct in cts.items() if pair[1] == recipient}
        plain = {n: a for n, a in params.items() if not n.startswith(PREFIX)}
        meta = {k: v for k, v in model.meta.items() if k != META}
        inner = FLModel(
            params=plain or None,
            params_type=model.params_type,
            meta=meta,
            current_round=model.current_round,
            total_rounds=model.total_rounds,
        )
        return cls(session, senders, cts, inner, train_task)


@dataclass(frozen=True)
class MaskedInputReply:
    """Stage 2, site to server: the masked, quantized update and the training metrics."""

    session: bytes
    masked: Array
    metrics: dict[str, MetricValue] = field(default_factory=dict)

    def to_model(self) -> FLModel:
        """As an FLModel (params_type diff: it is an update, masked)."""
        return FLModel(
            params={MASKED: self.masked},
            params_type=ParamsType.DIFF,
            metrics=dict(self.metrics),
            meta=_meta("masked_input", self.session),
        )

    @classmethod
    def from_model(
        cls, model: FLModel | None, dtype: type[np.unsignedinteger], length: int
    ) -> MaskedInputReply:
        """Parse and validate against the expected integer type and length."""
        what = "secagg masked-input reply"
        session, _, model = _header(model, "masked_input", what)
        params = model.params or {}
        _only(params, [MASKED], what)
        masked = params.get(MASKED)
        if masked is None:
            raise SecAggError(f"{what}: '{MASKED}' is missing")
        if masked.dtype != np.dtype(dtype) or masked.ndim != 1 or masked.size != length:
            raise SecAggError(
                f"{what}: '{MASKED}' must be a 1-D {np.dtype(dtype).name} array of {length} "
                f"elements, got {masked.dtype} of shape {masked.shape}"
            )
        return cls(session, masked, dict(model.metrics))


@dataclass(frozen=True)
class UnmaskRequest:
    """Stage 3, server to the sites whose masked input arrived: who survived, who dropped."""

    session: bytes
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]

    def to_model(self, round_num: int | None = None) -> FLModel:
        """As an FLModel (meta only)."""
        meta = _meta(
            "unmask", self.session, survivors=list(self.survivors), dropped=list(self.dropped)
        )
        return FLModel(meta=meta, current_round=round_num)

    @classmethod
    def from_model(cls, model: FLModel | None) -> UnmaskRequest:
        """Parse and validate."""
        what = "secagg unmask request"
        session, header, model = _header(model, "unmask", what)
        return cls(
            session,
            _indices(header.get("survivors"), what, "survivors"),
            _indices(header.get("dropped"), what, "dropped"),
        )


@dataclass(frozen=True)
class UnmaskReply:
    """Stage 3, site to server: shares of survivors' self-mask seeds and of dropped sites'
    mask keys, by the index of the site whose secret they are."""

    session: bytes
    b_shares: dict[int, bytes]
    sk_shares: dict[int, bytes]

    def to_model(self) -> FLModel:
        """As an FLModel."""
        params = _pack("b", self.b_shares, SHARE_BYTES)
        params.update(_pack("sk", self.sk_shares, SHARE_BYTES))
        return FLModel(params=params, meta=_meta("unmask", self.session))

    @classmethod
    def from_model(cls, model: FLModel | None) -> UnmaskReply:
        """Parse and validate."""
        what = "secagg unmask reply"
        session, _, model = _header(model, "unmask", what)
        params = model.params or {}
        _only(params, _names("b", "sk"), what)
        return cls(
            session,
            _unpack(params, "b", SHARE_BYTES, what),
            _unpack(params, "sk", SHARE_BYTES, what),
        )
