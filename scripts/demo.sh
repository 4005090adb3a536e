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
cat <<'TEXT'

How this compares with the paper: Collins et al. (2017) report 3 to 6 bits per parameter
(about 5 on average) for every cell. These studies read lower because each ran 20 trials of
2,000 full-batch steps, where the paper searched 1,000+ trials per network with long
minibatch training; longer searched trials reach more (docs/benchmarks.md). For the paper's
protocol: hpsearch create --from experiments/paper-protocol-small.toml (docs/tasks.md).
TEXT
