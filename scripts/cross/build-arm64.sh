#!/usr/bin/env bash
# Cross-builds the linux-arm64-gnu addon on x86-64 Debian into build-linux-arm64-gnu/Release/
# ignis.node, then proves what it needs of the system. The build is the project's own
# (scripts/build.js --target=linux-arm64-gnu: cmake-js with cmake/linux-arm64-gnu.cmake,
# IGNIS_CUDA=OFF, the glibc 2.17 sysroot of scripts/toolchain.js with libstdc++ static); on arm64
# the portable scalar kernels build (native/cpu/simd.h). scripts/elf.js then reads its ELF needs
# (the rules test/portable.test.ts applies): glibc 2.28 at most, nothing of libstdc++, no stray
# unversioned symbol.
# scripts/cross/test-arm64.sh runs the tests against it.
#   scripts/cross/build-arm64.sh        (IGNIS_JOBS=N: parallel compile jobs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
start=$SECONDS

bash scripts/cross/setup.sh
IGNIS_CUDA=OFF node scripts/build.js --target=linux-arm64-gnu --out=build-linux-arm64-gnu
node scripts/elf.js build-linux-arm64-gnu/Release/ignis.node --machine=aarch64 --max-glibc=2.28
echo "build-arm64: done in $((SECONDS - start)) s"
