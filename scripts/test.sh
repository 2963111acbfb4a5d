#!/usr/bin/env bash
# The test command: builds everything and runs every test project.
#
#   scripts/test.sh            (as root: the tests mount filesystems, loop devices and FUSE)
#
# It first installs what the tests need and this machine lacks (Debian packages, the npm
# S3 server the origin tests start on 127.0.0.1), so it works on a fresh machine.
# Extra arguments go to `dotnet test` (e.g. --filter FullyQualifiedName~Conformance).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run as root: the tests make real mounts (loop devices, bind mounts, FUSE)" >&2
  exit 2
fi

scripts/install-test-deps.sh
# kubectl is installed above, so the manifest tests must compare against it rather than skip.
export CSICACHE_REQUIRE_KUBECTL=1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dotnet test CsiCache.sln --nologo -v q --blame-hang-timeout 10m "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line with the totals over every test assembly.
awk '/(Passed|Failed)! +- +Failed:/ {
       gsub(",", ""); for (i = 1; i <= NF; i++) {
         if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; if (p == 0) exit 1 }' "$log" || status=1
exit "$status"
