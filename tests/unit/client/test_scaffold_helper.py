"""ScaffoldHelper (the site's control variate) and received_mu, against plain numpy maths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fedra.workflows
from fedra.client import ScaffoldHelper, received_mu
from fedra.client.fedprox import FEDPROX_MU
from fedra.client.scaffold import SCAFFOLD_META
from fedra.core import FLModel, ParamsType

P = "scaffold_c:"
RNG = np.random.default_rng(5)
A = RNG.normal(size=(5, 3))
T = RNG.normal(size=5)
K, LR = 4, 0.05


def _grad(w: np.ndarray) -> np.ndarray:
    return A.T @ (A @ w - T)


def _task(x: np.ndarray, c: np.ndarray, count: int = 3) -> FLModel:
    return FLModel(
        params={"w": x, "count": np.array(count), P + "w": c},
        meta={SCAFFOLD_META: P},
        current_round=1,
    )


def _train(helper: ScaffoldHelper, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """K corrected GD steps with the helper's correction; also the raw gradients seen."""
    w = x.astype(np.float64)
    raw = []
    for _ in range(K):
        g = _grad(w)
        raw.append(g)
        w = w - LR * (g + helper.correction["w"])
    return w, raw


def test_constants_match_the_server_side() -> None:
    assert SCAFFOLD_META == fedra.workflows.SCAFFOLD_META
    assert P == fedra.workflows.CONTROL_PREFIX
    assert FEDPROX_MU == fedra.workflows.FEDPROX_MU


def test_two_rounds_follow_option_two() -> None:
    helper = ScaffoldHelper()
    x1, c1 = RNG.normal(size=3), RNG.normal(size=3)
    model = helper.receive(_task(x1, c1))
    assert helper.active
    assert model.params is not None and set(model.params) == {"w", "count"}
    np.testing.assert_array_equal(model.params["w"], x1)
    np.testing.assert_array_equal(helper.correction["w"], c1)  # c_i starts at 0
    y1, raw1 = _train(helper, x1)
    out = helper.result({"w": y1, "count": np.array(3)}, steps=K, lr=LR, meta={"num_samples": 7})
    assert out.params_type == ParamsType.DIFF and out.meta == {"num_samples": 7}
    assert out.params is not None and set(out.params) == {"w", "count", P + "w"}
    np.testing.assert_allclose(out.params["w"], y1 - x1, rtol=1e-12)
    np.testing.assert_array_equal(out.params["count"], np.array(0))
    # Option II with plain SGD: c_i_new = c_i - c + (x - y)/(K lr) = the mean raw gradient.
    ci1 = np.mean(raw1, axis=0)
    np.testing.assert_allclose(out.params[P + "w"], ci1, rtol=1e-10)
    np.testing.assert_allclose(helper.site_control["w"], ci1, rtol=1e-10)
    assert not helper.active

    x2, c2 = RNG.normal(size=3), RNG.normal(size=3)
    helper.receive(_task(x2, c2))
    np.testing.assert_allclose(helper.correction["w"], c2 - ci1, rtol=1e-10)
    y2, raw2 = _train(helper, x2)
    out2 = helper.result({"w": y2, "count": np.array(5)}, steps=K, lr=LR)
    assert out2.params is not None
    ci2 = ci1 - c2 + (x2 - y2) / (K * LR)
    np.testing.assert_allclose(out2.params[P + "w"], ci2 - ci1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ci2, np.mean(raw2, axis=0), rtol=1e-9)
    np.testing.assert_array_equal(out2.params["count"], np.array(2))


def test_float32_params_stay_float32() -> None:
    helper = ScaffoldHelper()
    x = np.ones(3, dtype=np.float32)
    helper.receive(_task(x, np.full(3, 0.5, dtype=np.float32)))
    assert helper.correction["w"].dtype == np.float32
    out = helper.result({"w": x - np.float32(0.1), "count": np.array(3)}, steps=1, lr=0.1)
    assert out.params is not None
    assert out.params["w"].dtype == np.float32 and out.params[P + "w"].dtype == np.float32
    # c_i_new = 0 - 0.5 + 0.1/(1*0.1) = 0.5
    np.testing.assert_allclose(out.params[P + "w"], np.full(3, 0.5), rtol=1e-6)


def test_state_file_keeps_c_i_across_helpers(tmp_path: Path) -> None:
    path = tmp_path / "site" / "scaffold.npz"
    first = ScaffoldHelper(state_file=path)
    x, c = RNG.normal(size=3), RNG.normal(size=3)
    first.receive(_task(x, c))
    y, _ = _train(first, x)
    first.result({"w": y, "count": np.array(3)}, steps=K, lr=LR)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))

    again = ScaffoldHelper(state_file=path)
    assert again.site_control["w"].tobytes() == first.site_control["w"].tobytes()
    again.receive(_task(x, c))
    np.testing.assert_array_equal(again.correction["w"], c - first.site_control["w"])
    with np.load(path, allow_pickle=False) as data:
        assert data.files == ["w"]


def test_a_task_without_control_variates_passes_through() -> None:
    helper = ScaffoldHelper()
    plain = FLModel(params={"w": np.ones(2)}, meta={"x": 1})
    assert helper.receive(plain) is plain
    assert not helper.active and helper.correction == {}
    with pytest.raises(RuntimeError, match="not a SCAFFOLD"):
        helper.result({"w": np.ones(2)}, steps=1, lr=0.1)


def test_bad_input() -> None:
    helper = ScaffoldHelper()
    with pytest.raises(ValueError, match="names no param"):
        helper.receive(
            FLModel(params={"w": np.ones(2), P + "v": np.ones(2)}, meta={SCAFFOLD_META: P})
        )
    with pytest.raises(ValueError, match="shape"):
        helper.receive(
            FLModel(params={"w": np.ones(2), P + "w": np.ones(3)}, meta={SCAFFOLD_META: P})
        )
    with pytest.raises(ValueError, match="non-empty string"):
        helper.receive(FLModel(params={"w": np.ones(2)}, meta={SCAFFOLD_META: 3}))
    helper.receive(_task(np.ones(3), np.zeros(3)))
    for steps, lr in ((0, 0.1), (1.5, 0.1), (1, 0.0), (1, float("nan"))):
        with pytest.raises(ValueError, match=r"steps|lr"):
            helper.result({"w": np.ones(3), "count": np.array(3)}, steps=steps, lr=lr)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="count"):
        helper.result({"w": np.ones(3)}, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        helper.result({"w": np.ones(4), "count": np.array(3)}, steps=1, lr=0.1)
    # A state file from another model is refused rather than silently broadcast.
    helper.result({"w": np.ones(3), "count": np.array(3)}, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="another model"):
        helper.receive(_task(np.ones(4), np.zeros(4)))


def test_torch_tensors_and_gradient_correction() -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    c = {k: torch.full_like(v, 0.25) for k, v in state.items()}
    task = FLModel(params=None, meta={SCAFFOLD_META: P})
    task.params = {**state, **{P + k: v for k, v in c.items()}}  # tensors, as params_format pytorch
    helper = ScaffoldHelper()
    model = helper.receive(task)
    assert model.params is not None and set(model.params) == {"weight", "bias"}
    assert isinstance(model.params["weight"], torch.Tensor)
    net.load_state_dict(model.params)

    x = torch.randn(4, 3)
    loss = net(x).pow(2).sum()
    loss.backward()
    raw = {k: p.grad.clone() for k, p in net.named_parameters()}
    helper.correct_gradients(net)
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, raw[k] + 0.25)
    with torch.no_grad():
        for p in net.parameters():
            p.sub_(0.1 * p.grad)
    out = helper.result(net.state_dict(), steps=1, lr=0.1)
    assert out.params is not None
    for k, v in state.items():
        np.testing.assert_allclose(out.params[k], (net.state_dict()[k] - v).numpy(), rtol=1e-6)
        # c_i_new = -c + (x - y)/lr = -0.25 + (raw + 0.25) = raw
        np.testing.assert_allclose(out.params[P + k], raw[k].numpy(), rtol=1e-5, atol=1e-6)


def test_received_mu() -> None:
    assert received_mu(FLModel(meta={FEDPROX_MU: 0.1})) == 0.1
    assert received_mu(FLModel(), default=0.0) == 0.0
    with pytest.raises(ValueError, match="FedProx"):
        received_mu(FLModel())
    for bad in (-1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="mu"):
            received_mu(FLModel(meta={FEDPROX_MU: bad}))


def test_task_and_result_pass_the_wire() -> None:
    """Control variates are plain named arrays and the prefix is JSON meta: both survive
    the wire format a real federation uses."""
    from fedra.wire import decode_model, encode_model

    x, c = np.arange(3, dtype=np.float32), np.full(3, 0.5, dtype=np.float32)
    task = decode_model(encode_model(_task(x, c)))
    helper = ScaffoldHelper()
    model = helper.receive(task)
    assert helper.active and model.params is not None
    np.testing.assert_array_equal(helper.correction["w"], c)
    out = decode_model(encode_model(helper.result({"w": x, "count": np.array(3)}, steps=2, lr=0.5)))
    assert out.params_type == ParamsType.DIFF and out.params is not None
    assert set(out.params) == {"w", "count", P + "w"}
    np.testing.assert_array_equal(out.params[P + "w"], -c)  # c_i_new = 0 - c + 0
