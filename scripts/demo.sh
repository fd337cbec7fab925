#!/usr/bin/env bash
# The README's first command: set up, start kvcaked with its embedded defaults
# (UCX on 127.0.0.1:18515, 1 GiB host tier, SSD tier under ./var/kvcake), show
# it serving with a short kvcake-bench run against it (put/get over UCX and
# over the same-node mapped segment, ratios against memcpy / ucx_perftest /
# Redis), save and reload a prompt's blocks from Python (client/python), then
# stop it with SIGTERM (graceful drain to SSD), restart it and reload the
# prompt from the SSD tier.
#
#   scripts/demo.sh               build (release preset) if needed, run the demo
#   KVCAKE_SKIP_DEPS=1 ...        do not check Debian packages
#   KVCAKE_BIN_DIR=<dir> ...      use kvcaked / kvcake-bench from <dir>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${KVCAKE_BIN_DIR:-$ROOT/build/release/bin}  # override to use another build tree

step() { echo; echo "=== $*"; }

if [[ -z "${KVCAKE_SKIP_DEPS:-}" ]]; then
  step "dependencies"
  scripts/install-deps.sh
fi

if [[ ! -x $BIN/kvcaked || ! -x $BIN/kvcake-bench || ! -x $BIN/kvcakectl ]]; then
  step "build (release preset): kvcaked, kvcake-bench, kvcakectl"
  cmake --preset release >/dev/null
  cmake --build --preset release -j "$(nproc)" --target kvcaked kvcake-bench kvcakectl
fi

RUN=$(mktemp -d /tmp/kvcake-demo.XXXXXX)
mkdir -p var/kvcake
step "start kvcaked with its defaults (log: $RUN/kvcaked.1.log)"
LISTEN_ARGS=()
if (exec 3<>/dev/tcp/127.0.0.1/18515) 2>/dev/null; then
  echo "port 18515 is busy; using an ephemeral port instead"
  LISTEN_ARGS=(--listen=127.0.0.1:0)
fi
if (exec 3<>/dev/tcp/127.0.0.1/18516) 2>/dev/null; then
  echo "port 18516 is busy; using an ephemeral admin port instead"
  LISTEN_ARGS+=(--admin_listen=127.0.0.1:0)
fi
cleanup() {
  if [[ -n "${PID:-}" ]] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null || true; fi
  rm -rf "$RUN"
}
trap cleanup EXIT

# Starts kvcaked (log $RUN/kvcaked.<n>.log); sets PID, ADDR (UCX) and ADMIN.
start_kvcaked() {
  local n=$1
  "$BIN/kvcaked" "${LISTEN_ARGS[@]}" >"$RUN/kvcaked.$n.out" 2>"$RUN/kvcaked.$n.log" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/^kvcaked listening on //p' "$RUN/kvcaked.$n.out" | head -n1)
    [[ -n "$ADDR" ]] && break
    if ! kill -0 "$PID" 2>/dev/null; then
      echo "kvcaked exited during start:"; cat "$RUN/kvcaked.$n.log"; exit 1
    fi
    sleep 0.1
  done
  if [[ -z "$ADDR" ]]; then echo "kvcaked did not start within 30 s"; cat "$RUN/kvcaked.$n.log"; exit 1; fi
  ADMIN=$(sed -n 's/^kvcaked admin listening on //p' "$RUN/kvcaked.$n.out" | head -n1)
  echo "kvcaked (pid $PID) listening on $ADDR (UCX), admin API on $ADMIN"
}

# SIGTERM: refuse new requests, finish in-flight ones, demote to SSD, flush.
stop_kvcaked() {
  local n=$1 rc=0
  kill -TERM "$PID"
  wait "$PID" || rc=$?
  grep -E "received SIGTERM|draining|stopped" "$RUN/kvcaked.$n.log" | sed 's/^/  /'
  if [[ $rc -ne 0 ]]; then echo "kvcaked exited with status $rc"; exit 1; fi
}

start_kvcaked 1
grep -E "starting with options|^(listen|host_bytes|slot_bytes|ssd_path|policy) =" \
  "$RUN/kvcaked.1.log" | sed 's/^/  /'

step "serve: kvcake-bench --quick against it (1 MiB values, 1 and 4 clients)"
"$BIN/kvcake-bench" --quick --address="$ADDR" --sizes=1M --clients=1,4 2> >(grep -v "UCX  WARN" >&2)

# The engine: deterministic KV per (layer, block), so a later run finds the
# same bytes. `save` stores a prompt's blocks layer by layer through a put
# stream and reloads them layer by layer;
# `reload` (after a restart) finds and verifies them, then deletes them.
cat >"$RUN/engine.py" <<'PY'
import random, sys, kvcake
mode, address = sys.argv[1], sys.argv[2]
layers, block_bytes = 4, 64 << 10
with kvcake.Client(address, "demo-python") as c:
    c.register_namespace(num_layers=layers, block_tokens=16, layer_block_bytes=block_bytes)
    chain = c.hash_tokens(range(1000, 1128))            # 128 tokens -> 8 full blocks
    kv = [[random.Random(h * 31 + l).randbytes(block_bytes) for h in chain] for l in range(layers)]
    if mode == "save":                                  # layer by layer, in the background
        with c.put_stream() as saver:
            for l in range(layers):
                saver.submit(chain, [l] * len(chain), kv[l])
            saver.wait_all()
    cached = c.lookup_prefix(chain, layer=layers - 1)
    out = [[bytearray(block_bytes) for _ in chain] for _ in range(layers)]
    with c.get_async([(chain, [l] * len(chain), out[l]) for l in range(layers)]) as pending:
        hits = [sum(pending.wait(l)) for l in range(layers)]
    ok = all(bytes(out[l][b]) == kv[l][b] for l in range(layers) for b in range(len(chain)))
    what = (f"saved {layers * len(chain)} blocks ({layers * len(chain) * block_bytes >> 20} MiB)"
            if mode == "save" else "after the restart")
    print(f"  {what}: lookup_prefix {cached}/{len(chain)}, reloaded layer by layer: hits {hits}, "
          f"bytes {'verified' if ok else 'DIFFER'}, path {'mapped' if c.mapped_path else 'UCX'}")
    if mode == "reload":
        c.delete(chain * layers, [l for l in range(layers) for _ in chain])
    sys.exit(0 if ok and cached == len(chain) else 1)
PY
engine() {
  PYTHONPATH="$ROOT/client/python" KVCAKE_LIB="$BIN/../lib/libkvcake.so" \
    python3 "$RUN/engine.py" "$1" "$ADDR"
}

step "engine: the Python binding saves a prompt's KV and reloads it layer by layer"
engine save

step "operate: kvcakectl status, and an excerpt of /metrics"
"$BIN/kvcakectl" --admin="$ADMIN" status
curl -s "http://$ADMIN/metrics" | grep -E '^kvcake_(hits_total|requests_total|tier_used_bytes|demotions_total)' | head -n 12

step "stop: SIGTERM (refuse new requests, finish in-flight ones, demote to SSD, flush)"
stop_kvcaked 1

step "restart: the engine's blocks come back from the SSD tier"
start_kvcaked 2
engine reload
curl -s "http://$ADMIN/metrics" | grep -E '^kvcake_hits_total\{tier="(host|ssd)"\}'
stop_kvcaked 2
echo "kvcaked exited cleanly; SSD tier kept in ./var/kvcake"
