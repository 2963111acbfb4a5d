#!/usr/bin/env bash
# Installs the benchmark's peers and origins (run as root, once):
#   rclone, s3fs (Debian), fuse3 (fusermount3, which rclone mount needs), nginx (the fast HTTP
#   origin; the benchmark starts its own instance on 127.0.0.1 with its own config), linux-perf
#   (optional, for profiles), and the npm s3rver used as the S3 origin.
# No service is left running: Debian's postinst would start nginx on 0.0.0.0:80, so a
# policy-rc.d that refuses service starts is put in place for the install when none exists.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "bench/setup.sh: run as root (apt-get, and the benchmark mounts FUSE filesystems)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

packages=(rclone s3fs fuse3 nginx-light)
for p in "${packages[@]}"; do
  if ! apt-cache policy "$p" | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq
    break
  fi
done
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
# perf is optional: it profiles the csicache process when asked (BENCHMARKS.md).
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null 2>&1 || echo "linux-perf not installed (optional)"

# If something started nginx anyway (a system without policy-rc.d support), stop it: the
# benchmark runs its own nginx on 127.0.0.1 only.
if command -v service >/dev/null && service nginx status >/dev/null 2>&1; then
  service nginx stop || true
fi

npm ci --prefix tests/s3rver --no-audit --no-fund --loglevel=error

for tool in rclone s3fs fusermount3 nginx node; do
  printf '%-12s %s\n' "$tool" "$(command -v "$tool" || echo MISSING)"
done
rclone version 2>/dev/null | head -n 1 || true
s3fs --version 2>/dev/null | head -n 1 || true
nginx -v 2>&1 || true
