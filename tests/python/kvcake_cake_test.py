"""The CAKE statistics helpers of the Python binding: the same figures as the C ABI they wrap,
for every input form an engine has at hand, and signals reported to a real kvcaked.

Run by ctest (python_cake) with KVCAKE_LIB, KVCAKE_BIN_DIR and PYTHONPATH set; by hand:
  KVCAKE_LIB=build/release/lib/libkvcake.so KVCAKE_BIN_DIR=build/release/bin \\
      PYTHONPATH=client/python python3 tests/python/kvcake_cake_test.py
"""

import array
import ctypes
import os
import random
import re
import unittest
import urllib.request

import kvcake
from kvcake_python_test import DaemonTestCase

try:
    import numpy
except ImportError:
    numpy = None

HQ, HKV, WINDOW, SEQ = 4, 2, 4, 21  # a small layer: 4 query heads in 2 KV groups
BLOCK_TOKENS = 4


def attention_matrix(seed, focus=None):
    """[HQ][WINDOW][SEQ] softmax rows, zero past the causal limit; `focus`: a key index that
    takes most of the attention (a low-entropy layer)."""
    r = random.Random(seed)
    out = []
    for _ in range(HQ):
        head = []
        for i in range(WINDOW):
            visible = SEQ - WINDOW + i + 1
            row = [r.random() for _ in range(visible)]
            if focus is not None:
                row[focus] += 50.0
            total = sum(row)
            head.append([x / total for x in row] + [0.0] * (SEQ - visible))
        out.append(head)
    return out


def flat(matrix):
    return [x for head in matrix for row in head for x in row]


class RawCakeAbi:
    """kvcake_cake_* called straight through ctypes, declared here, not by the binding."""

    def __init__(self):
        self.lib = ctypes.CDLL(os.environ.get("KVCAKE_LIB") or kvcake.load_library()._name)
        P = ctypes.POINTER
        f = self.lib.kvcake_cake_layer_stats
        f.restype = ctypes.c_int
        f.argtypes = [P(ctypes.c_float)] + [ctypes.c_int] * 4 + [ctypes.c_double] * 3 + \
            [ctypes.c_int] + [P(ctypes.c_double)] * 3 + [P(ctypes.c_float)]
        f = self.lib.kvcake_cake_block_scores
        f.restype = ctypes.c_int
        f.argtypes = [P(ctypes.c_float)] + [ctypes.c_int] * 3 + [P(ctypes.c_double)]
        f = self.lib.kvcake_cake_budgets
        f.restype = ctypes.c_int
        f.argtypes = [P(ctypes.c_double), P(ctypes.c_int64), ctypes.c_int, ctypes.c_int64,
                      P(ctypes.c_int64)]

    def layer_stats(self, values, tau1=1.0, tau2=1.0, gamma=200.0, pool=5):
        att = (ctypes.c_float * len(values))(*values)
        ind = (ctypes.c_float * (HKV * (SEQ - WINDOW)))()
        h, v, p = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        rc = self.lib.kvcake_cake_layer_stats(att, HQ, HKV, WINDOW, SEQ, tau1, tau2, gamma, pool,
                                              ctypes.byref(h), ctypes.byref(v), ctypes.byref(p),
                                              ind)
        assert rc == 0, rc
        return h.value, v.value, p.value, list(ind)

    def block_scores(self, indicator, num_tokens, block_tokens):
        ind = (ctypes.c_float * len(indicator))(*indicator)
        n = -(-num_tokens // block_tokens)
        out = (ctypes.c_double * n)()
        assert self.lib.kvcake_cake_block_scores(ind, HKV, num_tokens, block_tokens, out) == 0
        return list(out)

    def budgets(self, preferences, caps, total):
        n = len(preferences)
        out = (ctypes.c_int64 * n)()
        assert self.lib.kvcake_cake_budgets((ctypes.c_double * n)(*preferences),
                                            (ctypes.c_int64 * n)(*caps), n, total, out) == 0
        return list(out)


class CakeHelpersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.raw = RawCakeAbi()
        cls.matrix = attention_matrix(7)
        cls.values = flat(cls.matrix)

    def assert_same_stats(self, stats, expected):
        h, v, p, ind = expected
        self.assertEqual((stats.entropy, stats.variance, stats.preference), (h, v, p))
        self.assertIsInstance(stats.indicator, array.array)
        self.assertEqual(stats.indicator.typecode, "f")
        self.assertEqual(list(stats.indicator), ind)

    def test_layer_stats_equal_the_c_abi_for_every_input_form(self):
        expected = self.raw.layer_stats(self.values)
        self.assertGreater(expected[0], 0)
        self.assertGreater(expected[1], 0)
        f32 = array.array("f", self.values)
        forms = {
            "nested lists": self.matrix,
            "flat list": self.values,
            "array('f')": f32,
            "memoryview": memoryview(f32),
            "read-only memoryview": memoryview(f32.tobytes()).cast("f"),
            "array('d')": array.array("d", self.values),
            "tuple of rows": tuple(tuple(row) for head in self.matrix for row in head),
        }
        for name, data in forms.items():
            with self.subTest(name):
                self.assert_same_stats(kvcake.layer_stats(data, HQ, HKV, WINDOW), expected)
                self.assert_same_stats(kvcake.layer_stats(data, HQ, HKV, WINDOW, seq_len=SEQ),
                                       expected)
        # The float32 input is read in place, not changed.
        self.assertEqual(list(f32), list(array.array("f", self.values)))

    def test_parameters_reach_the_c_abi(self):
        params = dict(tau1=0.25, tau2=4.0, gamma=50.0, pool_kernel=3)
        expected = self.raw.layer_stats(self.values, 0.25, 4.0, 50.0, 3)
        self.assert_same_stats(kvcake.layer_stats(self.values, HQ, HKV, WINDOW, **params),
                               expected)
        self.assertNotEqual(expected[2], self.raw.layer_stats(self.values)[2])

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_numpy_arrays(self):
        expected = self.raw.layer_stats(self.values)
        a32 = numpy.array(self.matrix, dtype=numpy.float32)
        for data in (a32, a32.astype(numpy.float64), numpy.asfortranarray(a32)):
            self.assert_same_stats(kvcake.layer_stats(data, HQ, HKV, WINDOW), expected)
        stats = kvcake.layer_stats(a32, HQ, HKV, WINDOW)
        ind = numpy.frombuffer(stats.indicator, dtype=numpy.float32).reshape(HKV, SEQ - WINDOW)
        self.assertEqual(kvcake.block_scores(ind, HKV, SEQ - WINDOW, BLOCK_TOKENS),
                         self.raw.block_scores(list(stats.indicator), SEQ - WINDOW, BLOCK_TOKENS))

    def test_block_scores_and_budgets_equal_the_c_abi(self):
        stats = kvcake.layer_stats(self.values, HQ, HKV, WINDOW)
        prefix = SEQ - WINDOW
        for block_tokens in (1, 4, 5, prefix, prefix + 3):
            with self.subTest(block_tokens=block_tokens):
                scores = kvcake.block_scores(stats.indicator, HKV, prefix, block_tokens)
                self.assertEqual(len(scores), -(-prefix // block_tokens))
                self.assertEqual(scores, self.raw.block_scores(list(stats.indicator), prefix,
                                                               block_tokens))
                self.assertAlmostEqual(sum(scores), sum(stats.indicator), places=4)
        prefs, caps = [0.5, 3.0, 1.25, 0.0001], [8, 8, 2, 8]
        for total in (4, 7, 13, 26, 100):
            with self.subTest(total=total):
                got = kvcake.budgets(prefs, caps, total)
                self.assertEqual(got, self.raw.budgets(prefs, caps, total))
                self.assertEqual(sum(got), min(total, sum(caps)))

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "attention holds 335 values, expected 336"):
            kvcake.layer_stats(self.values[:-1], HQ, HKV, WINDOW, seq_len=SEQ)
        with self.assertRaisesRegex(ValueError, "not a multiple"):
            kvcake.layer_stats(self.values[:-1], HQ, HKV, WINDOW)
        with self.assertRaisesRegex(ValueError, "seq_len must be >= 5"):
            kvcake.layer_stats(self.values[:HQ * WINDOW], HQ, HKV, WINDOW)
        with self.assertRaises(kvcake.KvcakeError) as e:
            kvcake.layer_stats(self.values, HQ, 3, WINDOW)  # 4 query heads over 3 KV heads
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("multiple", e.exception.message)
        with self.assertRaises(kvcake.KvcakeError) as e:
            kvcake.layer_stats(self.values, HQ, HKV, WINDOW, pool_kernel=2)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        with self.assertRaisesRegex(ValueError, "indicator holds 3 values, expected 34"):
            kvcake.block_scores([1.0, 2.0, 3.0], HKV, SEQ - WINDOW, BLOCK_TOKENS)
        with self.assertRaisesRegex(ValueError, "differ in length"):
            kvcake.budgets([1.0], [1, 2], 2)
        with self.assertRaises(kvcake.KvcakeError) as e:
            kvcake.budgets([1.0, 1.0], [4, 4], 1)  # below one block per layer
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")


def scrape(admin, pattern):
    """The /metrics samples whose line matches `pattern`: {labels: value}."""
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(pattern + r"(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


class CakeSignalsToTheDaemonTest(DaemonTestCase):
    def test_report_attention_reaches_the_daemon(self):
        value = 8192
        c = kvcake.Client(self.daemon.address, "py-cake", timeout_ms=5000)
        self.addCleanup(c.close)
        with self.assertRaises(kvcake.KvcakeError) as e:
            c.report_attention(0, flat(attention_matrix(1)), [1], HQ, HKV, WINDOW)
        self.assertEqual(e.exception.code, "FAILED_PRECONDITION")
        with self.assertRaises(kvcake.KvcakeError) as e:
            c.register_namespace(num_layers=2, block_tokens=BLOCK_TOKENS,
                                 layer_block_bytes=value, serving="sometimes")
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        # Budgeted serving: the default policy gives the namespace CAKE's budgets.
        c.register_namespace(num_layers=2, block_tokens=BLOCK_TOKENS, layer_block_bytes=value,
                             serving="budgeted")
        chain = c.hash_tokens(range(SEQ))  # 5 full blocks of the 21-token prompt
        self.assertEqual(len(chain), 5)
        for layer in range(2):
            c.put(chain, [layer] * len(chain), [bytes([layer + 1]) * value] * len(chain))
        before = scrape(self.daemon.admin, "kvcake_requests_total").get('{op="report_stats"}', 0)

        sent = []
        report = c.report_layer_stats
        c.report_layer_stats = lambda *args: (sent.append(args), report(*args))[1]
        # Layer 0 attends to one key (low entropy), layer 1 all over (high entropy).
        layers = [attention_matrix(2, focus=3), attention_matrix(3)]
        for layer, matrix in enumerate(layers):
            stats = c.report_attention(layer, flat(matrix), chain, num_query_heads=HQ,
                                       num_kv_heads=HKV, window=WINDOW)
            expected = kvcake.layer_stats(matrix, HQ, HKV, WINDOW)
            self.assertEqual(stats.preference, expected.preference)
            # What went to the daemon: the preference, a score per block over the 17 keys
            # before the window (4 full blocks and the one the window starts in), and that
            # last block as the window.
            self.assertEqual(sent[-1], (layer, expected.preference, chain,
                                        kvcake.block_scores(expected.indicator, HKV,
                                                            SEQ - WINDOW, BLOCK_TOKENS), 1))
        self.assertLess(sent[0][1], sent[1][1])  # the focused layer prefers less cache

        after = scrape(self.daemon.admin, "kvcake_requests_total").get('{op="report_stats"}', 0)
        self.assertEqual(after - before, 2)
        budgets = scrape(self.daemon.admin, "kvcake_cake_layer_budget_blocks")
        ours = {k: v for k, v in budgets.items() if 'namespace="py-cake"' in k}
        self.assertTrue(ours, f"no CAKE layer budgets for the namespace in {budgets}")
        # The daemon refuses a report for a layer the namespace does not have.
        with self.assertRaises(kvcake.KvcakeError) as e:
            c.report_attention(2, flat(layers[0]), chain, HQ, HKV, WINDOW)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        # Everything stored is still served.
        out = [bytearray(value) for _ in chain]
        self.assertEqual(c.get(chain, [1] * len(chain), out), [True] * len(chain))
        self.assertEqual(bytes(out[4]), bytes([2]) * value)


if __name__ == "__main__":
    unittest.main(verbosity=2)
