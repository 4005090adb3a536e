#!/usr/bin/env bash
# The main job on one machine: a small real capacity search on SQLite (demo.db), four
# architectures, two local workers, then the best-bits table.
# Runs again where it stopped: existing studies are kept and finished ones are not re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HPSEARCH_STORAGE="${HPSEARCH_STORAGE:-sqlite:///demo.db}" OMP_NUM_THREADS=1
hs=.venv/bin/hpsearch
$hs create --arch rnn,ugrnn,gru,lstm --budget 500 --depths 1,2 --trials 20 --seed 0
$hs worker --all --device cpu &
first=$!
$hs worker --all --device cpu
wait "$first"
$hs status
$hs export --format md
