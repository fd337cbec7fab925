#!/usr/bin/env bash
# Evaluates the tier policies on the conversation trace (docs/policy.md §6):
# exact serving (reload time, token-weighted GPU / host hit rates) with
# kvcake-replay, and budgeted attention (recall under a per-layer GPU budget
# of 10 % / 20 % of a prompt's blocks, follow-up recall with the pushed-out
# blocks dropped vs demoted) with scripts/policy_eval.py.
#
#   scripts/policy-eval.sh [--quick] [--json] [--trace FILE] [--attention FILE]
#                          [--engine store|sim] [--jobs N] [--layers N]
#
#   --quick           the first 600 requests (under a minute on a 2-core box)
#   --json            the last line of output is one JSON object
#   --engine E        store (default): the policies drive the daemon's
#                     TierManager; sim: the tier model (docs/policy.md §4)
#   --jobs N          policies replayed at once (default 2)
#   --layers N        model layers replayed (default: 8 for the store engine,
#                     with the same fractions of the distinct layer-blocks:
#                     the whole trace at 32 layers takes far longer than 10
#                     minutes there; 32 for sim). Each layer-block then models
#                     32 / N layers' bytes, so reload times stay those of a
#                     32-layer model
#   --trace FILE      a Mooncake JSONL trace (default: the shared conversation trace)
#   --attention FILE  captured attention (JSONL, docs/policy.md §6) for the
#                     budgeted objective; without it the replayer's synthetic
#                     attention model is used and the results are provisional
#
# Environment: KVCAKE_BIN_DIR (default build/release/bin), KVCAKE_SHARED_DIR
# (default ../shared beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

QUICK=0
JSON=()
TRACE="${KVCAKE_SHARED_DIR:-$ROOT/../shared}/traces/conversation_trace.jsonl"
ATTENTION=""
ENGINE=store
JOBS=2
LAYERS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --engine) [[ $# -ge 2 ]] || usage; ENGINE=$2; shift ;;
    --jobs) [[ $# -ge 2 ]] || usage; JOBS=$2; shift ;;
    --layers) [[ $# -ge 2 ]] || usage; LAYERS=$2; shift ;;
    --quick) QUICK=1 ;;
    --json) JSON=(--json) ;;
    --trace) [[ $# -ge 2 ]] || usage; TRACE=$2; shift ;;
    --attention) [[ $# -ge 2 ]] || usage; ATTENTION=$2; shift ;;
    -h|--help) usage ;;
    *) echo "policy-eval: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done

if [[ -z $LAYERS ]]; then
  if [[ $ENGINE == store ]]; then LAYERS=8; else LAYERS=32; fi
fi
[[ $LAYERS =~ ^[1-9][0-9]*$ ]] || { echo "policy-eval: --layers must be a positive integer" >&2; exit 2; }
# 2 MiB per layer of a 512-token block (docs/policy.md §4), 32 layers in all.
LAYER_BLOCK_BYTES=$(( (2 << 20) * 32 / LAYERS ))
BIN=${KVCAKE_BIN_DIR:-$ROOT/build/release/bin}
REPLAY=$BIN/kvcake-replay
[[ -x $REPLAY ]] || { echo "policy-eval: $REPLAY not found (build the kvcake-replay target)" >&2; exit 2; }
[[ -r $TRACE ]] || { echo "policy-eval: cannot read trace $TRACE" >&2; exit 2; }
if [[ -n $ATTENTION && ! -r $ATTENTION ]]; then
  echo "policy-eval: cannot read attention file $ATTENTION" >&2
  exit 2
fi

# Quick: 600 requests replayed and 600 prompts for the budgeted objective.
# Full: the whole trace replayed, 2000 prompts for the budgeted objective.
if [[ $QUICK == 1 ]]; then
  REQUESTS=600
  PROMPTS=600
else
  REQUESTS=0
  PROMPTS=2000
fi
POLICIES=lru,lfu,arc,s3fifo,gdsf,cake,adaptive,belady

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvcake-policy-eval.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Classic baselines admit every block to SSD, as cake does for namespaces
# with statistics (the replay's only namespace reports them).
"$REPLAY" --trace "$TRACE" --json --admit_all --policies=$POLICIES \
  --max_requests=$REQUESTS --engine="$ENGINE" --jobs="$JOBS" --layers="$LAYERS" \
  --layer_block_bytes="$LAYER_BLOCK_BYTES" >"$TMP/exact.json"

if [[ -n $ATTENTION ]]; then
  SOURCE="captured attention ($(basename "$ATTENTION"))"
  PROVISIONAL=()
else
  ATTENTION=$TMP/attention.jsonl
  "$REPLAY" --trace "$TRACE" --max_requests=$PROMPTS --dump_attention="$ATTENTION"
  SOURCE="synthetic model"
  PROVISIONAL=(--provisional)
fi

python3 "$ROOT/scripts/policy_eval.py" --exact "$TMP/exact.json" --attention "$ATTENTION" \
  --source "$SOURCE" --max_prompts=$PROMPTS "${PROVISIONAL[@]}" "${JSON[@]}"
