#!/usr/bin/env bash
# A three-node kvcake cluster on this machine: starts a local etcd and three
# kvcaked (nodes n1, n2, n3) on 127.0.0.1 with their own ports and
# directories, saves a prompt's blocks through n1 and reads them back through
# n3 (a cross-node hit: n3's daemon fetches them from n1), prints the member
# table, and keeps everything running until Ctrl-C, which stops it all.
#
#   scripts/cluster.sh            after scripts/demo.sh (or a release build)
#   KVCAKE_CLUSTER_ONESHOT=1 ...  stop after the check instead of waiting
#   KVCAKE_BIN_DIR=<dir> ...      use the tools from <dir>
#
# Ports: etcd 23790 (client) and 23800 (peer); node i: UCX 1861i, admin
# 1862i. State and logs: ./var/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${KVCAKE_BIN_DIR:-$ROOT/build/release/bin}
ETCD=${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
DIR=$ROOT/var/cluster
for t in kvcaked kvcakectl; do
  if [[ ! -x $BIN/$t ]]; then
    echo "cluster.sh: $BIN/$t is missing; run scripts/demo.sh (or cmake --build --preset release) first" >&2
    exit 1
  fi
done
if [[ ! -x $ETCD ]]; then
  echo "cluster.sh: etcd not found; apt-get install etcd-server (scripts/install-deps.sh does)" >&2
  exit 1
fi

rm -rf "$DIR" && mkdir -p "$DIR"
PIDS=()
stop_all() {
  echo
  echo "=== stopping the cluster"
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "logs kept in $DIR"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

echo "=== etcd on 127.0.0.1:23790 (log $DIR/etcd.log)"
"$ETCD" --name kvcake-local --data-dir "$DIR/etcd" \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster kvcake-local=http://127.0.0.1:23800 >"$DIR/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
  curl -fsS http://127.0.0.1:23790/health >/dev/null 2>&1 && break
  sleep 0.2
done

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/cluster.token"
chmod 600 "$DIR/cluster.token"
for i in 1 2 3; do
  echo "=== kvcaked n$i: UCX 127.0.0.1:1861$i, admin 127.0.0.1:1862$i (log $DIR/n$i.log)"
  "$BIN/kvcaked" --listen=127.0.0.1:1861$i --admin_listen=127.0.0.1:1862$i \
    --cluster_etcd=http://127.0.0.1:23790 --cluster_name=local --node_id=n$i \
    --cluster_token_file="$DIR/cluster.token" --ucx_tls=tcp --expose_host_segment=false \
    --host_bytes=256MiB --slot_bytes=256KiB --ssd_path="$DIR/n$i/ssd" --ssd_bytes=1GiB \
    >"$DIR/n$i.out" 2>"$DIR/n$i.log" &
  PIDS+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 300); do
    grep -q "kvcaked listening on" "$DIR/n$i.out" 2>/dev/null && break
    if ! kill -0 "${PIDS[i]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! grep -q "kvcaked listening on" "$DIR/n$i.out" 2>/dev/null; then
    echo "cluster.sh: kvcaked n$i did not start; the end of $DIR/n$i.log:" >&2
    tail -n 15 "$DIR/n$i.log" >&2
    exit 1
  fi
done
for _ in $(seq 50); do
  [[ $("$BIN/kvcakectl" --admin=127.0.0.1:18621 --json members 2>/dev/null |
      grep -c '"node_id": "n') -ge 4 ]] && break
  sleep 0.2
done

echo
echo "=== members (kvcakectl --admin=127.0.0.1:18621 members)"
"$BIN/kvcakectl" --admin=127.0.0.1:18621 members

if [[ -f client/python/kvcake/__init__.py ]]; then
  echo
  echo "=== a prompt saved through n1, read back through n3"
  PYTHONPATH=$ROOT/client/python python3 - <<'PY'
import time, kvcake
LAYERS, BYTES = 4, 256 * 1024
def engine(port):
    c = kvcake.Client("127.0.0.1:%d" % port, "demo-model", use_mapped_path=False, ucx_tls="tcp")
    c.register_namespace(LAYERS, 16, BYTES, kv_dtype="fp16")
    return c
n1, n3 = engine(18611), engine(18613)
chain = n1.hash_tokens(list(range(16 * 8)))
values = {(h, l): bytes([(i * 7 + l) % 251]) * BYTES for i, h in enumerate(chain) for l in range(LAYERS)}
for l in range(LAYERS):
    n1.put(chain, [l] * len(chain), [values[(h, l)] for h in chain])
deadline = time.time() + 5
while n3.lookup_prefix(chain, 0) < len(chain) and time.time() < deadline:
    time.sleep(0.05)
print("n3 lookup_prefix: %d of %d blocks (held by n1)" % (n3.lookup_prefix(chain, 0), len(chain)))
ok = 0
for l in range(LAYERS):
    n3.lookup_prefix(chain, l)
    bufs = [bytearray(BYTES) for _ in chain]
    found = n3.get(chain, [l] * len(chain), bufs)
    ok += sum(1 for h, f, b in zip(chain, found, bufs) if f and bytes(b) == values[(h, l)])
print("n3 get: %d of %d values, bytes verified" % (ok, len(chain) * LAYERS))
PY
  echo
  "$BIN/kvcakectl" --admin=127.0.0.1:18623 members | sed -n '/COUNTER/,$p' | grep -E "COUNTER|fetch|remote"
fi

if [[ -n "${KVCAKE_CLUSTER_ONESHOT:-}" ]]; then exit 0; fi
echo
echo "cluster running: engines connect to 127.0.0.1:18611..18613; Ctrl-C stops it"
# Waiting on a background sleep lets a SIGINT or SIGTERM sent to this script
# alone (not only Ctrl-C to the whole terminal) stop everything at once.
sleep infinity &
PIDS+=($!)
wait "$!" || true
