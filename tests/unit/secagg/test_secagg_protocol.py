"""The protocol in process: exact sums, dropouts at every stage, what the server sees."""

from __future__ import annotations

import numpy as np
import pytest
from secagg_harness import Dropouts, names, quantized, run_round, wire

from fedra.core import FLModel
from fedra.secagg import (
    AdvertiseRequest,
    SecAggConfig,
    SecAggError,
    SecAggServer,
    SecAggSite,
    ShareKeysReply,
    ShareKeysRequest,
    Stage,
    UnmaskReply,
)

LENGTH = 4000
CLIP, BITS = 2.0, 24


def _inputs(count: int, seed: int = 0, length: int = LENGTH) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-1.5, 1.5, length) for name in names(count)}


def _expected_total(
    inputs: dict[str, np.ndarray], weights: dict[str, float], sites: list[str]
) -> np.ndarray:
    return sum(quantized(inputs[s], CLIP, BITS) * int(weights[s]) for s in sites)  # type: ignore[return-value]


@pytest.mark.parametrize("modulus_bits", [32, 64])
def test_five_sites_give_the_exact_sum(modulus_bits: int) -> None:
    inputs = _inputs(5)
    weights = {s: float(i + 1) for i, s in enumerate(inputs)}
    bits = 20 if modulus_bits == 32 else BITS
    config = SecAggConfig(clip=CLIP, bits=bits, modulus_bits=modulus_bits, max_weight=16)
    result = run_round(inputs, config, weights).result
    assert result is not None
    total = sum(quantized(inputs[s], CLIP, bits) * int(weights[s]) for s in inputs)
    np.testing.assert_array_equal(result.total, total)
    assert result.weight == 15
    mean = sum(inputs[s] * weights[s] for s in inputs) / 15
    step = CLIP / (2 ** (bits - 1) - 1)
    assert np.max(np.abs(result.mean - mean)) <= step / 2 + 1e-12
    assert result.survivors == list(inputs) and result.dropped == {}


def test_unweighted_sum_counts_each_site_once() -> None:
    inputs = _inputs(5, seed=1)
    config = SecAggConfig(clip=CLIP, bits=BITS, weighted=False)
    weights = {s: 1000.0 for s in inputs}  # ignored when unweighted
    result = run_round(inputs, config, weights).result
    assert result is not None
    np.testing.assert_array_equal(
        result.total, sum(quantized(x, CLIP, BITS) for x in inputs.values())
    )
    assert result.weight == 5


def test_a_site_whose_masked_input_never_arrives_is_left_out() -> None:
    inputs = _inputs(5, seed=2)
    weights = {s: float(i + 1) for i, s in enumerate(inputs)}
    config = SecAggConfig(clip=CLIP, bits=BITS)
    rnd = run_round(inputs, config, weights, Dropouts(masked_input=["site-3"]))
    assert rnd.result is not None
    survivors = ["site-1", "site-2", "site-4", "site-5"]
    np.testing.assert_array_equal(rnd.result.total, _expected_total(inputs, weights, survivors))
    assert rnd.result.weight == 1 + 2 + 4 + 5
    assert rnd.result.survivors == survivors
    assert set(rnd.result.dropped) == {"site-3"}
    # The server asked for site-3's mask key, and for nobody's self-mask seed but survivors'.
    for model in rnd.replies["unmask"].values():
        reply = UnmaskReply.from_model(model)
        assert set(reply.sk_shares) == {2}
        assert 2 not in reply.b_shares


def test_a_site_that_leaves_after_sending_its_masked_input_still_counts() -> None:
    inputs = _inputs(5, seed=3)
    weights = {s: 2.0 for s in inputs}
    rnd = run_round(
        inputs, SecAggConfig(clip=CLIP, bits=BITS), weights, Dropouts(unmask=["site-5"])
    )
    assert rnd.result is not None
    np.testing.assert_array_equal(rnd.result.total, _expected_total(inputs, weights, list(inputs)))
    assert rnd.result.survivors == list(inputs)
    assert "site-5" in rnd.result.dropped


def test_dropouts_at_the_key_stages_leave_the_others_summed() -> None:
    inputs = _inputs(7, seed=4)
    weights = {s: 1.0 for s in inputs}
    dropouts = Dropouts(advertise=["site-2"], share_keys=["site-6"], masked_input=["site-4"])
    rnd = run_round(inputs, SecAggConfig(clip=CLIP, bits=BITS), weights, dropouts)
    assert rnd.result is not None
    survivors = ["site-1", "site-3", "site-5", "site-7"]
    np.testing.assert_array_equal(rnd.result.total, _expected_total(inputs, weights, survivors))
    assert set(rnd.result.dropped) == {"site-2", "site-4", "site-6"}


def test_a_majority_dropping_out_fails_the_round_with_a_clear_error() -> None:
    inputs = _inputs(5, seed=5)
    with pytest.raises(SecAggError, match="too many sites dropped out"):
        run_round(
            inputs,
            SecAggConfig(clip=CLIP, bits=BITS),
            dropouts=Dropouts(masked_input=["site-1", "site-2", "site-3"]),
        )


def test_minority_dropout_needs_only_threshold_holders() -> None:
    """5 sites, threshold 3: two sites may drop; exactly 3 survivors suffice."""
    inputs = _inputs(5, seed=6)
    weights = {s: 1.0 for s in inputs}
    rnd = run_round(
        inputs,
        SecAggConfig(clip=CLIP, bits=BITS),
        weights,
        Dropouts(masked_input=["site-2", "site-4"]),
    )
    assert rnd.server.threshold == 3 and rnd.result is not None
    survivors = ["site-1", "site-3", "site-5"]
    np.testing.assert_array_equal(rnd.result.total, _expected_total(inputs, weights, survivors))


def test_secagg_plus_graph_limits_each_sites_neighbours() -> None:
    inputs = _inputs(20, seed=7, length=500)
    weights = {s: 1.0 for s in inputs}
    config = SecAggConfig(clip=CLIP, bits=BITS, degree=4)
    rnd = run_round(inputs, config, weights, Dropouts(masked_input=["site-9"]))
    assert rnd.result is not None
    survivors = [s for s in inputs if s != "site-9"]
    np.testing.assert_array_equal(rnd.result.total, _expected_total(inputs, weights, survivors))
    assert rnd.server.threshold == 3  # majority of 5 holders: the site and its 4 neighbours
    for model in rnd.replies["share_keys"].values():
        assert len(ShareKeysReply.from_model(model).ciphertexts) == 4


def test_the_server_receives_masked_vectors_only() -> None:
    """What reaches the server looks uniformly random and never equals a site's input."""
    inputs = _inputs(5, seed=8, length=20_000)
    weights = {s: 3.0 for s in inputs}
    config = SecAggConfig(clip=CLIP, bits=BITS)
    seen: list[tuple[str, str, FLModel]] = []
    rnd = run_round(inputs, config, weights, observe=lambda st, s, m: seen.append((st, s, m)))
    assert rnd.result is not None
    encoded = {s: (quantized(x, CLIP, BITS) * 3).astype(np.uint64) for s, x in inputs.items()}
    plain_top = np.concatenate([(e >> np.uint64(56)) for e in encoded.values()])
    # The unmasked encodings are small numbers: their top byte is 0 or 255 only.
    assert set(np.unique(plain_top).tolist()) <= {0, 255}
    masked_vectors = 0
    for stage, site, model in seen:
        for name, array in (model.params or {}).items():
            assert array.dtype in (np.uint8, np.uint32, np.uint64), (stage, name, array.dtype)
            if stage != "masked_input":
                continue
            masked_vectors += 1
            plain = np.append(encoded[site], np.uint64(3))
            assert np.mean(array == plain) < 0.001
            for other in encoded.values():  # not any site's input either
                assert np.mean(array[:-1] == other) < 0.001
            top = (array >> np.uint64(56)).astype(np.int64)
            counts = np.bincount(top, minlength=256)
            expected = array.size / 256
            chi2 = float(np.sum((counts - expected) ** 2 / expected))
            assert chi2 < 400, chi2  # 255 dof: p ~ 1e-8 for a uniform top byte
            ones = np.unpackbits(array.view(np.uint8)).mean()
            assert abs(ones - 0.5) < 0.005
    assert masked_vectors == 5
    # Nothing the server keeps holds a site's input.
    for value in vars(rnd.server).values():
        if isinstance(value, np.ndarray) and value.size >= LENGTH:
            for plain in encoded.values():
                assert np.mean(value[: plain.size] == plain) < 0.001


def test_server_never_asks_for_both_secrets_of_a_site() -> None:
    inputs = _inputs(6, seed=9, length=50)
    rnd = run_round(
        inputs, SecAggConfig(clip=CLIP, bits=BITS), dropouts=Dropouts(masked_input=["site-2"])
    )
    asked_b: set[int] = set()
    asked_sk: set[int] = set()
    for model in rnd.replies["unmask"].values():
        reply = UnmaskReply.from_model(model)
        asked_b.update(reply.b_shares)
        asked_sk.update(reply.sk_shares)
    assert asked_b and asked_sk and not asked_b & asked_sk


def test_replies_are_checked_against_the_round() -> None:
    config = SecAggConfig(clip=CLIP, bits=BITS)
    server = SecAggServer(names(3), config, 10)
    other = SecAggServer(names(3), config, 10)
    site = SecAggSite("site-1")
    foreign = site.advertise(AdvertiseRequest.from_model(other.advertise_request().to_model()))
    with pytest.raises(SecAggError, match="another secure aggregation round"):
        server.accept("site-1", foreign.to_model())
    with pytest.raises(SecAggError, match="not a participant"):
        server.accept("site-9", foreign.to_model())
    mine = site.advertise(AdvertiseRequest.from_model(server.advertise_request().to_model()))
    server.accept("site-1", mine.to_model())
    with pytest.raises(SecAggError, match="twice"):
        server.accept("site-1", mine.to_model())
    with pytest.raises(SecAggError, match="is missing"):
        server.accept(
            "site-2",
            FLModel(meta={"secagg": {"stage": "advertise", "session": server.session.hex()}}),
        )
    with pytest.raises(SecAggError, match="is the site a SecAggClient"):
        server.accept("site-3", FLModel(params={"w": np.zeros(3)}))
    assert server.stage is Stage.ADVERTISE


def test_share_keys_request_must_carry_the_sites_own_keys() -> None:
    config = SecAggConfig(clip=CLIP, bits=BITS)
    server = SecAggServer(names(3), config, 10)
    sites = {n: SecAggSite(n) for n in names(3)}
    request = server.advertise_request().to_model()
    for name, site in sites.items():
        server.accept(name, wire(site.advertise(AdvertiseRequest.from_model(request)).to_model()))
    server.advance()
    share = server.share_keys_request()
    swapped = dict(share.s_pks)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    forged = ShareKeysRequest(share.session, share.order, share.c_pks, swapped)
    with pytest.raises(SecAggError, match="own keys"):
        sites["site-1"].share_keys(forged)
