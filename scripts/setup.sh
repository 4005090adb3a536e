#!/usr/bin/env bash
# Create .venv and install hpsearch with its test tools. Safe to run again.
# torch is pinned to 2.13.0. On Linux, PyPI's torch is the CUDA build (several hundred MB,
# plus NVIDIA's library wheels), even on a machine without a GPU. So without an
# NVIDIA GPU (no nvidia-smi) this takes the CPU build from PyTorch's CPU index; when that index
# cannot be reached (no internet, only a package mirror) it falls back to the default index
# at once. docs/benchmarks.md ("Set-up") gives the download sizes. GPU images: see Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH="torch==2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"
python3 -m venv .venv
pip_install() {
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  return "${PIPESTATUS[0]}"
}
if .venv/bin/python -c "import torch" 2>/dev/null; then
  :  # installed by an earlier run; `pip install -e` below checks the version
elif command -v nvidia-smi >/dev/null; then
  pip_install "$TORCH"
elif .venv/bin/python -c "import urllib.request; urllib.request.urlopen('$CPU_INDEX/', timeout=5)" \
    2>/dev/null \
  && pip_install --index-url "$CPU_INDEX" --timeout 20 "$TORCH"; then
  echo "torch: CPU build from $CPU_INDEX"
else
  echo "torch: $CPU_INDEX cannot be reached; installing $TORCH from the default index" >&2
  pip_install "$TORCH"
fi
pip_install -e ".[dev]"
.venv/bin/python -c "import hpsearch, objectives, storage, torch, optuna" \
  || { echo "setup failed: see pip output above" >&2; exit 1; }
