#!/usr/bin/env bash
# Create .venv and install hpsearch with its test tools. Safe to run again.
# torch is pinned to 2.13.0: on a machine without a GPU, `pip install torch==2.13.0` takes the
# CPU build (never the CUDA wheels); GPU images install the CUDA build (see Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import hpsearch, objectives, storage, torch, optuna" \
  || { echo "setup failed: see pip output above" >&2; exit 1; }
