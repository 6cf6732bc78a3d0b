#!/usr/bin/env bash
# What the linux-arm64-gnu cross build and its emulated test need from Debian's packages: the
# aarch64 cross compiler and binutils (scripts/cross/build-arm64.sh), qemu's user-mode emulator,
# and the arm64 glibc and libstdc++ the registry's arm64 Node runs on (scripts/cross/test-arm64.sh
# runs it as `qemu-aarch64 -L /usr/aarch64-linux-gnu node`), and musl-tools for the musl load
# test of scripts/cross/build-musl.sh. Installs only what is missing, runs
# `apt-get update` only then, and prints nothing when all is there.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have aarch64-linux-gnu-gcc || need+=(gcc-aarch64-linux-gnu)
have aarch64-linux-gnu-g++ || need+=(g++-aarch64-linux-gnu)
have aarch64-linux-gnu-readelf && have aarch64-linux-gnu-objdump || need+=(binutils-aarch64-linux-gnu)
have qemu-aarch64 || have qemu-aarch64-static || need+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need+=(libstdc++6-arm64-cross)
# musl's own loader and C compiler: scripts/cross/build-musl.sh dlopen()s the x64 musl addon with it
have musl-gcc || need+=(musl-tools)
[ ${#need[@]} -eq 0 ] && exit 0

if ! have apt-get; then
  echo "scripts/cross/setup.sh: these Debian packages are missing and there is no apt-get: ${need[*]}" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  have sudo || { echo "scripts/cross/setup.sh: installing ${need[*]} needs root (or sudo)" >&2; exit 1; }
  sudo=(sudo)
fi
echo "scripts/cross/setup.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
