#!/usr/bin/python3
"""Trains the byte-level transformer whose attention the policy evaluation captures.

Deterministic for a given seed, preset and device; checkpointed every
--ckpt-every steps into OUT/ckpt.pt and resumed from there when run again, so a
long CPU run survives interruptions. Every --probe-every steps (and at the end)
the structure probe (probe.py) runs and its table is appended to OUT/probe.log.

  scripts/attention/train.py --out var/attention --preset gpu     # ~10 min on an H100
  scripts/attention/train.py --out var/attention --preset cpu     # hours on 2 idle cores

Presets (override any field with --set NAME=VALUE):
  gpu: 8 layers, d 512, 8 query heads / 2 KV heads, ctx 1024, batch 64, 8000 steps
       (~30M parameters, ~0.5B tokens)
  cpu: 6 layers, d 128, 8 / 2 heads, ctx 256, batch 16, 5000 steps
       (~1.4M parameters, ~20M tokens: hours on two idle cores)

From step `augment_from` on, every window opens with the NUL byte (the corpus'
document separator, the model's start-of-text) and a share `repeat_frac` of the
windows quote an earlier span of themselves: text A, then a copy of a piece of
A (16 bytes to half the window). Source code repeats itself too, but rarely
within one window; the quotes make the copying circuit (induction heads) form
within a CPU-sized budget, and the fixed first byte gives the attention sink a
place to settle, as <s> does in the models kvcake serves. The cpu preset
starts them at step 1000, after plain text has taught the byte statistics.

From step `random_from` on, a share `random_frac` of the windows instead hold
a string of random printable bytes (16 to 64), some text, the same string
again and more text. Quotes of source code are partly predictable without
looking back; a random string is not, so its second copy can only be
predicted by finding the first: the strongest signal there is for the
copying circuit, which a CPU-sized run did not form from the quotes alone
(no induction head by step 2100 of the cpu preset). The cpu preset starts
them at step 2200.
  tiny: a smoke test (seconds)
"""

import argparse
import contextlib
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
import probe as P  # noqa: E402

PRESETS = {
    "gpu": dict(model=dict(n_layer=8, d_model=512, n_head=8, n_kv_head=2, d_ff=2048, ctx=1024,
                           bos=0),
                batch=64, steps=8000, lr=1e-3, warmup=300, augment_from=0, repeat_frac=0.5),
    "cpu": dict(model=dict(n_layer=6, d_model=128, n_head=8, n_kv_head=2, d_ff=512, ctx=256,
                           bos=0),
                batch=16, steps=5000, lr=2e-3, warmup=200, augment_from=1000,
                repeat_frac=0.5, random_from=2200, random_frac=0.25),
    "tiny": dict(model=dict(n_layer=2, d_model=64, n_head=4, n_kv_head=2, d_ff=128, ctx=64,
                            bos=0),
                 batch=4, steps=20, lr=3e-3, warmup=5, augment_from=10, repeat_frac=0.5),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for ckpt.pt, train.log, probe.log")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a model field or batch/steps/lr/warmup")
    ap.add_argument("--corpus", default="",
                    help="corpus file written by model.py --write-corpus (default: read the "
                         "installed Debian packages)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="auto", help="auto|cpu|cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--probe-every", type=int, default=1000)
    ap.add_argument("--until-probe-passes", action="store_true",
                    help="stop (checkpointed) at the first probe that passes")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (checkpointed) after this")
    return ap.parse_args()


def setup(args):
    preset = json.loads(json.dumps(PRESETS[args.preset]))
    for kv in args.set:
        name, value = kv.split("=", 1)
        value = float(value) if "." in value or "e" in value else int(value)
        if name in preset:
            preset[name] = value
        else:
            preset["model"][name] = value
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    return preset


def batches(data, ctx, batch, seed, step, preset, bos):
    """The batch of step `step`: the same for a seed whatever the restarts."""
    rng = random.Random(seed * 1_000_003 + step)
    starts = [rng.randrange(0, len(data) - ctx - 1) for _ in range(batch)]
    if step < preset.get("augment_from", 1 << 62) or bos < 0:
        x = torch.stack([data[s:s + ctx] for s in starts])
        y = torch.stack([data[s + 1:s + ctx + 1] for s in starts])
        return x.long(), y.long()
    rows = []
    for s in starts:
        if step >= preset.get("random_from", 1 << 62) and rng.random() < preset["random_frac"]:
            # NUL, random string R, text, R again, text to the end of the window.
            m = rng.randrange(16, 65)
            r = torch.tensor([rng.randrange(32, 127) for _ in range(m)], dtype=torch.uint8)
            gap = rng.randrange(0, ctx - 2 * m + 1)
            t = data[s:s + ctx - 2 * m]
            row = torch.cat([r, t[:gap], r, t[gap:]])
        elif rng.random() < preset["repeat_frac"]:
            # NUL, text A (p bytes), then a quote of A filling the window.
            p = rng.randrange(ctx // 2, ctx - 16 + 1)
            a = data[s:s + p]
            u = rng.randrange(0, 2 * p - ctx + 1)
            row = torch.cat([a, a[u:u + ctx - p]])
        else:
            row = data[s:s + ctx]
        rows.append(torch.cat([torch.tensor([bos], dtype=torch.uint8), row]))
    seq = torch.stack(rows).long()
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def lr_at(step, preset):
    w, n, lr = preset["warmup"], preset["steps"], preset["lr"]
    if step < w:
        return lr * (step + 1) / w
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, n - w))))


def main():
    args = parse_args()
    preset = setup(args)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    corpus, provenance = M.load_corpus(args.corpus)
    data = torch.frombuffer(bytearray(corpus), dtype=torch.uint8)
    split = int(len(data) * 0.99)
    train, val = data[:split], data[split:]
    cfg = M.Config(**preset["model"])
    net = M.ByteLM(cfg).to(args.device)
    opt = torch.optim.AdamW(net.parameters(), lr=preset["lr"], betas=(0.9, 0.95),
                            weight_decay=0.1)
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    step = 0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=args.device)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        print(f"resumed at step {step}", flush=True)
    meta = dict(preset=args.preset, seed=args.seed, device=args.device, config=cfg.to_dict(),
                params=sum(p.numel() for p in net.parameters()),
                corpus=provenance,
                batch=preset["batch"], steps=preset["steps"],
                augment_from=preset.get("augment_from"), repeat_frac=preset.get("repeat_frac"),
                random_from=preset.get("random_from"), random_frac=preset.get("random_frac"),
                tokens=preset["batch"] * cfg.ctx * preset["steps"])
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta), flush=True)

    def save():
        torch.save(dict(model=net.state_dict(), opt=opt.state_dict(), step=step,
                        config=cfg.to_dict(), meta=meta), ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)

    use_amp = args.device == "cuda"
    t0, log = time.time(), open(os.path.join(args.out, "train.log"), "a")
    while step < preset["steps"]:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, preset)
        x, y = batches(train, cfg.ctx, preset["batch"], args.seed, step, preset, cfg.bos)
        x, y = x.to(args.device), y.to(args.device)
        amp = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if use_amp
               else contextlib.nullcontext())
        with amp:
            logits, _ = net(x)
            loss = F.cross_entropy(logits.float().view(-1, 256), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0 or step == preset["steps"]:
            line = (f"step {step} loss {loss.item():.4f} lr {lr_at(step, preset):.2e} "
                    f"elapsed {time.time() - t0:.0f}s")
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()
        if step % args.ckpt_every == 0:
            save()
        if step % args.probe_every == 0 or step == preset["steps"]:
            net.eval()
            table = P.run_probe(net, val, args.device)
            net.train()
            with open(os.path.join(args.out, "probe.log"), "a") as f:
                f.write(f"step {step}\n{P.format_table(table)}\n")
            print(P.format_table(table), flush=True)
            if table["passed"] and args.until_probe_passes:
                save()
                print(f"probe passed at step {step}; stopped", flush=True)
                return 0
        if args.max_minutes and time.time() - t0 > args.max_minutes * 60:
            save()
            print(f"stopped after {args.max_minutes} min at step {step}; run again to resume")
            return 0
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
