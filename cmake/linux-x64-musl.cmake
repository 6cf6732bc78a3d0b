# CMake toolchain for the linux-x64-musl (Alpine) addon, built on any x86-64 Linux with zig c++
# (scripts/build.js --target=linux-x64-musl passes this file and IGNIS_ZIG; scripts/cross/
# build-musl.sh runs it). The AVX2+FMA kernels build as on linux-x64-gnu, picked at load by cpuid.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(IGNIS_ZIG_TARGET x86_64-linux-musl)
include(${CMAKE_CURRENT_LIST_DIR}/zig.cmake)
