#!/usr/bin/env python3
"""Evaluates kvcake's tier policies on two objectives (docs/policy.md §6).

Exact serving: the per-policy figures of `kvcake-replay --json` runs (reload
time per request, token-weighted GPU and host hit rates) on the whole trace
and, optionally, on its tuning and held-out halves; for each trace the
default policy is compared with the best classic baseline.

Budgeted attention: from attention files (JSONL, one prompt per line; the
format is in docs/policy.md §6; one file per attention seed), each layer of
each prompt keeps a budget of its blocks on the GPU. Allocations (how the
prompt's total budget is split over layers, and which blocks a layer keeps):
  cake          water-filled by CAKE's preference P_l = H^(1/tau1) * V^(1/tau2);
                blocks by CAKE's score (window mean + gamma * window variance)
  cake_gamma0   ablation: as cake with gamma = 0 (the variance is ignored)
  cake_tau1     ablation: as cake with tau1 = tau2 = 1 (CAKE's defaults)
  equal_scores  ablation: CAKE's budgets, every block scored alike: a layer
                keeps its most recent blocks (CakePolicy's recency order)
  uniform       the same number of blocks in every layer; CAKE's scores
  pyramid       PyramidKV-style: linearly decreasing from the first layer to
                the last; CAKE's scores
recall: the share of the answer's attention (per layer, averaged) that falls
in the kept blocks. For prompts whose prefix a later prompt extends (the
follow-up turn), the follow-up's answer attention over the shared blocks is
scored against the blocks kept at the first turn:
  followup_recall_drop    the pushed-out blocks were dropped: only the
                          first turn's kept blocks can serve the follow-up
  followup_recall_demote  they were demoted to host and are promoted back:
                          the follow-up re-selects, under the same budgets,
                          by its own window statistics

With --tune the prompts are split into a tuning and a held-out half by
conversation (SplitOf); tau1, tau2 and gamma are chosen on the tuning half
(TUNING_GRID, the best mean cake recall over the budgets, averaged over the
files) and the held-out half is reported with a 95 % confidence interval
(Student t over the files when there are several, else over the prompts).
Without --tune every prompt is reported with the given knobs.

A file captured by scripts/attention/capture.py starts with a header line
whose structure-probe verdict "fail" marks the budgeted results provisional.
Pure Python (no third-party modules).
"""

import argparse
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor

# Budgeted allocations: name -> (budget rule, knobs, block order). Budget
# rules: "cake" (water-filled by P with the knobs' taus, or tau = 1 for
# "default_taus"), "uniform", "pyramid"; block order: "score" (with the
# knobs' gamma, or gamma 0 for "no_variance") or "recent".
ALLOCATIONS = {
    "cake": ("cake", "tuned", "score"),
    "cake_gamma0": ("cake", "tuned", "no_variance"),
    "cake_tau1": ("cake", "default_taus", "score"),
    "equal_scores": ("cake", "tuned", "recent"),
    "uniform": ("uniform", "tuned", "score"),
    "pyramid": ("pyramid", "tuned", "score"),
}
ABLATIONS = ("cake_gamma0", "cake_tau1", "equal_scores")
# Table order of the exact-serving policies (others follow by name).
POLICY_ORDER = ("lru", "lfu", "arc", "s3fifo", "gdsf", "cake", "adaptive", "dueling", "belady")
CLASSIC = ("lru", "lfu", "arc", "s3fifo", "gdsf")
FRACTIONS = (0.1, 0.2)
GAMMA = 200 / 512  # CAKE's gamma at block level (docs/policy.md §4)
# The knobs' grid, searched on the tuning split only (docs/policy.md §6).
TUNING_GRID = {
    "tau1": (1.0, 0.5, 0.25),
    "tau2": (1.0, 2.0, 4.0, 8.0),
    "gamma": (0.0, 200 / 2048, 200 / 512, 200 / 128),
}
FIGURES = ("recall", "followup_recall_drop", "followup_recall_demote")
# Two-sided 95 % Student t quantiles by degrees of freedom (1..30).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
MASK64 = (1 << 64) - 1


def fail(msg):
    print(f"policy_eval: {msg}", file=sys.stderr)
    sys.exit(2)


def mix64(x):
    """SplitMix64's finaliser, as kvcake-replay's Mix64."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def split_of(hashes):
    """"heldout" or "tune" for a prompt with these block hashes. The key is
    the second block (the first if there is one): the first block is a system
    prompt that every conversation shares, and a follow-up turn starts with
    its predecessor's blocks, so a conversation never straddles the split.
    kvcake-replay --split applies the same rule to the trace."""
    if not hashes:
        return "tune"
    key = hashes[1] if len(hashes) > 1 else hashes[0]
    return "heldout" if mix64(key & MASK64) & 1 else "tune"


def t_quantile(df):
    return T975[df - 1] if df <= len(T975) else 1.96


def mean_ci(values):
    """[mean, half-width of the 95 % t interval] (half-width 0 for one value)."""
    n = len(values)
    if n == 0:
        return [0.0, 0.0]
    m = sum(values) / n
    if n < 2:
        return [m, 0.0]
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return [m, t_quantile(n - 1) * sd / math.sqrt(n)]


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
        self.mean = []  # [layer][block]: window mean summed over KV heads
        self.bvar = []  # [layer][block]: window variance summed over KV heads
        self.entropy = []  # [layer]: H of the normalised window mean
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
            self.bvar.append(var)
            self.var.append(sum(var))
            total = sum(mean)
            h = -sum((m / total) * math.log(m / total + 1e-10) for m in mean) if total > 0 else 0
            self.entropy.append(max(h, 0.0))
            total = sum(answer)
            self.answer.append([a / total for a in answer] if total > 0 else [0.0] * n)
        self.followup = None  # the later prompt that extends this one
        self.shared = 0  # leading blocks it shares with the follow-up

    def preference(self, tau1, tau2):
        """CAKE's P_l per layer from the block-level window statistics."""
        return [h ** (1 / tau1) * max(v, 0.0) ** (1 / tau2)
                for h, v in zip(self.entropy, self.var)]

    def order(self, layer, gamma, limit=None):
        """Block indices (below `limit`), best first: by score mean + gamma *
        variance (gamma None: most recent first)."""
        n = len(self.hashes) if limit is None else limit
        if gamma is None:
            return list(range(n - 1, -1, -1))
        mean, var = self.mean[layer], self.bvar[layer]
        return sorted(range(n), key=lambda b: (-(mean[b] + gamma * var[b]), b))


def water_fill(pref, caps, total):
    """Integer budgets b_l = clamp(floor(lam * P_l), 1, cap_l) summing to
    min(total, sum(caps)), lam the largest with sum clamp(lam P_l, 1, cap_l)
    <= total (found exactly by walking the breakpoints); leftovers by
    descending fractional part, ties to the lower layer."""
    total = min(total, sum(caps))
    if all(p <= 0 for p in pref):
        pref = [1.0] * len(pref)
    # used(lam) = low + lam * slope between breakpoints.
    low = sum(min(c, 1) for c in caps)
    slope = 0.0
    events = []
    for p, c in zip(pref, caps):
        if p > 0 and c >= 1:
            events.append((1.0 / p, p, -1))  # enters the linear part
            events.append((c / p, -p, c))  # reaches its cap
    events.sort()
    lam = events[-1][0] if events else 0.0
    for x, d_slope, d_low in events:
        if low + x * slope > total:
            lam = (total - low) / slope
            break
        low += d_low
        slope += d_slope
    real = [min(c, max(min(c, 1), lam * p)) for p, c in zip(pref, caps)]
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


def budgets(prompt, rule, fraction, tau1, tau2):
    layers = len(prompt.answer)
    n = len(prompt.hashes)
    per_layer = max(1, round(fraction * n))
    total = per_layer * layers
    caps = [n] * layers
    if rule == "uniform":
        return [min(n, per_layer)] * layers
    if rule == "pyramid":
        weights = [2.0 * (layers - l) / (layers + 1) for l in range(layers)]
        return water_fill(weights, caps, total)
    return water_fill(prompt.preference(tau1, tau2), caps, total)


def link_followups(prompts):
    """A prompt's follow-up: the first later prompt that starts with all its
    blocks, or all but the last (a partial block that the next turn
    completes gets a new chained hash); at least two blocks shared."""
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


class Kept:
    """Per layer, the cumulative figures of keeping the first k blocks of a
    block order: cumulative recall, and for the follow-up the mass served
    with the first turn's blocks (drop) or with the follow-up's own order
    over the shared blocks (demote)."""

    def __init__(self, p, gamma):
        f = p.followup
        self.has_followup = f is not None and len(f.answer) == len(p.answer)
        self.recall, self.drop, self.demote = [], [], []
        for l in range(len(p.answer)):
            order = p.order(l, gamma)
            self.recall.append(cumulative(p.answer[l][b] for b in order))
            if not self.has_followup:
                continue
            shared = p.shared
            mass = f.answer[l][:shared]
            total = sum(mass)
            if total <= 0:
                self.drop.append(None)
                self.demote.append(None)
                continue
            self.drop.append(cumulative((mass[b] if b < shared else 0.0) / total for b in order))
            self.demote.append(cumulative(mass[b] / total for b in f.order(l, gamma, shared)))

    def figures(self, b):
        """(recall, drop, demote) with b[l] blocks per layer (drop and demote
        None without a follow-up)."""
        layers = len(b)
        recall = sum(self.recall[l][min(b[l], len(self.recall[l]) - 1)] for l in range(layers))
        if not self.has_followup:
            return recall / layers, None, None
        drop = demote = 0.0
        for l in range(layers):
            if self.drop[l] is None:
                continue
            drop += self.drop[l][min(b[l], len(self.drop[l]) - 1)]
            demote += self.demote[l][min(b[l], len(self.demote[l]) - 1)]
        return recall / layers, drop / layers, demote / layers


def cumulative(values):
    out = [0.0]
    for v in values:
        out.append(out[-1] + v)
    return out


class Sums:
    """Running sums of the three figures (follow-ups counted separately)."""

    def __init__(self):
        self.n = self.followups = 0
        self.recall = self.drop = self.demote = 0.0

    def add(self, figures):
        recall, drop, demote = figures
        self.n += 1
        self.recall += recall
        if drop is not None:
            self.followups += 1
            self.drop += drop
            self.demote += demote

    def means(self):
        return {
            "recall": self.recall / self.n if self.n else 0.0,
            "followup_recall_drop": self.drop / self.followups if self.followups else 0.0,
            "followup_recall_demote": self.demote / self.followups if self.followups else 0.0,
            "prompts": self.n,
            "followups": self.followups,
        }


def grid_points():
    return [(t1, t2, g) for t1 in TUNING_GRID["tau1"] for t2 in TUNING_GRID["tau2"]
            for g in TUNING_GRID["gamma"]]


def tune_file(args):
    """Mean cake recall per grid point (keyed by the point) over the tuning
    prompts of one attention file."""
    path, limit = args
    prompts = read_prompts(path, limit)
    link_followups(prompts)
    sums = {pt: 0.0 for pt in grid_points()}
    n = 0
    for p in prompts:
        if split_of(p.hashes) != "tune":
            continue
        n += 1
        budget = {}
        for t1 in TUNING_GRID["tau1"]:
            for t2 in TUNING_GRID["tau2"]:
                budget[t1, t2] = [budgets(p, "cake", f, t1, t2) for f in FRACTIONS]
        for g in TUNING_GRID["gamma"]:
            recall = [cumulative(p.answer[l][b] for b in p.order(l, g))
                      for l in range(len(p.answer))]
            for (t1, t2), per_fraction in budget.items():
                s = 0.0
                for b in per_fraction:
                    s += sum(recall[l][b[l]] for l in range(len(b))) / len(b)
                sums[t1, t2, g] += s / len(FRACTIONS)
    return {pt: (s / n if n else 0.0) for pt, s in sums.items()}, n


def prompt_figures(path, limit, split, knobs):
    """Yields (allocation, fraction, (recall, drop, demote)) for every prompt
    of `split` ("all", "tune" or "heldout") in one attention file (drop and
    demote None without a follow-up)."""
    prompts = read_prompts(path, limit)
    link_followups(prompts)
    orders = {"score": knobs["gamma"], "no_variance": 0.0, "recent": None}
    for p in prompts:
        if split != "all" and split_of(p.hashes) != split:
            continue
        kept = {name: Kept(p, gamma) for name, gamma in orders.items()}
        for name, (rule, taus, order) in ALLOCATIONS.items():
            t1, t2 = (1.0, 1.0) if taus == "default_taus" else (knobs["tau1"], knobs["tau2"])
            for f in FRACTIONS:
                yield name, str(f), kept[order].figures(budgets(p, rule, f, t1, t2))


def evaluate_file(args):
    """{allocation: {fraction: means}} for one attention file."""
    sums = {a: {str(f): Sums() for f in FRACTIONS} for a in ALLOCATIONS}
    for name, f, figures in prompt_figures(*args):
        sums[name][f].add(figures)
    return {a: {f: s.means() for f, s in per.items()} for a, per in sums.items()}


def combine(per_file):
    """Means over the files, each figure with its 95 % interval over the
    files (in "ci95": [low, high]), and the paired cake - uniform difference."""
    out = {}
    for a in ALLOCATIONS:
        out[a] = {}
        for f in map(str, FRACTIONS):
            runs = [r[a][f] for r in per_file]
            entry = {"prompts": sum(r["prompts"] for r in runs),
                     "followups": sum(r["followups"] for r in runs), "ci95": {}}
            for key in FIGURES:
                m, h = mean_ci([r[key] for r in runs])
                entry[key] = m
                entry["ci95"][key] = [m - h, m + h]
            out[a][f] = entry
    return out


def paired_difference(per_unit, a, b):
    """Mean and 95 % interval of a - b, paired by unit: `per_unit` is a list
    of {allocation: {fraction: {figure: value}}}."""
    out = {}
    for f in map(str, FRACTIONS):
        out[f] = {}
        for key in FIGURES:
            m, h = mean_ci([r[a][f][key] - r[b][f][key] for r in per_unit])
            out[f][key] = {"mean": m, "ci95": [m - h, m + h]}
    return out


def prompt_values(path, limit, split, knobs):
    """{allocation: {fraction: {figure: [per prompt]}}} for one attention file
    (follow-up figures only for prompts with a follow-up, in prompt order)."""
    values = {a: {str(f): {k: [] for k in FIGURES} for f in FRACTIONS} for a in ALLOCATIONS}
    for name, f, (r, d, m) in prompt_figures(path, limit, split, knobs):
        v = values[name][f]
        v["recall"].append(r)
        if d is not None:
            v["followup_recall_drop"].append(d)
            v["followup_recall_demote"].append(m)
    return values


def read_prompts(path, limit):
    prompts = []
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
            if isinstance(obj, dict) and "capture" in obj:  # read_probe's header
                if not first:
                    fail(f"{path}:{lineno}: the capture header must be the first line")
                first = False
                continue
            first = False
            prompts.append(Prompt(obj, lineno))
            if limit and len(prompts) >= limit:
                break
    if not prompts:
        fail(f"{path}: no prompts")
    return prompts


def read_probe(path):
    """The structure-probe verdict in a captured file's header ("pass" or
    "fail"), or None when the file has no capture header."""
    try:
        with open(path, encoding="utf-8") as f:
            line = next((l for l in f if l.strip()), "")
    except OSError as e:
        fail(f"cannot read attention file {path}: {e.strerror}")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None  # read_prompts reports it
    if not isinstance(obj, dict) or "capture" not in obj:
        return None
    meta = obj["capture"]
    probe = meta.get("probe") if isinstance(meta, dict) else None
    if probe not in ("pass", "fail"):
        fail(f"{path}: the capture header's probe must be \"pass\" or \"fail\"")
    return probe


def read_exact(path):
    try:
        with open(path, encoding="utf-8") as f:
            replay = json.load(f)
        exact = {
            name: {k: p["exact"][k] for k in ("reload_ms_mean", "reload_ms_p99", "gpu_hit_rate",
                                              "host_hit_rate")}
            for name, p in replay["policies"].items()
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{path}: not a kvcake-replay --json result ({e})")
    return exact, replay.get("config", {})


def merge_exact(paths):
    """Several kvcake-replay results of one trace (different policies)."""
    exact, config = {}, {}
    for path in paths:
        e, c = read_exact(path)
        exact.update(e)
        config = config or c
    return exact, config


def default_check(exact, default_policy):
    """The default against the best classic baseline and against LRU: ratios
    of mean and of p99 reload time (1.0 = equal; the best mean and the best
    p99 may come from different baselines)."""
    classic = [n for n in CLASSIC if n in exact]
    if default_policy not in exact or not classic:
        return None
    d = exact[default_policy]

    def ratio(a, b):
        return a / b if b > 0 else (1.0 if a == 0 else math.inf)

    out = {}
    for key, name in (("reload_ms_mean", "mean"), ("reload_ms_p99", "p99")):
        best = min(classic, key=lambda n: exact[n][key])
        out[f"best_{name}"] = best
        out[f"{name}_vs_best"] = ratio(d[key], exact[best][key])
        if "lru" in exact:
            out[f"{name}_vs_lru"] = ratio(d[key], exact["lru"][key])
    return out


def print_exact(title, exact, default_policy, check):
    print(title)
    print(f"{'policy':<12} {'reload_ms':>10} {'p99_ms':>10} {'gpu_hit':>8} {'host_hit':>8}")
    ranked = sorted(exact, key=lambda n: (POLICY_ORDER.index(n) if n in POLICY_ORDER else 99, n))
    for name in ranked:
        e = exact[name]
        mark = " (default)" if name == default_policy else ""
        print(f"{name:<12} {e['reload_ms_mean']:>10.3f} {e['reload_ms_p99']:>10.3f} "
              f"{e['gpu_hit_rate']:>8.4f} {e['host_hit_rate']:>8.4f}{mark}")
    if check:
        line = (f"{default_policy} / best classic: mean {check['mean_vs_best']:.3f} "
                f"({check['best_mean']}), p99 {check['p99_vs_best']:.3f} ({check['best_p99']})")
        if "mean_vs_lru" in check:
            line += f"; / lru: mean {check['mean_vs_lru']:.3f}, p99 {check['p99_vs_lru']:.3f}"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exact", required=True, action="append",
                    help="kvcake-replay --json output on the whole trace (repeatable: merged)")
    ap.add_argument("--exact_tune", action="append", default=[],
                    help="kvcake-replay --json --split=tune output (repeatable: merged)")
    ap.add_argument("--exact_heldout", action="append", default=[],
                    help="kvcake-replay --json --split=heldout output (repeatable: merged)")
    ap.add_argument("--attention", required=True, action="append",
                    help="attention file (JSONL); repeat for several seeds")
    ap.add_argument("--source", default="synthetic model", help="attention_source to report")
    ap.add_argument("--provisional", action="store_true", help="mark budgeted results provisional")
    ap.add_argument("--max_prompts", type=int, default=0, help="read at most N prompts (0: all)")
    ap.add_argument("--default_policy", default="adaptive")
    ap.add_argument("--tune", action="store_true",
                    help="choose tau1, tau2, gamma on the tuning split; report the held-out split")
    ap.add_argument("--tau1", type=float, default=0.25)
    ap.add_argument("--tau2", type=float, default=4.0)
    ap.add_argument("--gamma", type=float, default=GAMMA)
    ap.add_argument("--jobs", type=int, default=1, help="attention files evaluated in parallel")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    if not (args.tau1 > 0 and args.tau2 > 0 and args.gamma >= 0):
        fail("--tau1 and --tau2 must be > 0 and --gamma >= 0")
    if args.jobs < 1:
        fail("--jobs must be >= 1")
    exact, config = merge_exact(args.exact)
    splits_exact = {}
    if args.exact_tune:
        splits_exact["tune"] = merge_exact(args.exact_tune)[0]
    if args.exact_heldout:
        splits_exact["heldout"] = merge_exact(args.exact_heldout)[0]
    files = args.attention
    # Attention captured from a model that fails the structure probe
    # (scripts/attention/probe.py) says little about a real model's.
    probes = [read_probe(p) for p in files]
    probe = "fail" if "fail" in probes else ("pass" if all(v == "pass" for v in probes) else None)
    provisional = args.provisional or probe == "fail"

    def run(fn, items):
        if args.jobs == 1 or len(items) == 1:
            return [fn(i) for i in items]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            return list(pool.map(fn, items))

    knobs = {"tau1": args.tau1, "tau2": args.tau2, "gamma": args.gamma}
    tuning = None
    if args.tune:
        tuned = run(tune_file, [(p, args.max_prompts) for p in files])
        score = {pt: sum(t[0][pt] for t in tuned) / len(tuned) for pt in grid_points()}
        best = max(grid_points(), key=lambda pt: score[pt])  # first of equals: grid order
        knobs = {"tau1": best[0], "tau2": best[1], "gamma": best[2]}
        tuning = {"grid": {k: list(v) for k, v in TUNING_GRID.items()},
                  "objective": "cake recall, mean over the budgets and attention files",
                  "prompts": sum(t[1] for t in tuned), "chosen": knobs,
                  "chosen_score": score[best],
                  "scores": [{"tau1": pt[0], "tau2": pt[1], "gamma": pt[2], "recall": score[pt]}
                             for pt in grid_points()]}
    split = "heldout" if args.tune else "all"
    per_file = run(evaluate_file, [(p, args.max_prompts, split, knobs) for p in files])
    budgeted = combine(per_file)
    ci_over = "attention files (seeds)"
    difference = paired_difference(per_file, "cake", "uniform")
    if len(files) == 1:  # one file: intervals over the prompts instead
        ci_over = "prompts"
        values = prompt_values(files[0], args.max_prompts, split, knobs)
        for a, per in values.items():
            for f, v in per.items():
                for key in FIGURES:
                    m, h = mean_ci(v[key])
                    budgeted[a][f]["ci95"][key] = [m - h, m + h]
        for key in FIGURES:  # paired by prompt
            for f in map(str, FRACTIONS):
                d = [x - y for x, y in zip(values["cake"][f][key], values["uniform"][f][key])]
                m, h = mean_ci(d)
                difference[f][key] = {"mean": m, "ci95": [m - h, m + h]}
    checks = {"all": default_check(exact, args.default_policy)}
    for name, e in splits_exact.items():
        checks[name] = default_check(e, args.default_policy)
    result = {
        "default_policy": args.default_policy,
        "exact": exact,
        "exact_split": splits_exact,
        "default_check": checks,
        "budgeted": budgeted,
        "ablations": list(ABLATIONS),
        "cake_minus_uniform": difference,
        "ci": {"level": 0.95, "method": "Student t", "over": ci_over,
               "attention_files": len(files)},
        "split": {"budgeted": split, "rule": "Mix64(second block hash) odd: held out",
                  "knobs": knobs},
        "tuning": tuning,
        "provisional": provisional,
        "attention_source": args.source,
        "attention_probe": probe,
        "config": config,
    }
    print_exact(f"Exact serving (every prefix block on the GPU before compute); "
                f"{config.get('requests', '?')} requests", exact, args.default_policy,
                checks["all"])
    for name, e in splits_exact.items():
        print()
        print_exact(f"Exact serving, {name} split", e, args.default_policy, checks[name])
    any_alloc = budgeted["cake"][str(FRACTIONS[0])]
    print()
    what = "held-out split" if args.tune else "all prompts"
    why = ", provisional" if provisional else ""
    if probe == "fail":
        why += ": the model failed the structure probe"
    print(f"Budgeted attention ({args.source}{why}); "
          f"{what}, {len(files)} attention file(s), {any_alloc['prompts']} prompts, "
          f"{any_alloc['followups']} with a follow-up; knobs tau1={knobs['tau1']:g} "
          f"tau2={knobs['tau2']:g} gamma={knobs['gamma']:.4g}"
          f"{' (chosen on the tuning split)' if args.tune else ''}; ± 95 % CI over {ci_over}")
    print(f"{'allocation':<13} {'budget':>6} {'recall':>16} {'fu_drop':>16} {'fu_demote':>16}")
    for allocation, per in budgeted.items():
        for fraction, r in per.items():
            cells = " ".join(
                f"{r[k]:>7.4f} ±{(r['ci95'][k][1] - r['ci95'][k][0]) / 2:.4f}" for k in FIGURES)
            print(f"{allocation:<13} {fraction:>6} {cells}")
    for f, d in result["cake_minus_uniform"].items():
        print(f"cake - uniform at {f}: " + ", ".join(
            f"{k} {d[k]['mean']:+.4f} [{d[k]['ci95'][0]:+.4f}, {d[k]['ci95'][1]:+.4f}]"
            for k in FIGURES))
    if args.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
