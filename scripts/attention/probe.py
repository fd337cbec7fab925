#!/usr/bin/python3
"""Structure probe: does the trained model attend the way real LLMs do?

A small model trained briefly learns previous-token heads but neither an
attention sink nor induction heads, and its attention then says little about a
real model's. Every capture is gated on this probe:

Sequences open with the model's start-of-text byte when it has one, as every
sequence it saw in training did.

  sink       per layer, attention on the first token from queries past the
             first quarter of a window, over what uniform attention would give
             it (mean over heads). Gate: the best middle layer (L/3..2L/3) and
             the best late layer (>= 2L/3) are both >= 10.
  induction  on random printable bytes repeated twice (64 + 64), per head the
             mean attention from a position in the second copy to the token
             after its earlier occurrence. Gate: the best head >= 0.3.
  copy loss  cross-entropy on the second copy against the first. Gate: the
             second copy's loss is below 0.7x the first's.

  scripts/attention/probe.py --ckpt var/attention/ckpt.pt [--json]
exits 0 when every gate passes, 1 otherwise.
"""

import argparse
import json
import os
import random
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

SINK_GATE, INDUCTION_GATE, COPY_GATE = 10.0, 0.3, 0.7
REPEAT = 64


@torch.no_grad()
def sink_ratios(net, val, device, windows=8):
    ctx = net.c.ctx
    rng = random.Random(7)
    n = ctx - (net.c.bos >= 0)
    starts = [rng.randrange(0, len(val) - n) for _ in range(windows)]
    x = torch.tensor([M.with_bos(net.c, val[s:s + n].tolist()) for s in starts],
                     device=device)
    _, probs = net(x, want_probs=True)
    q0 = ctx // 4
    uniform = (1.0 / torch.arange(q0 + 1, ctx + 1, device=device, dtype=torch.float32)).mean()
    return [float(p[:, :, q0:, 0].float().mean() / uniform) for p in probs]


@torch.no_grad()
def induction(net, device, seqs=8):
    rng = random.Random(11)
    rows = []
    for _ in range(seqs):
        r = [rng.randrange(32, 127) for _ in range(REPEAT)]
        rows.append(M.with_bos(net.c, r + r))
    x = torch.tensor(rows, device=device)
    b = int(net.c.bos >= 0)  # where the first copy starts
    logits, probs = net(x, want_probs=True)
    per_layer = []
    i = torch.arange(b + REPEAT + 1, b + 2 * REPEAT, device=device)
    for p in probs:
        # p: [B, H, T, T]; attention from i to i - REPEAT + 1
        a = p[:, :, i, i - REPEAT + 1].float().mean(dim=(0, 2))
        per_layer.append([float(v) for v in a])
    ce = F.cross_entropy(logits[:, b:-1].float().reshape(-1, 256), x[:, b + 1:].reshape(-1),
                         reduction="none").view(seqs, -1)
    first = float(ce[:, :REPEAT - 1].mean())
    second = float(ce[:, REPEAT:].mean())
    return per_layer, first, second


def run_probe(net, val, device):
    sinks = sink_ratios(net, val, device)
    ind, first, second = induction(net, device)
    n = len(sinks)
    mid = max(sinks[n // 3:max(n // 3 + 1, (2 * n) // 3)])
    late = max(sinks[(2 * n) // 3:])
    best_ind = max(max(h) for h in ind)
    gates = {
        "sink_middle": mid >= SINK_GATE,
        "sink_late": late >= SINK_GATE,
        "induction": best_ind >= INDUCTION_GATE,
        "copy_loss": second < COPY_GATE * first,
    }
    return dict(sink_ratio=sinks, induction_per_head=ind, induction_best=best_ind,
                sink_middle_best=mid, sink_late_best=late, loss_first_copy=first,
                loss_second_copy=second, gates=gates, passed=all(gates.values()))


def format_table(t):
    lines = ["layer  sink/uniform  best induction head"]
    for l, (s, h) in enumerate(zip(t["sink_ratio"], t["induction_per_head"])):
        lines.append(f"{l:5d}  {s:12.2f}  {max(h):19.3f}")
    lines.append(f"copy loss: first {t['loss_first_copy']:.3f}  second {t['loss_second_copy']:.3f}")
    lines.append("gates: " + "  ".join(f"{k} {'pass' if v else 'FAIL'}"
                                       for k, v in t["gates"].items()))
    lines.append("probe: " + ("PASSED" if t["passed"] else "FAILED"))
    return "\n".join(lines)


def load(ckpt, device):
    ck = torch.load(ckpt, map_location=device)
    net = M.ByteLM(M.Config(**ck["config"])).to(device)
    net.load_state_dict(ck["model"])
    net.eval()
    return net, ck


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--corpus", default="", help="as for train.py")
    args = ap.parse_args()
    net, _ = load(args.ckpt, args.device)
    corpus, _ = M.load_corpus(args.corpus)
    data = torch.frombuffer(bytearray(corpus), dtype=torch.uint8)
    val = data[int(len(data) * 0.99):]
    t = run_probe(net, val, args.device)
    print(json.dumps(t) if args.json else format_table(t))
    return 0 if t["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
