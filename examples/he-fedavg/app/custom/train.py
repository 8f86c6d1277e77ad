"""he-fedavg: hello-numpy's "training", with the model encrypted on its way to the server.

The script itself knows nothing about encryption: the site's HEDecrypt filter hands it plain
arrays and its HEEncrypt filter encrypts what it sends. Site i (0-based) adds i + 1 to every
weight and reports num_samples = i + 1, so each round moves every weight by
sum((i+1)^2) / sum(i+1) = (2N+1)/3 with N sites, as in hello-numpy, up to CKKS precision.
"""

import numpy as np

import fedra
import fedra.client as flare


def main() -> None:
    flare.init()
    step = flare.get_site_index() + 1
    while flare.is_running():
        model = flare.receive()
        params = model.params or {"weights": np.zeros((3, 3), dtype=np.float32)}
        mean = float(np.mean([p.mean() for p in params.values()]))
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"mean_weight": mean}))
            continue
        updated = {name: value + step for name, value in params.items()}
        flare.send(
            fedra.FLModel(params=updated, metrics={"mean_weight": mean}, meta={"num_samples": step})
        )
        del model, params, updated


if __name__ == "__main__":
    main()
