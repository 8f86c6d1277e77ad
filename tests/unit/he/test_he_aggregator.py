"""he_weighted: the encrypted weighted average equals the plain one, and the server never
holds the secret key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedra.aggregators import (
    AGGREGATORS,
    HEWeightedAggregator,
    WeightedAggregator,
    make_aggregator,
    use_keys,
)
from fedra.core import FLModel, ParamsType, WorkflowError
from fedra.he import (
    SITE_CONTEXT_FILE,
    HEContext,
    HEKeyError,
    HEKeys,
    decrypt_params,
    encrypt_params,
    load_context,
    write_kits,
)
from fedra.workflows import FedAvg, FedOpt

pytest.importorskip("tenseal")  # the he extra


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kits")
    write_kits(root, ["site-1", "site-2", "site-3"], HEKeys.generate())
    return root


@pytest.fixture(scope="module")
def site(kits: Path) -> HEContext:
    return load_context(kits / "site-1" / "startup" / SITE_CONTEXT_FILE, secret=True)


def _server_aggregator(kits: Path) -> HEWeightedAggregator:
    aggregator = make_aggregator("he_weighted")
    use_keys(aggregator, kits / "server" / "startup")
    assert isinstance(aggregator, HEWeightedAggregator)
    return aggregator


def _plain_results(n_sites: int = 3) -> list[FLModel]:
    rng = np.random.default_rng(11)
    weights = [1.0, 250.0, 3.5, 40.0][:n_sites]
    return [
        FLModel(
            params={
                "w": rng.normal(size=(100, 90)).astype(np.float32),  # 9000 values: 3 ciphertexts
                "b": rng.normal(scale=10.0, size=5),
                "count": np.array(10 * (i + 1), dtype=np.int64),
            },
            metrics={"accuracy": 0.5 + 0.1 * i},
            meta={"num_samples": weight},
        )
        for i, weight in enumerate(weights)
    ]


def _encrypted(model: FLModel, context: HEContext) -> FLModel:
    assert model.params is not None
    return FLModel(
        params=encrypt_params(model.params, context), metrics=model.metrics, meta=model.meta
    )


def test_encrypted_average_equals_the_plain_weighted_average(kits: Path, site: HEContext) -> None:
    plain = _plain_results()
    aggregator = _server_aggregator(kits)
    for model in plain:
        aggregator.accept(_encrypted(model, site))
    result = aggregator.result()
    assert result.params is not None and result.params_type == ParamsType.FULL
    decrypted = decrypt_params(result.params, site)
    # Independent reference: numpy's weighted mean.
    weights = np.array([m.num_samples for m in plain])
    for name in ("w", "b"):
        stacked = np.stack([m.params[name].astype(np.float64) for m in plain])  # type: ignore[index]
        expected = np.average(stacked, axis=0, weights=weights)
        got = decrypted[name].astype(np.float64)
        assert decrypted[name].dtype == plain[0].params[name].dtype  # type: ignore[index]
        assert np.abs(got - expected).max() < 1e-4
        assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-3
    assert int(decrypted["count"]) == round(float(np.average([10, 20, 30], weights=weights)))
    # The same as Fedra's plain aggregator, metrics included.
    reference = WeightedAggregator()
    for model in plain:
        reference.accept(model)
    ref = reference.result()
    assert ref.params is not None
    np.testing.assert_allclose(decrypted["w"], ref.params["w"], atol=1e-4)
    assert result.metrics == pytest.approx(ref.metrics)
    assert aggregator.count == 3 and aggregator.total_weight == pytest.approx(weights.sum())


def test_the_server_side_only_ever_holds_public_contexts(kits: Path, site: HEContext) -> None:
    aggregator = _server_aggregator(kits)
    assert aggregator.context is not None
    assert not aggregator.context.is_private
    assert not aggregator.context.tenseal.is_private()
    assert not aggregator.context.tenseal.has_secret_key()
    for model in _plain_results(2):
        aggregator.accept(_encrypted(model, site))
    # Every ciphertext it computed with is bound to that public context.
    assert aggregator._acc  # inspecting what the server holds
    for vector in aggregator._acc:
        assert not vector.context().is_private()
        with pytest.raises(ValueError, match="secret_key"):
            vector.decrypt()
    # A secret context on the server is refused, from a file or given directly.
    with pytest.raises(HEKeyError, match="server must only have the public context"):
        HEWeightedAggregator(context_file=SITE_CONTEXT_FILE).load_keys(kits / "site-1" / "startup")
    with pytest.raises(HEKeyError, match="must only have the public context"):
        HEWeightedAggregator(context=site)


def test_a_site_file_named_as_the_server_file_is_refused(kits: Path, tmp_path: Path) -> None:
    startup = tmp_path / "server" / "startup"
    startup.mkdir(parents=True)
    (startup / "he_public_context.tenseal").write_bytes(
        (kits / "site-1" / "startup" / SITE_CONTEXT_FILE).read_bytes()
    )
    with pytest.raises(HEKeyError, match="holds the secret key"):
        _server_aggregator(tmp_path)
    with pytest.raises(HEKeyError, match="no startup folder"):
        use_keys(make_aggregator("he_weighted"), None)


def test_refuses_plain_diff_foreign_and_mismatched_results(kits: Path, site: HEContext) -> None:
    plain = _plain_results(1)[0]
    with pytest.raises(WorkflowError, match="arrived unencrypted; add HEEncrypt"):
        _server_aggregator(kits).accept(plain)
    diff = _encrypted(plain, site)
    diff.params_type = ParamsType.DIFF
    with pytest.raises(WorkflowError, match="must be full models"):
        _server_aggregator(kits).accept(diff)
    foreign = HEContext(__import__("tenseal").context_from(HEKeys.generate().secret))
    with pytest.raises(WorkflowError, match="another HE key"):
        _server_aggregator(kits).accept(_encrypted(plain, foreign))
    aggregator = _server_aggregator(kits)
    aggregator.accept(_encrypted(plain, site))
    other = FLModel(params={"w": np.ones(3)}, meta={"num_samples": 1})
    with pytest.raises(WorkflowError, match="different models"):
        aggregator.accept(_encrypted(other, site))
    with pytest.raises(WorkflowError, match="no HE context loaded"):
        HEWeightedAggregator().accept(_encrypted(plain, site))


def test_zero_weights_count_but_add_nothing(kits: Path, site: HEContext) -> None:
    a, b = _plain_results(2)
    b.meta["num_samples"] = 0
    aggregator = _server_aggregator(kits)
    aggregator.accept(_encrypted(a, site))
    aggregator.accept(_encrypted(b, site))
    result = aggregator.result()
    assert result.params is not None
    assert a.params is not None
    np.testing.assert_allclose(decrypt_params(result.params, site)["w"], a.params["w"], atol=1e-5)
    only_zero = _server_aggregator(kits)
    only_zero.accept(_encrypted(b, site))
    with pytest.raises(WorkflowError, match="num_samples = 0"):
        only_zero.result()


@pytest.mark.parametrize(
    ("name", "args"), [("weighted", {}), ("median", {}), ("krum", {"num_byzantine": 0})]
)
def test_plain_aggregators_refuse_ciphertexts(
    name: str, args: dict[str, int], site: HEContext
) -> None:
    encrypted = _encrypted(_plain_results(1)[0], site)
    with pytest.raises(WorkflowError, match="encrypted models are averaged by aggregator"):
        make_aggregator(name, **args).accept(encrypted)


def test_workflows_that_compute_on_the_global_model_refuse_it() -> None:
    assert AGGREGATORS["he_weighted"] is HEWeightedAggregator
    FedAvg(aggregator="he_weighted")  # stores and forwards the encrypted global: fine
    with pytest.raises(ValueError, match="keeps encrypted on the server"):
        FedOpt(optimizer="adam", aggregator="he_weighted")
    with pytest.raises(ValueError, match="context_file must be a file name"):
        FedAvg(aggregator="he_weighted", aggregator_args={"context_file": "/etc/passwd"})
