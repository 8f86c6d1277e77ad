"""Shamir secret sharing: any t shares recover the secret, t-1 do not."""

from __future__ import annotations

import itertools
import os
import random

import pytest

from fedra.secagg import PRIME, SecAggError, Share, reconstruct, split
from fedra.secagg.shamir import SHARE_BYTES, interpolate_at_zero


def _probably_prime(n: int, rounds: int = 32) -> bool:
    """Miller-Rabin, written here independently of the module under test."""
    if n < 4:
        return n in (2, 3)
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    rng = random.Random(1)
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def test_the_field_is_the_mersenne_prime_2_521_minus_1() -> None:
    assert PRIME == 2**521 - 1
    assert _probably_prime(PRIME)
    assert not _probably_prime(PRIME - 2)


@pytest.mark.parametrize(("threshold", "holders"), [(2, 2), (2, 5), (3, 5), (5, 5), (4, 9)])
def test_every_set_of_exactly_t_shares_recovers_the_secret(threshold: int, holders: int) -> None:
    secret = os.urandom(32)
    shares = split(secret, threshold, range(1, holders + 1))
    assert set(shares) == set(range(1, holders + 1))
    for subset in itertools.combinations(shares.values(), threshold):
        assert reconstruct(subset, threshold, 32) == secret


def test_more_than_t_shares_also_work() -> None:
    secret = os.urandom(32)
    shares = split(secret, 3, [2, 4, 7, 9, 11])
    assert reconstruct(shares.values(), 3, 32) == secret
    # Interpolating through all 5 points of a degree-2 polynomial gives the same value.
    assert interpolate_at_zero(list(shares.values())) == int.from_bytes(secret, "big")


def test_t_minus_1_shares_are_refused_and_do_not_determine_the_secret() -> None:
    secret = os.urandom(32)
    shares = list(split(secret, 3, [1, 2, 3, 4, 5]).values())
    with pytest.raises(SecAggError, match="need 3 shares"):
        reconstruct(shares[:2], 3, 32)
    # Forcing an interpolation through 2 points gives some other value: the secret is hidden.
    assert interpolate_at_zero(shares[:2]) != int.from_bytes(secret, "big")
    # And two shares are consistent with any secret: for a chosen fake secret there is a
    # degree-2 polynomial through (0, fake) and both shares.
    fake = 12345
    points = [Share(0, fake), shares[0], shares[1]]
    poly_at = _lagrange_eval(points)
    assert poly_at(shares[0].x) == shares[0].y and poly_at(0) == fake


def _lagrange_eval(points: list[Share]):  # type: ignore[no-untyped-def]
    def at(x: int) -> int:
        total = 0
        for i, p in enumerate(points):
            num, den = 1, 1
            for j, q in enumerate(points):
                if i != j:
                    num = num * (x - q.x) % PRIME
                    den = den * (p.x - q.x) % PRIME
            total = (total + p.y * num * pow(den, -1, PRIME)) % PRIME
        return total

    return at


def test_the_same_holder_twice_counts_once() -> None:
    shares = split(os.urandom(32), 3, [1, 2, 3])
    with pytest.raises(SecAggError, match="need 3 shares"):
        reconstruct([shares[1], shares[1], shares[2]], 3, 32)


def test_a_corrupted_share_is_detected_or_changes_the_secret() -> None:
    secret = os.urandom(32)
    shares = split(secret, 3, [1, 2, 3])
    bad = Share(1, (shares[1].y + 1) % PRIME)
    try:
        recovered = reconstruct([bad, shares[2], shares[3]], 3, 32)
    except SecAggError as exc:
        assert "inconsistent" in str(exc)
    else:
        assert recovered != secret


def test_shares_round_trip_through_bytes() -> None:
    shares = split(b"\x00" * 31 + b"\x07", 2, [1, 2])
    data = shares[2].to_bytes()
    assert len(data) == SHARE_BYTES
    assert Share.from_bytes(2, data) == shares[2]
    with pytest.raises(SecAggError, match="must be 66 bytes"):
        Share.from_bytes(2, data[:-1])
    with pytest.raises(SecAggError, match="outside the field"):
        Share.from_bytes(2, b"\xff" * SHARE_BYTES)
    with pytest.raises(SecAggError, match="x must be"):
        Share.from_bytes(0, data)


@pytest.mark.parametrize(
    ("threshold", "xs", "secret", "message"),
    [
        (4, [1, 2, 3], b"s", "exceeds the 3 share holders"),
        (0, [1, 2, 3], b"s", "threshold must be"),
        (2, [1, 1, 3], b"s", "distinct"),
        (2, [0, 1, 3], b"s", "x must be"),
        (2, [1, 2], b"s" * 65, "at most 64 bytes"),
    ],
)
def test_bad_arguments_are_refused(
    threshold: int, xs: list[int], secret: bytes, message: str
) -> None:
    with pytest.raises(SecAggError, match=message):
        split(secret, threshold, xs)
