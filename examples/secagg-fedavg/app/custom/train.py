"""secagg-fedavg: hello-numpy's "training" under secure aggregation, with one failing site.

Site i (0-based) adds i + 1 to every weight and reports num_samples = i + 1, exactly like
examples/hello-numpy: the script knows nothing about secure aggregation (its SecAggClient
wrapper masks what it sends). To show a dropout, the site named by --diverge-site sends NaN
weights in round --diverge-round, as a diverged training would: its wrapper refuses to
quantize them, the site drops out of that round, and the round completes without it.
"""

import argparse

import numpy as np

import fedra
import fedra.client as flare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--diverge-site", default="")
    parser.add_argument("--diverge-round", type=int, default=0)
    options = parser.parse_args()
    flare.init()
    site = flare.get_site_name()
    step = flare.get_site_index() + 1
    while flare.is_running():
        model = flare.receive()
        params = model.params or {"weights": np.zeros((3, 3), dtype=np.float32)}
        mean = float(np.mean([p.mean() for p in params.values()]))
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"mean_weight": mean}))
            continue
        updated = {name: value + step for name, value in params.items()}
        if site == options.diverge_site and model.current_round == options.diverge_round:
            updated = {name: np.full_like(value, np.nan) for name, value in updated.items()}
        flare.send(
            fedra.FLModel(params=updated, metrics={"mean_weight": mean}, meta={"num_samples": step})
        )
        del model, params, updated


if __name__ == "__main__":
    main()
