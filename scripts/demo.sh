#!/usr/bin/env bash
# The main job on one machine: a small real capacity search on SQLite (demo.db), rnn and gru
# at 500 parameters with minibatch training (experiments/demo.toml), two local workers, then
# the best-bits table.
# Runs again where it stopped: existing studies are kept and finished ones are not re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HPSEARCH_STORAGE="${HPSEARCH_STORAGE:-sqlite:///demo.db}" OMP_NUM_THREADS=1
hs=.venv/bin/hpsearch
$hs create --from experiments/demo.toml
$hs worker --all --device cpu &
first=$!
$hs worker --all --device cpu
wait "$first"
$hs status
$hs export --format md --tag mb
cat <<'TEXT'

How this compares with the paper: Collins et al. (2017) report 3 to 6 bits per parameter
(about 5 on average) for every cell. These studies read lower because each ran 8 trials
(all of them the GP's random start) of 30,000 minibatch steps at 500 parameters, where the
paper searched 1,000+ trials per network with 50,000 to 20 million steps, and found more
bits per parameter in larger networks; longer searches of the same kind of training reach
more (docs/benchmarks.md). For the paper's whole protocol:
hpsearch create --from experiments/paper-protocol-small.toml (docs/tasks.md).
TEXT
