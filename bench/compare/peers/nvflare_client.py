"""NVIDIA FLARE 2.9 site script (Client API): each site adds 1 to every weight."""

import nvflare.client as flare
from nvflare.app_common.abstract.fl_model import FLModel


def main():
    """Answer train tasks until the job ends."""
    flare.init()
    while flare.is_running():
        model = flare.receive()
        if model is None:
            break
        updated = {name: value + 1 for name, value in model.params.items()}
        flare.send(FLModel(params=updated, meta={"NUM_STEPS_CURRENT_ROUND": 1}))
        del model, updated


if __name__ == "__main__":
    main()
