"""kvcake for Python engines: libkvcake's C ABI (kvcake/kvcake_c.h) through ctypes.

No build step and no dependency beyond the Python standard library. Install it with
`pip install client/python` (or `<prefix>/share/kvcake/python` of an installed tree), or put
that folder on PYTHONPATH. libkvcake is found through, in order: load_library(path),
$KVCAKE_LIB, the library recorded when pip installed the package (kvcake/_libpath.py: the
build tree's or the installed prefix's), <prefix>/lib of an installed tree this package sits
in, the release build tree of the checkout this package sits in, and the loader's path.

    import kvcake
    with kvcake.Client("127.0.0.1:18515", "llama-3-8b@main/fp16/tp1") as c:
        c.register_namespace(num_layers=32, block_tokens=16, layer_block_bytes=256 << 10)
        chain = c.hash_tokens(token_ids)             # chained block hashes
        cached = c.lookup_prefix(chain, layer=0)     # blocks already stored
        c.put(chain[:2], [0, 0], [buf_a, buf_b])     # buffers: bytes, bytearray,
        found = c.get(chain[:2], [0, 0], [out_a, out_b])  # memoryview, numpy, or an int
                                                     # address (e.g. tensor.data_ptr())
        pending = c.get_async([(chain, [l] * len(chain), bufs[l]) for l in range(32)])
        for l in range(32):
            hits = pending.wait(l)                   # layer l has arrived
        with c.put_stream() as saver:                # layer-wise save in the background
            for l in range(32):
                saver.submit(chain, [l] * len(chain), layer_bufs[l])  # as layer l is computed
            saver.wait_all()
        for l in range(32):                          # CAKE signals of the stored blocks, from
            c.report_attention(l, attention[l], chain,  # layer l's window attention
                               num_query_heads=32, num_kv_heads=8, window=16)

CAKE's engine-side statistics are plain functions too: layer_stats (entropy, variance,
preference and the token indicator of one layer's observation-window attention),
block_scores (the indicator summed per block) and budgets (water-filled per-layer budgets);
Client.report_layer_stats sends a layer's preference and block scores to kvcaked, and
Client.report_attention does all three for one layer's attention matrix.

Buffers are checked against the namespace's layer_block_bytes; a raw int
address is the caller's promise that it points at that many bytes (in CUDA
builds put/get also take CUDA device addresses). Errors raise KvcakeError with
the library's message and code (the canonical status codes).

Thread-safety: a Client may be used from several threads at once (the
library serialises what needs it); a PendingGet or a PutStream by one thread at a time.
"""

import array
import collections
import ctypes
import ctypes.util
import math
import os
import sysconfig
import weakref

__all__ = ["Client", "PendingGet", "PutStream", "KvcakeError", "LayerStats", "layer_stats",
           "block_scores", "budgets", "load_library", "library_path", "version"]

_c_int = ctypes.c_int
_c_int32 = ctypes.c_int32
_c_int64 = ctypes.c_int64
_c_uint32 = ctypes.c_uint32
_c_uint64 = ctypes.c_uint64
_c_double = ctypes.c_double
_c_float = ctypes.c_float
_c_void_p = ctypes.c_void_p
_c_char_p = ctypes.c_char_p
_P = ctypes.POINTER

# The canonical status codes (kvcake_c.h, KVCAKE_E_*).
CODES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


class KvcakeError(Exception):
    """A failed libkvcake call: `code` (e.g. "UNAVAILABLE") and the library's message."""

    def __init__(self, code, message):
        if message.startswith(code + ": "):  # the library's text already names the code
            message = message[len(code) + 2:]
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _PrefixHolder(ctypes.Structure):
    # Mirrors struct kvcake_prefix_holder.
    _fields_ = [("node", ctypes.c_char * 257), ("blocks", _c_int32)]


class _Options(ctypes.Structure):
    # Mirrors struct kvcake_options; only the first struct_size bytes are read.
    _fields_ = [
        ("struct_size", _c_uint32),
        ("use_mapped_path", _c_int32),
        ("token", _c_char_p),
        ("ucx_tls", _c_char_p),
        ("timeout_ms", _c_int64),
        ("max_inflight_requests", _c_int32),
    ]


_lib = None


def _declare(lib):
    sig = {
        "kvcake_version": (_c_char_p, []),
        "kvcake_last_error": (_c_char_p, []),
        "kvcake_options_init": (None, [_P(_Options)]),
        "kvcake_connect_with_options": (_c_int, [_c_char_p, _c_char_p, _P(_Options),
                                                 _P(_c_void_p)]),
        "kvcake_register_namespace_serving": (_c_int, [_c_void_p, _c_int, _c_int, _c_int64,
                                                       _c_char_p, _c_char_p, _c_int64, _c_int]),
        "kvcake_hash_tokens": (_c_int, [_c_void_p, _P(_c_uint32), _c_int64, _P(_c_uint64),
                                        _c_int64, _P(_c_int64)]),
        "kvcake_lookup_prefix": (_c_int, [_c_void_p, _P(_c_uint64), _c_int, _c_int32,
                                          _P(_c_int32)]),
        "kvcake_lookup_prefix_holders": (_c_int, [_c_void_p, _P(_c_uint64), _c_int, _c_int32,
                                                  _P(_c_int32), _P(_PrefixHolder), _c_int,
                                                  _P(_c_int32)]),
        "kvcake_put": (_c_int, [_c_void_p, _P(_c_uint64), _P(_c_int32), _P(_c_void_p), _c_int]),
        "kvcake_get": (_c_int, [_c_void_p, _P(_c_uint64), _P(_c_int32), _P(_c_void_p), _c_int,
                                _P(_c_int32)]),
        "kvcake_get_async": (_c_int, [_c_void_p, _P(_c_uint64), _P(_c_int32), _P(_c_void_p),
                                      _P(_c_int32), _c_int, _P(_c_void_p)]),
        "kvcake_pending_get_wait": (_c_int, [_c_void_p, _c_int, _c_int64, _P(_c_int32)]),
        "kvcake_pending_get_free": (None, [_c_void_p]),
        "kvcake_put_stream_open": (_c_int, [_c_void_p, _P(_c_void_p)]),
        "kvcake_put_stream_submit": (_c_int, [_c_void_p, _P(_c_uint64), _P(_c_int32),
                                              _P(_c_void_p), _c_int, _P(_c_int32)]),
        "kvcake_put_stream_wait": (_c_int, [_c_void_p, _c_int, _c_int64]),
        "kvcake_put_stream_free": (None, [_c_void_p]),
        "kvcake_put_handoff": (_c_int, [_c_void_p, _c_char_p, _c_uint64, _c_int32,
                                        _P(_c_uint64), _P(_c_int32), _P(_c_void_p), _c_int]),
        "kvcake_put_stream_open_handoff": (_c_int, [_c_void_p, _c_char_p, _c_uint64, _c_int32,
                                                    _P(_c_void_p)]),
        "kvcake_wait_handoff": (_c_int, [_c_void_p, _c_uint64, _c_int64]),
        "kvcake_abort_handoff": (_c_int, [_c_void_p, _c_uint64, _c_char_p]),
        "kvcake_delete": (_c_int, [_c_void_p, _P(_c_uint64), _P(_c_int32), _c_int,
                                   _P(_c_int32)]),
        "kvcake_report_layer_stats": (_c_int, [_c_void_p, _c_int32, _c_double, _P(_c_uint64),
                                               _P(_c_double), _c_int, _c_int32]),
        "kvcake_ping": (_c_int, [_c_void_p]),
        "kvcake_cake_layer_stats": (_c_int, [_P(_c_float), _c_int, _c_int, _c_int, _c_int,
                                             _c_double, _c_double, _c_double, _c_int,
                                             _P(_c_double), _P(_c_double), _P(_c_double),
                                             _P(_c_float)]),
        "kvcake_cake_block_scores": (_c_int, [_P(_c_float), _c_int, _c_int, _c_int,
                                              _P(_c_double)]),
        "kvcake_cake_budgets": (_c_int, [_P(_c_double), _P(_c_int64), _c_int, _c_int64,
                                         _P(_c_int64)]),
        "kvcake_mapped_path": (_c_int, [_c_void_p]),
        "kvcake_transport_info": (_c_int, [_c_void_p, _c_char_p, _c_int]),
        "kvcake_close": (None, [_c_void_p]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args


def _library_candidates():
    """Where libkvcake may be, best first (see the module docstring)."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = []
    if os.environ.get("KVCAKE_LIB"):
        candidates.append(os.environ["KVCAKE_LIB"])
    # Recorded at install time: absolute (pip install) or relative to this folder (CMake's
    # install of <prefix>/share/kvcake/python).
    try:
        from . import _libpath
        candidates.append(os.path.normpath(os.path.join(here, _libpath.LIBRARY)))
    except ImportError:
        pass
    # An installed tree: <prefix>/share/kvcake/python/kvcake/, the library in <prefix>/lib*.
    prefix = os.path.normpath(os.path.join(here, "..", "..", "..", ".."))
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for libdir in ("lib", "lib64", os.path.join("lib", multiarch)):
        candidates.append(os.path.join(prefix, libdir, "libkvcake.so.0"))
    # The checkout: <root>/client/python/kvcake/, the release preset's tree in <root>/build.
    root = os.path.normpath(os.path.join(here, "..", "..", ".."))
    candidates.append(os.path.join(root, "build", "release", "lib", "libkvcake.so.0"))
    found = ctypes.util.find_library("kvcake")
    candidates += [found] if found else []
    candidates.append("libkvcake.so.0")
    return candidates


def load_library(path=None):
    """Loads libkvcake once: `path`, or the first of the module docstring's places that has it
    (library_path() says which file)."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    candidates = [path] if path else _library_candidates()
    errors = []
    for cand in candidates:
        if os.sep in cand and not os.path.exists(cand):
            errors.append(f"{cand}: no such file")
            continue
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            errors.append(str(e))
            continue
        _declare(lib)
        _lib = lib
        return lib
    raise KvcakeError("NOT_FOUND", "libkvcake not found (build it, reinstall this package, or set "
                      "KVCAKE_LIB): " + "; ".join(errors))


def library_path():
    """The file libkvcake was loaded from (loading it if needed)."""
    return load_library()._name


def version():
    """libkvcake's version, "MAJOR.MINOR.PATCH"."""
    return load_library().kvcake_version().decode()


def _check(rc):
    if rc == 0:
        return
    lib = load_library()
    code = CODES.get(-rc, f"code {rc}")
    raise KvcakeError(code, lib.kvcake_last_error().decode(errors="replace"))


def _u64s(values):
    return (_c_uint64 * len(values))(*[int(v) & 0xFFFFFFFFFFFFFFFF for v in values])


def _i32s(values):
    return (_c_int32 * len(values))(*[int(v) for v in values])


# ---- CAKE engine-side signals (kvcake_cake_* of the C ABI, docs/policy.md) ----------------

LayerStats = collections.namedtuple("LayerStats", "entropy variance preference indicator")
LayerStats.__doc__ = """One layer's CAKE statistics: entropy H, variance V, preference P, and the
token indicator, an array('f') of [num_kv_heads][seq_len - window] values, row-major."""


def _flatten(data, out):
    try:
        out.append(float(data))
        return
    except TypeError:
        pass
    for item in data:
        _flatten(item, out)


def _float_values(data):
    """`data` ready for the C ABI, and how many values it holds: a C-contiguous float32 buffer
    (array('f'), NumPy float32, memoryview) as a memoryview, used in place; anything else
    (other dtypes, nested sequences, tensors) as a flat list of floats, converted once."""
    try:
        view = memoryview(data)
    except TypeError:
        view = None
    if view is not None and view.format == "f" and view.c_contiguous:
        return view, view.nbytes // 4
    values = []
    _flatten(view.tolist() if view is not None else data, values)
    return values, len(values)


def _floats(values, count, what):
    """A (values, count) pair from _float_values as a ctypes float array of exactly `count`
    values."""
    data, n = values
    if n != count:
        raise ValueError(f"{what} holds {n} values, expected {count}")
    if isinstance(data, list):
        return (_c_float * max(1, count))(*data)
    if count == 0:
        return (_c_float * 1)()
    if data.readonly:
        return (_c_float * count).from_buffer_copy(data.cast("B"))
    return (_c_float * count).from_buffer(data.cast("B"))  # keeps `data` alive


def _shape_check(name, value, minimum):
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def layer_stats(attention, num_query_heads, num_kv_heads, window, seq_len=None, tau1=1.0,
                tau2=1.0, gamma=200.0, pool_kernel=5):
    """CAKE's statistics of one layer (kvcake_cake_layer_stats): `attention` holds the softmax
    probabilities of the last `window` queries over all `seq_len` keys, float32
    [num_query_heads][window][seq_len] row-major (zero past the causal limit), as any
    C-contiguous float32 buffer (NumPy, array('f')) or a (nested) sequence of numbers;
    seq_len defaults to what the size implies. Returns a LayerStats."""
    hq = _shape_check("num_query_heads", num_query_heads, 1)
    hkv = _shape_check("num_kv_heads", num_kv_heads, 1)
    w = _shape_check("window", window, 1)
    values = _float_values(attention)
    if seq_len is None:
        if values[1] % (hq * w):
            raise ValueError(f"attention holds {values[1]} values, not a multiple of "
                             f"num_query_heads * window = {hq * w}")
        seq_len = values[1] // (hq * w)
    n = _shape_check("seq_len", seq_len, w + 1)
    lib = load_library()
    att = _floats(values, hq * w * n, "attention")
    indicator = array.array("f", bytes(4 * hkv * (n - w)))
    ind_addr, _ = indicator.buffer_info()
    h, v, p = _c_double(), _c_double(), _c_double()
    _check(lib.kvcake_cake_layer_stats(att, hq, hkv, w, n, float(tau1), float(tau2),
                                       float(gamma), int(pool_kernel), ctypes.byref(h),
                                       ctypes.byref(v), ctypes.byref(p),
                                       ctypes.cast(ind_addr, _P(_c_float))))
    return LayerStats(h.value, v.value, p.value, indicator)


def block_scores(indicator, num_kv_heads, num_tokens, block_tokens):
    """Block scores (kvcake_cake_block_scores): `indicator` ([num_kv_heads][num_tokens], e.g.
    LayerStats.indicator) summed over KV heads and each block's tokens; a list of
    ceil(num_tokens / block_tokens) floats (the last block may be partial)."""
    hkv = _shape_check("num_kv_heads", num_kv_heads, 1)
    n = _shape_check("num_tokens", num_tokens, 0)
    b = _shape_check("block_tokens", block_tokens, 1)
    ind = _floats(_float_values(indicator), hkv * n, "indicator")
    blocks = -(-n // b)
    out = (_c_double * max(1, blocks))()
    _check(load_library().kvcake_cake_block_scores(ind, hkv, n, b, out))
    return [out[i] for i in range(blocks)]


def budgets(preferences, caps, total_blocks):
    """Per-layer budgets (kvcake_cake_budgets): `total_blocks` water-filled over the layers by
    preference, layer l capped at caps[l] and given at least one block when its cap is > 0;
    a list of ints summing to min(total_blocks, sum(caps))."""
    if len(preferences) != len(caps):
        raise ValueError("preferences and caps differ in length")
    n = len(preferences)
    pref = (_c_double * max(1, n))(*[float(x) for x in preferences])
    cap = (_c_int64 * max(1, n))(*[int(x) for x in caps])
    out = (_c_int64 * max(1, n))()
    _check(load_library().kvcake_cake_budgets(pref, cap, n, int(total_blocks), out))
    return [out[i] for i in range(n)]


class _Buffers:
    """Addresses of caller buffers, each checked to hold `size` bytes; keeps them alive."""

    def __init__(self, buffers, size, writable):
        self.keep = []
        self.addrs = (_c_void_p * len(buffers))()
        for i, b in enumerate(buffers):
            self.addrs[i] = self._address(i, b, size, writable)

    def _address(self, i, b, size, writable):
        if isinstance(b, int):
            if b == 0:
                raise ValueError(f"buffer {i} is a null address")
            return b
        if isinstance(b, bytes):
            if writable:
                raise TypeError(f"buffer {i} is bytes, which is read-only; use a bytearray")
            if len(b) < size:
                raise ValueError(f"buffer {i} holds {len(b)} bytes, the namespace's values "
                                 f"are {size}")
            self.keep.append(b)
            return ctypes.cast(_c_char_p(b), _c_void_p).value
        view = memoryview(b)
        if not view.c_contiguous:
            raise ValueError(f"buffer {i} is not contiguous")
        if view.nbytes < size:
            raise ValueError(f"buffer {i} holds {view.nbytes} bytes, the namespace's values "
                             f"are {size}")
        if view.readonly:
            if writable:
                raise TypeError(f"buffer {i} is read-only")
            data = bytes(view)  # no address for a read-only export: copy once
            self.keep.append(data)
            return ctypes.cast(_c_char_p(data), _c_void_p).value
        arr = (ctypes.c_char * view.nbytes).from_buffer(view.cast("B"))
        self.keep.append((view, arr))
        return ctypes.addressof(arr)


class _Closing:
    """`with` support and a close() when garbage-collected, for handles of the library."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class PendingGet(_Closing):
    """A layer-wise get in flight (Client.get_async); close() or `with` frees it."""

    _handle = None

    def __init__(self, lib, handle, group_sizes, keep):
        self._lib = lib
        self._handle = handle
        self._sizes = group_sizes
        self._keep = keep  # the destination buffers stay alive while requests may write them

    def __len__(self):
        return len(self._sizes)

    def wait(self, group, timeout_ms=30000):
        """Waits for group `group`; its per-value hit flags. KvcakeError DEADLINE_EXCEEDED if it
        is still arriving after timeout_ms (wait again)."""
        if self._handle is None:
            raise KvcakeError("FAILED_PRECONDITION", "pending get already closed")
        if not 0 <= group < len(self._sizes):
            raise IndexError(f"group {group} out of [0, {len(self._sizes)})")
        found = (_c_int32 * max(1, self._sizes[group]))()
        _check(self._lib.kvcake_pending_get_wait(self._handle, group, int(timeout_ms), found))
        return [bool(found[i]) for i in range(self._sizes[group])]

    def close(self):
        """Waits for outstanding requests (bounded by the client's timeout) and frees."""
        if self._handle is not None:
            self._lib.kvcake_pending_get_free(self._handle)
            self._handle = None
            self._keep = None


class PutStream(_Closing):
    """A layer-wise save (Client.put_stream): submit() queues a group and returns at once, a
    thread of the library stores the groups in order; close() or `with` stores what was
    submitted, then frees."""

    _handle = None

    def __init__(self, client, handle):
        self._client = client
        self._lib = client._lib
        self._handle = handle
        self._keep = []  # per group: its source buffers, until the group is stored

    def __len__(self):
        return len(self._keep)

    def _h(self):
        if self._handle is None:
            raise KvcakeError("FAILED_PRECONDITION", "put stream already closed")
        return self._handle

    def submit(self, hashes, layers, buffers):
        """Queues layer layers[i] of block hashes[i] from buffers[i] (host memory); the
        group's index. The buffers are kept alive until the group is stored."""
        self._client._keyed(hashes, layers, buffers)
        bufs = _Buffers(buffers, self._client.layer_block_bytes, writable=False)
        index = _c_int32()
        _check(self._lib.kvcake_put_stream_submit(self._h(), _u64s(hashes), _i32s(layers),
                                                  bufs.addrs, len(hashes), ctypes.byref(index)))
        self._keep.append(bufs)
        return index.value

    def wait(self, group, timeout_ms=30000):
        """Waits until group `group` is stored. KvcakeError DEADLINE_EXCEEDED if it is still
        being stored after timeout_ms (wait again), other errors as Client.put."""
        if not 0 <= group < len(self._keep):
            raise IndexError(f"group {group} out of [0, {len(self._keep)})")
        _check(self._lib.kvcake_put_stream_wait(self._h(), group, int(timeout_ms)))
        self._keep[group] = None

    def wait_all(self, timeout_ms=30000):
        """Waits for every group submitted so far (vLLM's wait_for_save)."""
        _check(self._lib.kvcake_put_stream_wait(self._h(), -1, int(timeout_ms)))
        self._keep = [None] * len(self._keep)

    def close(self):
        """Stores what was submitted (each request bounded by the client's timeout), frees."""
        if self._handle is not None:
            self._lib.kvcake_put_stream_free(self._handle)
            self._handle = None
            self._keep = []


class Client(_Closing):
    """A connection to kvcaked for one namespace (see the module docstring)."""

    _handle = None  # also what close() sees when __init__ failed
    _pending = ()

    def __init__(self, address, namespace, token=None, ucx_tls=None, use_mapped_path=True,
                 timeout_ms=30000, max_inflight_requests=16, library=None):
        self._lib = load_library(library)
        self._handle = None
        self._pending = weakref.WeakSet()  # closed with the client
        self.layer_block_bytes = 0
        o = _Options()
        self._lib.kvcake_options_init(ctypes.byref(o))
        o.use_mapped_path = 1 if use_mapped_path else 0
        o.token = token.encode() if token else None
        o.ucx_tls = ucx_tls.encode() if ucx_tls else None
        o.timeout_ms = int(timeout_ms)
        o.max_inflight_requests = int(max_inflight_requests)
        handle = _c_void_p()
        _check(self._lib.kvcake_connect_with_options(address.encode(), namespace.encode(),
                                                     ctypes.byref(o), ctypes.byref(handle)))
        self._handle = handle

    def _h(self):
        if self._handle is None:
            raise KvcakeError("FAILED_PRECONDITION", "client is closed")
        return self._handle

    def register_namespace(self, num_layers, block_tokens, layer_block_bytes, kv_dtype="",
                           layout="", quota_bytes=0, serving="exact"):
        """Registers the namespace's geometry (idempotent for the same one).
        serving: "exact" (the engine needs every block of a prefix) or
        "budgeted" (it attends over a per-layer budget; docs/policy.md §3)."""
        mode = {"exact": 0, "budgeted": 1}.get(serving, -1)  # -1: the library refuses it
        _check(self._lib.kvcake_register_namespace_serving(
            self._h(), int(num_layers), int(block_tokens), int(layer_block_bytes),
            kv_dtype.encode(), layout.encode(), int(quota_bytes), mode))
        self.layer_block_bytes = int(layer_block_bytes)
        self.block_tokens = int(block_tokens)

    def hash_tokens(self, tokens):
        """Chained hashes of the full blocks of `tokens` (a sequence of token ids)."""
        toks = (_c_uint32 * len(tokens))(*[int(t) for t in tokens])
        cap = len(tokens) // max(1, getattr(self, "block_tokens", 1))
        out = (_c_uint64 * max(1, cap))()
        n = _c_int64()
        _check(self._lib.kvcake_hash_tokens(self._h(), toks, len(tokens), out, cap,
                                            ctypes.byref(n)))
        return [out[i] for i in range(n.value)]

    def lookup_prefix(self, hashes, layer=0):
        """How many leading `hashes` are stored for `layer` (in some tier)."""
        n = _c_int32()
        _check(self._lib.kvcake_lookup_prefix(self._h(), _u64s(hashes), len(hashes), int(layer),
                                              ctypes.byref(n)))
        return n.value

    def lookup_prefix_holders(self, hashes, layer=0):
        """Who holds how much of the chain, e.g. for a router scoring nodes; starts no fetch.

        Returns (local, holders): the leading blocks this daemon holds, and a list of
        (node_id, blocks) for every other live cluster member the directory knows to hold a
        prefix, longest first (empty when the daemon is in no cluster).
        """
        local, count = _c_int32(), _c_int32()
        capacity = 16
        while True:
            out = (_PrefixHolder * capacity)()
            _check(self._lib.kvcake_lookup_prefix_holders(
                self._h(), _u64s(hashes), len(hashes), int(layer), ctypes.byref(local), out,
                capacity, ctypes.byref(count)))
            if count.value <= capacity:
                return local.value, [(h.node.decode(), h.blocks) for h in out[:count.value]]
            capacity = count.value

    def _keyed(self, hashes, layers, buffers):
        if len(hashes) != len(layers) or (buffers is not None and len(buffers) != len(hashes)):
            raise ValueError("hashes, layers and buffers differ in length")
        if buffers is not None and self.layer_block_bytes == 0:
            raise KvcakeError("FAILED_PRECONDITION", "call register_namespace first")

    def put(self, hashes, layers, buffers):
        """Stores layer layers[i] of block hashes[i] from buffers[i]."""
        self._keyed(hashes, layers, buffers)
        bufs = _Buffers(buffers, self.layer_block_bytes, writable=False)
        _check(self._lib.kvcake_put(self._h(), _u64s(hashes), _i32s(layers), bufs.addrs,
                                    len(hashes)))

    def get(self, hashes, layers, buffers):
        """Reads into buffers[i] where found; the per-value hit flags."""
        self._keyed(hashes, layers, buffers)
        bufs = _Buffers(buffers, self.layer_block_bytes, writable=True)
        found = (_c_int32 * max(1, len(hashes)))()
        _check(self._lib.kvcake_get(self._h(), _u64s(hashes), _i32s(layers), bufs.addrs,
                                    len(hashes), found))
        return [bool(found[i]) for i in range(len(hashes))]

    def get_async(self, groups):
        """Starts one get per group, each a (hashes, layers, buffers) triple (typically one
        layer's blocks); returns a PendingGet at once. Host buffers only."""
        hashes, layers, buffers, sizes = [], [], [], []
        for g in groups:
            h, l, b = g
            self._keyed(h, l, b)
            hashes += list(h)
            layers += list(l)
            buffers += list(b)
            sizes.append(len(h))
        bufs = _Buffers(buffers, self.layer_block_bytes, writable=True)
        handle = _c_void_p()
        _check(self._lib.kvcake_get_async(self._h(), _u64s(hashes), _i32s(layers), bufs.addrs,
                                          _i32s(sizes), len(sizes), ctypes.byref(handle)))
        p = PendingGet(self._lib, handle, sizes, bufs)
        self._pending.add(p)
        return p

    def put_stream(self):
        """Opens a PutStream: groups submitted one by one (typically one layer's blocks as
        the engine computes it) are stored in order in the background."""
        handle = _c_void_p()
        _check(self._lib.kvcake_put_stream_open(self._h(), ctypes.byref(handle)))
        s = PutStream(self, handle)
        self._pending.add(s)
        return s

    def put_handoff(self, target_node, handoff_id, total_blocks, hashes, layers, buffers):
        """Prefill side of a hand-off: stores as put() does, and the local daemon pushes
        the values to cluster member `target_node` as they commit. `handoff_id` (> 0) names
        the request; `total_blocks` counts the values of the whole hand-off."""
        self._keyed(hashes, layers, buffers)
        bufs = _Buffers(buffers, self.layer_block_bytes, writable=False)
        _check(self._lib.kvcake_put_handoff(self._h(), target_node.encode(), handoff_id,
                                            total_blocks, _u64s(hashes), _i32s(layers),
                                            bufs.addrs, len(hashes)))

    def put_stream_handoff(self, target_node, handoff_id, total_blocks):
        """A PutStream whose groups are hand-off puts (see put_handoff): submit each layer
        as the prefill produces it; its push overlaps the next layers."""
        handle = _c_void_p()
        _check(self._lib.kvcake_put_stream_open_handoff(self._h(), target_node.encode(),
                                                        handoff_id, total_blocks,
                                                        ctypes.byref(handle)))
        s = PutStream(self, handle)
        self._pending.add(s)
        return s

    def abort_handoff(self, handoff_id, reason=""):
        """Prefill side: gives up hand-off `handoff_id` (a cancelled request); the decode
        side's waits end at once with ABORTED. Raises KvcakeError NOT_FOUND if no hand-off
        of that id is in progress from this daemon."""
        _check(self._lib.kvcake_abort_handoff(self._h(), handoff_id, reason.encode()))

    def wait_handoff(self, handoff_id, timeout_ms):
        """Decode side: waits until every value of hand-off `handoff_id` arrived at this
        daemon; raises KvcakeError: DEADLINE_EXCEEDED if not within timeout_ms, ABORTED or
        UNAVAILABLE if the hand-off failed on the prefill side (its engine disconnected,
        its member left the cluster)."""
        _check(self._lib.kvcake_wait_handoff(self._h(), handoff_id, timeout_ms))

    def delete(self, hashes, layers):
        """Deletes values; how many existed."""
        self._keyed(hashes, layers, None)
        n = _c_int32()
        _check(self._lib.kvcake_delete(self._h(), _u64s(hashes), _i32s(layers), len(hashes),
                                       ctypes.byref(n)))
        return n.value

    def report_layer_stats(self, layer, preference, hashes, scores, window_blocks):
        """Reports a layer's CAKE signals for one prompt (docs/design.md §4)."""
        if len(hashes) != len(scores):
            raise ValueError("hashes and scores differ in length")
        sc = (_c_double * len(scores))(*[float(s) for s in scores])
        _check(self._lib.kvcake_report_layer_stats(self._h(), int(layer), float(preference),
                                                   _u64s(hashes), sc, len(hashes),
                                                   int(window_blocks)))

    def report_attention(self, layer, attention, hashes, num_query_heads, num_kv_heads, window,
                         seq_len=None, **params):
        """Computes layer `layer`'s CAKE signals from its observation-window attention (see
        layer_stats; `params`: tau1, tau2, gamma, pool_kernel) and reports them for the prompt
        whose chained block hashes are `hashes` (hash_tokens of its tokens): the preference,
        each block's score over the keys before the window, and the blocks that reach into
        the window as window_blocks (kept in place until the next report). Returns the
        LayerStats."""
        if not getattr(self, "block_tokens", 0):
            raise KvcakeError("FAILED_PRECONDITION", "call register_namespace first")
        stats = layer_stats(attention, num_query_heads, num_kv_heads, window, seq_len, **params)
        prefix_tokens = len(stats.indicator) // int(num_kv_heads)
        scores = block_scores(stats.indicator, num_kv_heads, prefix_tokens, self.block_tokens)
        n = len(hashes)
        scores = (scores + [0.0] * n)[:n]  # blocks inside the window: pinned, not scored
        window_blocks = max(1, n - prefix_tokens // self.block_tokens)
        self.report_layer_stats(layer, stats.preference, hashes, scores, min(n, window_blocks))
        return stats

    def ping(self):
        """A round trip to the daemon; KvcakeError UNAVAILABLE when it is gone."""
        _check(self._lib.kvcake_ping(self._h()))

    @property
    def mapped_path(self):
        """True when values move through the daemon's mapped host segment."""
        return self._lib.kvcake_mapped_path(self._h()) == 1

    @property
    def transport_info(self):
        """The UCX lanes of the connection, e.g. "am:tcp/lo ..."."""
        n = self._lib.kvcake_transport_info(self._h(), None, 0)
        buf = ctypes.create_string_buffer(n + 1)
        self._lib.kvcake_transport_info(self._h(), buf, n + 1)
        return buf.value.decode()

    def close(self):
        """Frees pending gets and put streams (storing what was submitted), then the
        connection."""
        for p in list(self._pending):
            p.close()
        if self._handle is not None:
            self._lib.kvcake_close(self._handle)
            self._handle = None
