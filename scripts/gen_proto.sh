#!/usr/bin/env bash
# Regenerate the protobuf code of fedra.wire (src/fedra/wire/_proto/fedra_wire.proto) and the
# protobuf + gRPC code of fedra.transport (src/fedra/transport/_proto/fedra_transport.proto).
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
# The transport's proto is compiled from src/ so that the generated gRPC module imports its
# messages as fedra.transport._proto.fedra_transport_pb2.
transport_dir="$root/src/fedra/transport/_proto"
"$python" -m grpc_tools.protoc \
  --proto_path="$root/src" \
  --python_out="$root/src" \
  --pyi_out="$root/src" \
  --grpc_python_out="$root/src" \
  "$transport_dir/fedra_transport.proto"
echo "generated $transport_dir/fedra_transport_pb2.py, fedra_transport_pb2.pyi and fedra_transport_pb2_grpc.py"
