"""The Python binding (client/python/kvcake) against the real kvcaked over UCX and the mapped path.

Run by ctest with KVCAKE_LIB (libkvcake.so), KVCAKE_BIN_DIR (kvcaked) and PYTHONPATH set;
by hand:  KVCAKE_LIB=build/release/lib/libkvcake.so KVCAKE_BIN_DIR=build/release/bin \
          PYTHONPATH=client/python python3 tests/python/kvcake_python_test.py
"""

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import kvcake

VALUE = 8192  # layer_block_bytes of the test namespaces


class Daemon:
    """A kvcaked on ephemeral ports, killed with the test."""

    def __init__(self, *flags):
        self.dir = tempfile.mkdtemp(prefix="kvcake-py-")
        binary = os.path.join(os.environ.get("KVCAKE_BIN_DIR", "build/release/bin"), "kvcaked")
        args = [binary, "--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0",
                "--ssd_path=" + os.path.join(self.dir, "ssd"), "--host_bytes=16M",
                "--slot_bytes=64K", "--log_level=warning", *flags]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        marker, admin_marker = "kvcaked listening on ", "kvcaked admin listening on "
        self.address = self.admin = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(admin_marker):  # printed before the UCX address
                self.admin = line[len(admin_marker):].strip()
            if line.startswith(marker):
                self.address = line[len(marker):].strip()
                break
        if self.address is None:
            self.stop()
            raise RuntimeError("kvcaked did not report its address")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def pattern(seed):
    return bytes((i * 31 + seed) & 0xFF for i in range(VALUE))


class DaemonTestCase(unittest.TestCase):
    """Tests sharing one kvcaked, self.daemon."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()


class KvcakePythonTest(DaemonTestCase):

    def connect(self, namespace, mapped, **kw):
        c = kvcake.Client(self.daemon.address, namespace, use_mapped_path=mapped, timeout_ms=5000,
                          **kw)
        self.addCleanup(c.close)
        return c

    def test_version(self):
        self.assertRegex(kvcake.version(), r"^\d+\.\d+\.\d+$")

    def test_hash_tokens_known_answer(self):
        # docs/hashing.md: salt "kvcake-kat", B = 4, tokens 0..15.
        c = self.connect("kvcake-kat", mapped=False)
        with self.assertRaises(kvcake.KvcakeError) as e:
            c.hash_tokens(range(16))
        self.assertEqual(e.exception.code, "FAILED_PRECONDITION")
        c.register_namespace(num_layers=1, block_tokens=4, layer_block_bytes=VALUE)
        self.assertEqual(c.hash_tokens(list(range(16)) + [99, 98]),
                         [0xb0a0df122e962485, 0x3e2c0b240c478079, 0x7569d076b5f5c275,
                          0xa184adddcf316fe9])

    def round_trip(self, mapped):
        c = self.connect("py-rt-%d" % mapped, mapped)
        self.assertEqual(c.mapped_path, mapped)
        self.assertIn("tcp", c.transport_info)
        c.ping()
        c.register_namespace(num_layers=2, block_tokens=4, layer_block_bytes=VALUE,
                             kv_dtype="fp16", layout="NHD")
        chain = c.hash_tokens(range(16))
        srcs = [pattern(i) for i in range(4)]
        # bytes, bytearray, memoryview and a raw address all work as sources.
        raw = bytearray(srcs[3])
        raw_c = (ctypes.c_char * VALUE).from_buffer(raw)
        c.put(chain, [0] * 4, [srcs[0], bytearray(srcs[1]), memoryview(srcs[2]),
                               ctypes.addressof(raw_c)])
        self.assertEqual(c.lookup_prefix(chain, 0), 4)
        self.assertEqual(c.lookup_prefix(chain, 1), 0)

        outs = [bytearray(VALUE) for _ in range(5)]
        found = c.get(chain + [12345], [0] * 5, outs)
        self.assertEqual(found, [True, True, True, True, False])
        for i in range(4):
            self.assertEqual(bytes(outs[i]), srcs[i], i)
        self.assertEqual(bytes(outs[4]), bytes(VALUE))  # a miss leaves the buffer alone

        # Layer-wise: layer 1 of blocks 0-1, then both layers' groups waited for out of order.
        c.put(chain[:2], [1, 1], [srcs[2], srcs[3]])
        l0 = [bytearray(VALUE) for _ in range(4)]
        l1 = [bytearray(VALUE) for _ in range(3)]
        with c.get_async([(chain, [0] * 4, l0), (chain[:3], [1] * 3, l1)]) as pending:
            self.assertEqual(len(pending), 2)
            self.assertEqual(pending.wait(1), [True, True, False])
            self.assertEqual(pending.wait(0), [True] * 4)
            with self.assertRaises(IndexError):
                pending.wait(2)
        self.assertEqual([bytes(b) for b in l0], srcs)
        self.assertEqual(bytes(l1[0]), srcs[2])
        self.assertEqual(bytes(l1[1]), srcs[3])

        # Layer-wise save: layer 1 of blocks 2-3 (blocks 0-1 already there), then read back.
        with c.put_stream() as saver:
            self.assertEqual(saver.submit(chain[2:3], [1], [srcs[0]]), 0)
            self.assertEqual(saver.submit(chain[3:], [1], [bytearray(srcs[1])]), 1)
            self.assertEqual(len(saver), 2)
            saver.wait(1)
            saver.wait_all()
            with self.assertRaises(IndexError):
                saver.wait(2)
            with self.assertRaises(ValueError):
                saver.submit(chain[:1], [1], [b"short"])
        with self.assertRaises(kvcake.KvcakeError):
            saver.submit(chain[:1], [1], [srcs[0]])  # closed
        self.assertEqual(c.lookup_prefix(chain, 1), 4)
        l1 = [bytearray(VALUE) for _ in range(2)]
        self.assertEqual(c.get(chain[2:], [1, 1], l1), [True, True])
        self.assertEqual([bytes(b) for b in l1], [srcs[0], srcs[1]])

        c.report_layer_stats(0, 1.25, chain, [0.5, 0.25, 0.125, 0.0625], window_blocks=1)
        self.assertEqual(c.delete(chain + [777], [0] * 5), 4)
        self.assertEqual(c.lookup_prefix(chain, 0), 0)
        self.assertEqual(c.lookup_prefix(chain, 1), 4)

    def test_round_trip_over_ucx(self):
        self.round_trip(mapped=False)

    def test_round_trip_over_the_mapped_path(self):
        self.round_trip(mapped=True)

    def test_bad_input_gets_clear_errors_and_loses_nothing(self):
        c = self.connect("py-bad", mapped=False)
        with self.assertRaises(kvcake.KvcakeError) as e:
            c.put([1], [0], [pattern(1)])  # before register_namespace
        self.assertEqual(e.exception.code, "FAILED_PRECONDITION")
        c.register_namespace(num_layers=1, block_tokens=4, layer_block_bytes=VALUE)
        c.put([1], [0], [pattern(1)])
        with self.assertRaisesRegex(ValueError, "holds 100 bytes"):
            c.put([2], [0], [b"x" * 100])
        with self.assertRaisesRegex(TypeError, "read-only"):
            c.get([1], [0], [pattern(0)])
        with self.assertRaisesRegex(ValueError, "differ in length"):
            c.get([1, 2], [0], [bytearray(VALUE)])
        with self.assertRaises(kvcake.KvcakeError) as e:
            c.put([3], [5], [pattern(3)])  # layer beyond the namespace
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("layer", e.exception.message)
        # Another layout for the same namespace is refused.
        other = self.connect("py-bad", mapped=False)
        with self.assertRaises(kvcake.KvcakeError) as e:
            other.register_namespace(num_layers=2, block_tokens=4, layer_block_bytes=VALUE)
        self.assertEqual(e.exception.code, "FAILED_PRECONDITION")
        # Nothing committed was lost.
        out = bytearray(VALUE)
        self.assertEqual(c.get([1], [0], [out]), [True])
        self.assertEqual(bytes(out), pattern(1))

    def test_unreachable_daemon_and_bad_options(self):
        with self.assertRaises(kvcake.KvcakeError) as e:
            kvcake.Client("127.0.0.1:1", "py-x", timeout_ms=2000)
        self.assertEqual(e.exception.code, "UNAVAILABLE")
        with self.assertRaises(kvcake.KvcakeError) as e:
            kvcake.Client("no-port", "py-x")
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        with self.assertRaises(kvcake.KvcakeError) as e:
            kvcake.Client(self.daemon.address, "py-x", max_inflight_requests=0)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")


class KvcakePythonTokenTest(unittest.TestCase):
    def test_token_is_checked(self):
        with tempfile.NamedTemporaryFile("w", suffix=".token", delete=False) as f:
            f.write("s3cret\n")
        self.addCleanup(os.unlink, f.name)
        d = Daemon("--token_file=" + f.name)
        self.addCleanup(d.stop)
        for token in (None, "wrong"):
            c = kvcake.Client(d.address, "py-tok", token=token, timeout_ms=5000)
            with self.assertRaises(kvcake.KvcakeError) as e:
                c.register_namespace(num_layers=1, block_tokens=4, layer_block_bytes=VALUE)
            self.assertIn(e.exception.code, ("UNAUTHENTICATED", "PERMISSION_DENIED"))
            c.close()
        c = kvcake.Client(d.address, "py-tok", token="s3cret", timeout_ms=5000)
        c.register_namespace(num_layers=1, block_tokens=4, layer_block_bytes=VALUE)
        c.put([9], [0], [pattern(9)])
        c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
