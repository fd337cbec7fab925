"""kvcake for Python engines: libkvcake's C ABI (kvcake/kvcake_c.h) through ctypes.

No build step and no dependency beyond the Python standard library; the
library is found through $KVCAKE_LIB, next to this package in an installed
tree (<prefix>/share/kvcake/python -> <prefix>/lib), or the loader's path.

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

Buffers are checked against the namespace's layer_block_bytes; a raw int
address is the caller's promise that it points at that many bytes (in CUDA
builds put/get also take CUDA device addresses). Errors raise KvcakeError with
the library's message and code (the canonical status codes).

Thread-safety: a Client may be used from several threads at once (the
library serialises what needs it); a PendingGet or a PutStream by one thread at a time.
"""

import ctypes
import ctypes.util
import os
import sysconfig
import weakref

__all__ = ["Client", "PendingGet", "PutStream", "KvcakeError", "load_library", "version"]

_c_int = ctypes.c_int
_c_int32 = ctypes.c_int32
_c_int64 = ctypes.c_int64
_c_uint32 = ctypes.c_uint32
_c_uint64 = ctypes.c_uint64
_c_double = ctypes.c_double
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
        "kvcake_register_namespace_ex": (_c_int, [_c_void_p, _c_int, _c_int, _c_int64,
                                                  _c_char_p, _c_char_p, _c_int64]),
        "kvcake_hash_tokens": (_c_int, [_c_void_p, _P(_c_uint32), _c_int64, _P(_c_uint64),
                                        _c_int64, _P(_c_int64)]),
        "kvcake_lookup_prefix": (_c_int, [_c_void_p, _P(_c_uint64), _c_int, _c_int32,
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
        "kvcake_delete": (_c_int, [_c_void_p, _P(_c_uint64), _P(_c_int32), _c_int,
                                   _P(_c_int32)]),
        "kvcake_report_layer_stats": (_c_int, [_c_void_p, _c_int32, _c_double, _P(_c_uint64),
                                               _P(_c_double), _c_int, _c_int32]),
        "kvcake_ping": (_c_int, [_c_void_p]),
        "kvcake_mapped_path": (_c_int, [_c_void_p]),
        "kvcake_transport_info": (_c_int, [_c_void_p, _c_char_p, _c_int]),
        "kvcake_close": (None, [_c_void_p]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args


def load_library(path=None):
    """Loads libkvcake once: `path`, $KVCAKE_LIB, an installed tree, or the loader's path."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    candidates = [path] if path else []
    if not path:
        if os.environ.get("KVCAKE_LIB"):
            candidates.append(os.environ["KVCAKE_LIB"])
        # Installed: <prefix>/share/kvcake/python/kvcake/__init__.py, library in <prefix>/lib*.
        prefix = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                               "..", "..", "..", ".."))
        multiarch = sysconfig.get_config_var("MULTIARCH") or ""
        for libdir in ("lib", "lib64", os.path.join("lib", multiarch)):
            candidates.append(os.path.join(prefix, libdir, "libkvcake.so"))
        found = ctypes.util.find_library("kvcake")
        candidates += [found] if found else []
        candidates.append("libkvcake.so.0")
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
    raise KvcakeError("NOT_FOUND", "libkvcake not found (set KVCAKE_LIB): " + "; ".join(errors))


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
                           layout="", quota_bytes=0):
        """Registers the namespace's geometry (idempotent for the same one)."""
        _check(self._lib.kvcake_register_namespace_ex(
            self._h(), int(num_layers), int(block_tokens), int(layer_block_bytes),
            kv_dtype.encode(), layout.encode(), int(quota_bytes)))
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

    def delete(self, hashes, layers):
        """Deletes values; how many existed."""
        self._keyed(hashes, layers, None)
        n = _c_int32()
        _check(self._lib.kvcake_delete(self._h(), _u64s(hashes), _i32s(layers), len(hashes),
                                       ctypes.byref(n)))
        return n.value

    def report_layer_stats(self, layer, preference, hashes, scores, window_blocks):
        """Reports a layer's CAKE signals for one prompt (DESIGN.md §4)."""
        if len(hashes) != len(scores):
            raise ValueError("hashes and scores differ in length")
        sc = (_c_double * len(scores))(*[float(s) for s in scores])
        _check(self._lib.kvcake_report_layer_stats(self._h(), int(layer), float(preference),
                                                   _u64s(hashes), sc, len(hashes),
                                                   int(window_blocks)))

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
