#!/usr/bin/env bash
# Checks that protos/csi/csi.proto is wire-identical to the upstream CSI v1.12 csi.proto:
# both are compiled by the same protoc (the one Grpc.Tools ships) into descriptor sets without
# source info (so comments and layout don't count), and the bytes must match exactly:
# same services, methods, messages, fields, numbers, types, enums and options.
#
# usage: scripts/check-proto.sh [UPSTREAM_CSI_PROTO]   (default: ../shared/reference/csi-spec/csi.proto)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
upstream=${1:-$here/../shared/reference/csi-spec/csi.proto}
if [ ! -f "$upstream" ]; then
  echo "check-proto: upstream csi.proto not found at $upstream" >&2
  exit 2
fi
tools=$(ls -d "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/grpc.tools/*/ | sort -V | tail -n 1)
protoc="$tools/tools/linux_x64/protoc"
include="$tools/build/native/include"
[ -x "$protoc" ] || chmod +x "$protoc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ours" "$work/upstream"
cp "$here/protos/csi/csi.proto" "$work/ours/csi.proto"
cp "$upstream" "$work/upstream/csi.proto"
for side in ours upstream; do
  "$protoc" --proto_path="$work/$side" --proto_path="$include" --descriptor_set_out="$work/$side.pb" csi.proto
done
if cmp -s "$work/ours.pb" "$work/upstream.pb"; then
  echo "check-proto: protos/csi/csi.proto is wire-identical to $(basename "$upstream") ($(stat -c %s "$work/ours.pb") descriptor bytes)"
else
  echo "check-proto: protos/csi/csi.proto DIFFERS from upstream on the wire" >&2
  exit 1
fi
