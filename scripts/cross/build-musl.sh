#!/usr/bin/env bash
# Cross-builds the linux-x64-musl and linux-arm64-musl (Alpine) addons on x86-64 Linux with zig c++
# (scripts/build.js --target=linux-<arch>-musl: cmake-js with cmake/linux-<arch>-musl.cmake, zig
# fetched by scripts/toolchain.js zig(), IGNIS_CUDA=OFF) into build-linux-<arch>-musl/Release/
# ignis.node, then reads (scripts/elf.js) what each needs of the system: musl's libc alone (NEEDED libc.so or
# libc.musl-<arch>.so.1; libc++, libunwind and compiler-rt are linked in), no symbol versions, and
# no undefined strong symbol but Node-API's and musl's own (checked against zig's musl symbol list).
# No musl Node is on the npm registry, so nothing here runs them (node:20-alpine, the release
# workflow, does); where Debian's musl-tools is installed (apt-get install musl-tools), the x64
# addon is dlopen()ed by musl's own loader (/lib/ld-musl-x86_64.so.1) from a small C program that
# stands in stubs for the N-API functions: every symbol binds (BIND_NOW) and the static
# constructors of the addon and its libc++ run.
#   scripts/cross/build-musl.sh [x64|arm64]...    (default both; IGNIS_JOBS=N: parallel jobs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
archs=("$@")
[ ${#archs[@]} -eq 0 ] && archs=(x64 arm64)
command -v readelf >/dev/null 2>&1 || { echo "build-musl: no readelf (binutils)" >&2; exit 1; }
zig=$(node scripts/toolchain.js zig)
musl_symbols="$(dirname "$zig")/lib/libc/musl/libc.S" # one "name:" line per symbol musl defines

fail=0
check() { # <ignis.node> <machine>: scripts/elf.js's musl rules, with zig's musl symbol list
  node scripts/elf.js "$1" --machine="$2" --musl-symbols="$musl_symbols" || fail=1
}

load() { # <ignis.node>: dlopen under musl's loader, N-API stubbed
  local file=$1
  if ! command -v musl-gcc >/dev/null 2>&1 || [ ! -e /lib/ld-musl-x86_64.so.1 ]; then
    echo "  load: skipped (no musl-gcc and /lib/ld-musl-x86_64.so.1: apt-get install musl-tools)"
    return
  fi
  local tmp; tmp=$(mktemp -d)
  {
    echo '#include <dlfcn.h>'
    echo '#include <stdio.h>'
    readelf --dyn-syms -W "$file" | awk '$7 == "UND" && $8 ~ /^(napi|node_api)_/ { print "int " $8 "(void) { return 9; }" }' | sort -u
    echo 'int main(int argc, char** argv) {'
    echo '  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);'
    echo '  if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }'
    echo '  return dlsym(h, "napi_register_module_v1") ? 0 : 2;'
    echo '}'
  } > "$tmp/probe.c"
  if musl-gcc -O1 -rdynamic "$tmp/probe.c" -o "$tmp/probe" && "$tmp/probe" "$root/$file"; then
    echo "  load: ok (dlopen under musl's loader, napi_register_module_v1 found)"
  else
    echo "  FAIL: musl's loader could not load it"; fail=1
  fi
  rm -rf "$tmp"
}

for a in "${archs[@]}"; do
  case $a in
    x64) machine=x86-64 ;;
    arm64) machine=aarch64 ;;
    *) echo "build-musl: unknown arch $a (x64 or arm64)" >&2; exit 2 ;;
  esac
  start=$SECONDS
  IGNIS_CUDA=OFF node scripts/build.js --target=linux-$a-musl --out=build-linux-$a-musl
  echo "build-musl: linux-$a-musl built in $((SECONDS - start)) s"
  check build-linux-$a-musl/Release/ignis.node "$machine"
  if [ "$a" = x64 ]; then load build-linux-x64-musl/Release/ignis.node; fi
done
exit "$fail"
