#!/usr/bin/env bash
# A/A proof for the suite's timing tests (pytest -m timing: the gate's, the fallback's latency window,
# the profilers' coverage): run them N times (default 20) with nothing changed, while the other core
# compiles real models, the load they share the machine with under `./ek test` (two xdist workers).
# A failure here is a false alarm. Prints each run and the count; exit 1 when there was any.
#   benchmarks/timing_tests_aa.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
py=.venv/bin/python
# One OpenMP thread per process, as `./ek test` gives each xdist worker (conftest.py): two processes
# with two spinning OpenMP pools each on 2 cores made a MiniLM compile take over 15 minutes.
export OMP_NUM_THREADS=1
# One set of bundles for every run (conftest.py reuses a preset EDGEKIT_TEST_BUNDLES); built in run 1.
export EDGEKIT_TEST_BUNDLES; EDGEKIT_TEST_BUNDLES=$(mktemp -d -t edgekit-aa-bundles-XXXX)
log=$(mktemp -d -t edgekit-aa-logs-XXXX)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(getconf _NPROCESSORS_ONLN) cores; logs in $log"
# The load: back-to-back android compiles (LiteRT, ExecuTorch, PT2E INT8), in their own session so
# the whole tree can be stopped at the end.
setsid bash -c "while true; do $py -m edgekit compile --target android --out $log/load >/dev/null 2>&1; done" &
load=$!
trap 'kill -- -$load 2>/dev/null' EXIT
alarms=0
for i in $(seq "$n"); do
  start=$(date +%s)
  if $py -m pytest -q -n 0 -m timing -p no:cacheprovider >"$log/run$i.txt" 2>&1; then
    echo "run $i: pass ($(( $(date +%s) - start )) s, load running: $(pgrep -s $load | wc -l) processes)"
  else
    alarms=$((alarms + 1))
    echo "run $i: FALSE ALARM ($log/run$i.txt)"; grep -E "^(FAILED|E )" "$log/run$i.txt" | head -5
  fi
done
echo "$alarms false alarms in $n A/A runs of the timing tests under load"
[ "$alarms" = 0 ]
