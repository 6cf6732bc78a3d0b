# CMake toolchain for the linux-arm64-musl (Alpine) addon, cross-compiled on x86-64 Linux with zig
# c++ (scripts/build.js --target=linux-arm64-musl passes this file and IGNIS_ZIG; scripts/cross/
# build-musl.sh runs it). On arm64 the portable scalar kernels build (native/cpu/simd.h).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(IGNIS_ZIG_TARGET aarch64-linux-musl)
include(${CMAKE_CURRENT_LIST_DIR}/zig.cmake)
