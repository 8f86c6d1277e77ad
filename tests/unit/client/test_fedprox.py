"""FedProx's proximal term: its value, its gradient, and which parameters it covers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fedra.client.fedprox import proximal_term  # noqa: E402

pytestmark = pytest.mark.torch


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def _global(net: torch.nn.Module, shift: float = 0.25) -> dict[str, np.ndarray]:
    """The net's state, shifted, as read-only numpy arrays (as ``flare.receive`` gives them)."""
    out = {}
    for i, (name, value) in enumerate(net.state_dict().items()):
        array = np.array(value.detach().numpy() - shift * (i + 1))
        array.flags.writeable = False
        out[name] = array
    return out


def test_value_matches_a_hand_computation() -> None:
    net = _net()
    glob = _global(net)
    mu = 0.3
    expected = sum(
        float(np.sum((p.detach().numpy().astype(np.float64) - glob[n]) ** 2))
        for n, p in net.named_parameters()
    )
    value = proximal_term(net, glob, mu)
    assert value.shape == ()
    assert value.item() == pytest.approx(mu / 2 * expected, rel=1e-6)


def test_gradient_is_mu_times_the_distance() -> None:
    net = _net()
    glob = {k: torch.from_numpy(v.copy()) for k, v in _global(net).items()}
    mu = 0.7
    proximal_term(net, glob, mu).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(p.grad, mu * (p.detach() - glob[name]))
        assert not glob[name].requires_grad


def test_usage_with_a_loss() -> None:
    net = _net()
    glob = _global(net)
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    loss = torch.nn.functional.mse_loss(net(x), y) + proximal_term(net, glob, 0.1)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_mu_zero_gives_zero() -> None:
    net = _net()
    assert proximal_term(net, _global(net), 0.0).item() == 0.0


def test_global_equal_to_local_gives_zero() -> None:
    net = _net()
    assert proximal_term(net, _global(net, shift=0.0), 1.0).item() == 0.0


def test_frozen_params_and_buffers_are_ignored() -> None:
    net = _net()
    glob = _global(net)
    bn_weight, bn_bias = "1.weight", "1.bias"
    net[1].weight.requires_grad_(False)
    net[1].bias.requires_grad_(False)
    # Frozen params may be missing; buffers (running stats) and extra names are not looked at.
    del glob[bn_weight], glob[bn_bias]
    glob["not.a.param"] = np.zeros(5)
    expected = sum(
        float(np.sum((net.get_parameter(n).detach().numpy() - glob[n]) ** 2))
        for n in ("0.weight", "0.bias")
    )
    assert proximal_term(net, glob, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_missing_trainable_param_is_an_error() -> None:
    net = _net()
    glob = _global(net)
    del glob["0.weight"]
    with pytest.raises(KeyError, match=r"0\.weight"):
        proximal_term(net, glob, 0.1)


def test_shape_mismatch_is_an_error() -> None:
    net = _net()
    glob = _global(net)
    glob["0.bias"] = np.zeros(7, dtype=np.float32)
    with pytest.raises(ValueError, match=r"0\.bias"):
        proximal_term(net, glob, 0.1)


@pytest.mark.parametrize("mu", [-0.1, float("nan"), float("inf"), True])
def test_invalid_mu(mu: float) -> None:
    net = _net()
    with pytest.raises(ValueError, match="mu"):
        proximal_term(net, _global(net), mu)
