"""An admin that lives in the admin's host of a bed and answers the test's questions.

``python -m tests.net.admin_agent --kit KIT`` reads one JSON request per line on stdin and
writes one JSON answer per line on stdout: ``{"ok": true, "value": …}`` or ``{"ok": false,
"error": "…"}``. A test in the root namespace cannot reach the bed's hosts itself, and a new
Python process per question costs a second of CPU; this one process asks for all of them.
Each request opens a fresh session through the overseer, so it follows the hot server.

Requests (``op`` and its arguments):

- ``overseer``: ``{"hot", "ssid", "live": [names]}`` from the overseer's state;
- ``sites``: the sites the hot server lists as connected (``check_status client``);
- ``submit`` ``folder``: the new job's id;
- ``job`` ``job_id``: ``{"status", "rounds"}`` (``rounds``: the job's run_info rounds);
- ``final`` ``job_id`` ``dest``: the final model's ``w`` after downloading the job to ``dest``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fedra.admin import AdminError, Session
from fedra.core import FedraError
from fedra.core.jsonfile import JsonValue
from fedra.overseer import client_for_kit


def answer(kit: Path, request: dict[str, str]) -> JsonValue:
    """The value one request asks for (raises when it cannot be had)."""
    op = request["op"]
    if op == "overseer":
        state = client_for_kit(kit).state()
        live = sorted(s.info.name for s in state.servers if s.live)
        return {"hot": state.hot.name if state.hot else None, "ssid": state.ssid, "live": live}
    with Session.connect(kit, timeout=10.0) as session:
        if op == "sites":
            return sorted(s.name for s in session.sites_status().sites)
        if op == "submit":
            return session.submit_job(Path(request["folder"]))
        if op == "job":
            info = session.get_job(request["job_id"])
            rounds = (info.run_info or {}).get("rounds") or []
            return {"status": str(info.status), "rounds": rounds}
        if op == "final":
            folder = session.download_job(request["job_id"], Path(request["dest"]))
            with np.load(folder / "models" / "final.npz") as data:
                return [float(x) for x in data["w"]]
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    """See the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m tests.net.admin_agent")
    parser.add_argument("--kit", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps({"ok": True, "value": "ready"}), flush=True)
    for line in sys.stdin:
        try:
            reply = {"ok": True, "value": answer(args.kit, json.loads(line))}
        except (AdminError, FedraError, OSError, KeyError, ValueError) as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
