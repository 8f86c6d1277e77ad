#!/usr/bin/env bash
# Regenerate the protobuf code of fedra.wire from src/fedra/wire/_proto/fedra_wire.proto.
# Needs grpcio-tools (python -m grpc_tools.protoc). Run from anywhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
proto_dir="$root/src/fedra/wire/_proto"
"$python" -m grpc_tools.protoc \
  --proto_path="$proto_dir" \
  --python_out="$proto_dir" \
  --pyi_out="$proto_dir" \
  "$proto_dir/fedra_wire.proto"
echo "generated $proto_dir/fedra_wire_pb2.py and fedra_wire_pb2.pyi"
