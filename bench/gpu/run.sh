#!/usr/bin/env bash
# The GPU benchmark in one command, for one device-tool call (10 minutes at most):
#   bash bench/gpu/run.sh
# builds the harness (bench/gpu/build.sh), times PyTorch's rows (torch_peer.py) while the build
# runs on the CPU, then runs each ignis row in its own process (a fault in one kernel cannot
# take the others down), and prints the joined table (report.py). Writes ${OUT:-/tmp}/gpu-bench.json,
# .md (for bench/RESULTS.md) and .txt (the table and the logs), plus gpu-bench.build.log.
#
# IGNIS_BENCH_DEADLINE  seconds for the whole script (default 540)
# IGNIS_BENCH_SERIAL=1  run torch_peer.py after the build instead of during it
# IGNIS_BENCH_MS        timed work per row in ms (default 800; iterations are clamped to 20..200)
# IGNIS_GPU_ARCH        passed to build.sh (default 90a)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
mkdir -p "$out"
work=$(mktemp -d)
deadline=${IGNIS_BENCH_DEADLINE:-540}
bin=build-gpu-bench/ignis-gpu-bench
txt=$out/gpu-bench.txt
export PYTHONUNBUFFERED=1
: >"$txt"
say() { echo "$*" | tee -a "$txt"; }
left() { echo $((deadline - SECONDS)); }

rev="no git checkout"
if git rev-parse --short HEAD >/dev/null 2>&1; then
  rev="commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo ' with local changes')"
fi
say "gpu-bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $rev"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv,noheader 2>&1 | tee -a "$txt"

torch_pid=""
start_torch() {  # $1: seconds allowed
  timeout -k 10 "$1" python3 bench/gpu/torch_peer.py >"$work/torch.jsonl" 2>"$work/torch.err" &
  torch_pid=$!
}
# PyTorch times on the GPU while nvcc works on the CPU: its launches are queued behind a GPU-side
# gate, so a busy CPU does not reach its numbers; the build runs at low priority all the same.
[ "${IGNIS_BENCH_SERIAL:-0}" = 1 ] || start_torch 240

build_rc=0
build_budget=$(($(left) - 150))
[ "$build_budget" -lt 60 ] && build_budget=60
timeout -k 10 "$build_budget" nice -n 10 bash bench/gpu/build.sh "$bin" >"$out/gpu-bench.build.log" 2>&1 || build_rc=$?
grep -E "^build:|FAILED|error" "$out/gpu-bench.build.log" | head -60 | tee -a "$txt"
[ $build_rc -eq 124 ] && say "gpu-bench: the build ran out of time"

if [ -n "$torch_pid" ]; then
  wait "$torch_pid" || say "gpu-bench: torch_peer.py exited with $? (see its log below)"
else
  torch_budget=$(($(left) / 2))
  [ "$torch_budget" -lt 30 ] && torch_budget=30
  start_torch "$torch_budget"
  wait "$torch_pid" || say "gpu-bench: torch_peer.py exited with $?"
fi

ours=$work/ours.jsonl
: >"$ours"
if [ -x "$bin" ] && [ $build_rc -ne 124 ]; then
  timeout 60 "$bin" --meta >>"$ours" 2>>"$work/ours.err"
  for id in $("$bin" --list); do
    budget=$(($(left) - 20))
    if [ "$budget" -lt 15 ]; then
      echo "{\"impl\": \"ignis\", \"id\": \"$id\", \"error\": \"not run: out of time\"}" >>"$ours"
      continue
    fi
    [ "$budget" -gt 120 ] && budget=120
    t0=$SECONDS
    timeout -k 5 "$budget" "$bin" "$id" >"$work/row.json" 2>>"$work/ours.err"
    rc=$?
    if grep -q "\"id\": \"$id\"" "$work/row.json"; then
      cat "$work/row.json" >>"$ours"
    else
      why="exit code $rc"
      [ $rc -eq 124 ] && why="timed out after $budget s"
      echo "{\"impl\": \"ignis\", \"id\": \"$id\", \"error\": \"the harness printed no row ($why; see gpu-bench.txt)\"}" >>"$ours"
    fi
    echo "gpu-bench: ignis $id: $((SECONDS - t0)) s, rc $rc" >>"$work/ours.err"
  done
else
  say "gpu-bench: no harness binary; ignis rows skipped (see gpu-bench.build.log)"
fi

{
  echo "---- ignis rows (JSON) ----"; cat "$ours"
  echo "---- ignis stderr ----"; tail -c 6000 "$work/ours.err" 2>/dev/null
  echo "---- torch rows (JSON) ----"; cat "$work/torch.jsonl" 2>/dev/null
  echo "---- torch stderr ----"; tail -c 4000 "$work/torch.err" 2>/dev/null
} >>"$txt"
say ""
python3 bench/gpu/report.py "$ours" "$work/torch.jsonl" --json "$out/gpu-bench.json" --md "$out/gpu-bench.md" \
  --note "ignis rows: one process per row; build: $(grep -m1 '^build: compiled' "$out/gpu-bench.build.log" | sed 's/^build: //')" \
  | tee -a "$txt"
say "gpu-bench: done in $SECONDS s; outputs in $out/gpu-bench.{json,md,txt}"
