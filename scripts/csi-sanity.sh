#!/usr/bin/env bash
# Runs the upstream CSI conformance suite, csi-sanity (kubernetes-csi/csi-test),
# against `csicache all` in our image.
#
# Usage:
#   scripts/csi-sanity.sh [extra csi-sanity flags...]
#   scripts/csi-sanity.sh --ginkgo.focus=Node          # a subset
#
# Environment:
#   IMAGE=csicache:sanity      image to test; built from ./Dockerfile unless SKIP_BUILD=1
#   SKIP_BUILD=1               use IMAGE as it is (e.g. one pulled from a registry)
#   CSI_TEST_VERSION=v5.4.0    csi-test release that csi-sanity is built from
#   GO_IMAGE=golang:1.24       Go toolchain image for that build
#   TEST_PARAMS=FILE           YAML map passed as --csi.testvolumeparameters; unset means
#                              no parameters, i.e. LOCAL volumes (loop-mounted ext4).
#                              For a dataset, e.g.: echo 'source: https://host/dir/' > p.yaml
#   TEST_VOLUME_SIZE=67108864  bytes per test volume (local volumes allocate real space)
#
# Needs: a container engine answering `docker info` (Docker, or Podman with the
# docker CLI shim), privileged containers, /dev/fuse and loop devices on the
# host, and network access to pull the images and Go modules. There is no
# engine on the development machines of this project, so this runs in CI
# jobs that have one, or on a workstation.
#
# Shape: csi-sanity is built as a static binary in a golang container and
# then run with `docker exec` INSIDE the driver's container. It creates the
# staging and target directories and the driver mounts onto them, so both must
# see one mount namespace; two containers sharing a host dir would need
# rshared propagation on the host, which many CI hosts (and docker-in-docker)
# do not have.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-csicache:sanity}"
CSI_TEST_VERSION="${CSI_TEST_VERSION:-v5.4.0}"
GO_IMAGE="${GO_IMAGE:-golang:1.24}"
TEST_VOLUME_SIZE="${TEST_VOLUME_SIZE:-67108864}"
DRIVER_NAME="csicache.dev"

if ! command -v docker >/dev/null 2>&1; then
  echo "error: no 'docker' CLI on PATH; csi-sanity runs the driver in a container" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "error: no container engine answers ('docker info' failed): start Docker/Podman or point DOCKER_HOST at one" >&2
  exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/csicache-sanity.XXXXXX")"
CONTAINER="csicache-sanity-$$"

cleanup() {
  local rc=$?
  if docker inspect "$CONTAINER" >/dev/null 2>&1; then
    if [ "$rc" -ne 0 ]; then
      echo "--- driver log (last 200 lines) ---" >&2
      docker logs --tail 200 "$CONTAINER" >&2 || true
    fi
    # Loop devices are host-wide (/dev is the host's): detach any a failed run
    # left behind on our images before the container, and its mounts, go away.
    docker exec "$CONTAINER" sh -c \
      'for f in /var/lib/csicache/local/*; do [ -e "$f" ] && losetup -n -O NAME -j "$f" | xargs -r -n1 losetup -d; done' \
      >/dev/null 2>&1 || true
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  fi
  # The driver ran as root and wrote under $WORK/state; when this script does
  # not run as root, only a container can remove those files.
  if [ -n "$(ls -A "$WORK/state" 2>/dev/null)" ] && [ "$(id -u)" -ne 0 ]; then
    docker run --rm --entrypoint sh -v "$WORK:/work" "$IMAGE" -c 'rm -rf /work/state' >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  echo "==> building $IMAGE"
  docker build -t "$IMAGE" "$ROOT"
fi

echo "==> building csi-sanity $CSI_TEST_VERSION"
mkdir -p "$WORK/bin" "$WORK/state"
docker run --rm -e CGO_ENABLED=0 -e GOBIN=/out -v "$WORK/bin:/out" "$GO_IMAGE" \
  go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@${CSI_TEST_VERSION}"

echo "==> starting csicache all"
docker run -d --name "$CONTAINER" --privileged \
  -v /dev:/dev \
  -v "$WORK/state:/var/lib/csicache" \
  -v "$WORK/bin:/sanity:ro" \
  "$IMAGE" all \
  --endpoint=unix:///csi/csi.sock \
  --driver-name="$DRIVER_NAME" \
  --node-id=csi-sanity-node \
  --state-dir=/var/lib/csicache/state \
  --local-dir=/var/lib/csicache/local \
  --cache-dir=/var/lib/csicache/cache \
  --cache-size=1Gi \
  --log-format=text >/dev/null

for _ in $(seq 1 60); do
  if docker exec "$CONTAINER" test -S /csi/csi.sock 2>/dev/null; then
    break
  fi
  if [ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER")" != "true" ]; then
    echo "error: csicache exited before opening its socket" >&2
    exit 1
  fi
  sleep 1
done
docker exec "$CONTAINER" test -S /csi/csi.sock || { echo "error: no /csi/csi.sock after 60 s" >&2; exit 1; }

SANITY_ARGS=(
  --csi.endpoint=unix:///csi/csi.sock
  --csi.stagingdir=/tmp/csi-sanity/staging
  --csi.mountdir=/tmp/csi-sanity/target
  --csi.testvolumesize="$TEST_VOLUME_SIZE"
  --ginkgo.v
)
if [ -n "${TEST_PARAMS:-}" ]; then
  docker cp "$TEST_PARAMS" "$CONTAINER:/tmp/csi-sanity-params.yaml"
  SANITY_ARGS+=(--csi.testvolumeparameters=/tmp/csi-sanity-params.yaml)
fi

echo "==> csi-sanity ${SANITY_ARGS[*]} $*"
docker exec "$CONTAINER" mkdir -p /tmp/csi-sanity
docker exec "$CONTAINER" /sanity/csi-sanity "${SANITY_ARGS[@]}" "$@"
