"""A small CNN for the 8x8 grey-scale digit images of scikit-learn's digits data set."""

from __future__ import annotations

import torch
from torch import nn


class Net(nn.Module):
    """Two 3x3 convolutions, one 2x2 max-pool and two linear layers: 8x8x1 in, 10 logits out.

    About 40k parameters. No dropout or batch norm, so training depends only on the weights
    received and the order of the batches (no hidden running statistics to average).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch shaped (N, 1, 8, 8) to logits shaped (N, 10)."""
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)
