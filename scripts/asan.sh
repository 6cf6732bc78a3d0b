#!/usr/bin/env bash
# npm run test:asan: the op, graph, model and error suites against the ASan + UBSan build
# (npm run build:asan -> build-asan/Release/ignis.node, CPU only), with libasan preloaded into
# node. Any ASan report or UBSan finding ends the run with a nonzero status. Leak detection is
# off: node itself keeps memory until exit (the leak tests measure ignis's own).
set -euo pipefail
cd "$(dirname "$0")/.."
addon=build-asan/Release/ignis.node
[ -f "$addon" ] || npm run build:asan
libasan=$(${CXX:-g++} -print-file-name=libasan.so)
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:handle_segv=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export IGNIS_BINARY="$PWD/$addon"
node -e "const i = require('./dist').info(); console.log('asan build:', process.env.IGNIS_BINARY, i.cpu.simd)"
npx vitest run test/ops test/graph.test.ts test/errors.test.ts test/models test/safetensors.test.ts test/package.test.ts \
  test/fuzz.test.ts test/worker.test.ts "$@"
