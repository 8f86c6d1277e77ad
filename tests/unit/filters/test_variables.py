"""ExcludeVars, IncludeVars and RejectNonFinite."""

from __future__ import annotations

import numpy as np
import pytest

from fedra.core import FLModel
from fedra.filters import ExcludeVars, FilterContext, FilterError, IncludeVars, RejectNonFinite

CTX = FilterContext("site-1", "train", "task_result", 0, np.random.default_rng(0))


def _model() -> FLModel:
    return FLModel(
        params={
            "enc.0.weight": np.ones(3),
            "enc.0.bias": np.zeros(3),
            "head.weight": np.full(2, 2.0),
            "steps": np.asarray(4),
        },
        metrics={"acc": 0.9},
        meta={"num_samples": 10},
    )


def test_exclude_by_name_and_regex() -> None:
    model = _model()
    out = ExcludeVars(names=["steps"], pattern=r"head\..*")(model, CTX)
    assert set(out.params or {}) == {"enc.0.weight", "enc.0.bias"}
    assert set(model.params or {}) == {"enc.0.weight", "enc.0.bias", "head.weight", "steps"}
    assert out.metrics == {"acc": 0.9} and out.meta == {"num_samples": 10}


def test_include_by_name_and_regex() -> None:
    out = IncludeVars(names=["steps"], pattern=r"enc\.\d+\.weight")(_model(), CTX)
    assert set(out.params or {}) == {"enc.0.weight", "steps"}


def test_regex_is_fullmatch() -> None:
    out = IncludeVars(pattern="enc")(_model(), CTX)
    assert out.params == {}


def test_invalid_regex_is_value_error() -> None:
    with pytest.raises(ValueError, match="invalid regex"):
        ExcludeVars(pattern="(")


def test_selector_needs_something() -> None:
    with pytest.raises(ValueError):
        IncludeVars()


def test_none_params_pass() -> None:
    out = ExcludeVars(names=["x"])(FLModel(metrics={"a": 1}), CTX)
    assert out.params is None and out.metrics == {"a": 1}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_reject_non_finite_names_param(bad: float) -> None:
    model = _model()
    assert model.params is not None
    model.params["head.weight"] = np.asarray([1.0, bad])
    with pytest.raises(FilterError, match=r"head\.weight"):
        RejectNonFinite()(model, CTX)


def test_reject_non_finite_passes_clean_input() -> None:
    model = _model()
    out = RejectNonFinite()(model, CTX)
    assert out.params is not None
    for name, array in (model.params or {}).items():
        np.testing.assert_array_equal(out.params[name], array)
