"""Results the server reads other than the script meant: num_samples in metrics, params on
validate."""

from __future__ import annotations

import numpy as np

from fedra.core import TASK_TRAIN, TASK_VALIDATE, FLModel, result_warnings


def test_num_samples_in_metrics_is_named() -> None:
    found = result_warnings("site-1", TASK_TRAIN, FLModel(metrics={"num_samples": 50}))
    assert list(found) == [("site-1", "num_samples")]
    assert "meta['num_samples']" in found[("site-1", "num_samples")]
    assert "counts as 1 sample" in found[("site-1", "num_samples")]


def test_num_samples_in_meta_is_fine() -> None:
    model = FLModel(metrics={"num_samples": 50}, meta={"num_samples": 50})
    assert result_warnings("site-1", TASK_TRAIN, model) == {}
    assert result_warnings("site-1", TASK_TRAIN, FLModel(meta={"num_samples": 5})) == {}


def test_params_on_a_validate_task_are_named() -> None:
    model = FLModel(params={"w": np.zeros(2)}, metrics={"acc": 1.0})
    found = result_warnings("site-2", TASK_VALIDATE, model)
    assert list(found) == [("site-2", "validate_params")]
    assert "not used" in found[("site-2", "validate_params")]
    assert result_warnings("site-2", TASK_TRAIN, model) == {}
