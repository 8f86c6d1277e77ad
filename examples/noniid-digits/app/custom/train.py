"""A site of the non-IID digits example: softmax regression trained with local SGD.

One script for every server algorithm; it adapts to what the task carries:

- FedAvg / FedAdam: plain local SGD, the full model sent back.
- FedProx: the task's meta carries ``mu`` (``received_mu``); the gradient gets the proximal
  term ``mu * (w - w_global)``.
- Scaffold: the task carries the server control variate; ``ScaffoldHelper`` strips it, the
  gradient gets ``c - c_i``, and the answer is the diff plus the update of ``c_i``.

Each training task also reports the accuracy and loss of the model received on the shared
test set, and the sizes of the task and of the answer as the wire encodes them (bytes).
"""

from __future__ import annotations

import argparse

import numpy as np
from digits_noniid import evaluate, gradients, site_data, test_data

import fedra
import fedra.client as flare
from fedra.client import ScaffoldHelper, received_mu
from fedra.wire import encode_model


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alpha", type=float, default=0.1, help="Dirichlet label skew")
    parser.add_argument("--seed", type=int, default=0, help="partition and minibatch seed")
    parser.add_argument("--local-steps", type=int, default=50, help="SGD steps per round (K)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1, help="local learning rate")
    return parser.parse_args()


def main() -> None:
    args = _args()
    flare.init()
    index = flare.get_site_index()
    x, y = site_data(index, flare.get_num_sites(), args.alpha, args.seed)
    x_test, y_test = test_data()
    helper = ScaffoldHelper()  # keeps this site's control variate c_i between rounds
    while flare.is_running():
        task = flare.receive()
        task_bytes = len(encode_model(task))
        model = helper.receive(task)  # without the control variate, if any
        assert model.params is not None
        received = {k: np.asarray(v) for k, v in model.params.items()}
        accuracy, loss = evaluate(received, x_test, y_test)
        metrics: dict[str, float | int | str] = {"accuracy": accuracy, "loss": loss}
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics=metrics, meta={"num_samples": len(y)}))
            continue
        mu = received_mu(model, default=0.0)
        correction = helper.correction
        rng = np.random.default_rng([args.seed, model.current_round or 0, index])
        w = {k: v.copy() for k, v in received.items()}
        batch = min(args.batch_size, len(y))
        for _ in range(args.local_steps):
            pick = rng.choice(len(y), size=batch, replace=False)
            grad = gradients(w, x[pick], y[pick])
            for k, value in w.items():
                g = grad[k]
                if mu:
                    g = g + mu * (value - received[k])
                if k in correction:
                    g = g + correction[k]
                w[k] = (value - args.lr * g).astype(value.dtype)
        metrics["task_bytes"] = task_bytes
        meta = {"num_samples": len(y)}
        if helper.active:
            result = helper.result(w, steps=args.local_steps, lr=args.lr, meta=meta)
        else:
            result = fedra.FLModel(params=w, meta=meta)
        result.metrics = metrics
        metrics["result_bytes"] = len(encode_model(result))
        flare.send(result)
        del task, model, received, w, result


if __name__ == "__main__":
    main()
