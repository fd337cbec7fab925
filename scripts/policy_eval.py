#!/usr/bin/env python3
"""Evaluates kvcake's tier policies on two objectives (docs/policy.md §6).

Exact serving: the per-policy figures of a `kvcake-replay --json` run (reload
time per request, token-weighted GPU and host hit rates).

Budgeted attention: from an attention file (JSONL, one prompt per line; the
format is in docs/policy.md §6), each layer of each prompt keeps a budget of
its blocks on the GPU, chosen by CAKE's block score (window mean + gamma *
window variance, summed over KV heads); allocations differ only in how the
prompt's total budget is split over layers:
  cake     water-filled by CAKE's preference P_l = H^(1/tau1) * V^(1/tau2)
  uniform  the same number of blocks in every layer
  pyramid  PyramidKV-style: linearly decreasing from the first layer to the last
recall: the share of the answer's attention (per layer, averaged) that falls
in the kept blocks. For prompts whose prefix a later prompt extends (the
follow-up turn), the follow-up's answer attention over the shared blocks is
scored against the blocks kept at the first turn:
  followup_recall_drop    the pushed-out blocks were dropped: only the
                          first turn's kept blocks can serve the follow-up
  followup_recall_demote  they were demoted to host and are promoted back:
                          the follow-up re-selects, under the same budgets,
                          by its own window statistics
A file captured by scripts/attention/capture.py starts with a header line
whose structure-probe verdict "fail" marks the budgeted results provisional.
Pure Python (no third-party modules).
"""

import argparse
import json
import math
import sys

ALLOCATIONS = ("cake", "uniform", "pyramid")
# Table order of the exact-serving policies (others follow by name).
POLICY_ORDER = ("lru", "lfu", "arc", "s3fifo", "gdsf", "cake", "adaptive", "belady")
FRACTIONS = (0.1, 0.2)
GAMMA = 200 / 512  # CAKE's gamma at block level (docs/policy.md §4)


def fail(msg):
    print(f"policy_eval: {msg}", file=sys.stderr)
    sys.exit(2)


class Prompt:
    """One line of the attention file, reduced to per-layer arrays."""

    def __init__(self, obj, lineno):
        try:
            self.hashes = [int(h) for h in obj["block_hashes"]]
            layers = obj["layers"]
        except (KeyError, TypeError, ValueError) as e:
            fail(f"line {lineno}: missing or bad field ({e})")
        n = len(self.hashes)
        if n == 0 or not layers:
            fail(f"line {lineno}: no blocks or no layers")
        self.score = []  # [layer][block]: CAKE block score
        self.mean = []  # [layer][block]: window mean summed over KV heads
        self.var = []  # [layer]: summed window variance
        self.answer = []  # [layer][block]: answer attention, normalised
        for layer in sorted(layers, key=lambda x: x.get("layer", 0)):
            heads = layer.get("heads")
            answer = layer.get("answer")
            if not heads or answer is None:
                fail(f"line {lineno}: a layer lacks 'heads' or 'answer'")
            if answer and isinstance(answer[0], list):  # per KV head: average
                answer = [sum(col) / len(answer) for col in zip(*answer)]
            if len(answer) != n or any(
                len(h.get("mean", ())) != n or len(h.get("var", ())) != n for h in heads
            ):
                fail(f"line {lineno}: per-block arrays must have {n} entries")
            mean = [sum(h["mean"][b] for h in heads) for b in range(n)]
            var = [sum(h["var"][b] for h in heads) for b in range(n)]
            if any(x < 0 or not math.isfinite(x) for x in mean + var + list(answer)):
                fail(f"line {lineno}: attention values must be finite and >= 0")
            self.mean.append(mean)
            self.var.append(sum(var))
            self.score.append([m + GAMMA * v for m, v in zip(mean, var)])
            total = sum(answer)
            self.answer.append([a / total for a in answer] if total > 0 else [0.0] * n)
        self.followup = None  # the later prompt that extends this one
        self.shared = 0  # leading blocks it shares with the follow-up

    def preference(self, tau1, tau2):
        """CAKE's P_l per layer from the block-level window statistics."""
        out = []
        for mean, var in zip(self.mean, self.var):
            total = sum(mean)
            h = -sum((m / total) * math.log(m / total + 1e-10) for m in mean) if total > 0 else 0
            out.append(max(h, 0.0) ** (1 / tau1) * max(var, 0.0) ** (1 / tau2))
        return out





def water_fill(pref, caps, total):
    """Integer budgets b_l = clamp(floor(lam * P_l), 1, cap_l) summing to
    min(total, sum(caps)); leftovers by descending fractional part."""
    total = min(total, sum(caps))
    if all(p <= 0 for p in pref):
        pref = [1.0] * len(pref)

    def used(lam):
        return sum(min(c, max(1.0, lam * p)) for p, c in zip(pref, caps))

    lo, hi = 0.0, 1.0
    while used(hi) < total and hi < 1e30:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if used(mid) <= total:
            lo = mid
        else:
            hi = mid
    real = [min(c, max(1.0, lo * p)) for p, c in zip(pref, caps)]
    out = [int(math.floor(x)) for x in real]
    left = total - sum(out)
    order = sorted(range(len(out)), key=lambda i: (-(real[i] - out[i]), i))
    for i in order:
        if left <= 0:
            break
        if out[i] < caps[i]:
            out[i] += 1
            left -= 1
    return out


def budgets(prompt, allocation, fraction, tau1, tau2):
    layers = len(prompt.score)
    n = len(prompt.hashes)
    per_layer = max(1, round(fraction * n))
    total = per_layer * layers
    caps = [n] * layers
    if allocation == "uniform":
        return [min(n, per_layer)] * layers
    if allocation == "pyramid":
        weights = [2.0 * (layers - l) / (layers + 1) for l in range(layers)]
        return water_fill(weights, caps, total)
    return water_fill(prompt.preference(tau1, tau2), caps, total)


def top_blocks(scores, k):
    return set(sorted(range(len(scores)), key=lambda b: (-scores[b], b))[:k])


def evaluate_budgeted(prompts, tau1, tau2):
    # A prompt's follow-up: the first later prompt that starts with all its
    # blocks, or all but the last (a partial block that the next turn
    # completes gets a new chained hash); at least two blocks shared.
    pending = {}
    for p in prompts:
        for j, h in enumerate(p.hashes):
            for earlier in pending.pop((j + 1, h), []):
                if earlier.followup is None and earlier.hashes[: j + 1] == p.hashes[: j + 1]:
                    earlier.followup, earlier.shared = p, j + 1
        n = len(p.hashes)
        for k in (n, n - 1):
            if k >= 2:
                pending.setdefault((k, p.hashes[k - 1]), []).append(p)
    out = {}
    for allocation in ALLOCATIONS:
        out[allocation] = {}
        for fraction in FRACTIONS:
            recall, drop, demote = [], [], []
            for p in prompts:
                b = budgets(p, allocation, fraction, tau1, tau2)
                kept = [top_blocks(p.score[l], b[l]) for l in range(len(b))]
                recall.append(
                    sum(sum(p.answer[l][i] for i in kept[l]) for l in range(len(b))) / len(b)
                )
                f = p.followup
                if f is None or len(f.score) != len(b):
                    continue
                shared = p.shared
                d, m = 0.0, 0.0
                for l in range(len(b)):
                    mass = f.answer[l][:shared]
                    total = sum(mass)
                    if total <= 0:
                        continue
                    again = top_blocks(f.score[l][:shared], b[l])
                    d += sum(mass[i] for i in kept[l] if i < shared) / total
                    m += sum(mass[i] for i in again) / total
                drop.append(d / len(b))
                demote.append(m / len(b))

            def avg(v):
                return sum(v) / len(v) if v else 0.0

            out[allocation][str(fraction)] = {
                "recall": avg(recall),
                "followup_recall_drop": avg(drop),
                "followup_recall_demote": avg(demote),
                "prompts": len(recall),
                "followups": len(drop),
            }
    return out


def read_prompts(path, limit):
    """(prompts, the capture's probe verdict: "pass", "fail" or None when the
    file has no capture header)."""
    prompts, probe = [], None
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        fail(f"cannot read attention file {path}: {e.strerror}")
    with f:
        first = True
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path}:{lineno}: not JSON ({e.msg})")
            if isinstance(obj, dict) and "capture" in obj:
                if not first:
                    fail(f"{path}:{lineno}: the capture header must be the first line")
                meta = obj["capture"]
                probe = meta.get("probe") if isinstance(meta, dict) else None
                if probe not in ("pass", "fail"):
                    fail(f"{path}:{lineno}: the capture header's probe must be "
                         f"\"pass\" or \"fail\"")
                first = False
                continue
            first = False
            prompts.append(Prompt(obj, lineno))
            if limit and len(prompts) >= limit:
                break
    if not prompts:
        fail(f"{path}: no prompts")
    return prompts, probe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exact", required=True, help="kvcake-replay --json output")
    ap.add_argument("--attention", required=True, help="attention file (JSONL)")
    ap.add_argument("--source", default="synthetic model", help="attention_source to report")
    ap.add_argument("--provisional", action="store_true", help="mark budgeted results provisional")
    ap.add_argument("--max_prompts", type=int, default=0, help="read at most N prompts (0: all)")
    ap.add_argument("--default_policy", default="adaptive")
    ap.add_argument("--tau1", type=float, default=0.25)
    ap.add_argument("--tau2", type=float, default=4.0)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    if not (args.tau1 > 0 and args.tau2 > 0):
        fail("--tau1 and --tau2 must be > 0")
    try:
        with open(args.exact, encoding="utf-8") as f:
            replay = json.load(f)
        exact = {
            name: {k: p["exact"][k] for k in ("reload_ms_mean", "reload_ms_p99", "gpu_hit_rate",
                                              "host_hit_rate")}
            for name, p in replay["policies"].items()
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{args.exact}: not a kvcake-replay --json result ({e})")
    prompts, probe = read_prompts(args.attention, args.max_prompts)
    budgeted = evaluate_budgeted(prompts, args.tau1, args.tau2)
    # Attention captured from a model that fails the structure probe
    # (scripts/attention/probe.py) says little about a real model's.
    provisional = args.provisional or probe == "fail"
    result = {
        "default_policy": args.default_policy,
        "exact": exact,
        "budgeted": budgeted,
        "provisional": provisional,
        "attention_source": args.source,
        "attention_probe": probe,
        "config": replay.get("config", {}),
    }
    print(f"Exact serving (every prefix block on the GPU before compute); "
          f"{replay.get('config', {}).get('requests', '?')} requests")
    print(f"{'policy':<12} {'reload_ms':>10} {'p99_ms':>10} {'gpu_hit':>8} {'host_hit':>8}")
    ranked = sorted(exact, key=lambda n: (POLICY_ORDER.index(n) if n in POLICY_ORDER else 99, n))
    for name in ranked:
        e = exact[name]
        mark = " (default)" if name == args.default_policy else ""
        print(f"{name:<12} {e['reload_ms_mean']:>10.3f} {e['reload_ms_p99']:>10.3f} "
              f"{e['gpu_hit_rate']:>8.4f} {e['host_hit_rate']:>8.4f}{mark}")
    any_alloc = budgeted[ALLOCATIONS[0]][str(FRACTIONS[0])]
    print()
    why = ", provisional" if provisional else ""
    if probe == "fail":
        why += ": the model failed the structure probe"
    print(f"Budgeted attention ({args.source}{why}); "
          f"{any_alloc['prompts']} prompts, {any_alloc['followups']} with a follow-up")
    print(f"{'allocation':<10} {'budget':>6} {'recall':>8} {'fu_drop':>8} {'fu_demote':>9}")
    for allocation, per in budgeted.items():
        for fraction, r in per.items():
            print(f"{allocation:<10} {fraction:>6} {r['recall']:>8.4f} "
                  f"{r['followup_recall_drop']:>8.4f} {r['followup_recall_demote']:>9.4f}")
    if args.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
