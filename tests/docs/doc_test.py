#!/usr/bin/env python3
"""The doc test: runs the shell commands of README.md and docs/operations.md.

Every fenced shell block (```sh, ```bash, ```console) in the checked files is
either run or, where it cannot run on a test machine, checked statically, and an
indented code block is an error (it could hide an untested command). A block's
mode is the HTML comment right above its fence:

  (none) or <!-- doctest: run -->  run the block in bash (-e -o pipefail)
  <!-- doctest: env -->            run it, and prepend it to every later block
                                   of the same file (exports, aliases)
  <!-- doctest: daemons -->        each command is a long-running kvcaked: start
                                   it, wait for its admin address to answer,
                                   SIGTERM it, require exit status 0
  <!-- doctest: service ready=HOST:PORT[,HOST:PORT...] -->
                                   the first command is a long-running service:
                                   start it, wait until every HOST:PORT answers,
                                   run the other commands, then interrupt it
  <!-- doctest: with-daemon [seed] [token=PATH] -->
                                   run the block against a kvcaked started with
                                   its defaults (seed: after an engine saved a
                                   prompt through the Python client; token: the
                                   admin API requires the token in PATH)
  <!-- doctest: with-cluster -->   run the block while scripts/cluster.sh runs
                                   (once it has saved and read back its prompt)
  <!-- doctest: skip REASON -->    not run (systemd, docker, a real cluster...)
  <!-- tests/install: NAME -->     run by tests/install

A `kvcakectl ...` or `kvcaked ...` command in running text (the tables of
commands) is checked statically.

In console blocks only the lines starting with "$ " are commands; the rest is
sample output. Every block, run or not, is checked with `bash -n`, every
repository path it names must exist, and every --flag given to kvcaked or
kvcakectl (on the command line or in a checked-in flagfile) must be one the
tool knows.

The commands run as written from the repository root, with these paths moved
into a scratch directory so the test writes nothing outside it and its
checkout: /etc/kvcake, /opt/kvcake, /var/lib/kvcake; build/release/bin is the
build tree under test and ../shared the shared data directory.

usage: doc_test.py --root DIR --bin-dir DIR [--shared DIR] [--list] [FILE...]
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEFAULT_FILES = ["README.md", "docs/operations.md"]
SHELL_LANGS = {"sh", "bash", "shell", "console"}
MODES = {"run", "env", "daemons", "service", "with-daemon", "with-cluster", "skip"}
ANNOTATION = re.compile(r"^<!--\s*(doctest|tests/install):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)")
REPO_PATH = re.compile(r"(?<![\w/.-])((?:deploy|scripts|client|docs|tests|cmake)/[\w./-]*[\w/])")
BIN_PATH = re.compile(r"(?<![\w/.-])build/release/bin/([\w.+-]+)")
DEFAULT_ADMIN = "127.0.0.1:18516"
CLUSTER_ADMIN = "127.0.0.1:18621"
TOOLS = ("kvcaked", "kvcakectl")
# `kvcakectl ...` in running text (tables): checked statically, like a skipped block.
INLINE_COMMAND = re.compile(r"`((?:build/release/bin/)?kvcake(?:d|ctl) [^`]+)`")


class Block:
    def __init__(self, path, line, lang, mode, args, text):
        self.path, self.line, self.lang = path, line, lang
        self.mode, self.args, self.text = mode, args, text

    def where(self):
        return f"{self.path}:{self.line}"

    def commands(self):
        """The block's commands, continuation lines joined, comments dropped."""
        lines = self.text.splitlines()
        if self.lang == "console":
            lines = [l[2:] for l in lines if l.startswith("$ ")]
        out, cur = [], ""
        for raw in lines:
            line = raw.rstrip()
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            out.append((cur + line).strip())
            cur = ""
        if cur:
            out.append(cur.strip())
        return out

    def script(self):
        return "\n".join(self.commands()) + "\n"


def parse(root, rel):
    """Returns (blocks, errors) of one markdown file."""
    blocks, errors = [], []
    lines = open(os.path.join(root, rel), encoding="utf-8").read().splitlines()
    i, annotation, prev_blank = 0, None, True
    while i < len(lines):
        line = lines[i]
        m = ANNOTATION.match(line.strip())
        if m:
            annotation = (m.group(1), m.group(2), i + 1)
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            lang, start = f.group(2).lower(), i + 1
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            body = "\n".join(l[len(f.group(1)):] for l in lines[i + 1:j])
            if lang in SHELL_LANGS:
                if annotation and annotation[0] == "tests/install":
                    mode, args = "tests/install", annotation[1]
                elif annotation:
                    words = annotation[1].split(None, 1)
                    mode, args = words[0], (words[1] if len(words) > 1 else "")
                else:
                    mode, args = "run", ""
                if mode not in MODES and mode != "tests/install":
                    errors.append(f"{rel}:{start}: unknown doctest mode '{mode}'")
                elif mode == "skip" and not args:
                    errors.append(f"{rel}:{start}: 'doctest: skip' needs a reason")
                else:
                    blocks.append(Block(rel, start, lang, mode, args, body))
            elif annotation and annotation[0] == "doctest":
                errors.append(f"{rel}:{start}: doctest annotation on a '{lang}' block")
            annotation, prev_blank, i = None, False, j + 1
            continue
        if line.startswith("    ") and line.strip() and prev_blank:
            errors.append(f"{rel}:{i + 1}: indented code block; fence it with a language "
                          "(```sh runs in the doc test, ```text does not)")
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                i += 1
            prev_blank = True
            continue
        for span in INLINE_COMMAND.findall(line):
            blocks.append(Block(rel, i + 1, "sh", "inline", "", span))
        if line.strip():
            annotation = annotation if line.strip().startswith("<!--") else None
        prev_blank = not line.strip()
        i += 1
    return blocks, errors


def tool_flags(bin_dir, tool, cache={}):
    if tool not in cache:
        out = subprocess.run([os.path.join(bin_dir, tool), "--help"], capture_output=True,
                             text=True, timeout=30)
        cache[tool] = set(re.findall(r"(?<![\w-])--(\w+)", out.stdout + out.stderr))
        cache[tool] |= {"flagfile", "help"}
    return cache[tool]


def static_errors(block, root, bin_dir):
    errors = []
    script = block.script()
    r = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    if r.returncode != 0:
        errors.append(f"{block.where()}: bash -n: {r.stderr.strip()}")
    for p in REPO_PATH.findall(script):
        if not os.path.exists(os.path.join(root, p)):
            errors.append(f"{block.where()}: names {p}, which is not in the repository")
    for b in BIN_PATH.findall(script):
        if not os.path.exists(os.path.join(bin_dir, b)):
            errors.append(f"{block.where()}: names build/release/bin/{b}, which the build lacks")
    for cmd in block.commands():
        try:
            words = shlex.split(cmd, comments=True)
        except ValueError as e:
            errors.append(f"{block.where()}: cannot split '{cmd}': {e}")
            continue
        for tool_name, flag_words in find_tool_invocations(words):
            known = tool_flags(bin_dir, tool_name)
            for w in flag_words:
                name, _, value = w[2:].partition("=")
                if name not in known:
                    errors.append(f"{block.where()}: {tool_name} has no flag --{name}")
                if name == "flagfile" and os.path.exists(os.path.join(root, value)):
                    for fl in open(os.path.join(root, value), encoding="utf-8"):
                        fm = re.match(r"^\s*--(\w+)", fl)
                        if fm and fm.group(1) not in known:
                            errors.append(f"{block.where()}: {value}: {tool_name} has no flag "
                                          f"--{fm.group(1)}")
    return errors


def find_tool_invocations(words):
    """Yields (tool, [--flag[=value] words]) for each kvcaked/kvcakectl in a split command."""
    tool, flags = None, []
    for w in words + ["|"]:
        if w in ("|", "&&", "||", ";"):
            if tool:
                yield tool, flags
            tool, flags = None, []
            continue
        base = os.path.basename(w)
        if tool is None and base in TOOLS and not w.startswith("-"):
            tool = base
            continue
        if tool and w.startswith("--") and w != "--":
            flags.append(w)


class Sandbox:
    """Scratch paths for the rewritten system paths, and the environment."""

    def __init__(self, root, bin_dir, shared):
        self.root, self.bin_dir, self.shared = root, bin_dir, shared
        self.dir = tempfile.mkdtemp(prefix="kvcake-doctest.")
        self.env = dict(os.environ)
        self.env.pop("KVCAKE_ADMIN", None)
        self.env.pop("KVCAKE_ADMIN_TOKEN_FILE", None)
        self.env["KVCAKE_BIN_DIR"] = bin_dir
        # A documented curl that gets an HTTP error is a doc bug: make it fail.
        with open(os.path.join(self.dir, ".curlrc"), "w") as f:
            f.write("fail-with-body\n")
        self.env["CURL_HOME"] = self.dir

    def rewrite(self, text):
        for p in ("/etc/kvcake", "/opt/kvcake", "/var/lib/kvcake"):
            text = re.sub(r"(?<![\w.-])" + re.escape(p) + r"(?=[/\s'\"]|$)", self.dir + p, text)
        text = re.sub(r"(?<![\w/.-])build/release/bin/", self.bin_dir + "/", text)
        if self.shared:
            text = re.sub(r"(?<![\w/.-])\.\./shared/", self.shared + "/", text)
        return text

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_port(addr, proc, timeout_s):
    host, port = addr.rsplit(":", 1)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"exited with status {proc.returncode} before {addr} answered"
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.2)
    return f"{addr} did not answer within {timeout_s} s"


def admin_address(cmd, root):
    m = re.search(r"--admin_listen=(\S+)", cmd)
    if m:
        return m.group(1)
    m = re.search(r"--flagfile=(\S+)", cmd)
    if m and os.path.exists(os.path.join(root, m.group(1))):
        fm = re.search(r"^--admin_listen=(\S+)", open(os.path.join(root, m.group(1))).read(), re.M)
        if fm:
            return fm.group(1)
    return DEFAULT_ADMIN


def start(cmd, sb, log):
    return subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=sb.root, env=sb.env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc, sig, timeout_s=90):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def tail(path, n=30):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return ""


def run_script(script, sb, prelude, timeout_s):
    body = ("set -e -o pipefail\nshopt -s expand_aliases\n"
            "trap 'echo \"doc-test: failed: $BASH_COMMAND\" >&2' ERR\n" + prelude + "\n" + script)
    return subprocess.run(["bash", "-c", body], cwd=sb.root, env=sb.env, capture_output=True,
                          text=True, timeout=timeout_s)


SEED = r"""
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "client", "python"))
import kvcake
with kvcake.Client("127.0.0.1:18515", "llama-3-8b@main/fp16/tp1") as c:
    c.register_namespace(num_layers=4, block_tokens=16, layer_block_bytes=64 << 10)
    chain = c.hash_tokens(list(range(16 * 8)))
    for layer in range(4):
        c.put(chain, [layer] * len(chain), [bytes([layer + 1]) * (64 << 10)] * len(chain))
    assert c.lookup_prefix(chain, layer=0) == len(chain), "seeded prefix not found"
"""


def with_daemon(block, sb, prelude, opts):
    args = block.args.split()
    flags = [f"--ssd_path={sb.dir}/with-daemon/ssd"]
    for a in args:
        if a.startswith("token="):
            flags.append(f"--admin_token_file={sb.rewrite(a[6:])}")
    log = os.path.join(sb.dir, "with-daemon.log")
    with open(log, "w") as lf:
        proc = start(os.path.join(sb.bin_dir, "kvcaked") + " " + " ".join(flags), sb, lf)
    try:
        err = wait_port(DEFAULT_ADMIN, proc, 60)
        if err:
            return f"kvcaked for the block: {err}\n{tail(log)}"
        if "seed" in args:
            r = subprocess.run([sys.executable, "-c", SEED, sb.root], env=sb.env,
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                return f"seeding through the Python client failed:\n{r.stdout}{r.stderr}"
        return check(run_script(block.rewrite_script, sb, prelude, opts.timeout))
    finally:
        status = stop(proc, signal.SIGTERM)
        if status not in (0, None) and opts.verbose:
            print(f"  (kvcaked exited {status})")


def with_cluster(block, sb, prelude, opts):
    log = os.path.join(sb.dir, "cluster.log")
    with open(log, "w") as lf:
        proc = start("scripts/cluster.sh", sb, lf)
    try:
        deadline = time.monotonic() + 180
        while "cluster running:" not in tail(log, 400):
            if proc.poll() is not None or time.monotonic() > deadline:
                return f"scripts/cluster.sh did not come up:\n{tail(log)}"
            time.sleep(0.5)
        return check(run_script(block.rewrite_script, sb, prelude, opts.timeout))
    finally:
        stop(proc, signal.SIGINT)


def daemons(block, sb, opts):
    for i, cmd in enumerate(block.commands()):
        log = os.path.join(sb.dir, f"daemon-{block.line}-{i}.log")
        with open(log, "w") as lf:
            proc = start(sb.rewrite(cmd), sb, lf)
        err = wait_port(admin_address(cmd, sb.root), proc, 60)
        status = stop(proc, signal.SIGTERM)
        if err:
            return f"'{cmd}': {err}\n{tail(log)}"
        if status != 0:
            return f"'{cmd}': exit status {status} after SIGTERM (want 0)\n{tail(log)}"
    return None


def service(block, sb, prelude, opts):
    cmds = block.commands()
    ready = dict(a.split("=", 1) for a in block.args.split() if "=" in a).get("ready")
    log = os.path.join(sb.dir, f"service-{block.line}.log")
    with open(log, "w") as lf:
        proc = start(sb.rewrite(cmds[0]), sb, lf)
    try:
        deadline = time.monotonic() + 180
        for addr in ready.split(","):
            err = wait_port(addr, proc, max(1, deadline - time.monotonic()))
            if err:
                return f"'{cmds[0]}': {err}\n{tail(log)}"
        err = check(run_script(sb.rewrite("\n".join(cmds[1:])), sb, prelude, opts.timeout))
        return f"{err}\n--- {cmds[0]} (its output so far)\n{tail(log)}" if err else None
    finally:
        stop(proc, signal.SIGINT)


def check(r):
    if r.returncode == 0:
        return None
    return f"exit status {r.returncode}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--shared", default="")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per block")
    ap.add_argument("--list", action="store_true", help="list the blocks and their modes")
    ap.add_argument("--only", default="", help="run only blocks whose location contains this")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("files", nargs="*")
    opts = ap.parse_args()
    root, bin_dir = os.path.abspath(opts.root), os.path.abspath(opts.bin_dir)
    shared = os.path.abspath(opts.shared) if opts.shared else os.path.join(os.path.dirname(root),
                                                                           "shared")
    files = opts.files or DEFAULT_FILES

    blocks, errors = [], []
    for f in files:
        b, e = parse(root, f)
        blocks += b
        errors += e
    for b in blocks:
        errors += static_errors(b, root, bin_dir)
    if opts.list:
        for b in blocks:
            print(f"{b.where():28} {b.mode:14} {b.args[:40]:40} {b.commands()[:1]}")
    if errors:
        print("doc test: static checks failed:\n  " + "\n  ".join(errors))
        return 1
    if opts.list:
        return 0

    sb = Sandbox(root, bin_dir, shared)
    failures, ran, skipped = [], 0, []
    preludes = {}
    try:
        for b in blocks:
            if opts.only and opts.only not in b.where():
                continue
            b.rewrite_script = sb.rewrite(b.script())
            prelude = preludes.get(b.path, "")
            t0 = time.monotonic()
            if b.mode in ("skip", "tests/install", "inline"):
                skipped.append(f"{b.where()}: {b.mode} {b.args or b.commands()[0]}")
                continue
            print(f"doc test: {b.where()} [{b.mode}] {b.commands()[0][:70]}", flush=True)
            try:
                if b.mode in ("run", "env"):
                    err = check(run_script(b.rewrite_script, sb, prelude, opts.timeout))
                elif b.mode == "daemons":
                    err = daemons(b, sb, opts)
                elif b.mode == "service":
                    err = service(b, sb, prelude, opts)
                elif b.mode == "with-daemon":
                    err = with_daemon(b, sb, prelude, opts)
                else:
                    err = with_cluster(b, sb, prelude, opts)
            except subprocess.TimeoutExpired:
                err = f"timed out after {opts.timeout} s"
            if b.mode == "env":
                preludes[b.path] = prelude + "\n" + b.rewrite_script
            ran += 1
            print(f"  {'ok' if not err else 'FAILED'} ({time.monotonic() - t0:.1f} s)", flush=True)
            if err:
                failures.append(f"{b.where()}: {err}")
    finally:
        sb.close()
    for s in skipped:
        print(f"doc test: not run: {s}")
    if failures:
        print("\ndoc test: FAILED\n" + "\n\n".join(failures))
        return 1
    print(f"doc test: {ran} blocks ran, {len(skipped)} checked statically, all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
