"""hello-numpy: a site's "training" adds (site index + 1) to every weight.

Each site also reports num_samples = site index + 1, so FedAvg's weighted mean moves every
weight by sum((i+1)^2) / sum(i+1) = (2N+1)/3 per round with N sites: a result the tests
check exactly. No ML library needed.
"""

import numpy as np

import fedra
import fedra.client as flare


def main() -> None:
    flare.init()
    index = flare.get_site_index()
    step = index + 1
    while flare.is_running():
        model = flare.receive()
        params = model.params or {"weights": np.zeros((3, 3), dtype=np.float32)}
        mean = float(np.mean([p.mean() for p in params.values()]))
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"mean_weight": mean}))
            continue
        updated = {name: value + step for name, value in params.items()}
        flare.log("mean_weight_received", mean, model.current_round)
        flare.send(
            fedra.FLModel(params=updated, metrics={"mean_weight": mean}, meta={"num_samples": step})
        )
        # Drop references while waiting for the next task: in-process, whatever a script
        # keeps alive between rounds stays in the simulator's memory, once per site.
        del model, params, updated


if __name__ == "__main__":
    main()
