# Zig as the C and C++ compiler of a cross build, included by cmake/linux-x64-musl.cmake and
# cmake/linux-arm64-musl.cmake with IGNIS_ZIG_TARGET set (x86_64-linux-musl, aarch64-linux-musl).
# zig cc / zig c++ bundle clang 16, libc++ and musl, and link libc++, libunwind and compiler-rt
# in statically, so the addon needs only musl's libc. CMake wants one path per compiler, so this
# writes small wrapper scripts (node_modules/.cache/ignis-zig/wrap/<target>-{cc,c++,ar,ranlib})
# that exec zig with the target.
#   IGNIS_ZIG   the zig executable (scripts/build.js sets it from scripts/toolchain.js zig();
#               without it this runs `node scripts/toolchain.js zig`, which fetches it)
#   ZIG_GLOBAL_CACHE_DIR   zig's cache of built libc++/musl (default node_modules/.cache/ignis-zig/cache)
get_filename_component(IGNIS_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(DEFINED ENV{IGNIS_ZIG})
  set(IGNIS_ZIG "$ENV{IGNIS_ZIG}")
else()
  execute_process(COMMAND node scripts/toolchain.js zig WORKING_DIRECTORY "${IGNIS_ROOT}"
    OUTPUT_VARIABLE IGNIS_ZIG OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  # try_compile projects re-read this file: the environment reaches them, so fetch only once
  set(ENV{IGNIS_ZIG} "${IGNIS_ZIG}")
endif()
if(NOT EXISTS "${IGNIS_ZIG}")
  message(FATAL_ERROR "IGNIS_ZIG=${IGNIS_ZIG} does not exist (node scripts/toolchain.js zig fetches zig)")
endif()

set(IGNIS_ZIG_WRAP "${IGNIS_ROOT}/node_modules/.cache/ignis-zig/wrap")
set(IGNIS_ZIG_CACHE "${IGNIS_ROOT}/node_modules/.cache/ignis-zig/cache")
# The baseline CPU of the target, said outright: the AVX2 kernels come from per-function target
# attributes and cpuid at run time (native/cpu/simd.*), never from the build machine's CPU.
# -g0: zig cc emits debug info unless told not to (12 MB of the x64 addon); a -g that CMake passes
# (Debug, RelWithDebInfo) comes later and wins.
function(ignis_zig_wrapper name command)
  set(file "${IGNIS_ZIG_WRAP}/${IGNIS_ZIG_TARGET}-${name}")
  set(text "#!/bin/sh\n# written by cmake/zig.cmake\n: \"\${ZIG_GLOBAL_CACHE_DIR:=${IGNIS_ZIG_CACHE}}\"\nexport ZIG_GLOBAL_CACHE_DIR\nexec \"${IGNIS_ZIG}\" ${command} \"$@\"\n")
  set(old "")
  if(EXISTS "${file}")
    file(READ "${file}" old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE "${file}" "${text}")
    file(CHMOD "${file}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endif()
endfunction()
ignis_zig_wrapper(cc "cc -target ${IGNIS_ZIG_TARGET} -mcpu=baseline -g0")
ignis_zig_wrapper(c++ "c++ -target ${IGNIS_ZIG_TARGET} -mcpu=baseline -g0")
ignis_zig_wrapper(ar "ar")
ignis_zig_wrapper(ranlib "ranlib")

# A Release link drops the debug info of zig's own libc++, libunwind and compiler-rt (2 to 3 MB
# of the addon; zig maps this to a full strip: .dynsym stays, .symtab goes).
set(CMAKE_SHARED_LINKER_FLAGS_RELEASE_INIT "-Wl,--strip-debug")

set(CMAKE_C_COMPILER "${IGNIS_ZIG_WRAP}/${IGNIS_ZIG_TARGET}-cc")
set(CMAKE_CXX_COMPILER "${IGNIS_ZIG_WRAP}/${IGNIS_ZIG_TARGET}-c++")
set(CMAKE_AR "${IGNIS_ZIG_WRAP}/${IGNIS_ZIG_TARGET}-ar" CACHE FILEPATH "zig ar")
set(CMAKE_RANLIB "${IGNIS_ZIG_WRAP}/${IGNIS_ZIG_TARGET}-ranlib" CACHE FILEPATH "zig ranlib")

# Headers and libraries from zig's bundled libc only (none of the build machine's); programs
# (node) from the build machine: CMakeLists.txt runs the host's node for its source list.
get_filename_component(IGNIS_ZIG_DIR "${IGNIS_ZIG}" DIRECTORY)
set(CMAKE_FIND_ROOT_PATH "${IGNIS_ZIG_DIR}/lib")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
