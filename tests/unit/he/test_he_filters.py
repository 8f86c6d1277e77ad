"""HEEncrypt and HEDecrypt on a site: keys from its startup folder, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedra.core import FLModel, ParamsType
from fedra.filters import FILTERS, FilterContext, FilterError, HEDecrypt, HEEncrypt, wrap_chains
from fedra.he import (
    CIPHERTEXT,
    SERVER_CONTEXT_FILE,
    SITE_CONTEXT_FILE,
    HEKeyError,
    HEKeys,
    write_kits,
)

pytest.importorskip("tenseal")  # the he extra


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kits")
    write_kits(root, ["site-1", "site-2"], HEKeys.generate())
    return root


def _ctx(kits: Path | None, direction: str, site: str = "site-1") -> FilterContext:
    startup = kits / site / "startup" if kits is not None else None
    return FilterContext(site, "train", direction, 1, startup_dir=startup)  # type: ignore[arg-type]


def _model() -> FLModel:
    rng = np.random.default_rng(3)
    return FLModel(
        params={"w": rng.normal(size=(4, 5)).astype(np.float32), "steps": np.array(7)},
        params_type=ParamsType.FULL,
        metrics={"loss": 0.5},
        meta={"num_samples": 40},
        current_round=2,
    )


def test_registered_for_job_configs() -> None:
    assert FILTERS["HEEncrypt"] is HEEncrypt
    assert FILTERS["HEDecrypt"] is HEDecrypt


def test_round_trip_through_two_sites_of_one_federation(kits: Path) -> None:
    model = _model()
    original = {k: v.copy() for k, v in model.params.items()}  # type: ignore[union-attr]
    sent = HEEncrypt()(model, _ctx(kits, "task_result", "site-1"))
    assert sent.params is not None and set(sent.params) == {"__he_ckks__", "__he_layout__"}
    # Metrics, meta and round travel in clear; the input model is untouched.
    assert sent.metrics == {"loss": 0.5} and sent.meta == {"num_samples": 40}
    assert sent.current_round == 2 and sent.params_type == ParamsType.FULL
    for name, array in original.items():
        np.testing.assert_array_equal(model.params[name], array)  # type: ignore[index]
    received = HEDecrypt()(sent, _ctx(kits, "task_data", "site-2"))
    assert received.params is not None
    np.testing.assert_allclose(received.params["w"], original["w"], atol=1e-5)
    assert received.params["steps"] == 7
    assert received.params["steps"].dtype == original["steps"].dtype


def test_plain_models_and_empty_results_pass(kits: Path) -> None:
    plain = _model()
    assert HEDecrypt()(plain, _ctx(kits, "task_data")) is plain
    metrics_only = FLModel(metrics={"accuracy": 0.9})
    assert HEEncrypt()(metrics_only, _ctx(None, "task_result")) is metrics_only


def test_missing_startup_folder_or_file_is_a_clear_error(kits: Path, tmp_path: Path) -> None:
    with pytest.raises(HEKeyError, match="HEEncrypt on site-1: no startup folder"):
        HEEncrypt()(_model(), _ctx(None, "task_result"))
    empty = FilterContext("site-1", "train", "task_result", 1, startup_dir=tmp_path)
    with pytest.raises(HEKeyError, match="no HE context here"):
        HEEncrypt()(_model(), empty)


def test_a_site_holding_only_the_public_context_cannot_decrypt(kits: Path) -> None:
    encrypted = HEEncrypt()(_model(), _ctx(kits, "task_result"))
    server_like = FilterContext(
        "site-1", "train", "task_data", 1, startup_dir=kits / "server" / "startup"
    )
    with pytest.raises(HEKeyError, match="holds no secret key"):
        HEDecrypt(context_file=SERVER_CONTEXT_FILE)(encrypted, server_like)


def test_wrong_key_is_refused_by_name(kits: Path, tmp_path: Path) -> None:
    write_kits(tmp_path, ["site-1"], HEKeys.generate())
    encrypted = HEEncrypt()(_model(), _ctx(kits, "task_result"))
    with pytest.raises(FilterError, match="another HE key"):
        HEDecrypt()(encrypted, _ctx(tmp_path, "task_data"))


def test_misplaced_or_misconfigured_filters(kits: Path) -> None:
    with pytest.raises(FilterError, match="belongs in the task_result_filters"):
        HEEncrypt()(_model(), _ctx(kits, "task_data"))
    encrypted = HEEncrypt()(_model(), _ctx(kits, "task_result"))
    with pytest.raises(FilterError, match="belongs in the task_data_filters"):
        HEDecrypt()(encrypted, _ctx(kits, "task_result"))
    with pytest.raises(FilterError, match="already encrypted"):
        HEEncrypt()(encrypted, _ctx(kits, "task_result"))
    with pytest.raises(ValueError, match="file name in the startup folder"):
        HEEncrypt(context_file="../../server/startup/" + SITE_CONTEXT_FILE)


def test_context_is_read_once_per_filter(kits: Path, tmp_path: Path) -> None:
    write_kits(tmp_path, ["site-1"], HEKeys.generate())
    encrypt = HEEncrypt()
    encrypt(_model(), _ctx(tmp_path, "task_result"))
    (tmp_path / "site-1" / "startup" / SITE_CONTEXT_FILE).unlink()
    assert CIPHERTEXT in (encrypt(_model(), _ctx(tmp_path, "task_result")).params or {})


def test_site_policy_encryption_runs_after_the_job_filters(kits: Path) -> None:
    seen: list[bool] = []

    def job_filter(model: FLModel, ctx: FilterContext) -> FLModel:
        seen.append(CIPHERTEXT in (model.params or {}))
        return model

    chain = wrap_chains([HEEncrypt()], [job_filter], "task_result")
    out = chain(_model(), _ctx(kits, "task_result"))
    assert seen == [False] and CIPHERTEXT in (out.params or {})
