"""Train the digits CNN at one site, driven by the Fedra Client API.

Each task from the server arrives through ``flare.receive()``:

* ``train``: load the global model, measure its accuracy on the shared test set, train it on
  this site's partition for ``--epochs`` epochs and send the new weights back, weighted by the
  number of training samples;
* ``validate``: measure the accuracy of the model received (the global model or another
  site's model) and send only that metric;
* ``submit_model``: send this site's last locally trained weights.

Runs in the site's process (launch ``in_process``) or as its own process (``subprocess``);
``main(argv)`` can also be called directly with the script's arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fedra
import fedra.client as flare

# isort: split
# This app's custom/ folder, which the site puts on sys.path.
from data import site_partition, test_set
from net import Net


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the script's command line (the executor's ``args``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="local epochs per round")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (momentum 0.9)")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (offset by site index)")
    return parser.parse_args(argv)


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``net`` on (x, y)."""
    net.eval()
    with torch.no_grad():
        predicted = net(x).argmax(dim=1)
    return float((predicted == y).float().mean().item())


def train_epochs(
    net: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    epochs: int,
    lr: float,
) -> list[float]:
    """Train ``net`` in place with SGD (momentum 0.9); return the mean loss of each epoch."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    losses: list[float] = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * len(yb)
            count += len(yb)
        losses.append(total / max(count, 1))
    return losses


def as_state_dict(params: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Received params as tensors (accepts numpy arrays too, whatever the params format)."""
    return {name: torch.as_tensor(value) for name, value in params.items()}


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights that later training cannot change."""
    return {name: t.detach().clone() for name, t in net.state_dict().items()}


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the server's tasks until the job ends."""
    args = parse_args(argv)
    torch.set_num_threads(1)  # many sites may share the machine's cores

    flare.init()
    site, site_index, num_sites = (
        flare.get_site_name(),
        flare.get_site_index(),
        flare.get_num_sites(),
    )
    # Seeds torch's default generator (process-wide; shared by sites run as threads). Training
    # itself only depends on the weights received and on `shuffle`, this site's own generator.
    torch.manual_seed(args.seed + site_index)
    x_train, y_train = site_partition(site_index, num_sites)
    x_test, y_test = test_set()
    shuffle = torch.Generator().manual_seed(args.seed + site_index)
    loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        generator=shuffle,
    )
    net = Net()
    local_weights: dict[str, torch.Tensor] | None = None  # last locally trained weights
    rounds_done = 0

    while flare.is_running():
        model = flare.receive()
        task = flare.get_task_name()

        if task == "validate":
            if model.params is None:
                raise ValueError(f"{site}: 'validate' task arrived without params")
            other = Net()  # never disturb the local weights with a model we only evaluate
            other.load_state_dict(as_state_dict(model.params))
            accuracy = evaluate(other, x_test, y_test)
            flare.send(fedra.FLModel(metrics={"accuracy": accuracy}))

        elif task == "submit_model":
            flare.send(fedra.FLModel(params=local_weights or snapshot(net)))

        elif task == "train":
            if model.params is None:
                raise ValueError(f"{site}: 'train' task arrived without params")
            net.load_state_dict(as_state_dict(model.params))
            current_round = model.current_round if model.current_round is not None else rounds_done
            global_accuracy = evaluate(net, x_test, y_test)
            flare.log("global_accuracy", global_accuracy, current_round)

            losses = train_epochs(net, loader, args.epochs, args.lr)
            for epoch, loss in enumerate(losses):
                flare.log("train_loss", loss, current_round * args.epochs + epoch)
            local_weights = snapshot(net)
            rounds_done += 1

            flare.send(
                fedra.FLModel(
                    params=local_weights,
                    metrics={"accuracy": global_accuracy},
                    meta={"num_samples": len(x_train)},
                )
            )

        else:
            raise ValueError(f"{site}: unknown task {task!r}")


if __name__ == "__main__":
    main()
