"""A strongly non-IID least-squares problem, and the site script that trains it.

Site ``i`` holds ``(X_i, t_i)`` with its own feature scales (so its own curvature) and its own
true weights: the sites disagree both on the optimum and on how fast they get there. The
global objective is the mean of the sites' ``0.5 * mean((X_i w - t_i)^2)``; its optimum has a
closed form. With many local steps FedAvg converges to a biased point (client drift),
FedProx's proximal term shrinks that bias, and SCAFFOLD's control variates remove it.

Run as a script (the job's site script), it trains with full-batch gradient descent,
reading ``mu`` (FedProx) and the control variates (Scaffold) from the task.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

SEED, SITES, DIM, ROWS = 0, 4, 8, 60
LOCAL_STEPS = 20


def site_data(index: int) -> tuple[F64, F64]:
    """Site ``index``'s features (ROWS, DIM) and targets (ROWS,)."""
    rng = np.random.default_rng([SEED, index])
    scale = np.exp(rng.uniform(np.log(0.2), np.log(3.0), size=DIM))
    x = rng.normal(size=(ROWS, DIM)) * scale
    w_true = rng.normal(size=DIM) * 2
    return x, x @ w_true + 0.1 * rng.normal(size=ROWS)


def global_loss(w: F64) -> float:
    """The global objective at ``w``."""
    return float(
        np.mean([0.5 * np.mean((x @ w - t) ** 2) for x, t in map(site_data, range(SITES))])
    )


def optimum() -> F64:
    """The minimiser of :func:`global_loss` (normal equations)."""
    data = [site_data(i) for i in range(SITES)]
    hessian = sum(x.T @ x / len(t) for x, t in data)
    rhs = sum(x.T @ t / len(t) for x, t in data)
    return np.asarray(np.linalg.solve(hessian, rhs))


def local_lr() -> float:
    """One step size for every site: half the inverse of the largest site curvature."""
    top = max(np.linalg.eigvalsh(x.T @ x / len(t)).max() for x, t in map(site_data, range(SITES)))
    return float(0.5 / top)


def main() -> None:
    """The site loop."""
    import fedra
    import fedra.client as flare
    from fedra.client import ScaffoldHelper, received_mu

    flare.init()
    x, t = site_data(flare.get_site_index())
    lr = local_lr()
    helper = ScaffoldHelper()
    while flare.is_running():
        model = helper.receive(flare.receive())
        assert model.params is not None
        w0 = np.asarray(model.params["w"], dtype=np.float64)
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"loss": global_loss(w0)}))
            continue
        mu = received_mu(model, default=0.0)
        correction = helper.correction.get("w", np.zeros_like(w0))
        w = w0.copy()
        for _ in range(LOCAL_STEPS):
            grad = x.T @ (x @ w - t) / len(t) + mu * (w - w0) + correction
            w = w - lr * grad
        if helper.active:
            flare.send(helper.result({"w": w}, steps=LOCAL_STEPS, lr=lr))
        else:
            flare.send(fedra.FLModel(params={"w": w}))


if __name__ == "__main__":
    main()
