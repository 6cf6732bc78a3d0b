#!/usr/bin/env bash
# Checks that a portable Linux ignis.node asks the system only for what an old distribution has:
# no glibc symbol version above the limit (default 2.28), no libstdc++ at all (no NEEDED
# libstdc++.so, no GLIBCXX_ or CXXABI_ version), and no undefined strong symbol without a
# version other than the Node-API ones (napi_*, node_api_*) and __cxa_thread_atexit_impl
# (glibc 2.18, looked up by the static libstdc++ for thread_local destructors).
#   scripts/cross/check-elf.sh <ignis.node> [max-glibc] [expected-machine, e.g. AArch64]
# Prints what it read; exits 1 if any check fails.
set -euo pipefail

file=${1:?usage: check-elf.sh <ignis.node> [max-glibc] [machine]}
max=${2:-2.28}
machine=${3:-}
readelf=readelf
command -v aarch64-linux-gnu-readelf >/dev/null 2>&1 && readelf=aarch64-linux-gnu-readelf
command -v "$readelf" >/dev/null 2>&1 || { echo "check-elf: no readelf (binutils)" >&2; exit 1; }

fail=0
bad() { echo "  FAIL: $*"; fail=1; }

echo "$file"
arch=$("$readelf" -h "$file" | sed -n 's/^ *Machine: *//p')
echo "  machine: $arch"
if [ -n "$machine" ] && [[ "$arch" != *"$machine"* ]]; then bad "machine is not $machine"; fi

needed=$("$readelf" -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "  needed: $needed"
[[ " $needed " == *" libstdc++.so"* ]] && bad "links the system's libstdc++"

# Version needs (.gnu.version_r; not the definitions a library exports), as readelf -V lists
# them: "File: libc.so.6" then "Name: GLIBC_2.17" lines.
versions=$("$readelf" -V -W "$file" | awk '/^Version needs section/ { on = 1; next } /^Version .* section/ { on = 0 }
  on && match($0, /Name: [A-Za-z_]+[0-9][0-9.]*/) { print substr($0, RSTART + 6, RLENGTH - 6) }' | sort -u -V)
echo "  version needs: $(echo $versions)"
glibc_max=$(echo "$versions" | sed -n 's/^GLIBC_//p' | sort -V | tail -1)
echo "  highest GLIBC_: ${glibc_max:-none} (limit $max)"
if [ -n "$glibc_max" ] && [ "$(printf '%s\n%s\n' "$glibc_max" "$max" | sort -V | tail -1)" != "$max" ]; then
  bad "needs GLIBC_$glibc_max, above $max"
fi
cxx=$(echo "$versions" | grep -E '^(GLIBCXX|CXXABI)_' || true)
[ -n "$cxx" ] && bad "needs libstdc++ versions: $(echo $cxx)"

# Undefined (UND), not WEAK, no @version: bound to whatever the process offers.
loose=$("$readelf" --dyn-syms -W "$file" | awk '$7 == "UND" && $5 != "WEAK" && $8 != "" && $8 !~ /@/ { print $8 }' | sort -u)
napi=$(echo "$loose" | grep -cE '^(napi|node_api)_' || true)
other=$(echo "$loose" | grep -vE '^(napi|node_api)_' | grep -v '^$' || true)
echo "  undefined unversioned strong symbols: $napi napi_*/node_api_*; others: $(echo ${other:-none})"
for s in $other; do
  [ "$s" = __cxa_thread_atexit_impl ] || bad "$s is undefined and unversioned"
done

[ "$fail" -eq 0 ] && echo "  ok"
exit "$fail"
