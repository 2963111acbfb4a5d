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
results=$(mktemp -d)
trap 'rm -rf "$log" "$results"' EXIT
set +e
dotnet test CsiCache.sln --nologo -v q --blame-hang-timeout 10m --logger trx --results-directory "$results" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Quiet output names a failed test but not why; print each failure's message and the top of its
# stack from the TRX files, last, where a CI log's tail shows it.
if [ "$status" != 0 ] && command -v python3 >/dev/null; then
  python3 - "$results" <<'PY' || true
import glob, sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for trx in sorted(glob.glob(sys.argv[1] + "/**/*.trx", recursive=True)):
    for r in ET.parse(trx).getroot().iterfind(".//t:UnitTestResult", ns):
        if r.get("outcome") != "Failed":
            continue
        msg = r.findtext(".//t:ErrorInfo/t:Message", "", ns).strip()
        stack = r.findtext(".//t:ErrorInfo/t:StackTrace", "", ns).strip().splitlines()[:6]
        print(f"FAILED {r.get('testName')} ({r.get('duration')})\n  {msg}\n  " + "\n  ".join(stack))
PY
fi

# One closing line with the totals over every test assembly.
awk '/(Passed|Failed)! +- +Failed:/ {
       gsub(",", ""); for (i = 1; i <= NF; i++) {
         if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; if (p == 0) exit 1 }' "$log" || status=1
exit "$status"
