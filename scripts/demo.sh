#!/usr/bin/env bash
# make demo: a real federation on this machine. Prepares a POC workspace (server, 2 sites,
# admin, each with its own certificates), starts the processes (gRPC with mutual TLS on
# ports 8002/8003), submits examples/hello-pt, waits, downloads the results, prints the
# global accuracy and the TensorBoard command, and stops everything, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
FEDRA=.venv/bin/fedra
PY=.venv/bin/python
WS=demo-workspace/poc
OUT=demo-workspace/results
KIT="$WS/admin"

mkdir -p demo-workspace
$FEDRA poc prepare -n 2 -w "$WS" --force
trap '$FEDRA poc stop -w "$WS" || true' EXIT
$FEDRA poc start -w "$WS"
$FEDRA job submit examples/hello-pt --kit "$KIT" --format json > demo-workspace/submitted.json
JOB=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["job_id"])' demo-workspace/submitted.json)
echo "submitted hello-pt as job $JOB; waiting for it to finish ..."
$FEDRA job wait "$JOB" --kit "$KIT" --timeout 600
$FEDRA job stats "$JOB" --kit "$KIT"
$FEDRA job download "$JOB" --kit "$KIT" -o "$OUT"
$PY - "$OUT/$JOB" <<'PY'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
final = json.loads((root / "models" / "final.json").read_text())
print(f"final global accuracy (validated by every site): {final['metrics']['accuracy']:.4f}")
print(f"results: {root}  (models/, tb_events/, job/, server_job.log)")
print(f"metrics: tensorboard --logdir {root / 'tb_events'}")
PY
