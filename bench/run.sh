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
build src/Cli/CsiCache.Cli.csproj
csicache=src/Cli/bin/Release/net10.0/csicache
exec dotnet bench/CsiCache.Bench/bin/Release/net10.0/csicache-bench.dll --csicache "$PWD/$csicache" --output bench/last-run.md "$@"
