"""Flower 1.42 app for the deployment row: the same workload as ``flower_sim.py``.

Shipped to the SuperLink as a Flower App Bundle by ``flower_deploy.py`` (with
``_common.py``), so it imports nothing from the harness. The run config gives the number of
sites and rounds, the model, its initial values (``init``: ``zeros`` or ``pattern``, see
``_common.py``) and ``out``, a file where the ServerApp writes its round times
and a summary of the final model as JSON.
"""

from __future__ import annotations

import json
import time

from _common import make_model, summarize
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

client = ClientApp()
server = ServerApp()


@client.train()
def train(msg: Message, context: Context) -> Message:
    """Add 1 to every weight; weight 1 for FedAvg."""
    del context
    arrays = msg.content["arrays"]
    names = list(arrays.keys())
    record = ArrayRecord([arrays[name].numpy() + 1 for name in names])
    record = ArrayRecord(dict(zip(names, record.values(), strict=True)))
    content = RecordDict({"arrays": record, "metrics": MetricRecord({"num-examples": 1})})
    return Message(content=content, reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Flower's FedAvg (evaluation off), each round timed, figures written to ``out``."""
    config = context.run_config
    sites, rounds = int(config["sites"]), int(config["rounds"])
    init = str(config.get("init", "zeros"))
    initial = make_model(str(config["model"]), init)
    arrays = ArrayRecord(list(initial.values()))
    arrays = ArrayRecord(dict(zip(initial, arrays.values(), strict=True)))
    del initial
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=sites, min_available_nodes=sites)
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
    final = summarize((a.numpy() for a in arrays.values()), init)
    with open(str(config["out"]), "w", encoding="utf-8") as handle:
        json.dump({"round_s": round_s, "final": final}, handle)
