#!/usr/bin/env bash
# Makes `kubectl kustomize` available for tests/CsiCache.Deploy.Tests, which
# compares its offline renderer with kubectl's output.
#
# Usage: scripts/install-kubectl.sh        (as root, or with sudo on PATH)
#
# Order of preference:
#   1. a kubectl already on PATH (the dotnet machine image ships kubectl 1.32
#      with kustomize v5) is used as it is;
#   2. otherwise Debian 12's `kubernetes-client` (kubectl 1.20.2, kustomize
#      v2.0.3). That kustomize is old but renders deploy/ identically, because
#      the base only uses `resources` (files) and `images`.
# Release binaries from dl.k8s.io are not an option: the only network here is
# the Debian, npm and NuGet registries (npm "kubectl" wrappers download those
# binaries at install time, so they fail too).
set -euo pipefail

if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  echo "kubectl already installed: $(command -v kubectl)"
  kubectl version --client 2>/dev/null | head -n 2 || true
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no kubectl on PATH and no apt-get to install Debian's kubernetes-client" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client
kubectl version --client 2>/dev/null | head -n 1 || true
kubectl kustomize --help >/dev/null
