"""NVIDIA FLARE 2.9 simulator: FedAvg on numpy arrays, each site adds 1 to every weight.

Run inside the FLARE virtual environment by ``bench.compare``::

    python nvflare_sim.py --sites 8 --rounds 5 --model 3x3 --threads 2 --workdir DIR

Builds the job with FLARE's job API (``FedJob``, the ``TimedFedAvg`` controller of
``nvflare_job.py``, the Client API script ``nvflare_client.py`` run in process with
``ScriptRunner(framework=NUMPY)``) and runs it with ``FedJob.simulator_run(threads=...)``
(over 100 sites: the exported job with ``nvflare simulator -m <sites>``, as
``simulator_run()`` keeps FLARE's default cap of 100 clients).
Prints one ``BENCH-RESULT`` JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

from _common import MODELS, Clock, emit

HERE = Path(__file__).resolve().parent
#: FLARE's simulator refuses more clients than this unless told (``-m``).
MAX_CLIENTS = 100


def build_job(sites: int, rounds: int, model: str, out_path: Path, init: str = "zeros"):  # type: ignore[no-untyped-def]
    """The FLARE job: TimedFedAvg on the server, the Client API script on every site."""
    from nvflare.client.config import ExchangeFormat
    from nvflare.job_config.api import FedJob
    from nvflare.job_config.script_runner import FrameworkType, ScriptRunner

    sys.path.insert(0, str(HERE))
    from nvflare_job import TimedFedAvg

    arrays, count = MODELS[model]
    job = FedJob(name=f"bench-{model.lower()}-{sites}", min_clients=sites)
    controller = TimedFedAvg(
        num_clients=sites,
        num_rounds=rounds,
        arrays=arrays,
        count=count,
        out_path=str(out_path),
        init=init,
    )
    job.to_server(controller)
    runner = ScriptRunner(
        script=str(HERE / "nvflare_client.py"),
        framework=FrameworkType.NUMPY,
        server_expected_format=ExchangeFormat.NUMPY,
    )
    job.to_clients(runner)
    return job


def main() -> None:
    """Run one simulation and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.WARNING)
    clock = Clock()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = workdir / "figures.json"
    out_path.unlink(missing_ok=True)
    job = build_job(args.sites, args.rounds, args.model, out_path)
    import_s = clock.elapsed()
    if args.sites <= MAX_CLIENTS:
        job.simulator_run(
            str(workdir / "workspace"),
            n_clients=args.sites,
            threads=args.threads,
            log_config="concise",
        )
    else:
        # simulator_run() keeps FLARE's default cap of 100 clients; the CLI can lift it.
        job.export_job(str(workdir / "job"))
        folder = next(p for p in (workdir / "job").iterdir() if p.is_dir())
        nvflare = str(Path(sys.executable).parent / "nvflare")
        subprocess.run(
            [nvflare, "simulator", str(folder), "-w", str(workdir / "workspace"),
             "-n", str(args.sites), "-t", str(args.threads), "-m", str(args.sites),
             "-l", "concise"],
            check=True,
        )  # fmt: skip
    wall = clock.elapsed() - import_s
    if not out_path.exists():
        raise SystemExit(f"the FLARE job wrote no figures ({out_path}); see the log above")
    figures = json.loads(out_path.read_text(encoding="utf-8"))
    emit(
        {
            "system": "nvflare",
            "wall_s": wall,
            "process_s": clock.elapsed(),
            "round_s": figures["round_s"],
            "final": figures["final"],
        }
    )


if __name__ == "__main__":
    main()
