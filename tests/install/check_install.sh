#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and follows README.md's "Installing and
# linking" recipes as written, with the README's prefix, daemon address and folders replaced
# by this run's: a C++ engine built with find_package(kvcake) from the README's
# CMakeLists.txt (which sets no C++ standard), the same engine and a C one with pkg-config,
# all run without LD_LIBRARY_PATH against the installed kvcaked, and the Python client
# pip-installed into virtual environments from the checkout and from the installed tree,
# each finding its libkvcake without KVCAKE_LIB and reporting CAKE signals.
#   check_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
tmp=$(mktemp -d)
daemon=
cleanup() {
  [[ -n "$daemon" ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
prefix=$tmp/prefix
addr=
unset KVCAKE_LIB LD_LIBRARY_PATH
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1  # offline, and quiet about it

# The fenced block after "<!-- tests/install: NAME -->" in README.md, with this run's
# prefix and daemon address.
recipe() {
  local text
  text=$(awk -v marker="<!-- tests/install: $1 -->" '
    $0 == marker { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$src/README.md")
  [[ -n "$text" ]] || { echo "README.md has no recipe '$1'" >&2; return 1; }
  sed -e "s|/opt/kvcake|$prefix|g" -e "s|127.0.0.1:18515|$addr|g" <<<"$text"
}
# Runs recipe NAME in folder DIR (created), with sed EXPRESSION applied to it if given; its
# output goes to DIR.log, shown on failure.
run_recipe() {
  local name=$1 dir=$2 subst=${3:-} script
  mkdir -p "$dir"
  script=$(recipe "$name")
  [[ -z "$subst" ]] || script=$(sed -e "$subst" <<<"$script")
  echo "--- README recipe '$name', in $dir:"
  sed 's/^/    /' <<<"$script"
  if ! (cd "$dir" && bash -euo pipefail -c "$script") >"$dir.log" 2>&1; then
    cat "$dir.log"
    echo "README recipe '$name' failed"
    exit 1
  fi
  tail -n 3 "$dir.log" | sed 's/^/  | /'
}

cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
for f in bin/kvcaked bin/kvcakectl include/kvcake/client.h include/kvcake/kvcake_c.h \
         include/kvcake/status.h include/kvcake/version.h lib/cmake/kvcake/kvcakeConfig.cmake \
         lib/pkgconfig/kvcake.pc lib/pkgconfig/kvcake-c.pc \
         share/kvcake/python/kvcake/__init__.py share/kvcake/python/kvcake/_libpath.py \
         share/kvcake/python/pyproject.toml; do
  [[ -e "$prefix/$f" ]] || { echo "missing after install: $f"; exit 1; }
done
ls "$prefix"/lib/libkvcake.so* > /dev/null
# The public headers are all of include/, and each compiles on its own with only
# the prefix's include/ on the path (docs/api.md): none reaches outside kvcake/.
extra=$(cd "$prefix/include" && find . -type f ! -path './kvcake/*.h')
[[ -z "$extra" ]] || { echo "installed headers outside include/kvcake/: $extra"; exit 1; }
for h in "$prefix"/include/kvcake/*.h; do
  name=kvcake/$(basename "$h")
  echo "#include <$name>" | g++ -std=c++20 -Wall -Wextra -Werror -fsyntax-only \
    -I"$prefix/include" -x c++ - || { echo "$name does not compile on its own (C++)"; exit 1; }
done
for name in kvcake/kvcake_c.h kvcake/version.h kvcake/export.h; do
  echo "#include <$name>" | cc -std=c99 -Wall -Wextra -Werror -fsyntax-only \
    -I"$prefix/include" -x c - || { echo "$name does not compile on its own (C)"; exit 1; }
done
grep -q "KVCAKE_VERSION_STRING \"$(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/kvcake.pc")\"" \
  "$prefix/include/kvcake/version.h" || { echo "version.h differs from kvcake.pc's version"; exit 1; }
# Nothing outside the prefix may be needed: no repo paths in the package files.
if grep -rq "$src" "$prefix/lib/cmake/kvcake" "$prefix/lib/pkgconfig" \
     "$prefix/share/kvcake/python"; then
  echo "installed package files point into the source or build tree"; exit 1
fi
# The installed tools find the library through their rpath.
for tool in kvcaked kvcakectl; do
  readelf -d "$prefix/bin/$tool" | grep -q 'R.*PATH.*\$ORIGIN/\.\./lib' ||
    { echo "installed $tool has no \$ORIGIN/../lib rpath"; exit 1; }
done

# The installed daemon, ephemeral ports; its log names the address. The log
# exists before the daemon starts: the background job opens it in its own
# time, and a read of a missing file would end this script (pipefail).
: > "$tmp/kvcaked.log"
"$prefix/bin/kvcaked" --listen=127.0.0.1:0 --admin_listen=127.0.0.1:0 --ssd_path= \
  --host_bytes=64M --slot_bytes=64K > "$tmp/kvcaked.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
  addr=$(sed -n 's/.*kvcaked listening on \([0-9.]*:[0-9]*\).*/\1/p' "$tmp/kvcaked.log" | head -1)
  [[ -n "$addr" ]] && break
  sleep 0.1
done
[[ -n "$addr" ]] || { echo "kvcaked did not start:"; cat "$tmp/kvcaked.log"; exit 1; }

# C++ engine, find_package: the README's CMakeLists.txt and commands.
mkdir -p "$tmp/cmake-engine"
recipe cmake-project > "$tmp/cmake-engine/CMakeLists.txt"
cp "$src/tests/install/consumer/consumer.cc" "$tmp/cmake-engine/engine.cc"
run_recipe cmake-build "$tmp/cmake-engine"
grep -q "consumer_cpp: ok" "$tmp/cmake-engine.log" || { echo "cmake engine did not run"; exit 1; }

# C++ and C engines, pkg-config: the README's command lines.
mkdir -p "$tmp/pc-engine"
cp "$src/tests/install/consumer/consumer.cc" "$tmp/pc-engine/engine.cc"
cp "$src/tests/install/consumer/consumer.c" "$tmp/pc-engine/engine.c"
run_recipe pkg-config "$tmp/pc-engine"
grep -q "consumer_c: ok" "$tmp/pc-engine.log" || { echo "pkg-config engines did not run"; exit 1; }

# Python: the README's pip recipe from the checkout (this build tree's library) and from
# the installed tree, each in a fresh virtual environment, then an engine's round trip.
py_engine() {
  local venv=$1 want=$2
  (cd "$tmp" && "$venv/bin/python" - "$addr" "$want" <<'PY'
import os, sys, kvcake
address, want = sys.argv[1], sys.argv[2]
assert os.path.realpath(kvcake.library_path()) == os.path.realpath(want), kvcake.library_path()
assert "site-packages" in kvcake.__file__, kvcake.__file__
with kvcake.Client(address, "install-check-py") as c:
    c.register_namespace(num_layers=1, block_tokens=4, layer_block_bytes=4096)
    chain = c.hash_tokens(range(8))
    c.put(chain, [0, 0], [b"a" * 4096, b"b" * 4096])
    out = [bytearray(4096), bytearray(4096)]
    assert c.get(chain, [0, 0], out) == [True, True] and out[1] == b"b" * 4096
    # One layer, 2 query heads over 1 KV head, a window of 2 of the 8 tokens: uniform rows.
    attn = [[[1.0 / (7 + i)] * (7 + i) + [0.0] * (1 - i) for i in range(2)] for _ in range(2)]
    stats = c.report_attention(0, attn, chain, num_query_heads=2, num_kv_heads=1, window=2)
    assert stats.entropy > 0 and len(stats.indicator) == 6, stats
print("consumer_py: ok (libkvcake %s from %s)" % (kvcake.version(), kvcake.library_path()))
PY
  )
}
KVCAKE_BUILD_DIR=$build run_recipe python "$tmp/py-checkout" "s| client/python| $src/client/python|"
py_engine "$tmp/py-checkout/.venv" "$build/lib/libkvcake.so.0"
run_recipe python "$tmp/py-installed" "s| client/python| $prefix/share/kvcake/python|"
py_engine "$tmp/py-installed/.venv" "$prefix/lib/libkvcake.so.0"
echo "check_install: ok ($prefix)"
