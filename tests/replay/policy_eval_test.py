#!/usr/bin/env python3
"""Checks scripts/policy-eval.sh --quick --json (shape and sanity of the
result) and scripts/policy_eval.py on hand-made attention files whose
recall figures are known (the ablation switches each change what they
should; a capture header's probe verdict decides provisional), the tuning /
held-out split (deterministic, disjoint, covers every conversation, the same
in kvcake-replay), plus errors on bad input."""

import argparse
import json
import os
import subprocess
import sys
import tempfile

FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)


def rate(x):
    return isinstance(x, (int, float)) and 0.0 <= x <= 1.0


def check_quick(root, bin_dir):
    env = dict(os.environ, KVCAKE_BIN_DIR=bin_dir)
    run = subprocess.run([os.path.join(root, "scripts", "policy-eval.sh"), "--quick", "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    check(run.returncode == 0, f"policy-eval.sh exited {run.returncode}: {run.stderr[-2000:]}")
    if run.returncode != 0:
        return
    lines = run.stdout.strip().splitlines()
    check("Exact serving" in run.stdout and "Budgeted attention" in run.stdout,
          "the tables are printed before the JSON line")
    result = json.loads(lines[-1])
    for key in ("default_policy", "exact", "budgeted", "provisional", "attention_source"):
        check(key in result, f"missing key {key}")
    check(result["provisional"] is True, "synthetic attention must be provisional")
    check(result["attention_source"] == "synthetic model", "attention_source")
    exact = result["exact"]
    for name in ("lru", "lfu", "arc", "s3fifo", "gdsf", "cake", result["default_policy"]):
        check(name in exact, f"exact lacks {name}")
        e = exact.get(name, {})
        check(rate(e.get("gpu_hit_rate")), f"{name}: gpu_hit_rate not in [0, 1]")
        check(rate(e.get("host_hit_rate")), f"{name}: host_hit_rate not in [0, 1]")
        check(e.get("gpu_hit_rate", 0) + e.get("host_hit_rate", 0) <= 1 + 1e-9,
              f"{name}: gpu + host hit rates exceed 1")
        mean, p99 = e.get("reload_ms_mean", -1), e.get("reload_ms_p99", -1)
        check(mean >= 0 and p99 >= 0, f"{name}: negative reload time")
    if "belady" in exact and "lru" in exact:
        check(exact["belady"]["gpu_hit_rate"] >= exact["lru"]["gpu_hit_rate"],
              "the MIN oracle must hit the GPU at least as often as LRU")
    budgeted = result["budgeted"]
    for alloc in ("cake", "uniform", "pyramid"):
        check(alloc in budgeted, f"budgeted lacks {alloc}")
        per = budgeted.get(alloc, {})
        for frac in ("0.1", "0.2"):
            r = per.get(frac, {})
            for key in ("recall", "followup_recall_drop", "followup_recall_demote"):
                check(rate(r.get(key)), f"{alloc} {frac}: {key} not in [0, 1]")
    for alloc in ("cake_gamma0", "cake_tau1", "equal_scores"):
        check(alloc in budgeted and alloc in result.get("ablations", []), f"ablation {alloc}")
    for alloc, per in budgeted.items():
        for frac, r in per.items():
            for key in ("recall", "followup_recall_drop", "followup_recall_demote"):
                lo, hi = r.get("ci95", {}).get(key, (1, 0))
                check(lo <= r.get(key, -1) <= hi, f"{alloc} {frac}: {key} outside its ci95")
    check(result.get("ci", {}).get("attention_files") == 3, "three attention seeds")
    check(result.get("split", {}).get("budgeted") == "heldout", "budgeted is reported held out")
    tuning = result.get("tuning") or {}
    knobs = result.get("split", {}).get("knobs")
    check(tuning.get("chosen") == knobs and tuning.get("prompts", 0) > 0,
          "the knobs are chosen on the tuning split")
    check(knobs is not None and all(knobs[k] in tuning.get("grid", {}).get(k, ())
                                    for k in ("tau1", "tau2", "gamma")), "knobs from the grid")
    heldout = budgeted.get("cake", {}).get("0.1", {}).get("prompts", 0)
    check(0 < heldout and heldout + tuning.get("prompts", 0) == 3 * 600,
          "tuning and held-out prompts partition the quick subset (per seed)")
    for split in ("tune", "heldout"):
        e = result.get("exact_split", {}).get(split, {})
        check(result["default_policy"] in e and "dueling" in e, f"exact {split} split")
        check(result.get("default_check", {}).get(split) is not None, f"default_check {split}")
        if result["default_policy"] in e and "dueling" in e:
            # Exact serving ranks by the LRU / GDSF duel: the default must equal it.
            check(e[result["default_policy"]] == e["dueling"], f"{split}: default != dueling")
    check(exact.get(result["default_policy"]) == exact.get("dueling"), "default != dueling")
    u = budgeted.get("uniform", {})
    if "0.1" in u and "0.2" in u:
        # Uniform budgets at 20 % keep a superset of the 10 % blocks.
        check(u["0.2"]["recall"] >= u["0.1"]["recall"], "recall must grow with the budget")
        check(u["0.1"]["followups"] > 0, "the quick subset has follow-up turns")


def write_lines(path, objs):
    with open(path, "w", encoding="utf-8") as f:
        for o in objs:
            f.write(json.dumps(o) + "\n")


def check_known_file(root, tmp):
    """Two turns of one conversation, one layer: every allocation keeps the
    same single block, so the figures are known exactly."""
    exact = os.path.join(tmp, "exact.json")
    with open(exact, "w", encoding="utf-8") as f:
        json.dump({"policies": {"lru": {"exact": {"reload_ms_mean": 1.0, "reload_ms_p99": 2.0,
                                                   "gpu_hit_rate": 0.5, "host_hit_rate": 0.25}}}},
                  f)

    def layer(mean, answer):
        return {"layer": 0, "heads": [{"mean": mean, "var": [0.0] * len(mean)}], "answer": answer}

    attention = os.path.join(tmp, "attention.jsonl")
    write_lines(attention, [
        {"block_hashes": [11, 12, 13, 14],
         "layers": [layer([0.7, 0.1, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1])]},
        # The next turn: blocks 11..13 shared (14 was partial), attends block 13.
        {"block_hashes": [11, 12, 13, 24, 25],
         "layers": [layer([0.1, 0.1, 0.7, 0.1, 0.0], [0.1, 0.1, 0.6, 0.1, 0.1])]},
    ])
    script = os.path.join(root, "scripts", "policy_eval.py")
    run = subprocess.run([sys.executable, script, "--exact", exact, "--attention", attention,
                          "--source", "test", "--json"], capture_output=True, text=True)
    check(run.returncode == 0, f"policy_eval.py failed: {run.stderr}")
    if run.returncode != 0:
        return
    result = json.loads(run.stdout.strip().splitlines()[-1])
    check(result["provisional"] is False, "captured attention is not provisional")
    check(result["exact"]["lru"]["gpu_hit_rate"] == 0.5, "exact figures are passed through")
    for alloc in ("cake", "uniform", "pyramid"):
        r = result["budgeted"][alloc]["0.2"]
        # Turn 1 keeps block 0 (answer 0.6); turn 2 keeps block 2 (answer 0.6).
        check(abs(r["recall"] - 0.6) < 1e-9, f"{alloc}: recall {r['recall']} != 0.6")
        # Follow-up over the 3 shared blocks (answer mass 0.8): dropped keeps
        # block 0 (0.1), demoted re-selects block 2 (0.6).
        check(abs(r["followup_recall_drop"] - 0.1 / 0.8) < 1e-9, f"{alloc}: drop")
        check(abs(r["followup_recall_demote"] - 0.6 / 0.8) < 1e-9, f"{alloc}: demote")
        check(r["followups"] == 1, f"{alloc}: one follow-up")
    # A capture header (scripts/attention/capture.py): the structure probe's
    # verdict decides whether the budgeted figures are provisional.
    with open(attention, encoding="utf-8") as f:
        turns = [json.loads(line) for line in f]
    for verdict, provisional in (("fail", True), ("pass", False)):
        captured = os.path.join(tmp, f"captured_{verdict}.jsonl")
        write_lines(captured, [{"capture": {"probe": verdict, "prompts": 2}}] + turns)
        run = subprocess.run([sys.executable, script, "--exact", exact, "--attention", captured,
                              "--json"], capture_output=True, text=True)
        check(run.returncode == 0, f"probe {verdict}: policy_eval.py failed: {run.stderr}")
        if run.returncode == 0:
            r = json.loads(run.stdout.strip().splitlines()[-1])
            check(r["provisional"] is provisional and r["attention_probe"] == verdict,
                  f"probe {verdict}: provisional must be {provisional}")
            check(r["budgeted"]["cake"]["0.2"]["prompts"] == 2, "the header is not a prompt")
    # Bad input: a clear error, exit status 2.
    bad = os.path.join(tmp, "bad.jsonl")
    write_lines(bad, [{"block_hashes": [1, 2], "layers": [layer([0.5], [1.0])]}])
    run = subprocess.run([sys.executable, script, "--exact", exact, "--attention", bad],
                         capture_output=True, text=True)
    check(run.returncode == 2 and "per-block arrays" in run.stderr,
          f"mismatched arrays: {run.returncode} {run.stderr}")
    with open(bad, "w", encoding="utf-8") as f:
        f.write("{not json\n")
    run = subprocess.run([sys.executable, script, "--exact", exact, "--attention", bad],
                         capture_output=True, text=True)
    check(run.returncode == 2 and "not JSON" in run.stderr, f"bad JSON: {run.stderr}")
    write_lines(bad, [{"capture": {"probe": "unknown"}}] + turns)
    run = subprocess.run([sys.executable, script, "--exact", exact, "--attention", bad],
                         capture_output=True, text=True)
    check(run.returncode == 2 and "must be \"pass\" or \"fail\"" in run.stderr,
          f"bad probe verdict: {run.stderr}")
    run = subprocess.run([os.path.join(root, "scripts", "policy-eval.sh"), "--bogus"],
                         capture_output=True, text=True)
    check(run.returncode == 2 and "unknown argument" in run.stderr, "unknown argument")
    run = subprocess.run([os.path.join(root, "scripts", "policy-eval.sh"), "--attention",
                          os.path.join(tmp, "missing.jsonl")], capture_output=True, text=True)
    check(run.returncode == 2, "a missing attention file is an error")


def check_ablations(root, tmp):
    """One prompt, 10 blocks, 2 layers: layer 0 attends broadly (high H),
    layer 1 concentrates on block 0 (low H); at 20 % the prompt keeps 4
    layer-blocks, so tau1 = 0.25, tau2 = 4 give 3 + 1 and tau = 1 gives 2 + 2.
    Block 9 of layer 0 stands out only by its variance (gamma)."""
    exact = os.path.join(tmp, "exact.json")
    other = 0.6 / 9
    layer0 = {"layer": 0, "heads": [{"mean": [0.1] * 10, "var": [0.0001] * 9 + [0.01]}],
              "answer": [other] * 9 + [0.4]}
    layer1 = {"layer": 1, "heads": [{"mean": [0.91] + [0.01] * 9,
                                     "var": [0.0] * 5 + [0.05] + [0.0] * 4}],
              "answer": [0.5] + [0.0] * 4 + [0.5] + [0.0] * 4}
    attention = os.path.join(tmp, "ablation.jsonl")
    write_lines(attention, [{"block_hashes": list(range(101, 111)), "layers": [layer0, layer1]}])
    script = os.path.join(root, "scripts", "policy_eval.py")

    def run(tau1, tau2, gamma):
        r = subprocess.run([sys.executable, script, "--exact", exact, "--attention", attention,
                            f"--tau1={tau1}", f"--tau2={tau2}", f"--gamma={gamma}", "--json"],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"policy_eval.py failed: {r.stderr}")
        if r.returncode != 0:
            return None
        return {a: per["0.2"]["recall"] for a, per in json.loads(
            r.stdout.strip().splitlines()[-1])["budgeted"].items()}

    a, b, c = run(0.25, 4, 10), run(1, 1, 10), run(0.25, 4, 0)
    if a is None or b is None or c is None:
        return
    near = lambda x, y: abs(x - y) < 1e-9  # noqa: E731
    # cake: layer 0 keeps blocks 9, 0, 1; layer 1 keeps block 0.
    check(near(a["cake"], (0.4 + 2 * other + 0.5) / 2), f"cake recall {a['cake']}")
    # tau = 1: budgets 2 + 2 (layer 1 also keeps block 5, by its variance).
    check(near(a["cake_tau1"], b["cake"]), "cake_tau1 is cake with tau1 = tau2 = 1")
    check(near(a["cake_tau1"], (0.4 + other + 1.0) / 2), f"cake_tau1 {a['cake_tau1']}")
    check(near(a["uniform"], a["cake_tau1"]), "uniform: 2 + 2 here")
    # gamma = 0 ignores the variance: layer 0 keeps blocks 0, 1, 2.
    check(near(a["cake_gamma0"], c["cake"]), "cake_gamma0 is cake with gamma = 0")
    check(near(a["cake_gamma0"], (3 * other + 0.5) / 2), f"cake_gamma0 {a['cake_gamma0']}")
    # Equal scores: the most recent blocks (layer 0: 9, 8, 7; layer 1: 9).
    check(near(a["equal_scores"], (0.4 + 2 * other) / 2), f"equal_scores {a['equal_scores']}")


def check_split(root, bin_dir):
    """The split is a function of the conversation, the same in
    policy_eval.py and kvcake-replay --split."""
    sys.path.insert(0, os.path.join(root, "scripts"))
    import policy_eval  # noqa: E402

    # 200 conversations of 3 turns behind a shared system-prompt block.
    turns, seen = [], {}
    for c in range(200):
        blocks = [7, 1000 + 10 * c]
        for t in range(3):
            blocks = blocks + [100000 + 100 * c + t]
            turns.append((c, list(blocks)))
    for c, hashes in turns:
        s = policy_eval.split_of(hashes)
        check(s in ("tune", "heldout"), "every prompt is in one split")
        check(s == policy_eval.split_of(list(hashes)), "the split is deterministic")
        check(seen.setdefault(c, s) == s, f"conversation {c} straddles the split")
    halves = list(seen.values())
    check(60 <= halves.count("heldout") <= 140, f"unbalanced split {halves.count('heldout')}")
    # kvcake-replay splits the trace's requests the same way.
    trace = os.path.join(root, "..", "shared", "traces", "conversation_trace.jsonl")
    if not os.path.exists(trace):
        return
    n, held = 0, 0
    with open(trace, encoding="utf-8") as f:
        for line in f:
            ids = json.loads(line)["hash_ids"]
            held += policy_eval.split_of([policy_eval.mix64(h) for h in ids]) == "heldout"
            n += 1
            if n == 300:
                break
    counts = {}
    for split in ("all", "tune", "heldout"):
        r = subprocess.run([os.path.join(bin_dir, "kvcake-replay"), "--trace", trace, "--json",
                            "--policies=lru", "--max_requests=300", f"--split={split}"],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"kvcake-replay --split={split}: {r.stderr}")
        counts[split] = json.loads(r.stdout)["config"]["requests"] if r.returncode == 0 else -1
    check(counts["heldout"] == held and counts["tune"] == n - held and counts["all"] == n,
          f"kvcake-replay split {counts} != policy_eval's {held} held out of {n}")
    r = subprocess.run([os.path.join(bin_dir, "kvcake-replay"), "--trace", trace,
                        "--split=half"], capture_output=True, text=True)
    check(r.returncode == 2 and "--split" in r.stderr, "an unknown split is an error")
    # A budgeted-serving namespace is governed by CAKE under the default.
    r = subprocess.run([os.path.join(bin_dir, "kvcake-replay"), "--trace", trace, "--json",
                        "--policies=adaptive,cake,gdsf", "--max_requests=300",
                        "--serving=budgeted"], capture_output=True, text=True)
    check(r.returncode == 0, f"kvcake-replay --serving=budgeted: {r.stderr}")
    if r.returncode == 0:
        p = json.loads(r.stdout)["policies"]
        check(p["adaptive"]["exact"] == p["cake"]["exact"], "budgeted: adaptive != cake")
        check(p["adaptive"]["exact"] != p["gdsf"]["exact"], "budgeted: adaptive == gdsf")
    r = subprocess.run([os.path.join(bin_dir, "kvcake-replay"), "--trace", trace,
                        "--serving=sometimes"], capture_output=True, text=True)
    check(r.returncode == 2 and "--serving" in r.stderr, "an unknown serving mode is an error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--bin-dir", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        check_known_file(args.root, tmp)
        check_ablations(args.root, tmp)
    check_split(args.root, args.bin_dir)
    check_quick(args.root, args.bin_dir)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("policy-eval checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
