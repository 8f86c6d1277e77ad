"""Masks, key agreement, quantization and the neighbour graph."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fedra.secagg import Quantizer, SecAggConfig, SecAggError, crypto, default_degree, neighbours

SESSION = bytes(range(16))


def test_prg_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    a = crypto.prg(b"a" * 32, 1000, np.uint64)
    assert a.dtype == np.uint64 and a.shape == (1000,)
    np.testing.assert_array_equal(a, crypto.prg(b"a" * 32, 1000, np.uint64))
    assert np.mean(a == crypto.prg(b"b" * 32, 1000, np.uint64)) == 0
    # A shorter expansion is a prefix of a longer one; 32-bit draws use the same stream.
    np.testing.assert_array_equal(crypto.prg(b"a" * 32, 10, np.uint64), a[:10])
    np.testing.assert_array_equal(crypto.prg(b"a" * 32, 2, np.uint32), a[:1].view(np.uint32))
    with pytest.raises(SecAggError, match="seed must be 32 bytes"):
        crypto.prg(b"short", 4, np.uint64)


def test_prg_is_the_aes_ctr_keystream_across_chunk_boundaries() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    seed = bytes(range(32))
    count = 600_001  # 4.8 MB: more than one 4 MiB chunk
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    expected = np.frombuffer(encryptor.update(bytes(8 * count)), dtype="<u8")
    np.testing.assert_array_equal(crypto.prg(seed, count, np.uint64), expected)


def test_key_agreement_is_symmetric_and_bound_to_purpose_session_and_pair() -> None:
    a, b = crypto.new_private_key(), crypto.new_private_key()
    pa, pb = crypto.public_key(a), crypto.public_key(b)
    k = crypto.derive(a, pb, crypto.MASK, SESSION, 1, 2)
    assert k == crypto.derive(b, pa, crypto.MASK, SESSION, 2, 1)
    assert k != crypto.derive(a, pb, crypto.ENCRYPT, SESSION, 1, 2)
    assert k != crypto.derive(a, pb, crypto.MASK, bytes(16), 1, 2)
    assert k != crypto.derive(a, pb, crypto.MASK, SESSION, 1, 3)
    with pytest.raises(SecAggError, match="key agreement"):
        crypto.derive(a, bytes(32), crypto.MASK, SESSION, 1, 2)  # a low-order point


def test_pairwise_masks_cancel_exactly() -> None:
    """Each pair adds the same mask once with + (lower index) and once with -: the sum is 0."""
    count, length = 5, 10_000
    keys = [crypto.new_private_key() for _ in range(count)]
    pubs = [crypto.public_key(k) for k in keys]
    total = np.zeros(length, dtype=np.uint64)
    per_site = []
    for i, j in itertools.product(range(count), repeat=2):
        if i == j:
            continue
        seed = crypto.derive(keys[i], pubs[j], crypto.MASK, SESSION, i, j)
        mask = crypto.prg(seed, length, np.uint64)
        if i < j:
            total += mask
        else:
            total -= mask
        per_site.append(mask)
    np.testing.assert_array_equal(total, np.zeros(length, dtype=np.uint64))
    assert all(np.any(m != 0) for m in per_site)


def test_sealed_share_messages_detect_tampering_and_misrouting() -> None:
    key = b"k" * 32
    blob = crypto.seal(key, b"secret share", b"aad")
    assert crypto.open_sealed(key, blob, b"aad", "share") == b"secret share"
    flipped = bytes([blob[0]]) + bytes([blob[1] ^ 1]) + blob[2:]
    with pytest.raises(SecAggError, match="failed authentication"):
        crypto.open_sealed(key, flipped, b"aad", "share")
    with pytest.raises(SecAggError, match="failed authentication"):
        crypto.open_sealed(key, blob, b"other recipient", "share")
    with pytest.raises(SecAggError, match="too short"):
        crypto.open_sealed(key, blob[:20], b"aad", "share")


def test_quantization_error_is_at_most_half_a_step_and_clips_outside() -> None:
    q = Quantizer(clip=1.0, bits=16, modulus_bits=32)
    assert q.step == pytest.approx(1 / 32767)
    x = np.linspace(-1, 1, 10_001)
    back = q.dequantize(q.signed(q.encode(q.quantize(x))))
    assert np.max(np.abs(back - x)) <= q.step / 2 + 1e-15
    outside = q.dequantize(q.signed(q.encode(q.quantize(np.array([-5.0, 7.0])))))
    np.testing.assert_allclose(outside, [-1.0, 1.0])
    with pytest.raises(SecAggError, match="NaN"):
        q.quantize(np.array([0.0, np.nan]))


def test_negative_sums_survive_the_modulus() -> None:
    q = Quantizer(clip=1.0, bits=8, modulus_bits=32)
    values = [np.array([-1.0, -0.5, 0.25]), np.array([-1.0, 0.1, -0.75])]
    encoded = [q.encode(q.quantize(v), 3) for v in values]
    assert all(e.dtype == np.uint32 for e in encoded)
    total = encoded[0] + encoded[1]
    expected = sum(np.rint(v / q.step).astype(np.int64) * 3 for v in values)
    np.testing.assert_array_equal(q.signed(total), expected)


def test_capacity_check_refuses_sums_that_could_wrap() -> None:
    q = Quantizer(clip=1.0, bits=24, modulus_bits=32)
    q.check_capacity(sites=255, max_weight=1)
    with pytest.raises(SecAggError, match="overflows 32-bit sums"):
        q.check_capacity(sites=257, max_weight=1)
    with pytest.raises(SecAggError, match="overflows"):
        SecAggConfig(bits=24, modulus_bits=32, weighted=True).check(5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip": 0.0}, "clip must be finite and > 0"),
        ({"clip": math.inf}, "clip must be finite"),
        ({"bits": 64}, r"bits must be an integer in \[2, 63\]"),
        ({"modulus_bits": 16}, "modulus_bits must be 32 or 64"),
        ({"threshold": 1}, "threshold must be >= 2"),
        ({"degree": 0}, "degree must be an integer >= 1"),
        ({"max_weight": -1}, "max_weight must be"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SecAggError, match=message):
        SecAggConfig(**kwargs)  # type: ignore[arg-type]


def test_config_json_round_trip_and_unknown_keys() -> None:
    config = SecAggConfig(clip=0.5, bits=20, degree=6, threshold=4)
    assert SecAggConfig.from_json(config.to_json()) == config
    with pytest.raises(SecAggError, match="unknown keys"):
        SecAggConfig.from_json({**config.to_json(), "evil": 1})
    with pytest.raises(SecAggError, match="threshold 9 exceeds the 5 holders"):
        SecAggConfig(threshold=9).check(5)


def test_small_federations_use_the_complete_graph() -> None:
    graph = neighbours([4, 2, 0, 1, 3], default_degree(5))
    assert all(graph[i] == frozenset(range(5)) - {i} for i in range(5))


def test_large_federations_use_a_regular_symmetric_ring() -> None:
    order = list(np.random.default_rng(0).permutation(100))
    degree = default_degree(100)
    assert degree == 14
    graph = neighbours(order, degree)
    assert {len(n) for n in graph.values()} == {14}
    assert all(i in graph[j] for i in graph for j in graph[i])
    assert all(i not in graph[i] for i in graph)
