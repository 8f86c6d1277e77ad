"""Data and model for the non-IID digits example: no download, no ML framework.

- Data: scikit-learn's bundled digits (1797 8x8 images, 64 features scaled to [0, 1]).
  A fixed, stratified 20% is the test set every site shares; the other 80% is split over the
  sites with Dirichlet label skew: for each class, the share of each site is drawn from
  ``Dirichlet(alpha, ..., alpha)``. Small ``alpha`` (0.1) gives each site a few classes;
  large ``alpha`` (100) is close to an IID split.
- Model: softmax regression (``W`` 64x10, ``b`` 10, float32), trained with minibatch SGD
  on the cross-entropy loss.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Params = dict[str, npt.NDArray[np.floating]]

FEATURES, CLASSES = 64, 10
TEST_FRACTION, SPLIT_SEED = 0.2, 0
#: Every site gets at least this many training images (the partition is redrawn until so).
MIN_SITE_SIZE = 10


@cache
def _split() -> tuple[F32, I64, F32, I64]:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    return x_train, y_train, x_test, y_test


@cache
def partition(num_sites: int, alpha: float, seed: int) -> tuple[I64, ...]:
    """Indices into the training split for each site: disjoint, covering it, label-skewed."""
    if num_sites < 1 or not alpha > 0:
        raise ValueError(f"need num_sites >= 1 and alpha > 0, got {num_sites}, {alpha}")
    labels = _split()[1]
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(num_sites)]
        for label in range(CLASSES):
            ids = np.flatnonzero(labels == label)
            rng.shuffle(ids)
            shares = rng.dirichlet(np.full(num_sites, alpha))
            cuts = (np.cumsum(shares) * len(ids)).astype(int)[:-1]
            for site, chunk in enumerate(np.split(ids, cuts)):
                parts[site].extend(chunk.tolist())
        if min(len(p) for p in parts) >= MIN_SITE_SIZE:
            return tuple(np.array(sorted(p), dtype=np.int64) for p in parts)
    raise ValueError(f"no partition with {MIN_SITE_SIZE}+ images per site: use fewer sites")


def site_data(site_index: int, num_sites: int, alpha: float, seed: int) -> tuple[F32, I64]:
    """This site's training images (N, 64) and labels (N,)."""
    x_train, y_train, _, _ = _split()
    idx = partition(num_sites, alpha, seed)[site_index]
    return x_train[idx], y_train[idx]


def test_data() -> tuple[F32, I64]:
    """The shared held-out test set: (N, 64) images and labels."""
    _, _, x_test, y_test = _split()
    return x_test, y_test


test_data.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def initial_params() -> Params:
    """The initial model: zeros (softmax regression has no symmetry to break)."""
    return {
        "W": np.zeros((FEATURES, CLASSES), dtype=np.float32),
        "b": np.zeros(CLASSES, dtype=np.float32),
    }


def _probs(params: Params, x: F32) -> npt.NDArray[np.floating]:
    z = x @ params["W"] + params["b"]
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def gradients(params: Params, x: F32, y: I64) -> Params:
    """Gradients of the mean cross-entropy over (x, y)."""
    p = _probs(params, x)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return {"W": x.T @ p, "b": p.sum(axis=0)}


def evaluate(params: Params, x: F32, y: I64) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``params`` on (x, y)."""
    p = _probs(params, x)
    loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
    return float((p.argmax(axis=1) == y).mean()), loss
