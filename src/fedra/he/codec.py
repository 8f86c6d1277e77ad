"""Encrypted params: how a CKKS-encrypted model travels inside an ordinary FLModel.

FLModel params must be named numpy arrays, so an encrypted model is exactly two of them:

- ``__he_ckks__``: uint8, the serialized CKKS ciphertexts one after another (TenSEAL's
  protobuf serialization; parsed by SEAL, never unpickled);
- ``__he_layout__``: uint8, UTF-8 JSON describing how to read it back::

      {"scheme": "ckks", "version": 1, "fingerprint": "<key hash>",
       "names": [...], "shapes": [[...], ...], "dtypes": ["float32", ...],
       "chunks": [<bytes of ciphertext 1>, ...], "slots": 4096, "divisor": 1.0}

Every param (float, integer or bool) is flattened in sorted name order into one float64
vector, cut into ciphertexts of ``slots`` values each. The plaintext is the decrypted vector
divided by ``divisor``: a site encrypts with divisor 1; the server's weighted sum carries the
total weight, so the division (one more multiplication level) happens after decryption.
Both arrays are ordinary arrays to the rest of Fedra: the wire, the model store, snapshots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedra.core import Array, Params, WireError
from fedra.core.jsonfile import JsonTooDeep, load_json
from fedra.he.keys import HEContext, tenseal

#: The param holding the ciphertexts of an encrypted model.
CIPHERTEXT = "__he_ckks__"
#: The param holding the JSON layout of an encrypted model.
LAYOUT = "__he_layout__"
LAYOUT_VERSION = 1
#: The dtypes an encrypted param may have (and a layout may name).
DTYPES = frozenset(
    ["float16", "float32", "float64", "bool"]
    + [f"{kind}int{bits}" for kind in ("", "u") for bits in (8, 16, 32, 64)]
)
_MAX_LAYOUT_BYTES = 64 << 20


@dataclass(frozen=True)
class Layout:
    """What is needed to turn decrypted vectors back into named arrays."""

    fingerprint: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    chunks: tuple[int, ...]
    slots: int
    divisor: float = 1.0

    @property
    def size(self) -> int:
        """Number of values (all params flattened)."""
        return sum(math.prod(shape) for shape in self.shapes)

    def same_model(self, other: Layout) -> bool:
        """Whether ``other`` describes the same params under the same key (chunk sizes and
        divisor may differ)."""
        return (self.fingerprint, self.names, self.shapes, self.dtypes, self.slots) == (
            other.fingerprint,
            other.names,
            other.shapes,
            other.dtypes,
            other.slots,
        )

    def to_array(self) -> Array:
        """The layout as the uint8 array stored under :data:`LAYOUT`."""
        doc = {
            "scheme": "ckks",
            "version": LAYOUT_VERSION,
            "fingerprint": self.fingerprint,
            "names": list(self.names),
            "shapes": [list(s) for s in self.shapes],
            "dtypes": list(self.dtypes),
            "chunks": list(self.chunks),
            "slots": self.slots,
            "divisor": self.divisor,
        }
        return np.frombuffer(json.dumps(doc, sort_keys=True).encode("utf-8"), dtype=np.uint8)

    @classmethod
    def from_array(cls, array: Array) -> Layout:
        """Parse and check a layout array; a WireError says what is wrong."""
        if array.dtype != np.uint8 or array.ndim != 1 or array.size > _MAX_LAYOUT_BYTES:
            raise WireError(f"{LAYOUT}: expected a 1-D uint8 array of JSON")
        try:
            doc = load_json(array.tobytes().decode("utf-8"), LAYOUT)
        except (UnicodeDecodeError, json.JSONDecodeError, JsonTooDeep) as exc:
            raise WireError(f"{LAYOUT}: not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("scheme") != "ckks":
            raise WireError(f"{LAYOUT}: expected a CKKS layout object")
        if doc.get("version") != LAYOUT_VERSION:
            raise WireError(f"{LAYOUT}: version {doc.get('version')!r} is not {LAYOUT_VERSION}")
        try:
            names = tuple(_strings(doc["names"]))
            shapes = tuple(tuple(_ints(s, 0)) for s in _list(doc["shapes"]))
            dtypes = tuple(_strings(doc["dtypes"]))
            chunks = tuple(_ints(doc["chunks"], 1))
            slots = _int(doc["slots"], 1)
            divisor = doc["divisor"]
            fingerprint = doc["fingerprint"]
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"{LAYOUT}: malformed ({exc})") from exc
        if not isinstance(fingerprint, str):
            raise WireError(f"{LAYOUT}: fingerprint must be a string")
        if isinstance(divisor, bool) or not isinstance(divisor, int | float):
            raise WireError(f"{LAYOUT}: divisor must be a number")
        if not math.isfinite(divisor) or divisor <= 0:
            raise WireError(f"{LAYOUT}: divisor must be finite and > 0, got {divisor!r}")
        if not len(names) == len(shapes) == len(dtypes) or len(set(names)) != len(names):
            raise WireError(f"{LAYOUT}: names, shapes and dtypes must match one to one")
        bad = sorted(set(dtypes) - DTYPES)
        if bad:
            raise WireError(f"{LAYOUT}: unsupported dtype {bad[0]!r}")
        layout = cls(fingerprint, names, shapes, dtypes, chunks, slots, float(divisor))
        if len(chunks) != -(-layout.size // slots):
            raise WireError(f"{LAYOUT}: {len(chunks)} ciphertexts cannot hold {layout.size} values")
        return layout


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _strings(value: object) -> list[str]:
    items = _list(value)
    if not all(isinstance(v, str) for v in items):
        raise TypeError("expected a list of strings")
    return items


def _int(value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected an integer >= {low}, got {value!r}")
    return value


def _ints(value: object, low: int) -> list[int]:
    return [_int(v, low) for v in _list(value)]


def is_encrypted(params: Mapping[str, Array] | None) -> bool:
    """Whether ``params`` is an encrypted model (holds the ciphertext param)."""
    return params is not None and CIPHERTEXT in params


def layout_of(params: Mapping[str, Array]) -> Layout:
    """The checked layout of an encrypted model (WireError when it is not one)."""
    if set(params) != {CIPHERTEXT, LAYOUT}:
        raise WireError(
            f"an encrypted model holds exactly {CIPHERTEXT!r} and {LAYOUT!r}, got {sorted(params)}"
        )
    layout = Layout.from_array(params[LAYOUT])
    data = params[CIPHERTEXT]
    if data.dtype != np.uint8 or data.ndim != 1 or data.size != sum(layout.chunks):
        raise WireError(
            f"{CIPHERTEXT}: expected {sum(layout.chunks)} bytes of ciphertext as 1-D uint8"
        )
    return layout


def chunks_of(params: Mapping[str, Array]) -> tuple[Layout, list[bytes]]:
    """The layout and the serialized ciphertexts of an encrypted model."""
    layout = layout_of(params)
    data = params[CIPHERTEXT]
    out: list[bytes] = []
    start = 0
    for length in layout.chunks:
        out.append(data[start : start + length].tobytes())
        start += length
    return layout, out


def pack(layout: Layout, chunks: Sequence[bytes]) -> Params:
    """An encrypted model from its layout and serialized ciphertexts (chunk sizes updated)."""
    fixed = Layout(
        layout.fingerprint,
        layout.names,
        layout.shapes,
        layout.dtypes,
        tuple(len(c) for c in chunks),
        layout.slots,
        layout.divisor,
    )
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    return {CIPHERTEXT: data, LAYOUT: fixed.to_array()}


def check_key(layout: Layout, context: HEContext, who: str) -> None:
    """A WireError unless ``layout`` was encrypted under ``context``'s key."""
    if layout.fingerprint != context.fingerprint:
        raise WireError(
            f"{who}: the model was encrypted under another HE key (fingerprint "
            f"{layout.fingerprint[:12]}, this context {context.fingerprint[:12]}); every site "
            "and the server must hold the key files of one provisioning"
        )
    if layout.slots != context.slots:
        raise WireError(f"{who}: {layout.slots} values per ciphertext, context has {context.slots}")


def load_vector(context: HEContext, data: bytes) -> Any:
    """One serialized ciphertext, bound to ``context`` (a WireError when SEAL refuses it)."""
    ts = tenseal()
    try:
        return ts.ckks_vector_from(context.tenseal, data)
    except (ValueError, RuntimeError) as exc:
        raise WireError(f"not a CKKS ciphertext of this context: {exc}") from exc


def encrypt_params(params: Mapping[str, Array], context: HEContext) -> Params:
    """Encrypt every param of ``params`` (numeric dtypes only) under ``context``'s key."""
    ts = tenseal()
    names = sorted(params)
    arrays = [np.asarray(params[n]) for n in names]
    for name, array in zip(names, arrays, strict=True):
        if array.dtype.name not in DTYPES:
            raise ValueError(f"param '{name}': cannot encrypt dtype {array.dtype}")
    flat = (
        np.concatenate([a.astype(np.float64, copy=False).ravel() for a in arrays])
        if arrays
        else np.zeros(0)
    )
    if not np.isfinite(flat).all():
        bad = next(n for n, a in zip(names, arrays, strict=True) if not np.isfinite(a).all())
        raise ValueError(f"param '{bad}' holds NaN or Inf: CKKS cannot encrypt it")
    chunks = [
        ts.ckks_vector(context.tenseal, flat[i : i + context.slots].tolist()).serialize()
        for i in range(0, flat.size, context.slots)
    ]
    layout = Layout(
        context.fingerprint,
        tuple(names),
        tuple(tuple(int(d) for d in a.shape) for a in arrays),
        tuple(a.dtype.name for a in arrays),
        (),
        context.slots,
    )
    return pack(layout, chunks)


def decrypt_params(params: Mapping[str, Array], context: HEContext, who: str = "") -> Params:
    """The plaintext params of an encrypted model (``context`` must hold the secret key)."""
    layout, chunks = chunks_of(params)
    check_key(layout, context, who or "decrypt")
    if not context.is_private:
        raise WireError(f"{who or 'decrypt'}: the context holds no secret key")
    flat = np.empty(layout.size, dtype=np.float64)
    start = 0
    for data in chunks:
        values = load_vector(context, data).decrypt()
        stop = start + len(values)
        if stop > flat.size or len(values) > layout.slots:
            raise WireError(f"{CIPHERTEXT}: ciphertexts hold more values than the layout says")
        flat[start:stop] = values
        start = stop
    if start != flat.size:
        raise WireError(f"{CIPHERTEXT}: {start} values decrypted, the layout says {flat.size}")
    flat /= layout.divisor
    out: Params = {}
    start = 0
    for name, shape, dtype_name in zip(layout.names, layout.shapes, layout.dtypes, strict=True):
        stop = start + math.prod(shape)
        out[name] = _cast(flat[start:stop].reshape(shape), np.dtype(dtype_name))
        start = stop
    return out


def _cast(values: Array, dtype: np.dtype[Any]) -> Array:
    if dtype == np.bool_:
        return values > 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)
