"""Flower 1.42 simulation: FedAvg on numpy arrays, each site adds 1 to every weight.

Run inside the Flower virtual environment by ``bench.compare``::

    python flower_sim.py --sites 8 --rounds 5 --model 3x3 --threads 2

The ServerApp drives the rounds with Flower's own message-based ``FedAvg`` strategy
(``configure_train`` / ``aggregate_train``, evaluation off) and times each round from the
broadcast to the end of aggregation; the ClientApp returns ``arrays + 1`` with
``num-examples = 1``. Sites run in ``threads`` Ray actors (``client_resources.num_cpus =
1`` on ``threads`` CPUs), the counterpart of ``threads`` worker threads in Fedra's and FLARE's
simulators. Prints one ``BENCH-RESULT`` JSON line.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

from _common import Clock, emit, make_model, summarize

STATE: dict[str, object] = {}


def build_apps(sites: int, rounds: int, model: str):  # type: ignore[no-untyped-def]
    """The ServerApp and ClientApp of the workload."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        del context
        arrays = msg.content["arrays"]
        updated = {k: v.numpy() + 1 for k, v in arrays.items()}
        record = ArrayRecord([updated[k] for k in arrays])
        # Keep the names: ArrayRecord([...]) numbers the arrays; rename to the sender's keys.
        record = ArrayRecord(dict(zip(arrays.keys(), record.values(), strict=True)))
        content = RecordDict({"arrays": record, "metrics": MetricRecord({"num-examples": 1})})
        return Message(content=content, reply_to=msg)

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        del context
        initial = make_model(model)
        arrays = ArrayRecord(list(initial.values()))
        arrays = ArrayRecord(dict(zip(initial, arrays.values(), strict=True)))
        del initial
        strategy = FedAvg(
            fraction_evaluate=0.0,
            min_train_nodes=sites,
            min_available_nodes=sites,
        )
        round_s: list[float] = []
        for server_round in range(1, rounds + 1):
            started = time.perf_counter()
            messages = strategy.configure_train(server_round, arrays, ConfigRecord(), grid)
            replies = grid.send_and_receive(messages=messages, timeout=3600)
            aggregated, _ = strategy.aggregate_train(server_round, replies)
            if aggregated is None:
                raise RuntimeError(f"round {server_round}: no valid replies")
            arrays = aggregated
            round_s.append(time.perf_counter() - started)
        STATE["round_s"] = round_s
        STATE["final"] = summarize(a.numpy() for a in arrays.values())

    return server_app, client_app


def main() -> None:
    """Run one simulation and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("flwr").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    clock = Clock()
    from flwr.simulation import run_simulation

    server_app, client_app = build_apps(args.sites, args.rounds, args.model)
    import_s = clock.elapsed()
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=args.sites,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": args.threads, "include_dashboard": False},
        },
    )
    if "final" not in STATE:
        raise SystemExit("the ServerApp did not finish (see the log above)")
    emit(
        {
            "system": "flower",
            "wall_s": clock.elapsed() - import_s,
            "process_s": clock.elapsed(),
            "round_s": STATE["round_s"],
            "final": STATE["final"],
        }
    )


if __name__ == "__main__":
    main()
