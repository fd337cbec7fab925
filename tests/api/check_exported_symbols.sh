#!/usr/bin/env bash
# Compares the dynamic symbols libkvcake.so defines with the allow-list
# (docs/api.md "ABI compatibility"): a symbol the library exports beyond the
# list leaks an internal (or adds API without review); a listed symbol it no
# longer exports breaks engines linked against an earlier release. Either
# fails, naming the symbols.
#   check_exported_symbols.sh LIBRARY ALLOW_LIST
set -euo pipefail
lib=$1
list=$2
[[ -f "$lib" ]] || { echo "no library at $lib"; exit 1; }
[[ -f "$list" ]] || { echo "no allow-list at $list"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Demangled names of the defined dynamic symbols ("ADDRESS TYPE NAME", the name
# may hold spaces), one per line.
nm -D --defined-only --demangle "$lib" | cut -d' ' -f3- | LC_ALL=C sort -u > "$tmp/exported"
[[ -s "$tmp/exported" ]] || { echo "nm found no dynamic symbols in $lib"; exit 1; }
grep -v -e '^#' -e '^[[:space:]]*$' "$list" | LC_ALL=C sort -u > "$tmp/allowed"

LC_ALL=C comm -23 "$tmp/exported" "$tmp/allowed" > "$tmp/extra"
LC_ALL=C comm -13 "$tmp/exported" "$tmp/allowed" > "$tmp/missing"
status=0
if [[ -s "$tmp/extra" ]]; then
  echo "libkvcake exports $(wc -l < "$tmp/extra") symbol(s) not in $list:"
  sed 's/^/  + /' "$tmp/extra"
  echo "Keep internals out (KVCAKE_API, client/kvcake.map) or, for new public API, add them to the list."
  status=1
fi
if [[ -s "$tmp/missing" ]]; then
  echo "libkvcake no longer exports $(wc -l < "$tmp/missing") symbol(s) of $list:"
  sed 's/^/  - /' "$tmp/missing"
  echo "Removing or changing an exported symbol breaks the ABI (docs/api.md)."
  status=1
fi
if (( status == 0 )); then
  echo "libkvcake exports exactly the $(wc -l < "$tmp/allowed") symbols of $list"
fi
exit $status
