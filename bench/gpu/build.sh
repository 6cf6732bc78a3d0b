#!/usr/bin/env bash
# Builds the GPU benchmark (bench/gpu/bench.cu) with the CUDA kernels (native/cuda/*.cu) and the
# host sources they need, with nvcc and the C++ compiler alone: no cmake-js, no Node, so it runs
# on the device machine.
#
#   bash bench/gpu/build.sh [output]        default: build-gpu-bench/ignis-gpu-bench
#
# IGNIS_GPU_ARCH  architectures, space or ';' separated (default 90a: compute_90a -> sm_90a)
# IGNIS_JOBS      parallel compilations (default: the number of cores)
#
# Objects compile in parallel and are reused while newer than their source and every header
# under native/. A kernel file that fails to compile is reported and left out: bench.cu holds
# weak references to the entry points, so the harness still links and reports those rows as
# missing instead of losing the whole run. The host sources (native/core) go into a static
# archive, so the link takes only the members the objects use. The harness registers its own
# allocation-only CUDA backend, so native/cuda/backend.cc (which names every kernel) stays out.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

out=${1:-build-gpu-bench/ignis-gpu-bench}
objdir=$(dirname "$out")/obj
mkdir -p "$objdir"
jobs=${IGNIS_JOBS:-$(nproc 2>/dev/null || echo 8)}
cxx=${CXX:-g++}

gencode=""
for arch in ${IGNIS_GPU_ARCH:-90a}; do
  arch=${arch//;/ }
  for a in $arch; do gencode+=" -gencode=arch=compute_$a,code=sm_$a"; done
done
export IGNIS_NVCC_FLAGS="-std=c++17 -O3 --expt-relaxed-constexpr -DIGNIS_WITH_CUDA -Xcompiler=-fPIC $gencode"
export IGNIS_CXX_FLAGS="-std=c++17 -O3 -fPIC -pthread -DIGNIS_WITH_CUDA"
export IGNIS_CXX="$cxx" IGNIS_OBJDIR="$objdir"

# The newest header: an object older than it is rebuilt.
newest_header=$(find native bench/gpu -name '*.h' -o -name '*.cuh' | xargs ls -t 2>/dev/null | head -1)
export IGNIS_NEWEST_HEADER="$newest_header"

# compile_one SRC: SRC -> $objdir/<path with / as _>.o; prints "ok SRC", "cached SRC" or "FAIL SRC".
compile_one() {
  local src=$1 obj log
  obj=$IGNIS_OBJDIR/$(echo "$src" | tr / _).o
  log=$obj.log
  if [ -f "$obj" ] && [ "$obj" -nt "$src" ] && { [ -z "$IGNIS_NEWEST_HEADER" ] || [ "$obj" -nt "$IGNIS_NEWEST_HEADER" ]; }; then
    echo "cached $src"
    return 0
  fi
  rm -f "$obj"
  case $src in
    *.cu) nvcc $IGNIS_NVCC_FLAGS -c "$src" -o "$obj" >"$log" 2>&1 ;;
    *) $IGNIS_CXX $IGNIS_CXX_FLAGS -c "$src" -o "$obj" >"$log" 2>&1 ;;
  esac
  if [ $? -eq 0 ]; then echo "ok $src"; else rm -f "$obj"; echo "FAIL $src"; fi
}
export -f compile_one

cuda_srcs=$(ls native/cuda/*.cu 2>/dev/null)
host_srcs=$(ls native/core/*.cc 2>/dev/null)
start=$SECONDS
echo "build: $(echo $cuda_srcs | wc -w) CUDA files + bench.cu, $(echo $host_srcs | wc -w) host files, $jobs jobs, arch ${IGNIS_GPU_ARCH:-90a}"
# Largest first, so the slowest file starts at once.
results=$(ls -S bench/gpu/bench.cu $cuda_srcs $host_srcs | xargs -P "$jobs" -I{} bash -c 'compile_one "$1"' _ {})

failed=$(echo "$results" | awk '$1 == "FAIL" {print $2}')
for f in $failed; do
  echo "---- FAILED: $f (first errors) ----"
  grep -E "error|Error" -m 12 "$objdir/$(echo "$f" | tr / _).o.log" || head -20 "$objdir/$(echo "$f" | tr / _).o.log"
done
echo "build: compiled in $((SECONDS - start)) s; $(echo "$results" | grep -c '^ok') built, $(echo "$results" | grep -c '^cached') cached, $(echo "$failed" | grep -c .) failed${failed:+: }$(echo $failed)"

obj_of() { echo "$objdir/$(echo "$1" | tr / _).o"; }
if [ ! -f "$(obj_of bench/gpu/bench.cu)" ]; then
  echo "build: bench/gpu/bench.cu did not compile; nothing to link" >&2
  exit 1
fi
if [ ! -f "$(obj_of native/cuda/runtime.cu)" ]; then
  echo "build: native/cuda/runtime.cu did not compile; the harness cannot run without it" >&2
  exit 1
fi

archive=$objdir/libignis_host.a
rm -f "$archive"
host_objs=""
for s in $host_srcs; do [ -f "$(obj_of "$s")" ] && host_objs+=" $(obj_of "$s")"; done
ar rcs "$archive" $host_objs || exit 1
cuda_objs=""
for s in $cuda_srcs; do [ -f "$(obj_of "$s")" ] && cuda_objs+=" $(obj_of "$s")"; done

# Weak references do not pull archive members, so the kernel objects are linked directly.
if ! nvcc $gencode -o "$out" "$(obj_of bench/gpu/bench.cu)" $cuda_objs "$archive" -cudart static -lpthread \
  >"$objdir/link.log" 2>&1; then
  echo "build: link failed:" >&2
  grep -E "undefined reference|error" -m 30 "$objdir/link.log" >&2 || cat "$objdir/link.log" >&2
  exit 1
fi
echo "build: $out"
if [ -n "$failed" ]; then exit 3; fi  # linked, but without some kernel files
exit 0
