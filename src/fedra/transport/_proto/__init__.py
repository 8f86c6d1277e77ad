"""Generated protobuf code of the Fedra transport (see scripts/gen_proto.sh)."""
