#!/usr/bin/env bash
# The CUDA backend's verification in one device call, run on the GPU machine from the project
# root. Here first: npm install; an sm_90a-only addon small enough to carry,
#   node node_modules/cmake-js/bin/cmake-js compile -p 2 -O build-device --CDIGNIS_CUDA_ARCHS=90a
# and ../shared/device/pack.sh, with the packaging-only devDependencies set aside so the pack
# stays under 64 MiB (npm install restores them):
#   rm -rf node_modules/typescript-latest node_modules/@typescript node_modules/@arethetypeswrong Then through the device tool, carrying .device, dist and
# build-device/Release/ignis.node:
#   source .device/setup.sh && bash scripts/device-check.sh tests     (one call, < 10 min)
#   source .device/setup.sh && bash scripts/device-check.sh bench     (another call)
# tests: 1. npm run test:gpu: every op, graph and model suite on the cuda device (CUDA graphs
#        on); 2. the graph and model suites again with IGNIS_CUDA_GRAPHS=0 (steps one by one);
#        3. the op suites under compute-sanitizer memcheck.
# bench: bench/gpu/run.sh: our kernels beside PyTorch, one table with the issue's bars.
# Each step has a time limit and logs under $OUT; a summary is printed last.
set -uo pipefail
OUT=${OUT:-/tmp/ignis-device}
mkdir -p "$OUT"
export IGNIS_TEST_DEVICE=cuda
# the attention kernels' sliding-window and soft-cap paths await their first GPU run: lifted here
# so the op and model suites check them against the float64 reference (README: Environment)
export IGNIS_CUDA_UNVERIFIED_ATTENTION=1
[ -f build-device/Release/ignis.node ] && export IGNIS_BINARY=$PWD/build-device/Release/ignis.node
# the type, workflow and packaging checks need what the pack leaves behind, and no GPU
vitest=(node node_modules/vitest/vitest.mjs run --reporter=dot --exclude test/types.test.ts --exclude test/workflow.test.ts)
summary=()
step() {  # step NAME LIMIT_S CMD...: runs CMD, logs to $OUT/NAME.txt, records its status
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  local rc=$?
  summary+=("$name: exit $rc in $((SECONDS - t0)) s; $(grep -E 'Tests +[0-9]|ERROR SUMMARY|PASS|FAIL' "$OUT/$name.txt" | tail -3 | tr '\n' ' ')")
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
node -e "const i = require('./dist').info(); console.log(JSON.stringify(i.cuda))" | tee "$OUT/info.txt"
case "${1:-tests}" in
  tests)
    step test-gpu 240 "${vitest[@]}"
    step test-gpu-eager 90 env IGNIS_CUDA_GRAPHS=0 "${vitest[@]}" test/graph.test.ts test/models test/gpu
    step memcheck 220 compute-sanitizer --tool memcheck --target-processes all --print-limit 20 "${vitest[@]}" test/ops test/gpu
    ;;
  bench)
    step bench 560 bash bench/gpu/run.sh
    tail -40 "$OUT/bench.txt"
    ;;
  *) echo "usage: device-check.sh tests|bench" >&2; exit 2 ;;
esac
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
