#!/usr/bin/env bash
# One prepared GPU run (issue 20, part 5): everything a lent GPU machine should measure, in one
# script of at most 9 minutes that writes every file into OUTDIR. Stages, each with its own
# time limit (timeout), each one's rc and seconds in OUTDIR/stages.tsv, a failed one not
# stopping the rest:
#
#   env              nvidia_smi.csv (name, memory, driver) and env.json (python, torch, optuna,
#                    hpsearch, git commit; torch.cuda.get_device_properties)
#   pytest_gpu       `pytest -m gpu`: pytest_gpu.log and pytest_gpu.xml (junit)
#   throughput_full, throughput_minibatch
#                    benchmarks/batched_throughput.py on cuda, K up to 512, CUDA graphs on:
#                    throughput_MODE.jsonl, a row per (budget, K) with the share of the measured
#                    matmul rate; minibatch only where the script has --batch-size
#   search_create, search_worker
#                    the paper's protocol for rnn at budget 10,000 (gp-batch, the median
#                    pruner; benchmarks/gpu_run_steps.py create-args) in OUTDIR/search.db, one
#                    `hpsearch worker --batch auto` for what is left of the 9 minutes (at most
#                    5), then SIGTERM; meanwhile gpu_util.csv (nvidia-smi utilization.gpu once
#                    a second) and status/NNNN.json (`hpsearch status -f json` every 30 s)
#   search_report, search_export, search_archive
#                    report/report.md, trials.csv (every trial), trials.jsonl.gz (the study
#                    whole, for `hpsearch import`), best.md, status_final.json
#   summary          summary.json and summary.md: trials/h, GPU busy mean, best bits/param, the
#                    throughput rows, every stage's rc
#
# --dry-run: tiny sizes on the CPU, no nvidia-smi (recorded as absent), under 90 s: CI runs it
# (tests/test_gpu_run.py). docs/benchmarks.md, "One prepared GPU run", says how to run it on a
# lent machine (whose python3 lacks optuna: carry wheels in .whl/, installed here when present).
#
# Usage: bash benchmarks/gpu_run.sh OUTDIR [--dry-run]
# Exit status: 0 when every stage passed (the worker's timeout is its plan, not a failure), 1
# when any failed, 2 for bad arguments.

set -u

usage() { echo "usage: bash benchmarks/gpu_run.sh OUTDIR [--dry-run]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
OUT=$1
DRY=0
if [[ $# -eq 2 ]]; then [[ $2 == --dry-run ]] || usage; DRY=1; fi
[[ $OUT != -* ]] || usage

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT/status" || exit 2
OUT=$(cd "$OUT" && pwd)
cd "$ROOT" || exit 2
rm -f "$OUT/stages.tsv" "$OUT/DRY_RUN" "$OUT"/status/*.json "$OUT/search.db"

# Sizes. TOTAL bounds the whole run: a stage's limit is cut to the time left (but not below
# MIN_STAGE, so that a slow start leaves the search's report and export their time). The worker
# gets what the stages before it left, less RESERVE for those after it, between WORKER_MIN and
# WORKER_MAX seconds.
if (( DRY )); then
    touch "$OUT/DRY_RUN"
    DEVICE=cpu TOTAL=80 WORKER_MIN=12 WORKER_MAX=20 RESERVE=15 MIN_STAGE=10 STATUS_EVERY=5
    # --matmul-n: the yardstick matmul at 4096 takes most of a minute on one loaded core.
    THROUGHPUT=(--device cpu --threads 1 --archs rnn --budgets 300 --ks 1,4 --steps 20 --b 200
        --matmul-n 256)
    MINIBATCH=(--b 400 --batch-size 32)
    export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1
else
    DEVICE=cuda TOTAL=540 WORKER_MIN=120 WORKER_MAX=300 RESERVE=75 MIN_STAGE=20 STATUS_EVERY=30
    THROUGHPUT=(--device cuda --archs rnn --budgets 1000,10000 --ks 1,8,64,512 --steps 200 --b 1000)
    MINIBATCH=(--b 4000 --batch-size 256)
fi
START=$SECONDS
left() { echo $(( TOTAL - (SECONDS - START) )); }

# stage NAME LIMIT CMD...: CMD under `timeout LIMIT` (cut to the time left), its output in
# OUTDIR/NAME.log (stdout in OUTDIR/$STDOUT_TO instead, where that is set; the limit as given
# where UNCAPPED is set), one line in
# stages.tsv: name, rc, seconds, limit. rc 124: it ran out of time (137: killed after).
stage() {
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    local budget=$(( $(left) - 3 ))
    (( budget < MIN_STAGE )) && budget=$MIN_STAGE
    [[ -z ${UNCAPPED:-} ]] && (( limit > budget )) && limit=$budget
    if [[ -n ${STDOUT_TO:-} ]]; then
        timeout -k "${KILL_AFTER:-10}" "$limit" "$@" >"$OUT/$STDOUT_TO" 2>"$OUT/$name.log"
        rc=$?
    else
        timeout -k "${KILL_AFTER:-10}" "$limit" "$@" >"$OUT/$name.log" 2>&1
        rc=$?
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( SECONDS - t0 ))" "$limit" >>"$OUT/stages.tsv"
    echo "gpu_run: $name rc=$rc in $(( SECONDS - t0 )) s (limit $limit s)"
    return 0
}

# Python: $PYTHON, else the project's .venv where it has optuna, else python3 (a GPU image's,
# which holds torch; the project's other packages come from wheels in .whl/ when present).
if [[ -n ${PYTHON:-} ]]; then
    PY=$PYTHON
elif [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import optuna' 2>/dev/null; then
    PY=$ROOT/.venv/bin/python
else
    PY=python3
fi
if ! "$PY" -c 'import optuna' 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_run_site .whl/*.whl >"$OUT/wheels.log" 2>&1
    export PYTHONPATH=/tmp/gpu_run_site
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
HP=("$PY" -m hpsearch.cli)
DB="sqlite:///$OUT/search.db"
echo "gpu_run: $( (( DRY )) && echo dry run, ) python $PY, device $DEVICE, into $OUT"

# 1. The machine.
HAVE_SMI=0
if (( ! DRY )) && command -v nvidia-smi >/dev/null; then
    HAVE_SMI=1
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv \
        >"$OUT/nvidia_smi.csv" 2>&1
else
    echo absent >"$OUT/nvidia_smi.csv"
fi
stage env 30 "$PY" benchmarks/gpu_run_steps.py env "$OUT"

# 2. The GPU tests (on a CPU each skips).
stage pytest_gpu 90 "$PY" -m pytest -m gpu tests -q -p no:cacheprovider \
    --junitxml="$OUT/pytest_gpu.xml"

# 3. Batched throughput, full batch and minibatch.
STDOUT_TO=throughput_full.jsonl stage throughput_full 60 \
    "$PY" benchmarks/batched_throughput.py "${THROUGHPUT[@]}" --out "$OUT/throughput"
if "$PY" benchmarks/batched_throughput.py --help 2>/dev/null | grep -q -- --batch-size; then
    STDOUT_TO=throughput_minibatch.jsonl stage throughput_minibatch 60 \
        "$PY" benchmarks/batched_throughput.py "${THROUGHPUT[@]}" "${MINIBATCH[@]}" \
        --out "$OUT/throughput"
else
    echo "batched_throughput.py has no --batch-size: full batch only" \
        | tee "$OUT/throughput_minibatch.log"
fi

# 4. A whole search with the paper's protocol.
mapfile -t CREATE < <("$PY" benchmarks/gpu_run_steps.py create-args $( (( DRY )) && echo --dry-run))
stage search_create 30 "${HP[@]}" create --storage "$DB" "${CREATE[@]}"
if (( HAVE_SMI )); then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,nounits -l 1 \
        >"$OUT/gpu_util.csv" 2>/dev/null &
    SMI_PID=$!
else
    echo absent >"$OUT/gpu_util.csv"
fi
rm -f "$OUT/.search_done"
(
    waited=0
    while [[ ! -e $OUT/.search_done ]]; do
        sleep 1
        waited=$(( waited + 1 ))
        if (( waited % STATUS_EVERY == 0 )); then
            "${HP[@]}" status --storage "$DB" -f json \
                >"$OUT/status/$(printf %04d "$waited").json" 2>/dev/null
        fi
    done
) &
POLL_PID=$!
WORKER_S=$(( $(left) - RESERVE ))
(( WORKER_S > WORKER_MAX )) && WORKER_S=$WORKER_MAX
(( WORKER_S < WORKER_MIN )) && WORKER_S=$WORKER_MIN
KILL_AFTER=20 UNCAPPED=1 stage search_worker "$WORKER_S" \
    "${HP[@]}" worker --storage "$DB" --all --device "$DEVICE" --batch auto
touch "$OUT/.search_done"
[[ -n ${SMI_PID:-} ]] && kill "$SMI_PID" 2>/dev/null
wait "$POLL_PID" ${SMI_PID:+"$SMI_PID"} 2>/dev/null
rm -f "$OUT/.search_done"

# 5. What the search found.
"${HP[@]}" status --storage "$DB" -f json >"$OUT/status_final.json" 2>&1
"${HP[@]}" status --storage "$DB" >"$OUT/status_final.txt" 2>&1
stage search_report 45 "${HP[@]}" report --storage "$DB" --out "$OUT/report"
stage search_export 30 "${HP[@]}" export --storage "$DB" --table trials --format csv \
    --out "$OUT/trials.csv"
stage search_archive 30 "${HP[@]}" export --storage "$DB" --table trials --format jsonl \
    --out "$OUT/trials.jsonl.gz"
"${HP[@]}" export --storage "$DB" --table best --out "$OUT/best.md" >/dev/null 2>&1

# 6. The headline figures.
"$PY" benchmarks/gpu_run_steps.py summary "$OUT"
# A stage failed unless its rc is 0, or 124 for the worker (stopped at its time, as planned).
awk -F'\t' '$2 != 0 && !($1 == "search_worker" && $2 == 124) { bad = 1 } END { exit bad }' \
    "$OUT/stages.tsv"
