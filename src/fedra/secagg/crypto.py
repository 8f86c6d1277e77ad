"""The cryptographic building blocks of secure aggregation (all from ``cryptography``).

- Key agreement: X25519. Each site makes two fresh key pairs per round: one to encrypt the
  shares it sends to its neighbours (``c``), one to agree on pairwise mask seeds (``s``).
- Key derivation: HKDF-SHA256 over the X25519 shared secret, salted with the round's session
  id and bound to the purpose (encryption or mask) and the ordered pair of site indices.
- Authenticated encryption: AES-256-GCM with a random 96-bit nonce; the associated data names
  the session, the sender and the recipient, so a share cannot be replayed elsewhere.
- Pseudo-random generator: AES-256-CTR keyed with a 32-byte seed (a cryptographic PRG, unlike
  numpy's generators), expanded into little-endian unsigned integers.
- Commitment: SHA-256 of a site's self-mask seed, so the server can check the seed it
  reconstructs from shares.

``cryptography`` is imported on first use: a process that only loads the workflows (the
server's job process running FedAvg) does not pay for its libraries (about 7 MiB).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from fedra.core import Array
from fedra.secagg.errors import SecAggError

KEY_BYTES = 32
SEED_BYTES = 32
SESSION_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
#: Purposes a derived key may have (part of the HKDF info).
ENCRYPT, MASK = b"encrypt", b"mask"
_LABEL = b"fedra-secagg/v1/"
#: The keystream is produced this many bytes at a time (from a shared buffer of zeros).
_CHUNK = 1 << 22
_ZEROS = memoryview(bytes(_CHUNK))


def new_private_key() -> bytes:
    """A fresh X25519 private key (32 raw bytes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_key(private: bytes) -> bytes:
    """The X25519 public key (32 raw bytes) of a raw private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.from_private_bytes(_exact(private, KEY_BYTES, "private key"))
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def new_seed() -> bytes:
    """A fresh 32-byte seed (a site's self-mask seed b)."""
    return os.urandom(SEED_BYTES)


def new_session() -> bytes:
    """A fresh random round identifier (:data:`SESSION_BYTES` bytes)."""
    return os.urandom(SESSION_BYTES)


def derive(
    private: bytes, peer_public: bytes, purpose: bytes, session: bytes, a: int, b: int
) -> bytes:
    """The 32-byte key two sites ``a`` and ``b`` share for ``purpose`` in ``session``.

    Both ends compute the same key: X25519 is symmetric, and the pair is put in order.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = X25519PrivateKey.from_private_bytes(_exact(private, KEY_BYTES, "private key"))
    try:
        peer = X25519PublicKey.from_public_bytes(_exact(peer_public, KEY_BYTES, "public key"))
        shared = key.exchange(peer)
    except ValueError as exc:
        raise SecAggError(f"key agreement between sites {a} and {b} failed: {exc}") from exc
    low, high = sorted((a, b))
    info = _LABEL + purpose + b"/" + low.to_bytes(4, "big") + high.to_bytes(4, "big")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=session, info=info).derive(shared)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """``nonce || AES-GCM(key, plaintext, associated)``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, blob: bytes, associated: bytes, what: str) -> bytes:
    """Decrypt :func:`seal`'s output; a SecAggError if it was changed, cut or misrouted."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise SecAggError(f"{what}: ciphertext too short ({len(blob)} bytes)")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
    except InvalidTag as exc:
        raise SecAggError(
            f"{what}: ciphertext failed authentication (tampered with, or not meant for this "
            "site and round)"
        ) from exc


def prg(seed: bytes, count: int, dtype: type[np.unsignedinteger]) -> Array:
    """``count`` pseudo-random unsigned integers of ``dtype`` expanded from ``seed``.

    AES-256-CTR keystream with a zero nonce: every seed is used for one mask only (seeds are
    fresh per round and per pair), so the keystream is never reused. The keystream is
    written straight into the result, :data:`_CHUNK` bytes at a time.
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    size = count * np.dtype(dtype).itemsize
    cipher = Cipher(algorithms.AES(_exact(seed, SEED_BYTES, "seed")), modes.CTR(bytes(16)))
    encryptor = cipher.encryptor()
    out = np.empty(size + 15, dtype=np.uint8)  # update_into wants room for a block more
    buffer = out.data  # a memoryview of the array
    for start in range(0, size, _CHUNK):
        stop = min(start + _CHUNK, size)
        encryptor.update_into(_ZEROS[: stop - start], buffer[start : stop + 15])
    return out[:size].view(np.dtype(dtype).newbyteorder("<")).astype(dtype, copy=False)


def commit(seed: bytes, session: bytes, index: int) -> bytes:
    """A SHA-256 commitment to site ``index``'s self-mask seed in ``session``."""
    return hashlib.sha256(_LABEL + b"commit/" + session + index.to_bytes(4, "big") + seed).digest()


def _exact(data: bytes, size: int, what: str) -> bytes:
    if len(data) != size:
        raise SecAggError(f"a {what} must be {size} bytes, got {len(data)}")
    return data
