#!/usr/bin/env bash
# System packages reporting needs on a fresh Debian/Ubuntu machine (idempotent; run as root).
#   runtime: Pango and fonts for WeasyPrint (format=pdf).
#   tests:   Debian's chromium for the dashboard's headless-browser test, poppler-utils to look at PDFs.
# Usage: bash services/reporting/scripts/install-system-deps.sh [--runtime-only]
set -euo pipefail

# fonts-wqy-microhei: the Simplified Chinese reports and reviews (DejaVu has no CJK glyphs).
runtime=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libfontconfig1 fonts-dejavu-core fonts-wqy-microhei shared-mime-info)
testing=(chromium poppler-utils)

packages=("${runtime[@]}")
if [[ "${1:-}" != "--runtime-only" ]]; then
  packages+=("${testing[@]}")
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "reporting system dependencies: all present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    exec sudo -n bash "$0" "$@"
  fi
  echo "reporting system dependencies missing (${missing[*]}); run this script as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "reporting system dependencies installed: ${missing[*]}"
