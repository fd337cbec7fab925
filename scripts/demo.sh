#!/usr/bin/env bash
# The README's first command: set up, build every tool the README names, start
# kvcaked with its embedded defaults (UCX on 127.0.0.1:18515, 1 GiB host tier,
# SSD tier under ./var/kvcake), show it serving with a short kvcake-bench run
# against it (put/get over UCX and over the same-node mapped segment, ratios
# against memcpy / ucx_perftest / Redis, each next to its goal), save and
# reload a prompt's blocks from Python (client/python) and report its CAKE
# signals, drain the host tier to SSD (what moved, in blocks and bytes), stop
# it with SIGTERM, restart it and reload the prompt from the SSD tier. The
# daemon's logs and the benchmark's JSON are kept in ./var/log/demo-<time>/.
#
#   scripts/demo.sh               build (release preset) if needed, run the demo
#   KVCAKE_SKIP_DEPS=1 ...        do not check Debian packages
#   KVCAKE_BIN_DIR=<dir> ...      use the tools from <dir>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${KVCAKE_BIN_DIR:-$ROOT/build/release/bin}  # override to use another build tree

step() { echo; echo "=== $*"; }

if [[ -z "${KVCAKE_SKIP_DEPS:-}" ]]; then
  step "dependencies"
  scripts/install-deps.sh
fi

# Every tool the README names.
TOOLS=(kvcaked kvcakectl kvcake-bench kvcake-store-bench kvcake-replay)
missing=()
for t in "${TOOLS[@]}"; do [[ -x $BIN/$t ]] || missing+=("$t"); done
if (( ${#missing[@]} )); then
  step "build (release preset): ${missing[*]}"
  cmake --preset release >/dev/null
  cmake --build --preset release -j "$(nproc)" --target kvcake "${missing[@]}"
fi

RUN=$(mktemp -d /tmp/kvcake-demo.XXXXXX)  # scratch, removed at exit
LOGS=$ROOT/var/log/demo-$(date +%Y%m%d-%H%M%S)  # kept
mkdir -p var/kvcake "$LOGS"
step "start kvcaked with its defaults (log: $LOGS/kvcaked.1.log)"
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
  echo "logs kept in $LOGS"
}
trap cleanup EXIT

# Starts kvcaked (log $LOGS/kvcaked.<n>.log); sets PID, ADDR (UCX) and ADMIN.
start_kvcaked() {
  local n=$1
  # Created here, not by the background job's redirection (which may run
  # after the first read below; a missing file would end the script).
  : >"$LOGS/kvcaked.$n.out"
  "$BIN/kvcaked" "${LISTEN_ARGS[@]}" >"$LOGS/kvcaked.$n.out" 2>"$LOGS/kvcaked.$n.log" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/^kvcaked listening on //p' "$LOGS/kvcaked.$n.out" | head -n1)
    [[ -n "$ADDR" ]] && break
    if ! kill -0 "$PID" 2>/dev/null; then
      echo "kvcaked exited during start:"; cat "$LOGS/kvcaked.$n.log"; exit 1
    fi
    sleep 0.1
  done
  if [[ -z "$ADDR" ]]; then echo "kvcaked did not start within 30 s"; cat "$LOGS/kvcaked.$n.log"; exit 1; fi
  ADMIN=$(sed -n 's/^kvcaked admin listening on //p' "$LOGS/kvcaked.$n.out" | head -n1)
  echo "kvcaked (pid $PID) listening on $ADDR (UCX), admin API on $ADMIN; log $LOGS/kvcaked.$n.log"
}

# Sum of the /metrics samples named $1 whose labels contain $2.
metric_sum() {
  curl -s "http://$ADMIN/metrics" | awk -v name="$1" -v labels="$2" '
    index($0, name "{") == 1 && index($0, labels) { sum += $NF } END { printf "%.0f\n", sum }'
}

# Each figure of a benchmark's JSON ($1) next to its goal: KEY OP GOAL triples, OP >= or <=.
goals() {
  python3 - "$@" <<'PY'
import json, sys
figures = json.load(open(sys.argv[1]))
args = sys.argv[2:]
for key, op, goal in zip(args[0::3], args[1::3], args[2::3]):
    value, goal = figures.get(key), float(goal)
    want = ("\u2265 " if op == ">=" else "\u2264 ") + f"{goal:g}"
    if not isinstance(value, (int, float)):
        print(f"  {key:32} {'n/a':>8}   goal {want:7}  not measured in this run")
        continue
    met = value >= goal if op == ">=" else value <= goal
    print(f"  {key:32} {value:8.3f}   goal {want:7}  {'met' if met else 'NOT met'}")
PY
}

# SIGTERM: refuse new requests, finish in-flight ones, demote to SSD, flush.
stop_kvcaked() {
  local n=$1 rc=0
  kill -TERM "$PID"
  wait "$PID" || rc=$?
  grep -E "received SIGTERM|draining|stopped" "$LOGS/kvcaked.$n.log" | sed 's/^/  /'
  if [[ $rc -ne 0 ]]; then echo "kvcaked exited with status $rc"; exit 1; fi
}

start_kvcaked 1
grep -E "starting with options|^(listen|host_bytes|slot_bytes|ssd_path|policy) =" \
  "$LOGS/kvcaked.1.log" | sed 's/^/  /'

step "serve: kvcake-bench --quick against it (1 MiB values, 1 and 4 clients)"
"$BIN/kvcake-bench" --quick --json --address="$ADDR" --sizes=1M --clients=1,4 \
  >"$LOGS/kvcake-bench.json" 2> >(grep -v "UCX  WARN" >&2)
echo
echo "kvcake-bench figures against their goals (1 MiB values, 1 client; JSON in $LOGS/kvcake-bench.json):"
goals "$LOGS/kvcake-bench.json" remote_get_vs_ucx_perftest ">=" 0.85 remote_get_vs_redis ">=" 2 \
  put_vs_redis ">=" 1.5 local_get_vs_memcpy ">=" 0.9 lookup_1000_p50_us "<=" 50

step "store: kvcake-store-bench --quick (the tiers in-process, 256 KiB and 1 MiB values)"
"$BIN/kvcake-store-bench" --quick --json --sizes=262144,1048576 --dir="$RUN" \
  >"$LOGS/kvcake-store-bench.json" 2>"$LOGS/kvcake-store-bench.log"
echo "kvcake-store-bench figures against their goals (JSON in $LOGS/kvcake-store-bench.json):"
goals "$LOGS/kvcake-store-bench.json" host_get_vs_memcpy ">=" 0.9 \
  host_get_vs_memcpy_256k ">=" 0.9 ssd_put_vs_rocksdb ">=" 0.8 ssd_get_vs_rocksdb ">=" 0.8

# The engine: deterministic KV per (layer, block), so a later run finds the
# same bytes. `save` stores a prompt's blocks layer by layer through a put
# stream, reports each layer's CAKE signals (from a synthetic attention of the
# prompt's last 16 queries) and reloads them layer by layer;
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
        prefs = []
        for l in range(layers):                         # layer l looks at key 40 * l and around
            r = random.Random(l)
            attn = [[[r.random() + (30.0 if k == 40 * l else 0.0) if k <= 112 + i else 0.0
                      for k in range(128)] for i in range(16)] for _ in range(2)]
            attn = [[[x / sum(row) for x in row] for row in head] for head in attn]
            stats = c.report_attention(l, attn, chain, num_query_heads=2, num_kv_heads=1,
                                       window=16)
            prefs.append(f"{stats.preference:.2f}")
        print(f"  reported CAKE signals of {layers} layers, preferences {', '.join(prefs)}")
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
  PYTHONPATH="$ROOT/client/python" KVCAKE_LIB="$BIN/../lib/libkvcake.so.0" \
    python3 "$RUN/engine.py" "$1" "$ADDR"
}

step "engine: the Python binding saves a prompt's KV, reports its CAKE signals, reloads it"
engine save

step "operate: kvcakectl status, and an excerpt of /metrics"
"$BIN/kvcakectl" --admin="$ADMIN" status
curl -s "http://$ADMIN/metrics" | grep -E '^kvcake_(hits_total|requests_total|tier_used_bytes|demotions_total)' | head -n 12

step "drain: kvcakectl drain demotes everything in memory to the SSD tier"
blocks0=$(metric_sum kvcake_demotions_total 'to="ssd"')
bytes0=$(metric_sum kvcake_moved_bytes_total 'to="ssd"')
"$BIN/kvcakectl" --admin="$ADMIN" drain
blocks=$(( $(metric_sum kvcake_demotions_total 'to="ssd"') - blocks0 ))
bytes=$(( $(metric_sum kvcake_moved_bytes_total 'to="ssd"') - bytes0 ))
echo "the drain moved $blocks blocks, $bytes bytes ($(( bytes >> 20 )) MiB), to the SSD tier"

step "stop: SIGTERM (refuse new requests, finish in-flight ones, demote what is left, flush)"
stop_kvcaked 1

step "restart: the engine's blocks come back from the SSD tier"
start_kvcaked 2
engine reload
curl -s "http://$ADMIN/metrics" | grep -E '^kvcake_hits_total\{tier="(host|ssd)"\}'
stop_kvcaked 2
echo "kvcaked exited cleanly; SSD tier kept in ./var/kvcake"
