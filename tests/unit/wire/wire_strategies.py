"""Hypothesis strategies and comparisons shared by the wire tests."""

from __future__ import annotations

import json
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import strategies as st

from fedra.core import FLModel, ParamsType
from fedra.wire import ALLOWED_DTYPES, Envelope

_ENDIAN = st.sampled_from(["<", ">", "="])


@st.composite
def wire_dtypes(draw: st.DrawFn) -> np.dtype[Any]:
    """An allowed dtype, in any byte order."""
    base = draw(st.sampled_from(sorted(ALLOWED_DTYPES)))
    dtype = np.dtype(base)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(draw(_ENDIAN))
    return dtype


@st.composite
def wire_arrays(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    """An array of an allowed dtype: 0-d, empty or small, sometimes non-contiguous."""
    dtype = draw(wire_dtypes())
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    array = draw(hnp.arrays(dtype, shape))
    if array.ndim >= 2 and draw(st.booleans()):
        array = array.T
    elif array.ndim == 1 and draw(st.booleans()):
        array = array[::2]
    return array


_names = st.text(max_size=12)
_metric = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=8),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_rounds = st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def models(draw: st.DrawFn) -> FLModel:
    """Any FLModel that can travel."""
    params = draw(st.none() | st.dictionaries(_names, wire_arrays(), max_size=5))
    return FLModel(
        params=params,
        params_type=draw(st.sampled_from(list(ParamsType))),
        metrics=draw(st.dictionaries(_names, _metric, max_size=4)),
        meta=draw(st.dictionaries(_names, json_values, max_size=4)),
        current_round=draw(_rounds),
        total_rounds=draw(_rounds),
    )


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    """Any Envelope that can travel, with or without a model."""
    return Envelope(
        kind=draw(st.text(max_size=20)),
        headers=draw(st.dictionaries(_names, json_values, max_size=4)),
        model=draw(st.none() | models()),
    )


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def assert_same_model(got: FLModel, want: FLModel) -> None:
    """``got`` carries the same data as ``want`` (arrays compared as little-endian bytes)."""
    assert got.params_type == want.params_type
    assert _json(got.metrics) == _json(want.metrics)
    assert _json(got.meta) == _json(want.meta)
    assert got.current_round == want.current_round
    assert got.total_rounds == want.total_rounds
    if want.params is None:
        assert got.params is None
        return
    assert got.params is not None
    assert list(got.params) == list(want.params)
    for name, array in want.params.items():
        decoded = got.params[name]
        expected = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        assert decoded.dtype == expected.dtype
        assert decoded.dtype.byteorder in "=<|"
        assert decoded.shape == expected.shape
        assert decoded.tobytes() == expected.tobytes()


def assert_same_envelope(got: Envelope, want: Envelope) -> None:
    """``got`` carries the same data as ``want``."""
    assert got.kind == want.kind
    assert _json(got.headers) == _json(want.headers)
    if want.model is None:
        assert got.model is None
    else:
        assert got.model is not None
        assert_same_model(got.model, want.model)
