#!/usr/bin/env bash
# Trains the attention model on a GPU machine and captures its attention, in
# one command, so one short session on a lent GPU gives a capture to evaluate
# (docs/policy.md "Captured attention").
#
# A GPU machine has neither Debian's Python packages (the training text) nor
# the trace beside the checkout, so both travel in var/attention-carry:
#
#   scripts/attention/device-run.sh --prepare      # here: writes var/attention-carry
#
# then on the GPU machine, with var/attention-carry carried along:
#
#   scripts/attention/device-run.sh [--out DIR] [--minutes 7] [--preset gpu]
#
# It trains (`train.py --until-probe-passes`, stopping after --minutes
# whatever the probe says), captures the checkpoint's attention with the
# probe's verdict in its header, and leaves in DIR (default $OUT, else
# var/attention-device): captured.jsonl, captured.probe.txt, train.log,
# probe.log, meta.json. The checkpoint itself stays in DIR/../attention-ckpt
# (hundreds of MB for the gpu preset). Back here:
#
#   scripts/policy-eval.sh --attention DIR/captured.jsonl
set -euo pipefail

cd "$(dirname "$0")/../.."
here=scripts/attention
carry=var/attention-carry
out="${OUT:-var/attention-device}"
minutes=7
preset=gpu
prepare=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prepare) prepare=1 ;;
    --out) out="$2"; shift ;;
    --minutes) minutes="$2"; shift ;;
    --preset) preset="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device-run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $prepare == 1 ]]; then
  trace=../shared/traces/conversation_trace.jsonl
  [[ -f $trace ]] || { echo "device-run.sh: no $trace beside the checkout" >&2; exit 1; }
  mkdir -p "$carry"
  /usr/bin/python3 "$here/model.py" --write-corpus "$carry/corpus.bin" >/dev/null
  cp "$trace" "$carry/conversation_trace.jsonl"
  du -sh "$carry"
  echo "carry $carry to the GPU machine and run scripts/attention/device-run.sh there"
  exit 0
fi

for f in corpus.bin corpus.bin.json conversation_trace.jsonl; do
  [[ -f $carry/$f ]] || { echo "device-run.sh: $carry/$f missing (run --prepare here first)" >&2; exit 1; }
done
python=python3
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import torch' 2>/dev/null && python=/usr/bin/python3
export PYTHONUNBUFFERED=1
ckpt_dir="$(dirname "$out")/attention-ckpt"
mkdir -p "$out" "$ckpt_dir"
threads=$(nproc)

echo "== train ($preset, at most $minutes min)"
"$python" "$here/train.py" --out "$ckpt_dir" --preset "$preset" --corpus "$carry/corpus.bin" \
  --until-probe-passes --probe-every 500 --ckpt-every 500 --max-minutes "$minutes"
cp "$ckpt_dir"/train.log "$ckpt_dir"/meta.json "$out"/
[[ -f $ckpt_dir/probe.log ]] && cp "$ckpt_dir/probe.log" "$out/"

echo "== capture ($threads CPU threads)"
"$python" "$here/capture.py" --ckpt "$ckpt_dir/ckpt.pt" --corpus "$carry/corpus.bin" \
  --trace "$carry/conversation_trace.jsonl" --out "$out/captured.jsonl" --threads "$threads"
head -c 600 "$out/captured.jsonl"; echo
ls -la "$out"
