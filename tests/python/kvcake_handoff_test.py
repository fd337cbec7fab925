"""The Python binding's prefill -> decode hand-off against a real etcd and two real kvcaked.

Run by ctest with KVCAKE_LIB, KVCAKE_BIN_DIR and PYTHONPATH set (see kvcake_python_test.py);
skipped when /usr/bin/etcd is absent.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import kvcake
from kvcake_python_test import Daemon, pattern, VALUE

ETCD = "/usr/bin/etcd"
LAYERS = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """A single-member etcd on free loopback ports, in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kvcake-py-etcd-")
        client, peer = free_port(), free_port()
        self.endpoint = "http://127.0.0.1:%d" % client
        self.proc = subprocess.Popen(
            [ETCD, "--name", "py", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
             "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
             "--initial-cluster", "py=http://127.0.0.1:%d" % peer],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", client), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(os.path.exists(ETCD), "no " + ETCD)
class HandoffTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.etcd = Etcd()
        cls.token = tempfile.NamedTemporaryFile("w", delete=False)
        cls.token.write("py-cluster-token\n")
        cls.token.close()
        flags = ["--cluster_etcd=" + cls.etcd.endpoint, "--cluster_name=py",
                 "--cluster_token_file=" + cls.token.name, "--member_ttl_s=2",
                 "--ucx_tls=tcp", "--expose_host_segment=false"]
        cls.prefill_daemon = Daemon(*flags, "--node_id=prefill")
        cls.decode_daemon = Daemon(*flags, "--node_id=decode")
        # Both members see each other (membership polls every ttl/3).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (cls.members(cls.prefill_daemon) == 2 and
                                                   cls.members(cls.decode_daemon) == 2):
            time.sleep(0.1)

    @staticmethod
    def members(daemon):
        try:
            with urllib.request.urlopen("http://%s/v1/cluster" % daemon.admin, timeout=2) as r:
                j = json.load(r)
        except OSError:
            return 0
        return len(j.get("members", [])) if j.get("state") == "up" else 0

    @classmethod
    def tearDownClass(cls):
        cls.prefill_daemon.stop()
        cls.decode_daemon.stop()
        cls.etcd.stop()
        os.unlink(cls.token.name)

    def engine(self, daemon):
        c = kvcake.Client(daemon.address, "py-handoff", use_mapped_path=False, ucx_tls="tcp",
                          timeout_ms=10000)
        self.addCleanup(c.close)
        c.register_namespace(num_layers=LAYERS, block_tokens=4, layer_block_bytes=VALUE)
        return c

    def check_decode(self, decode, chain):
        for layer in range(LAYERS):
            bufs = [bytearray(VALUE) for _ in chain]
            found = decode.get(chain, [layer] * len(chain), bufs)
            self.assertEqual(found, [True] * len(chain), "layer %d" % layer)
            for i, b in enumerate(bufs):
                self.assertEqual(bytes(b), pattern(i * LAYERS + layer))

    def test_stream_layer_by_layer_then_wait(self):
        prefill, decode = self.engine(self.prefill_daemon), self.engine(self.decode_daemon)
        chain = prefill.hash_tokens(range(16))
        stream = prefill.put_stream_handoff("decode", 77, LAYERS * len(chain))
        for layer in range(LAYERS):
            stream.submit(chain, [layer] * len(chain),
                          [pattern(i * LAYERS + layer) for i in range(len(chain))])
        stream.wait_all(10000)
        decode.wait_handoff(77, 10000)
        self.check_decode(decode, chain)

    def test_put_handoff_and_an_unknown_id_times_out(self):
        prefill, decode = self.engine(self.prefill_daemon), self.engine(self.decode_daemon)
        chain = prefill.hash_tokens(range(100, 116))
        for layer in range(LAYERS):
            prefill.put_handoff("decode", 78, LAYERS * len(chain), chain, [layer] * len(chain),
                                [pattern(i * LAYERS + layer) for i in range(len(chain))])
        decode.wait_handoff(78, 10000)
        self.check_decode(decode, chain)
        start = time.monotonic()
        with self.assertRaises(kvcake.KvcakeError) as e:
            decode.wait_handoff(12345, 300)
        self.assertEqual(e.exception.code, "DEADLINE_EXCEEDED")
        self.assertLess(time.monotonic() - start, 5)

    def test_an_aborted_handoff_ends_the_decode_wait(self):
        prefill, decode = self.engine(self.prefill_daemon), self.engine(self.decode_daemon)
        chain = prefill.hash_tokens(range(200, 216))
        prefill.put_handoff("decode", 79, LAYERS * len(chain), chain, [0] * len(chain),
                            [pattern(i * LAYERS) for i in range(len(chain))])
        prefill.abort_handoff(79, "request cancelled")
        start = time.monotonic()
        with self.assertRaises(kvcake.KvcakeError) as e:
            decode.wait_handoff(79, 10000)
        self.assertEqual(e.exception.code, "ABORTED")
        self.assertIn("request cancelled", str(e.exception))
        self.assertLess(time.monotonic() - start, 5)
        with self.assertRaises(kvcake.KvcakeError) as e:
            prefill.abort_handoff(79)
        self.assertEqual(e.exception.code, "NOT_FOUND")

    def test_holders_of_a_prefix_for_a_router(self):
        prefill, decode = self.engine(self.prefill_daemon), self.engine(self.decode_daemon)
        chain = prefill.hash_tokens(range(300, 324))
        prefill.put(chain, [0] * len(chain), [pattern(i) for i in range(len(chain))])
        # Publishing is asynchronous: the decode daemon hears of it shortly.
        deadline = time.monotonic() + 5
        answer = decode.lookup_prefix_holders(chain, 0)
        while answer != (0, [("prefill", len(chain))]) and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = decode.lookup_prefix_holders(chain, 0)
        self.assertEqual(answer, (0, [("prefill", len(chain))]))
        self.assertEqual(prefill.lookup_prefix_holders(chain, 0), (len(chain), []))
        # Only asked: the decode daemon fetched nothing.
        self.assertEqual(decode.lookup_prefix_holders(chain, 0)[0], 0)


if __name__ == "__main__":
    unittest.main()
