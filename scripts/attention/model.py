"""A small byte-level transformer whose attention kvcake's policy evaluation captures.

Decoder-only, pre-norm, rotary positions, grouped-query attention (several query
heads share one KV head, as in the models kvcake serves, so the capture has the
same head grouping CAKE pools over). Attention is computed explicitly so the
probabilities can be returned; the model is small enough that this costs nothing
that matters.

The corpus is the Python standard library as Debian ships it (the .py files of
the libpython3.11-minimal and libpython3.11-stdlib packages), read as bytes: code
repeats identifiers and quotes earlier spans, which is what teaches a model to
attend back to an earlier occurrence (induction heads).
"""

import hashlib
import json
import math
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

CORPUS_PACKAGES = ("libpython3.11-minimal", "libpython3.11-stdlib")


def corpus_files(packages=CORPUS_PACKAGES):
    """The corpus' files, sorted, from the installed packages' file lists."""
    files = []
    for p in packages:
        out = subprocess.run(["dpkg", "-L", p], capture_output=True, text=True, check=True)
        files += [f for f in out.stdout.split() if f.endswith(".py")]
    return sorted(set(files))


def package_versions(packages=CORPUS_PACKAGES):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *packages],
                         capture_output=True, text=True, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())


def build_corpus(packages=CORPUS_PACKAGES):
    """(bytes of every corpus file joined by NUL, provenance dict)."""
    files = corpus_files(packages)
    parts = []
    for f in files:
        with open(f, "rb") as fh:
            parts.append(fh.read())
    data = b"\0".join(parts)
    provenance = dict(packages=package_versions(packages), files=len(files), bytes=len(data),
                      sha256=hashlib.sha256(data).hexdigest())
    return data, provenance


def load_corpus(path=""):
    """The corpus from a file written by --write-corpus (with its .json beside
    it), or built from the installed packages when path is empty."""
    if not path:
        return build_corpus()
    with open(path, "rb") as f:
        data = f.read()
    with open(path + ".json") as f:
        provenance = json.load(f)
    if hashlib.sha256(data).hexdigest() != provenance["sha256"]:
        raise ValueError(f"{path} does not match its provenance file")
    return data, provenance


class Config:
    def __init__(self, **kw):
        self.vocab = 256
        self.n_layer = 6
        self.d_model = 256
        self.n_head = 8
        self.n_kv_head = 2
        self.d_ff = 1024
        self.ctx = 512
        self.rope_base = 10000.0
        # The byte that opens every sequence the model sees (-1: none). NUL is
        # also the corpus' document separator, so it reads as "start of text",
        # as <s> does for the models kvcake serves; their attention sink sits on it.
        self.bos = -1
        for k, v in kw.items():
            if not hasattr(self, k):
                raise ValueError(f"unknown config field {k}")
            setattr(self, k, v)

    def to_dict(self):
        return dict(self.__dict__)

    def num_params(self):
        d, f, l = self.d_model, self.d_ff, self.n_layer
        hd = d // self.n_head
        attn = d * d + 2 * d * hd * self.n_kv_head + d * d
        return self.vocab * d + l * (attn + 3 * d * f + 2 * d) + d


def with_bos(c, seq):
    """seq (a list of byte values) behind the model's opening byte, if it has one."""
    return ([c.bos] if c.bos >= 0 else []) + list(seq)


def rope(x, base):
    """Rotary position embedding over the last dimension of [B, H, T, D]."""
    t, d = x.shape[-2], x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
    ang = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.hd = c.d_model // c.n_head
        self.q = nn.Linear(c.d_model, c.d_model, bias=False)
        self.kv = nn.Linear(c.d_model, 2 * self.hd * c.n_kv_head, bias=False)
        self.o = nn.Linear(c.d_model, c.d_model, bias=False)

    def forward(self, x, want_probs=False):
        b, t, _ = x.shape
        c = self.c
        q = self.q(x).view(b, t, c.n_head, self.hd).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, c.n_kv_head, self.hd).permute(2, 0, 3, 1, 4)
        q, k = rope(q, c.rope_base), rope(k, c.rope_base)
        group = c.n_head // c.n_kv_head
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        mask = torch.ones(t, t, device=x.device, dtype=torch.bool).triu(1)
        p = s.masked_fill(mask, float("-inf")).softmax(-1)
        y = (p @ v).transpose(1, 2).reshape(b, t, c.d_model)
        return self.o(y), (p if want_probs else None)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n1, self.attn = RMSNorm(c.d_model), Attention(c)
        self.n2 = RMSNorm(c.d_model)
        self.up = nn.Linear(c.d_model, 2 * c.d_ff, bias=False)
        self.down = nn.Linear(c.d_ff, c.d_model, bias=False)

    def forward(self, x, want_probs=False):
        a, p = self.attn(self.n1(x), want_probs)
        x = x + a
        g, u = self.up(self.n2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u), p


class ByteLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.emb = nn.Embedding(c.vocab, c.d_model)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.norm = RMSNorm(c.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, want_probs=False):
        """Logits [B, T, 256] and, if asked, each layer's probabilities [B, H, T, T]."""
        x = self.emb(idx)
        probs = []
        for blk in self.blocks:
            x, p = blk(x, want_probs)
            probs.append(p)
        logits = self.norm(x) @ self.emb.weight.t()
        return logits, (probs if want_probs else None)


if __name__ == "__main__":
    # model.py --write-corpus FILE: the corpus and its provenance (FILE.json), to
    # carry to a machine without these Debian packages (a GPU machine).
    if len(sys.argv) == 3 and sys.argv[1] == "--write-corpus":
        data, prov = build_corpus()
        with open(sys.argv[2], "wb") as f:
            f.write(data)
        with open(sys.argv[2] + ".json", "w") as f:
            json.dump(prov, f, indent=1)
        print(json.dumps(prov))
    else:
        print("usage: model.py --write-corpus FILE", file=sys.stderr)
        sys.exit(2)
