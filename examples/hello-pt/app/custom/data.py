"""Data for the example: scikit-learn's bundled digits (1797 8x8 images), never downloaded.

A fixed-seed, stratified 20% of the images is the held-out test set that every site shares;
the remaining 80% is shuffled and cut into ``num_sites`` disjoint partitions, one per site.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

#: Fraction of the data held out as the shared test set.
TEST_FRACTION = 0.2
#: Seed of the train/test split: fixed, so every site sees the same test set.
SPLIT_SEED = 0


@cache
def _split() -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]
]:
    """Load the digits scaled to [0, 1] and split them into (x_train, y_train, x_test, y_test)."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    return x_train, y_train, x_test, y_test


def _tensors(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy numpy arrays into fresh tensors, so callers never share the cached arrays."""
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def partition_indices(site_index: int, num_sites: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """Indices into the training split (the 80%) that belong to site ``site_index``.

    For a given ``num_sites`` and ``seed`` the partitions of all sites are disjoint and
    together cover the whole training split; their sizes differ by at most one.
    """
    if num_sites < 1:
        raise ValueError(f"num_sites must be >= 1, got {num_sites}")
    if not 0 <= site_index < num_sites:
        raise ValueError(f"site_index must be in [0, {num_sites}), got {site_index}")
    n_train = len(_split()[1])
    order = np.random.default_rng(seed).permutation(n_train)
    return np.array_split(order, num_sites)[site_index].astype(np.int64)


def site_partition(
    site_index: int, num_sites: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """This site's training data: float32 images shaped (N, 1, 8, 8) and int64 labels (N,)."""
    x_train, y_train, _, _ = _split()
    idx = partition_indices(site_index, num_sites, seed)
    return _tensors(x_train[idx], y_train[idx])


def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out test set shared by all sites: (N, 1, 8, 8) float32 images, int64 labels."""
    _, _, x_test, y_test = _split()
    return _tensors(x_test, y_test)


# Not a pytest test, even when a test module imports it by name.
test_set.__test__ = False  # type: ignore[attr-defined]
