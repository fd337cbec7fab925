#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, builds a C++ engine against
# it with find_package(kvcake) and a C one with pkg-config, starts the
# installed kvcaked and runs both against it.
#   check_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
daemon=
cleanup() {
  [[ -n "$daemon" ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
for f in bin/kvcaked bin/kvcakectl include/kvcake/client.h include/kvcake/kvcake_c.h \
         include/kvcake/common/status.h lib/cmake/kvcake/kvcakeConfig.cmake \
         lib/pkgconfig/kvcake.pc share/kvcake/python/kvcake/__init__.py; do
  [[ -e "$prefix/$f" ]] || { echo "missing after install: $f"; exit 1; }
done
ls "$prefix"/lib/libkvcake.so* > /dev/null
# Nothing outside the prefix may be needed: no repo paths in the package files.
if grep -rq "$src" "$prefix/lib/cmake/kvcake" "$prefix/lib/pkgconfig"; then
  echo "installed package files point into the source tree"; exit 1
fi

# C++ engine, find_package.
cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; exit 1; }
cmake --build "$tmp/consumer" > "$tmp/consumer-build.log" 2>&1 ||
  { cat "$tmp/consumer-build.log"; exit 1; }
# C engine, pkg-config; only the prefix on the include and library paths.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cc -std=c11 -o "$tmp/consumer_c" "$src/tests/install/consumer/consumer.c" \
  $(pkg-config --cflags --libs kvcake) -Wl,-rpath,"$prefix/lib"

# The installed daemon, ephemeral ports; its log names the address.
"$prefix/bin/kvcaked" --listen=127.0.0.1:0 --admin_listen=127.0.0.1:0 --ssd_path= \
  --host_bytes=64M --slot_bytes=64K > "$tmp/kvcaked.log" 2>&1 &
daemon=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*kvcaked listening on \([0-9.]*:[0-9]*\).*/\1/p' "$tmp/kvcaked.log" | head -1)
  [[ -n "$addr" ]] && break
  sleep 0.1
done
[[ -n "$addr" ]] || { echo "kvcaked did not start:"; cat "$tmp/kvcaked.log"; exit 1; }
LD_LIBRARY_PATH=$prefix/lib "$tmp/consumer/consumer_cpp" "$addr"
"$tmp/consumer_c" "$addr"
# Python engine: the installed package finds the installed library by itself.
env -u KVCAKE_LIB PYTHONPATH="$prefix/share/kvcake/python" python3 - "$addr" <<'PY'
import sys, kvcake
with kvcake.Client(sys.argv[1], "install-check-py") as c:
    c.register_namespace(num_layers=1, block_tokens=4, layer_block_bytes=4096)
    chain = c.hash_tokens(range(8))
    c.put(chain, [0, 0], [b"a" * 4096, b"b" * 4096])
    out = [bytearray(4096), bytearray(4096)]
    assert c.get(chain, [0, 0], out) == [True, True] and out[1] == b"b" * 4096
print("consumer_py: ok (libkvcake %s)" % kvcake.version())
PY
echo "check_install: ok ($prefix)"
