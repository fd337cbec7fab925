#!/usr/bin/python3
"""Captures a trained model's block attention on multi-turn prompts from a trace.

Writes the attention file of docs/policy.md §6 (JSON lines) that
scripts/policy_eval.py scores: the first line is the capture's metadata
({"capture": {...}}, with the structure probe's verdict), then one line per
captured prompt (turn) in trace order, field for field as
`kvcake-replay --dump_attention` writes them. Deterministic: the same
checkpoint, trace, corpus and options give a byte-identical file.

  /usr/bin/python3 scripts/attention/capture.py --ckpt var/attention/ckpt.pt \\
      --trace ../shared/traces/conversation_trace.jsonl \\
      --out scripts/attention/data/captured.jsonl

The probe (probe.py) runs first; its verdict is recorded as "probe": "pass" or
"fail", and policy_eval.py marks the budgeted results provisional on "fail".
Its table is also written beside the output (captured.probe.txt).

Prompts. Each trace request is a prompt; requests that share leading
hash_ids are turns of one conversation. Every block id gets text once, when
it first appears, and keeps it: a run of new blocks is a contiguous span of
the held-out 1 % of the corpus (train.py's validation split), so block 0 (in
every request of the conversation trace) is the system prompt and the blocks
after it are the document. The last --quote-bytes of a prompt's new blocks
are its question: a verbatim quote of an earlier block of the prompt,
preferably of the part shared with earlier turns, neither quoted by them nor
inside their questions, so each turn asks about a different part of the
document. The answer is the
--answer-bytes that follow the quoted span in the document (what a model
that attends back to the quote should produce), fed after the prompt.

Scaling. A 512-token trace block is --block-bytes bytes of text (default
ctx / 32); a prompt's last block is scaled by its tokens (ceil(bytes *
tokens / 512)). Prompts whose text and answer do not fit the model's context
are skipped (their blocks still get their text); the metadata counts them.

Per prompt, layer and KV head: `mean` / `var` of each block's attention
(summed over the block's bytes, averaged over the KV group's query heads)
over the prompt's last --window queries (unbiased variance), and `answer`,
the answer bytes' mean attention on each prompt block.
"""

import argparse
import hashlib
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TRACE_BLOCK_TOKENS = 512
MIN_QUOTE = 4
DIGITS = 6  # significant digits of the written attention values
MASK64 = (1 << 64) - 1


class CaptureError(Exception):
    """Bad input: reported on stderr with exit status 2."""


def mix64(x):
    """SplitMix64 finaliser, as kvcake-replay maps trace ids to block hashes."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def block_tokens(hash_ids, input_length):
    """Tokens of each block: 512, the last what remains of input_length (>= 1)."""
    out = [TRACE_BLOCK_TOKENS] * len(hash_ids)
    if out:
        before = TRACE_BLOCK_TOKENS * (len(out) - 1)
        out[-1] = min(TRACE_BLOCK_TOKENS, max(1, input_length - before))
    return out


def read_trace(path):
    """[(index, hash_ids, input_length)] of a Mooncake JSONL trace."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise CaptureError(f"cannot read trace {path}: {e.strerror}")
    reqs = []
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                ids = [int(h) for h in obj["hash_ids"]]
                length = int(obj["input_length"])
            except (ValueError, KeyError, TypeError) as e:
                raise CaptureError(f"{path}:{lineno}: not a trace request ({e})")
            if any(h < 0 for h in ids) or length < 0:
                raise CaptureError(f"{path}:{lineno}: negative hash id or input_length")
            reqs.append((len(reqs), ids, length))
    if not reqs:
        raise CaptureError(f"{path}: no requests")
    return reqs


class PromptBuilder:
    """Gives every trace block its text and builds each request's prompt,
    question and answer (see the module docstring). Not thread-safe."""

    def __init__(self, text, seed, block_bytes, quote_bytes, answer_bytes):
        self.src = bytes(text)
        self.seed = seed
        self.block_bytes = block_bytes
        self.quote_bytes = quote_bytes
        self.answer_bytes = answer_bytes
        self.text = {}  # block id -> bytearray of block_bytes
        self.origin = {}  # block id -> offset of its text in src
        self.quoted = {}  # question block id -> id of the block it quotes
        self.answers = {}  # (last block id, its bytes) -> (answer, quoted index)

    def _rng(self, block_id):
        return random.Random(mix64(mix64(self.seed) ^ block_id))

    def _assign(self, ids):
        """Text for the blocks not seen before: each run of them a span of src."""
        b = self.block_bytes
        i = 0
        while i < len(ids):
            if ids[i] in self.text:
                i += 1
                continue
            j = i
            while j < len(ids) and ids[j] not in self.text and ids[j] not in ids[i:j]:
                j += 1
            span = (j - i) * b + self.answer_bytes
            if span + 1 >= len(self.src):
                raise CaptureError("the corpus' held-out text is too short for a prompt")
            off = self._rng(ids[i]).randrange(0, len(self.src) - span)
            for k in range(i, j):
                o = off + (k - i) * b
                self.text[ids[k]] = bytearray(self.src[o:o + b])
                self.origin[ids[k]] = o
            i = j

    def build(self, ids, tokens):
        """(prompt bytes, per-block byte lengths, answer bytes, quoted block
        index or -1) of one request."""
        b = self.block_bytes
        first_new = next((i for i, h in enumerate(ids) if h not in self.text), len(ids))
        # The question goes into the trailing run of blocks new to this request.
        tail = len(ids)
        while tail > 0 and ids[tail - 1] not in self.text and ids.count(ids[tail - 1]) == 1:
            tail -= 1
        self._assign(ids)
        lens = [b] * (len(ids) - 1) + [max(1, -(-b * tokens[-1] // TRACE_BLOCK_TOKENS))]
        starts = [sum(lens[:i]) for i in range(len(ids))]
        prompt = bytearray(b"".join(bytes(self.text[h][:n]) for h, n in zip(ids, lens)))
        size = len(prompt)
        key = (ids[-1], lens[-1])
        q = 0
        if tail < len(ids) and len(ids) > 1:
            # Short enough that block 1's quote and answer fit before it.
            q = min(self.quote_bytes, size - starts[tail],
                    (size - starts[1] - self.answer_bytes) // 2)
        source = None
        if q >= MIN_QUOTE:
            source = self._pick_source(ids, first_new, tail, starts, q, size - q)
        if source is None:
            if key in self.answers:  # a repeated prompt: the same question
                answer, source = self.answers[key]
                return bytes(prompt), lens, answer, source
            o = self.origin[ids[-1]] + lens[-1]
            return bytes(prompt), lens, self.src[o:o + self.answer_bytes], -1
        s = starts[source]
        quote = bytes(prompt[s:s + q])
        qstart = size - q
        prompt[qstart:] = quote
        for k in range(tail, len(ids)):
            lo, hi = max(starts[k], qstart), starts[k] + lens[k]
            if lo < hi:
                self.text[ids[k]][lo - starts[k]:hi - starts[k]] = quote[lo - qstart:hi - qstart]
                self.quoted[ids[k]] = ids[source]
        answer = bytes(prompt[s + q:s + q + self.answer_bytes])
        self.answers[key] = (answer, source)
        return bytes(prompt), lens, answer, source

    def _pick_source(self, ids, first_new, tail, starts, q, qstart):
        """The block the question quotes: one whose quote and answer lie
        before the question, not block 0 (the system prompt); preferably in
        the part shared with earlier turns, neither quoted by them nor part
        of their questions."""
        fits = [i for i in range(1, len(ids)) if starts[i] + q + self.answer_bytes <= qstart]
        done = {self.quoted[h] for h in ids[:first_new] if h in self.quoted}
        fresh = [i for i in fits if ids[i] not in done and ids[i] not in self.quoted]
        rng = self._rng(ids[tail] ^ 0x5151)
        for cands in ([i for i in fresh if i < first_new], fresh, fits):
            if cands:
                return rng.choice(cands)
        return None


def rounded(values):
    return [float(f"{v:.{DIGITS}g}") for v in values]


def capture_prompt(torch, net, prompt, lens, answer, window):
    """Per layer: {"layer", "heads": [{"mean", "var"}] per KV head,
    "answer": [per block] per KV head}."""
    c = net.c
    size, n = len(prompt), len(lens)
    # The model's start-of-text byte, if it has one, opens the prompt and
    # belongs to block 0 (as <s> belongs to a real prompt's first block).
    b = int(c.bos >= 0)
    x = torch.tensor([[c.bos] * b + list(prompt + answer)], dtype=torch.long)
    with torch.no_grad():
        _, probs = net(x, want_probs=True)
    keys = b + size  # the opening byte and the prompt
    owner = torch.zeros(keys, n, dtype=torch.float64)
    owner[:b, 0] = 1.0
    pos = b
    for i, length in enumerate(lens):
        owner[pos:pos + length, i] = 1.0
        pos += length
    w = min(window, size)
    layers = []
    for layer, p in enumerate(probs):
        # Queries: the prompt and answer bytes (not the opening byte).
        # [H, T, keys] -> per block [H, T, n] -> per KV group [G, group, T, n]
        per_block = p[0, :, b:, :keys].double() @ owner
        g = per_block.view(c.n_kv_head, c.n_head // c.n_kv_head, -1, n).mean(dim=1)
        win = g[:, size - w:size, :]
        mean = win.mean(dim=1)
        var = win.var(dim=1, unbiased=True) if w >= 2 else torch.zeros_like(mean)
        ans = g[:, size:, :].mean(dim=1) if answer else torch.zeros_like(mean)
        layers.append({
            "layer": layer,
            "heads": [{"mean": rounded(mean[h].tolist()),
                       "var": rounded(var[h].clamp(min=0).tolist())}
                      for h in range(c.n_kv_head)],
            "answer": [rounded(ans[h].tolist()) for h in range(c.n_kv_head)],
        })
    return layers


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="One command regenerates the committed capture (docs/policy.md §6): "
               "/usr/bin/python3 scripts/attention/capture.py --ckpt DIR/ckpt.pt "
               "--trace ../shared/traces/conversation_trace.jsonl "
               "--out scripts/attention/data/captured.jsonl")
    ap.add_argument("--ckpt", required=True, help="checkpoint written by train.py (ckpt.pt)")
    ap.add_argument("--trace", required=True, help="Mooncake JSONL trace")
    ap.add_argument("--out", required=True, help="attention file to write (JSONL)")
    ap.add_argument("--corpus", default="", help="as for train.py (default: the installed "
                    "Debian packages)")
    ap.add_argument("--max-prompts", type=int, default=600,
                    help="capture at most N prompts (0: every prompt that fits)")
    ap.add_argument("--max-requests", type=int, default=0,
                    help="read at most the first N trace requests (0: all)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the text, quote choices")
    ap.add_argument("--block-bytes", type=int, default=0,
                    help="bytes of text per 512-token block (0: ctx / 32, at least 2)")
    ap.add_argument("--quote-bytes", type=int, default=0,
                    help="bytes of a question's quote (0: min(32, ctx / 8))")
    ap.add_argument("--answer-bytes", type=int, default=0,
                    help="answer bytes fed after the prompt (0: min(32, ctx / 8))")
    ap.add_argument("--window", type=int, default=32, help="observation queries per prompt")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (1 keeps the float sums in a fixed order)")
    return ap.parse_args(argv)


def probe_path(out):
    """The probe's table beside the attention file: captured.jsonl -> captured.probe.txt."""
    return os.path.splitext(out)[0] + ".probe.txt"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def capture(args):
    if args.max_prompts < 0 or args.max_requests < 0:
        raise CaptureError("--max-prompts and --max-requests must be >= 0")
    if args.window < 1 or args.threads < 1 or args.seed < 0:
        raise CaptureError("--window and --threads must be >= 1, --seed >= 0")
    if min(args.block_bytes, args.quote_bytes, args.answer_bytes) < 0:
        raise CaptureError("--block-bytes, --quote-bytes and --answer-bytes must be >= 0")
    if not os.path.isfile(args.ckpt):
        raise CaptureError(f"cannot read checkpoint {args.ckpt}")
    reqs = read_trace(args.trace)
    if args.max_requests:
        reqs = reqs[:args.max_requests]

    import torch  # noqa: E402  (after the argument checks: a slow import)
    import model as M  # noqa: E402
    import probe as P  # noqa: E402

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        net, ck = P.load(args.ckpt, "cpu")
    except Exception as e:  # noqa: BLE001 (torch.load raises many kinds on a bad file)
        raise CaptureError(f"{args.ckpt}: not a train.py checkpoint ({e})")
    ctx = net.c.ctx
    block_bytes = args.block_bytes or max(2, ctx // 32)
    quote_bytes = args.quote_bytes or min(32, ctx // 8)
    answer_bytes = args.answer_bytes or min(32, ctx // 8)
    if block_bytes + answer_bytes >= ctx:
        raise CaptureError(f"--block-bytes + --answer-bytes must be below the context ({ctx})")
    try:
        corpus, provenance = M.load_corpus(args.corpus)
    except (OSError, ValueError, KeyError) as e:
        raise CaptureError(f"cannot load the corpus: {e}")
    data = torch.frombuffer(bytearray(corpus), dtype=torch.uint8)
    val = data[int(len(data) * 0.99):]

    table = P.run_probe(net, val, "cpu")
    print(P.format_table(table), flush=True)
    probe_summary = {k: table[k] for k in ("gates", "passed")}
    probe_summary.update({k: round(table[k], 4) for k in (
        "sink_middle_best", "sink_late_best", "induction_best", "loss_first_copy",
        "loss_second_copy")})
    probe_summary["sink_ratio"] = [round(v, 3) for v in table["sink_ratio"]]

    builder = PromptBuilder(val.numpy().tobytes(), args.seed, block_bytes, quote_bytes,
                            answer_bytes)
    lines, skipped, quoted = [], 0, 0
    for index, ids, length in reqs:
        if args.max_prompts and len(lines) >= args.max_prompts:
            break
        if not ids:
            skipped += 1
            continue
        tokens = block_tokens(ids, length)
        prompt, lens, answer, source = builder.build(ids, tokens)
        if (net.c.bos >= 0) + len(prompt) + len(answer) > ctx:
            skipped += 1
            continue
        quoted += source >= 0
        obj = {
            "id": index,
            "block_hashes": [mix64(h) for h in ids],
            "block_tokens": tokens,
            "quote_block": source,
            "layers": capture_prompt(torch, net, prompt, lens, answer, args.window),
        }
        lines.append(json.dumps(obj, sort_keys=True, separators=(",", ":")))
    if not lines:
        raise CaptureError("no prompt fits the model's context; lower --block-bytes")
    meta = ck.get("meta", {})
    header = {"capture": {
        "probe": "pass" if table["passed"] else "fail",
        "probe_detail": probe_summary,
        "model": dict(config=net.c.to_dict(), step=ck.get("step"), preset=meta.get("preset"),
                      train_seed=meta.get("seed"),
                      params=sum(p.numel() for p in net.parameters()),
                      checkpoint_sha256=sha256_file(args.ckpt)),
        "corpus": {k: provenance[k] for k in ("packages", "files", "bytes", "sha256")},
        "trace": os.path.basename(args.trace),
        "scaling": dict(block_bytes=block_bytes, trace_block_tokens=TRACE_BLOCK_TOKENS,
                        quote_bytes=quote_bytes, answer_bytes=answer_bytes,
                        window=args.window),
        "seed": args.seed,
        "prompts": len(lines),
        "quoted": quoted,
        "skipped": skipped,
    }}
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n")
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, args.out)
    model = header["capture"]["model"]
    with open(probe_path(args.out), "w", encoding="utf-8") as f:
        f.write(f"checkpoint: preset {model['preset']}, step {model['step']}, sha256 "
                f"{model['checkpoint_sha256']}\n{P.format_table(table)}\n")
    print(f"capture: {len(lines)} prompts ({quoted} with a quote, {skipped} skipped), "
          f"probe {header['capture']['probe']}, wrote {args.out} and {probe_path(args.out)}")
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return capture(args)
    except CaptureError as e:
        print(f"capture: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
