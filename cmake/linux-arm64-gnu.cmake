# CMake toolchain for the linux-arm64-gnu addon, cross-compiled on x86-64 Debian with its
# g++-aarch64-linux-gnu (scripts/cross/setup.sh installs it; scripts/build.js --target=
# linux-arm64-gnu passes this file, as scripts/cross/build-arm64.sh does). It compiles against
# Debian's arm64 headers; the portable link (IGNIS_GLIBC_SYSROOT) then swaps in the glibc 2.17
# sysroot's libraries.
#   IGNIS_CROSS_PREFIX   another compiler prefix (default aarch64-linux-gnu-)
#   IGNIS_CROSS_ROOT     where that compiler's target files live (default /usr/aarch64-linux-gnu)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(DEFINED ENV{IGNIS_CROSS_PREFIX})
  set(IGNIS_CROSS_PREFIX "$ENV{IGNIS_CROSS_PREFIX}")
else()
  set(IGNIS_CROSS_PREFIX aarch64-linux-gnu-)
endif()
if(DEFINED ENV{IGNIS_CROSS_ROOT})
  set(IGNIS_CROSS_ROOT "$ENV{IGNIS_CROSS_ROOT}")
else()
  set(IGNIS_CROSS_ROOT /usr/aarch64-linux-gnu)
endif()

# ar, ranlib, strip and the rest are found from the compiler's prefix.
set(CMAKE_C_COMPILER ${IGNIS_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${IGNIS_CROSS_PREFIX}g++)

# Libraries, headers and packages from the target's root only; programs (node, nvcc) from the
# build machine: CMakeLists.txt runs the host's node for its source list.
set(CMAKE_FIND_ROOT_PATH ${IGNIS_CROSS_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
