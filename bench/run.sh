#!/usr/bin/env bash
# Builds csicache (Release) and the benchmark, then runs it with the arguments given, e.g.
#   sudo bench/run.sh --quick
#   sudo bench/run.sh --runs 3 --workloads a,b,c,d --tools native,origin,csicache,rclone,s3fs
# Run bench/setup.sh once first. The report is printed and also written to bench/last-run.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
build() { dotnet build -c Release -v q --nologo "$@" >/dev/null; }

build bench/CsiCache.Bench/CsiCache.Bench.csproj
csicache=src/Cli/bin/Release/net10.0/csicache
# cli-bridge.targets adds src/Cli's missing reference to Datasets (a no-op once it is there).
if build src/Cli/CsiCache.Cli.csproj -p:CustomAfterMicrosoftCommonTargets="$PWD/bench/cli-bridge.targets" \
   && "$csicache" mount --help 2>&1 | grep -q MOUNTPOINT; then
  :
else
  echo "run.sh: this csicache has no working 'mount' subcommand yet; using bench/MountBridge (the branch's own MountCommand.cs)" >&2
  build bench/MountBridge/CsiCache.Bench.MountBridge.csproj
  csicache=bench/MountBridge/bin/Release/net10.0/csicache-mount-bridge
fi
exec dotnet bench/CsiCache.Bench/bin/Release/net10.0/csicache-bench.dll --csicache "$PWD/$csicache" --output bench/last-run.md "$@"
