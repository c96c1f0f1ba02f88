#!/usr/bin/env bash
# Issue 34's end-to-end check (minutes: run by hand, not in the test suite): the scale smoke plan through a Dask
# scheduler and two workers started as separate processes on 127.0.0.1 gives results.csv identical to the local
# executor's. Usage: tools/dask_smoke_check.sh [python]   (run from the repository root)
set -euo pipefail
PY=${1:-python}
export PYTHONPATH=$PWD BENCH_THREADS=${BENCH_THREADS:-1} BENCH_NO_PROGRESS=1
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
$PY -m bench repro scale --profile smoke --executor local --out "$tmp/local" --no-report
$PY -m distributed.cli.dask_scheduler --host 127.0.0.1 --port 0 --no-dashboard \
    --scheduler-file "$tmp/scheduler.json" >"$tmp/scheduler.log" 2>&1 & pids+=($!)
while [ ! -s "$tmp/scheduler.json" ]; do sleep 0.2; done
for k in 0 1; do
  $PY -m distributed.cli.dask_worker --scheduler-file "$tmp/scheduler.json" --host 127.0.0.1 --nthreads 1 \
      --no-dashboard --memory-limit 0 --name "w$k" >"$tmp/worker$k.log" 2>&1 & pids+=($!)
done
addr=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['address'])" "$tmp/scheduler.json")
$PY -m bench repro scale --profile smoke --executor dask --scheduler "$addr" --out "$tmp/dask" --no-report
if cmp -s "$tmp/local/results.csv" "$tmp/dask/results.csv"; then
  echo "identical results.csv ($(wc -l <"$tmp/local/results.csv") lines): local vs dask at $addr"
else
  echo "results.csv differ: diff $tmp/local/results.csv $tmp/dask/results.csv"; exit 1
fi
