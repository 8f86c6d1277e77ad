"""Benchmark Client API script: "training" adds 1 to every weight.

Written like an ordinary user script (compare examples/hello-numpy): receive the global
model, return ``params + 1`` with ``num_samples = site index + 1``; for a validation task,
return a metric only.
"""

import numpy as np

import fedra
import fedra.client as flare


def main() -> None:
    """Answer tasks until the job is over."""
    flare.init()
    num_samples = flare.get_site_index() + 1
    while flare.is_running():
        model = flare.receive()
        params = model.params or {"weights": np.zeros((3, 3), dtype=np.float32)}
        if not flare.is_train():
            first = next(iter(params.values()))
            flare.send(fedra.FLModel(metrics={"first_weight": float(first.flat[0])}))
            continue
        updated = {name: value + 1 for name, value in params.items()}
        flare.send(fedra.FLModel(params=updated, meta={"num_samples": num_samples}))
        del model, params, updated  # keep nothing alive between rounds


if __name__ == "__main__":
    main()
