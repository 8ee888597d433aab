#!/usr/bin/env bash
# The attention kernels on a lent H100/H200 in one call (no internet there; python3 holds CUDA
# torch and Triton), everything into $OUT, all of it killed at 560 s so that what was written
# still comes back:
#   1. correctness: `pytest -m gpu tests/test_triton_attention.py`, limited to TEST_LIMIT s
#      (default 240), in SHARDS processes side by side (default 8: Triton compiles one kernel at
#      a time per process, and each case compiles its own); each shard's log and junit XML in
#      $OUT/gpu_tests/. Without pytest on the machine it says so and goes on: nothing is installed.
#   2. timings: benchmarks/gpu_timing.py, every stage, within what is left (its --budget stops
#      new rows 110 s before the end); gpu_timing.log, attention.csv, training.csv,
#      autotune.csv, environment.json and summary.md.
# benchmarks/README.md says how to call it and where the files go.
#
#   OUT=benchmarks/results/<card>-<torch>-<date> bash benchmarks/gpu_session.sh   # on any CUDA machine
#
# Arguments go on to gpu_timing.py (e.g. --stages tma,head_dim_128 for what a first run skipped;
# --smoke checks the whole script on a CPU); PYTHON sets the interpreter. The exit status is the
# tests': 0 when every one passed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the folder for the results}
mkdir -p "$out/gpu_tests"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

summary="$out/gpu_tests/summary.txt"
tests=1
if ! "$python" -c "import pytest" 2>/dev/null; then
    echo "pytest is not installed for $python: the gpu tests did not run, the kernel's correctness is unchecked" >"$summary"
elif ! ids=$("$python" -m pytest -q -m gpu --collect-only tests/test_triton_attention.py 2>&1); then
    echo "collecting the gpu tests failed:" >"$summary" && echo "$ids" >>"$summary"
else
    echo "--- gpu tests at ${SECONDS} s"
    ids=$(echo "$ids" | grep '::')
    shards=${SHARDS:-8}
    pids=()
    for i in $(seq 1 "$shards"); do
        # Every shards-th test from the i-th (test ids hold no spaces): one kind's cases spread out.
        shard=$(echo "$ids" | sed -n "${i}~${shards}p")
        [ -n "$shard" ] || continue
        # shellcheck disable=SC2086
        timeout "${TEST_LIMIT:-240}" "$python" -m pytest -rA -p no:cacheprovider $shard \
            --junitxml="$out/gpu_tests/shard$i.xml" >"$out/gpu_tests/shard$i.log" 2>&1 &
        pids[i]=$!
    done
    tests=0
    : >"$summary"
    for i in "${!pids[@]}"; do
        wait "${pids[i]}"
        status=$?
        [ "$status" = 124 ] && echo "shard $i stopped at TEST_LIMIT (${TEST_LIMIT:-240} s)" >>"$summary"
        [ "$status" = 0 ] || tests=1
        echo "shard $i, exit $status: $(tail -n 1 "$out/gpu_tests/shard$i.log")" >>"$summary"
    done
fi
cat "$summary"

left=$((560 - SECONDS))
echo "--- timings at ${SECONDS} s, ${left} s left"
timeout "$left" "$python" benchmarks/gpu_timing.py --out "$out" --budget "$((left - 110))" "$@" 2>&1 |
    tee "$out/gpu_timing.log"
exit "$tests"
