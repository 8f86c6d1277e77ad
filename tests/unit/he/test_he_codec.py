"""Encrypted params: round trips, layouts, and refusals of malformed or foreign ciphertexts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedra.core import WireError
from fedra.he import (
    CIPHERTEXT,
    LAYOUT,
    HEContext,
    HEKeys,
    Layout,
    decrypt_params,
    encrypt_params,
    is_encrypted,
    layout_of,
    tenseal,
)

pytest.importorskip("tenseal")  # the he extra


def _contexts(keys: HEKeys) -> tuple[HEContext, HEContext]:
    ts = tenseal()
    return HEContext(ts.context_from(keys.secret)), HEContext(ts.context_from(keys.public))


@pytest.fixture(scope="module")
def site() -> HEContext:
    return _contexts(HEKeys.generate())[0]


def _params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv.weight": rng.normal(size=(50, 100)).astype(np.float32),  # 5000 values: 2 chunks
        "fc.bias": rng.normal(scale=100.0, size=7),
        "bn.num_batches_tracked": np.array(12345, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "small": np.arange(-3, 3, dtype=np.int8).reshape(2, 3),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def test_round_trip_keeps_names_shapes_dtypes_and_values(site: HEContext) -> None:
    params = _params()
    encrypted = encrypt_params(params, site)
    assert set(encrypted) == {CIPHERTEXT, LAYOUT}
    assert is_encrypted(encrypted) and not is_encrypted(params)
    assert encrypted[CIPHERTEXT].dtype == np.uint8
    layout = layout_of(encrypted)
    assert len(layout.chunks) == 2  # 5000 + 7 + 1 + 3 + 6 values, 4096 per ciphertext
    back = decrypt_params(encrypted, site)
    assert set(back) == set(params)
    for name, original in params.items():
        assert back[name].dtype == original.dtype, name
        assert back[name].shape == original.shape, name
    np.testing.assert_allclose(back["conv.weight"], params["conv.weight"], atol=1e-5)
    np.testing.assert_allclose(back["fc.bias"], params["fc.bias"], rtol=1e-6, atol=1e-4)
    assert int(back["bn.num_batches_tracked"]) == 12345
    np.testing.assert_array_equal(back["mask"], params["mask"])
    np.testing.assert_array_equal(back["small"], params["small"])


def test_ciphertext_reveals_nothing_plain(site: HEContext) -> None:
    params = {"w": np.full(100, 0.123456, dtype=np.float64)}
    data = encrypt_params(params, site)[CIPHERTEXT].tobytes()
    assert params["w"].tobytes()[:8] not in data
    # Two encryptions of the same model differ (CKKS is randomised).
    again = encrypt_params(params, site)[CIPHERTEXT].tobytes()
    assert again != data


def test_another_key_is_named_not_decrypted_to_noise(site: HEContext) -> None:
    other, _ = _contexts(HEKeys.generate())
    encrypted = encrypt_params({"w": np.ones(3)}, other)
    with pytest.raises(WireError, match="another HE key"):
        decrypt_params(encrypted, site)


def test_public_context_cannot_decrypt() -> None:
    keys_site, keys_server = _contexts(HEKeys.generate())
    encrypted = encrypt_params({"w": np.ones(3)}, keys_site)
    with pytest.raises(WireError, match="no secret key"):
        decrypt_params(encrypted, keys_server)


def _with_layout(encrypted: dict[str, np.ndarray], **changes: object) -> dict[str, np.ndarray]:
    doc = json.loads(encrypted[LAYOUT].tobytes())
    doc.update(changes)
    return {
        CIPHERTEXT: encrypted[CIPHERTEXT],
        LAYOUT: np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8),
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 2}, "version"),
        ({"scheme": "bfv"}, "CKKS layout"),
        ({"dtypes": ["object"]}, "unsupported dtype"),
        ({"names": ["a", "b"]}, "one to one"),
        ({"divisor": 0}, "divisor"),
        ({"chunks": [1, 2, 3]}, "ciphertexts cannot hold"),
        ({"shapes": [[-1]]}, "malformed"),
    ],
)
def test_malformed_layouts_are_refused(
    site: HEContext, changes: dict[str, object], message: str
) -> None:
    encrypted = encrypt_params({"w": np.ones(3)}, site)
    with pytest.raises(WireError, match=message):
        decrypt_params(_with_layout(encrypted, **changes), site)


def test_truncated_or_mixed_models_are_refused(site: HEContext) -> None:
    encrypted = encrypt_params({"w": np.ones(3)}, site)
    truncated = {CIPHERTEXT: encrypted[CIPHERTEXT][:-10], LAYOUT: encrypted[LAYOUT]}
    with pytest.raises(WireError, match="bytes of ciphertext"):
        decrypt_params(truncated, site)
    with pytest.raises(WireError, match="exactly"):
        decrypt_params({**encrypted, "extra": np.ones(1)}, site)
    with pytest.raises(WireError, match="not JSON"):
        Layout.from_array(np.frombuffer(b"\xff\xfe", dtype=np.uint8))
    corrupt = encrypted[CIPHERTEXT].copy()
    corrupt[:64] = 0
    with pytest.raises(WireError, match="not a CKKS ciphertext"):
        decrypt_params({CIPHERTEXT: corrupt, LAYOUT: encrypted[LAYOUT]}, site)


def test_unsupported_dtypes_and_non_finite_values_are_refused(site: HEContext) -> None:
    with pytest.raises(ValueError, match="cannot encrypt dtype complex128"):
        encrypt_params({"z": np.ones(2, dtype=np.complex128)}, site)
    with pytest.raises(ValueError, match="param 'b' holds NaN or Inf"):
        encrypt_params({"a": np.ones(2), "b": np.array([1.0, np.inf])}, site)
