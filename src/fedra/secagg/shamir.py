"""Shamir secret sharing over the prime field GF(2**521 - 1).

A secret of up to 64 bytes (here: a 32-byte X25519 private key or a 32-byte mask seed) is the
constant term of a random polynomial of degree ``threshold - 1``; share ``x`` is the
polynomial's value at ``x`` (``x`` = 1 + the holder's index). Any ``threshold`` shares give
the secret back by Lagrange interpolation at 0; fewer give no information about it.

The field is the Mersenne prime ``2**521 - 1``, so every 64-byte secret fits and a share's
value travels as :data:`SHARE_BYTES` big-endian bytes. Coefficients come from
:mod:`secrets` (the operating system's CSPRNG).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fedra.secagg.errors import SecAggError

PRIME = 2**521 - 1
#: Bytes of one share's value on the wire: ceil(521 / 8).
SHARE_BYTES = 66
#: Largest secret in bytes: any 64-byte value is below PRIME.
MAX_SECRET_BYTES = 64


@dataclass(frozen=True)
class Share:
    """The value ``y`` of the sharing polynomial at ``x`` (``1 <= x``, ``0 <= y < PRIME``)."""

    x: int
    y: int

    def to_bytes(self) -> bytes:
        """The value as :data:`SHARE_BYTES` big-endian bytes (``x`` travels separately)."""
        return self.y.to_bytes(SHARE_BYTES, "big")

    @classmethod
    def from_bytes(cls, x: int, data: bytes) -> Share:
        """Parse a share value received for holder ``x``; refuses a wrong size or range."""
        if len(data) != SHARE_BYTES:
            raise SecAggError(f"a share must be {SHARE_BYTES} bytes, got {len(data)}")
        y = int.from_bytes(data, "big")
        if y >= PRIME:
            raise SecAggError("a share's value is outside the field")
        _check_x(x)
        return cls(x, y)


def _check_x(x: int) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x < PRIME:
        raise SecAggError(f"a share's x must be an integer >= 1, got {x!r}")


def split(secret: bytes, threshold: int, xs: Iterable[int]) -> dict[int, Share]:
    """Shares of ``secret`` for the holders ``xs``, any ``threshold`` of which recover it."""
    holders = list(xs)
    for x in holders:
        _check_x(x)
    if len(set(holders)) != len(holders):
        raise SecAggError(f"share holders must be distinct, got {holders}")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise SecAggError(f"threshold must be an integer >= 1, got {threshold!r}")
    if threshold > len(holders):
        raise SecAggError(f"threshold {threshold} exceeds the {len(holders)} share holders")
    if len(secret) > MAX_SECRET_BYTES:
        raise SecAggError(f"a secret may have at most {MAX_SECRET_BYTES} bytes")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return {x: Share(x, _evaluate(coefficients, x)) for x in holders}


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    value = 0
    for c in reversed(coefficients):
        value = (value * x + c) % PRIME
    return value


def interpolate_at_zero(shares: Sequence[Share]) -> int:
    """The value at 0 of the polynomial of degree ``len(shares) - 1`` through ``shares``."""
    xs = [s.x for s in shares]
    if len(set(xs)) != len(xs):
        raise SecAggError(f"shares must have distinct x, got {sorted(xs)}")
    total = 0
    for i, share in enumerate(shares):
        numerator, denominator = 1, 1
        for j, other in enumerate(shares):
            if i != j:
                numerator = numerator * other.x % PRIME
                denominator = denominator * (other.x - share.x) % PRIME
        total = (total + share.y * numerator * pow(denominator, -1, PRIME)) % PRIME
    return total


def reconstruct(shares: Iterable[Share], threshold: int, length: int) -> bytes:
    """The ``length``-byte secret from at least ``threshold`` shares.

    Uses the ``threshold`` shares with the smallest x. A value that does not fit in
    ``length`` bytes means the shares do not belong together (one was corrupted); callers
    that know a commitment to the secret check it as well.
    """
    distinct = {s.x: s for s in shares}
    if len(distinct) < threshold:
        raise SecAggError(f"need {threshold} shares to reconstruct a secret, got {len(distinct)}")
    chosen = [distinct[x] for x in sorted(distinct)[:threshold]]
    value = interpolate_at_zero(chosen)
    if value >= 1 << (8 * length):
        raise SecAggError("the shares are inconsistent: the reconstructed secret is out of range")
    return value.to_bytes(length, "big")
