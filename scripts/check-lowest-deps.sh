#!/usr/bin/env bash
# Fedra at the lowest versions of its core dependencies that pyproject.toml declares, and next
# to Flower 1.42's pins (protobuf < 7). Run by .ci/run; about 2-3 minutes on 2 cores.
#
# 1. A clean venv (build/lowest-deps/venv) gets Fedra (editable) with every core dependency at
#    exactly its lower bound (read from pyproject.toml, wheels only); `pip check`; unit tests of
#    the packages that use those dependencies, one POC federation over gRPC + mTLS
#    (tests/e2e/test_poc.py) and `fedra simulate examples/hello-numpy`.
# 2. pip resolves Fedra together with flwr==1.42.0 (--dry-run: nothing of Flower installed).
# 3. In the same venv, protobuf and grpcio at both ends of Flower's ranges (protobuf 5.28.0 and
#    the newest 6.x, grpcio 1.85-): `pip check` and the wire and gRPC tests.
# Everything it downloads or writes stays under build/ (ignored by git).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
work="$root/build/lowest-deps"
export PIP_CACHE_DIR="$root/build/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1
rm -rf "$work"
mkdir -p "$work"
"$python" - >"$work/constraints.txt" <<'PY'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
for dep in deps:
    found = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,<[0-9.]+)?", dep.replace(" ", ""))
    if found is None:
        raise SystemExit(f"error: {dep!r} in pyproject.toml has no lower bound to test")
    print(f"{found[1]}=={found[2]}")
PY
echo "lowest versions declared:" $(cat "$work/constraints.txt")
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"
test_tools=(pytest pytest-timeout hypothesis psutil pexpect)
"$py" -m pip install -q --only-binary=:all: -c "$work/constraints.txt" -e "$root" "${test_tools[@]}"
"$py" -m pip check
"$py" - "$work/constraints.txt" <<'PY'
import sys
from importlib.metadata import version

def release(text: str) -> list[int]:
    parts = [int(p) for p in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return parts


for line in open(sys.argv[1]):
    name, wanted = line.strip().split("==")
    if release(version(name)) != release(wanted):
        raise SystemExit(f"error: {name} {version(name)} installed, not the lowest {wanted}")
PY
run_tests() {
  env -u PYTHONPATH timeout 600 "$py" -m pytest -q -x -p no:cacheprovider --timeout 300 "$@"
}
echo "installed ($SECONDS s)"
# The packages that use the core dependencies most directly: protobuf and numpy (wire), grpcio
# (transport), msgspec (protocol), cryptography (pki), prompt_toolkit and rich (admin); typer,
# pyyaml and all of them again in a POC federation driven by the CLI and the Session.
run_tests tests/unit/wire tests/unit/transport tests/unit/protocol tests/unit/pki \
  tests/unit/admin tests/test_packaging.py \
  "tests/e2e/test_poc.py::test_submit_wait_download_through_the_session"
echo "tests passed ($SECONDS s)"
(cd "$work" && env -u PYTHONPATH "$work/venv/bin/fedra" simulate "$root/examples/hello-numpy" \
  -n 2 -t 2 -w "$work/hello-numpy" -q)
"$py" - "$work/hello-numpy/summary.json" <<'PY'
import json
import sys

status = json.load(open(sys.argv[1]))["status"]
if status != "FINISHED:COMPLETED":
    raise SystemExit(f"error: hello-numpy ended {status} at the lowest versions")
PY

echo "hello-numpy completed ($SECONDS s); resolving fedra with flwr==1.42.0"
"$py" -m pip install -q --dry-run --only-binary=:all: "$root" flwr==1.42.0

for protobuf in "protobuf==5.28.0" "protobuf>=6,<7"; do
  echo "with $protobuf and grpcio>=1.80,<2 (Flower 1.42's ranges)"
  "$py" -m pip install -q --only-binary=:all: "$protobuf" "grpcio>=1.80,<2"
  "$py" -m pip check
  run_tests tests/unit/wire/test_wire_reject.py tests/unit/transport/test_grpc_parts.py \
    tests/unit/transport/test_connection_contract.py -k "not memory and not local"
done
echo "lowest dependencies: ok ($SECONDS s)"
