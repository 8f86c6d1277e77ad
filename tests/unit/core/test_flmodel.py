"""FLModel: param conversion without torch, the num_samples weight, params_type coercion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedra.core import NUM_SAMPLES, FLModel, ParamsType, as_array, readonly


class _TensorLike:
    """Duck-typed stand-in for a torch tensor: detach() -> cpu() -> numpy()."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.calls: list[str] = []

    def detach(self) -> _TensorLike:
        self.calls.append("detach")
        return self

    def cpu(self) -> _TensorLike:
        self.calls.append("cpu")
        return self

    def numpy(self) -> np.ndarray:
        self.calls.append("numpy")
        return np.array(self.values, dtype=np.float32)


def test_lists_and_numbers_become_arrays() -> None:
    model = FLModel(params={"w": [[1.0, 2.0], [3.0, 4.0]], "b": 0.5, "n": 3, "t": (1, 2, 3)})
    assert model.params is not None
    assert all(isinstance(v, np.ndarray) for v in model.params.values())
    np.testing.assert_array_equal(model.params["w"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert model.params["b"].shape == () and model.params["b"] == 0.5
    assert model.params["n"].dtype.kind == "i" and model.params["n"] == 3
    np.testing.assert_array_equal(model.params["t"], [1, 2, 3])


def test_numpy_arrays_pass_through_uncopied() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    model = FLModel(params={"w": array})
    assert model.params is not None
    assert model.params["w"] is array
    assert model.nbytes() == array.nbytes


def test_keys_become_strings() -> None:
    model = FLModel(params={1: [1.0]})  # type: ignore[dict-item]
    assert model.params is not None
    assert list(model.params) == ["1"]


def test_tensor_like_converted_without_torch() -> None:
    tensor = _TensorLike([1.0, 2.0])
    array = as_array(tensor, "layer.weight")
    assert tensor.calls == ["detach", "cpu", "numpy"]
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, [1.0, 2.0])


@pytest.mark.parametrize("bad", ["abc", {"a": 1}, object(), None])
def test_unconvertible_param_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="'w'"):
        FLModel(params={"w": bad})  # type: ignore[dict-item]


def test_params_must_be_a_mapping() -> None:
    with pytest.raises(TypeError):
        FLModel(params=[np.zeros(2)])  # type: ignore[arg-type]


def test_num_samples_default_and_values() -> None:
    assert FLModel().num_samples == 1.0
    assert FLModel(meta={NUM_SAMPLES: 0}).num_samples == 0.0
    assert FLModel(meta={NUM_SAMPLES: 12}).num_samples == 12.0
    assert FLModel(meta={NUM_SAMPLES: 2.5}).num_samples == 2.5
    assert isinstance(FLModel(meta={NUM_SAMPLES: 7}).num_samples, float)


@pytest.mark.parametrize(
    "bad", [-1, -0.5, math.nan, math.inf, True, False, "10", None, [3]], ids=repr
)
def test_num_samples_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=NUM_SAMPLES):
        _ = FLModel(meta={NUM_SAMPLES: bad}).num_samples


@pytest.mark.parametrize(
    ("given", "expected"), [("full", ParamsType.FULL), ("diff", ParamsType.DIFF)]
)
def test_params_type_from_string(given: str, expected: ParamsType) -> None:
    model = FLModel(params_type=given)  # type: ignore[arg-type]
    assert model.params_type is expected


def test_unknown_params_type_rejected() -> None:
    with pytest.raises(ValueError):
        FLModel(params_type="delta")  # type: ignore[arg-type]


def test_readonly_views_share_memory_and_refuse_writes() -> None:
    params = {"w": np.zeros(4)}
    views = readonly(params)
    assert np.shares_memory(views["w"], params["w"])
    with pytest.raises(ValueError):
        views["w"][0] = 1.0
    params["w"][0] = 2.0  # the owner can still write
    assert views["w"][0] == 2.0
