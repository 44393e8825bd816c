#!/usr/bin/env bash
# The GPU table of block-verified extrapolation (issue 18): plain `generate` (eager and static/compiled), the
# per-token processor, block 8 and "auto", on random models with the Qwen2.5-0.5B / -7B layouts, bf16.
#
# Fits in 6 minutes of GPU time from a cold start (1-2 min): the cells share one budget (GPU_BUDGET_S, default 240 s),
# each runs under `timeout` with what is left, and every cell's JSON is rewritten after each row, so a run cut short
# still reports what finished. Prints the table; writes $OUT/gpu_extrapolation_<cell>.json ($OUT defaults to
# benchmarks/results).
#
#   bash benchmarks/gpu_extrapolation.sh              # on the GPU machine
#   SMOKE=1 bash benchmarks/gpu_extrapolation.sh      # a few seconds on CPU (tiny shapes), to try the script first
set -u
export PYTHONUNBUFFERED=1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT" || exit 1
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
BUDGET="${GPU_BUDGET_S:-240}"
START=$(date +%s)

if [ "${SMOKE:-0}" = "1" ]; then
  COMMON=(--device cpu --dtype float32 --threads 1 --new_tokens 8 --prompt_len 16 --repeats 1 --calibration_steps 2)
  SHAPE_05=(--shape tiny --hiddens 256)
  SHAPE_7=(--shape tiny --hiddens 256)
else
  COMMON=(--device cuda --dtype bfloat16 --new_tokens 64 --prompt_len 64 --repeats 2 --calibration_steps 4)
  SHAPE_05=(--shape qwen2.5-0.5b)
  SHAPE_7=(--shape qwen2.5-7b)
fi

cell() {  # cell NAME ARGS...: one bench_extrapolation.py run with what is left of the budget
  local name=$1
  shift
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -le 15 ]; then
    echo "== $name: skipped, the budget (${BUDGET}s) is spent"
    return
  fi
  echo "== $name (${left}s left)"
  timeout --signal=INT "$left" "$PY" benchmarks/bench_extrapolation.py --only blocks "${COMMON[@]}" \
    --json "$OUT_DIR/gpu_extrapolation_$name.json" "$@"
  local rc=$?
  [ "$rc" -eq 0 ] || echo "== $name stopped (exit $rc); its JSON holds the rows that finished"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
# In order of importance: greedy at B = 1 and 8 with the compiled static baseline, the 7B layout, the paper's sampling,
# then the large batch.
cell q05_greedy "${SHAPE_05[@]}" --batches 1 8 --static_baseline on
cell q7_greedy "${SHAPE_7[@]}" --batches 1 --rules selective
cell q05_paper "${SHAPE_05[@]}" --sampling paper --batches 1 4
cell q05_greedy_b16 "${SHAPE_05[@]}" --batches 4 16
# bf16: is dense sampling's distribution on the block path still right (histogram distances beside the noise)?
if [ "${SMOKE:-0}" = "1" ]; then DIST_ROWS=64; else DIST_ROWS=512; fi
cell q05_distribution "${SHAPE_05[@]}" --only distribution --distribution_rows "$DIST_ROWS" --block_sizes 8
# Analysis (issue 18, item 5): compute_token_metrics against two plain forwards, fused (CUDA default) and reference.
LEFT=$((BUDGET + 60 - ($(date +%s) - START)))
if [ "${SMOKE:-0}" = "1" ]; then
  ANALYSIS=(--device cpu --size micro --batch_size 2 --length 32 --repeats 1)
else
  ANALYSIS=(--device cuda --dtype bfloat16 --size small --vocab_size 152064 --batch_size 8 --length 2048 --repeats 3)
fi
if [ "$LEFT" -gt 20 ]; then
  echo "== analysis (${LEFT}s left)"
  timeout --signal=INT "$LEFT" "$PY" benchmarks/bench_analysis.py "${ANALYSIS[@]}" --compare_fused \
    | tee "$OUT_DIR/gpu_analysis.txt"
fi
echo "== done in $(($(date +%s) - START))s; JSON in $OUT_DIR"
