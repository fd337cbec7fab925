#!/usr/bin/env python3
"""Checks scripts/policy-eval.sh --quick --json (shape and sanity of the
result) and scripts/policy_eval.py on a hand-made attention file whose
recall figures are known (with and without a capture header), plus its
errors on bad input."""

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--bin-dir", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        check_known_file(args.root, tmp)
    check_quick(args.root, args.bin_dir)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("policy-eval checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
