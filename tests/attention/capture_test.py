#!/usr/bin/env python3
"""Checks scripts/attention/capture.py's output: trains train.py's `tiny`
preset into a temp dir, captures its attention twice on a small hand-made
trace and checks the attention file (the format of docs/policy.md §6, block
hashes as kvcake-replay maps trace ids, determinism, the probe's verdict),
that scripts/policy_eval.py reads it and marks it provisional, and the
errors on bad input. Exits 77 (skipped) when the torch interpreter has no
torch or the corpus' Debian packages are not installed."""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

SKIP = 77
FAILURES = []
# kvcake-replay --dump_attention's block hash of trace id 0 (SplitMix64).
MIX64_OF_0 = 16294208416658607535


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)
    return cond


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def write_trace(path):
    """Two conversations and a long prompt: r0, its follow-ups r2 (all of r0
    but its partial last block, then new blocks) and r3 (r2 but its last, then
    new), r1 and its exact repeat r5, and r4 too long for a 64-byte context."""
    doc = list(range(1, 13))
    reqs = [
        dict(hash_ids=[0] + doc, input_length=12 * 512 + 100),
        dict(hash_ids=[0] + list(range(20, 30)), input_length=10 * 512 + 300),
        dict(hash_ids=[0] + doc[:-1] + [40, 41, 42, 43], input_length=15 * 512 + 7),
        dict(hash_ids=[0] + doc[:-1] + [40, 41, 42, 50, 51, 52], input_length=17 * 512 + 400),
        dict(hash_ids=list(range(100, 200)), input_length=100 * 512),
        dict(hash_ids=[0] + list(range(20, 30)), input_length=10 * 512 + 300),
    ]
    with open(path, "w", encoding="utf-8") as f:
        for i, r in enumerate(reqs):
            f.write(json.dumps(dict(timestamp=i, output_length=10, **r)) + "\n")
    return reqs


def check_file(path, reqs):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    header = lines[0].get("capture")
    if not check(isinstance(header, dict), "the first line is the capture header"):
        return []
    check(header.get("probe") == "fail", "the tiny model fails the structure probe")
    check(header.get("probe_detail", {}).get("passed") is False, "probe_detail.passed")
    cfg = header.get("model", {}).get("config", {})
    check(cfg.get("ctx") == 64 and header["model"].get("step") == 20, "model metadata")
    check(header.get("prompts") == 5 and header.get("skipped") == 1,
          f"5 prompts captured, the long one skipped: {header}")
    prompts = lines[1:]
    check([p["id"] for p in prompts] == [0, 1, 2, 3, 5], "prompt ids are trace indices")
    for p in prompts:
        req = reqs[p["id"]]
        n = len(req["hash_ids"])
        check(len(p["block_hashes"]) == n, f"prompt {p['id']}: one hash per block")
        check(p["block_tokens"][:-1] == [512] * (n - 1) and
              p["block_tokens"][-1] == req["input_length"] - 512 * (n - 1),
              f"prompt {p['id']}: block_tokens")
        check(len(p["layers"]) == cfg.get("n_layer"), f"prompt {p['id']}: a line per layer")
        for layer in p["layers"]:
            heads, answer = layer["heads"], layer["answer"]
            check(len(heads) == cfg.get("n_kv_head") and len(answer) == len(heads),
                  f"prompt {p['id']}: one entry per KV head")
            for h, a in zip(heads, answer):
                values = h["mean"] + h["var"] + a
                check(len(h["mean"]) == n and len(h["var"]) == n and len(a) == n,
                      f"prompt {p['id']}: per-block arrays")
                check(all(math.isfinite(v) and v >= 0 for v in values),
                      f"prompt {p['id']}: finite, non-negative values")
                # Window queries attend only within the prompt; answer
                # queries also attend to the answer.
                check(abs(sum(h["mean"]) - 1) < 1e-3, f"prompt {p['id']}: window rows sum to 1")
                check(0 < sum(a) <= 1 + 1e-3, f"prompt {p['id']}: answer attention in (0, 1]")
    by_id = {p["id"]: p for p in prompts}
    check(by_id[0]["block_hashes"][0] == MIX64_OF_0, "block hashes mapped as kvcake-replay")
    check(by_id[1]["block_hashes"] == by_id[5]["block_hashes"], "equal ids, equal hashes")
    check(by_id[2]["block_hashes"][:12] == by_id[0]["block_hashes"][:12], "shared prefix")
    q2, q3 = by_id[2]["quote_block"], by_id[3]["quote_block"]
    check(1 <= q2 < 12 and 1 <= q3 < 15 and q2 != q3,
          f"follow-ups quote different earlier blocks ({q2}, {q3})")
    check(by_id[5]["quote_block"] == by_id[1]["quote_block"], "a repeated prompt, same question")
    return lines


def policy_eval(root, tmp, attention):
    exact = os.path.join(tmp, "exact.json")
    with open(exact, "w", encoding="utf-8") as f:
        json.dump({"policies": {"lru": {"exact": {"reload_ms_mean": 1.0, "reload_ms_p99": 2.0,
                                                  "gpu_hit_rate": 0.5,
                                                  "host_hit_rate": 0.1}}}}, f)
    return run([sys.executable, os.path.join(root, "scripts", "policy_eval.py"), "--exact",
                exact, "--attention", attention, "--source", "captured", "--json"])


def check_policy_eval(root, tmp, attention, lines):
    r = policy_eval(root, tmp, attention)
    if not check(r.returncode == 0, f"policy_eval.py exited {r.returncode}: {r.stderr}"):
        return
    result = json.loads(r.stdout.strip().splitlines()[-1])
    check(result["provisional"] is True, "a failed probe marks the results provisional")
    check(result["attention_probe"] == "fail", "attention_probe")
    check("failed the structure probe" in r.stdout, "the table says why it is provisional")
    cake = result["budgeted"]["cake"]["0.1"]
    # Follow-ups: r0 -> r2, r2 -> r3 and r1 -> r5 (a repeat starts with all of r1).
    check(cake["prompts"] == 5 and cake["followups"] == 3, f"prompts and follow-ups: {cake}")
    # The same file with a passing verdict is not provisional.
    passed = os.path.join(tmp, "passed.jsonl")
    header = dict(lines[0])
    header["capture"] = dict(header["capture"], probe="pass")
    with open(passed, "w", encoding="utf-8") as f:
        for obj in [header] + lines[1:]:
            f.write(json.dumps(obj) + "\n")
    r = policy_eval(root, tmp, passed)
    check(r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])["provisional"]
          is False, "a passed probe is not provisional")
    # Bad headers: an unknown verdict, a header after a prompt.
    for name, objs, msg in (
            ("bad_verdict", [{"capture": {"probe": "maybe"}}] + lines[1:], "must be"),
            ("late_header", lines[1:2] + [lines[0]] + lines[2:], "must be the first line")):
        path = os.path.join(tmp, name + ".jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for obj in objs:
                f.write(json.dumps(obj) + "\n")
        r = policy_eval(root, tmp, path)
        check(r.returncode == 2 and msg in r.stderr, f"{name}: exit 2 with '{msg}': {r.stderr}")


def check_bad_input(torch_python, capture, tmp, ckpt, trace):
    bad_trace = os.path.join(tmp, "bad_trace.jsonl")
    with open(bad_trace, "w", encoding="utf-8") as f:
        f.write('{"hash_ids": [0, 1], "input_length": 600}\n{"hash_ids": "x"}\n')
    not_ckpt = os.path.join(tmp, "not_ckpt.pt")
    with open(not_ckpt, "w", encoding="utf-8") as f:
        f.write("not a checkpoint\n")
    out = os.path.join(tmp, "bad.jsonl")
    for args, msg in (
            (["--ckpt", ckpt, "--trace", os.path.join(tmp, "missing.jsonl")], "cannot read trace"),
            (["--ckpt", ckpt, "--trace", bad_trace], "bad_trace.jsonl:2: not a trace request"),
            (["--ckpt", os.path.join(tmp, "missing.pt"), "--trace", trace],
             "cannot read checkpoint"),
            (["--ckpt", not_ckpt, "--trace", trace], "not a train.py checkpoint"),
            (["--ckpt", ckpt, "--trace", trace, "--block-bytes", "60"], "below the context"),
            (["--ckpt", ckpt, "--trace", trace, "--window", "0"], "must be >= 1")):
        r = run([torch_python, capture, "--out", out] + args)
        check(r.returncode == 2 and msg in r.stderr,
              f"capture {args}: exit 2 with '{msg}', got {r.returncode}: {r.stderr[-500:]}")
    check(not os.path.exists(out) and not os.path.exists(os.path.join(tmp, "bad.probe.txt")),
          "a failed capture writes nothing")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="source tree")
    ap.add_argument("--torch-python", default="/usr/bin/python3",
                    help="interpreter with torch (Debian's python3-torch)")
    args = ap.parse_args()
    probe = run([args.torch_python, "-c", "import torch"]) if os.path.exists(
        args.torch_python) else None
    if probe is None or probe.returncode != 0:
        print(f"SKIP: {args.torch_python} has no torch (install python3-torch)")
        return SKIP
    if run(["dpkg", "-L", "libpython3.11-stdlib"]).returncode != 0:
        print("SKIP: the corpus' Debian package libpython3.11-stdlib is not installed")
        return SKIP
    scripts = os.path.join(args.root, "scripts", "attention")
    capture = os.path.join(scripts, "capture.py")
    with tempfile.TemporaryDirectory(prefix="kvcake-capture-test.") as tmp:
        model_dir = os.path.join(tmp, "model")
        r = run([args.torch_python, os.path.join(scripts, "train.py"), "--out", model_dir,
                 "--preset", "tiny", "--threads", "1"])
        if not check(r.returncode == 0, f"train.py --preset tiny: {r.stderr[-2000:]}"):
            return 1
        ckpt = os.path.join(model_dir, "ckpt.pt")
        trace = os.path.join(tmp, "trace.jsonl")
        reqs = write_trace(trace)
        outs = []
        for name in ("a", "b"):
            out = os.path.join(tmp, name, "captured.jsonl")
            r = run([args.torch_python, capture, "--ckpt", ckpt, "--trace", trace, "--out", out])
            if not check(r.returncode == 0, f"capture.py: {r.stderr[-2000:]}"):
                return 1
            check("probe: FAILED" in r.stdout, "capture prints the probe's table")
            with open(out, "rb") as f:
                outs.append(f.read())
        check(outs[0] == outs[1], "two captures are byte-identical")
        with open(os.path.join(tmp, "a", "captured.probe.txt"), encoding="utf-8") as f:
            table = f.read()
        check("step 20" in table and "probe: FAILED" in table, "the probe's table beside it")
        attention = os.path.join(tmp, "a", "captured.jsonl")
        lines = check_file(attention, reqs)
        if lines:
            check_policy_eval(args.root, tmp, attention, lines)
        check_bad_input(args.torch_python, capture, tmp, ckpt, trace)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)", file=sys.stderr)
        return 1
    print("capture_test: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
