#!/usr/bin/env bash
# Installs what the tests need and a fresh Debian 12 machine may lack. Idempotent and quiet
# when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v losetup >/dev/null || need+=(mount)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -x /usr/sbin/nginx ] || need+=(nginx)
command -v python3 >/dev/null || need+=(python3) # a second process that mmaps a file on a test mount
if [ ${#need[@]} -gt 0 ]; then
  echo "install-test-deps: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# kubectl (for `kubectl kustomize deploy` in the manifest tests).
scripts/install-kubectl.sh >/dev/null

# Loop devices: the module may not be loaded on a fresh machine.
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true

# The S3-compatible server the origin and end-to-end tests run on 127.0.0.1.
if [ -f tests/s3rver/package.json ] && [ ! -d tests/s3rver/node_modules ]; then
  echo "install-test-deps: npm ci (tests/s3rver)"
  npm ci --prefix tests/s3rver --no-audit --no-fund --loglevel=error
fi
