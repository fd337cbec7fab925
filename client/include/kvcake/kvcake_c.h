/* kvcake C ABI, exported from libkvcake.so. All functions are thread-safe
 * unless noted; negative return values are kvcake error codes
 * (-KVCAKE_E_*, the canonical status codes) and kvcake_last_error() returns
 * this thread's message for the last failure. No function lets a C++
 * exception escape: one thrown inside becomes an error code and message
 * (-KVCAKE_E_RESOURCE_EXHAUSTED for std::bad_alloc, -KVCAKE_E_INTERNAL for
 * other exceptions). */
#ifndef KVCAKE_KVCAKE_C_H_
#define KVCAKE_KVCAKE_C_H_

#include <stdint.h>

#include "kvcake/export.h"
#include "kvcake/version.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  KVCAKE_OK = 0,
  KVCAKE_E_CANCELLED = 1,
  KVCAKE_E_UNKNOWN = 2,
  KVCAKE_E_INVALID_ARGUMENT = 3,
  KVCAKE_E_DEADLINE_EXCEEDED = 4,
  KVCAKE_E_NOT_FOUND = 5,
  KVCAKE_E_ALREADY_EXISTS = 6,
  KVCAKE_E_PERMISSION_DENIED = 7,
  KVCAKE_E_RESOURCE_EXHAUSTED = 8,
  KVCAKE_E_FAILED_PRECONDITION = 9,
  KVCAKE_E_ABORTED = 10,
  KVCAKE_E_OUT_OF_RANGE = 11,
  KVCAKE_E_UNIMPLEMENTED = 12,
  KVCAKE_E_INTERNAL = 13,
  KVCAKE_E_UNAVAILABLE = 14,
  KVCAKE_E_DATA_LOSS = 15,
  KVCAKE_E_UNAUTHENTICATED = 16
};

/* ---- CAKE engine-side signals (docs/design.md §4) ---------------------------- */

/* attention: float32 [num_query_heads][window][seq_len], row-major: softmax probabilities of the
   last `window` queries over all seq_len keys (zero past the causal limit).
   out_indicator: float32 [num_kv_heads][seq_len - window].
   Returns 0, or a negative kvcake error code on bad arguments (null pointer, window >= seq_len,
   query heads not a multiple of KV heads, pool_kernel even or < 1, ...). */
KVCAKE_API int kvcake_cake_layer_stats(const float* attention, int num_query_heads,
                                       int num_kv_heads, int window, int seq_len, double tau1,
                                       double tau2, double gamma, int pool_kernel,
                                       double* out_entropy, double* out_variance,
                                       double* out_preference, float* out_indicator);
/* out_scores: [ceil(num_tokens / block_tokens)]: sums of indicator over KV heads and each block's
   tokens. */
KVCAKE_API int kvcake_cake_block_scores(const float* indicator, int num_kv_heads, int num_tokens,
                                        int block_tokens, double* out_scores);
/* Integer water-filling of total_blocks over num_layers by preference, capped by caps[l],
   at least one block per layer whose cap is > 0. */
KVCAKE_API int kvcake_cake_budgets(const double* preference, const int64_t* caps, int num_layers,
                                   int64_t total_blocks, int64_t* out_budgets);

/* The loaded library's version, "MAJOR.MINOR.PATCH" (KVCAKE_VERSION_STRING of the
   kvcake/version.h it was built with). */
KVCAKE_API const char* kvcake_version(void);

/* ---- Connector (docs/design.md §3, §5) --------------------------------------- */

typedef struct kvcake_client kvcake_client;
KVCAKE_API int kvcake_connect(const char* address /* "HOST:PORT" */, const char* namespace_name,
                              const char* token /* may be NULL */, kvcake_client** out);
KVCAKE_API int kvcake_register_namespace(kvcake_client* c, int num_layers, int block_tokens,
                                         int64_t layer_block_bytes);
KVCAKE_API int kvcake_put(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
                          const void* const* buffers,
                          int count); /* each buffer layer_block_bytes long */
KVCAKE_API int kvcake_get(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
                          void* const* buffers, int count, int32_t* out_found /* 1 hit, 0 miss */);
KVCAKE_API int kvcake_lookup_prefix(kvcake_client* c, const uint64_t* block_hashes, int count,
                                    int32_t layer, int32_t* out_prefix_len);
/* A cluster member holding a prefix: its node id (NUL-terminated) and how many leading blocks
   of the chain it holds. */
typedef struct kvcake_prefix_holder {
  char node[257];
  int32_t blocks;
} kvcake_prefix_holder;
/* Who holds how much of a chain, e.g. for a router scoring nodes; starts no fetch. *out_local
   gets the leading blocks this daemon holds; holders[0 .. min(*out_count, capacity)) every
   other live cluster member the directory knows to hold a prefix, longest first (ties by node
   id). *out_count gets how many there are; beyond `capacity` they are not written. A daemon
   in no cluster names none. */
KVCAKE_API int kvcake_lookup_prefix_holders(kvcake_client* c, const uint64_t* block_hashes,
                                            int count, int32_t layer, int32_t* out_local,
                                            kvcake_prefix_holder* holders, int capacity,
                                            int32_t* out_count);
KVCAKE_API void kvcake_close(kvcake_client* c);
KVCAKE_API const char* kvcake_last_error(void); /* this thread's last error message */

/* kvcake_put and kvcake_get also take CUDA device pointers in CUDA builds (staged through host
   memory); kvcake_get_async takes host buffers only. */

/* ---- Connector: options, hashing, layer-wise get, maintenance ------------ */

/* Connection options. Call kvcake_options_init() first, then set what you need: the library
   reads only the first struct_size bytes, so a caller built against an older header keeps
   working when fields are added at the end. */
typedef struct kvcake_options {
  uint32_t struct_size;          /* sizeof(kvcake_options), set by kvcake_options_init */
  int32_t use_mapped_path;       /* 1 (default): copy through the daemon's host segment when it
                                    runs on this machine; 0: always over UCX */
  const char* token;             /* daemon token, or NULL (default) */
  const char* ucx_tls;           /* "tcp" or "shm"; NULL (default): $KVCAKE_UCX_TLS, else "tcp" */
  int64_t timeout_ms;            /* bound on connect and on every call; default 30000 */
  int32_t max_inflight_requests; /* requests of one batch in flight over UCX; default 16 */
} kvcake_options;
KVCAKE_API void kvcake_options_init(kvcake_options* options);
/* As kvcake_connect, with options (NULL: the defaults). */
KVCAKE_API int kvcake_connect_with_options(const char* address, const char* namespace_name,
                                           const kvcake_options* options, kvcake_client** out);
/* As kvcake_register_namespace, with the KV layout that is part of the namespace's identity
   (kv_dtype e.g. "fp16", layout e.g. "NHD;tp=2;rank=0"; NULL: "") and a quota (0: the
   daemon's default). Registering a namespace again with another geometry or layout is
   -KVCAKE_E_FAILED_PRECONDITION. */
KVCAKE_API int kvcake_register_namespace_ex(kvcake_client* c, int num_layers, int block_tokens,
                                            int64_t layer_block_bytes, const char* kv_dtype,
                                            const char* layout, int64_t quota_bytes);
/* How the engine serves from the GPU tier (docs/policy.md §3). */
#define KVCAKE_SERVING_EXACT 0    /* every block of a prefix before it computes (the default) */
#define KVCAKE_SERVING_BUDGETED 1 /* attends over a per-layer budget: CAKE's budgets and scores */
/* As kvcake_register_namespace_ex, with the serving mode (KVCAKE_SERVING_*; anything else is
   -KVCAKE_E_INVALID_ARGUMENT). The first registration of a namespace sets it. */
KVCAKE_API int kvcake_register_namespace_serving(kvcake_client* c, int num_layers, int block_tokens,
                                                 int64_t layer_block_bytes, const char* kv_dtype,
                                                 const char* layout, int64_t quota_bytes,
                                                 int serving);

/* The chained hashes of the full blocks of `tokens` (docs/design.md §2: seeded by the namespace,
   block_tokens from the registered geometry): num_tokens / block_tokens values into
   out_hashes. *out_count gets that number; -KVCAKE_E_OUT_OF_RANGE (nothing written) when it
   exceeds `capacity`, -KVCAKE_E_FAILED_PRECONDITION before kvcake_register_namespace. */
KVCAKE_API int kvcake_hash_tokens(kvcake_client* c, const uint32_t* tokens, int64_t num_tokens,
                                  uint64_t* out_hashes, int64_t capacity, int64_t* out_count);

/* Layer-wise get: one request per group (typically one layer's blocks), each completing on
   its own, so an engine computes layer l while layer l+1 is still arriving. Group g is the
   next group_sizes[g] entries of the arrays. Returns at once; the buffers (host memory) must
   stay valid until kvcake_pending_get_free. A pending get is used by one thread at a time. */
typedef struct kvcake_pending_get kvcake_pending_get;
KVCAKE_API int kvcake_get_async(kvcake_client* c, const uint64_t* block_hashes,
                                const int32_t* layers, void* const* buffers,
                                const int32_t* group_sizes, int num_groups,
                                kvcake_pending_get** out);
/* Waits up to timeout_ms for group `group`; on 0 its buffers are filled where out_found[i]
   (group_sizes[group] entries, may be NULL) is 1. -KVCAKE_E_DEADLINE_EXCEEDED if the group is
   still arriving (wait again); other errors as kvcake_get. */
KVCAKE_API int kvcake_pending_get_wait(kvcake_pending_get* p, int group, int64_t timeout_ms,
                                       int32_t* out_found);
/* Waits for the outstanding requests (bounded by the client's timeout), then frees. A pending
   get may outlive its client: kvcake_close finishes the requests already sent and fails the
   groups not sent yet with -KVCAKE_E_CANCELLED. */
KVCAKE_API void kvcake_pending_get_free(kvcake_pending_get* p);

/* Layer-wise save: a put stream stores the groups submitted to it in order, on a thread of its
   own, so an engine submits layer l's blocks and goes on computing layer l+1 (vLLM's
   save_kv_layer); kvcake_put_stream_wait is its wait_for_save. A stream is used by one thread
   at a time and may outlive its client (kvcake_close stores the group in progress and fails
   the queued ones with -KVCAKE_E_CANCELLED). -KVCAKE_E_FAILED_PRECONDITION before
   kvcake_register_namespace. */
typedef struct kvcake_put_stream kvcake_put_stream;
KVCAKE_API int kvcake_put_stream_open(kvcake_client* c, kvcake_put_stream** out);
/* Queues `count` values (host buffers, each layer_block_bytes long, valid until the group's
   wait returned or the stream is freed); *out_group (may be NULL) gets the group's index,
   0, 1, ... in submission order. */
KVCAKE_API int kvcake_put_stream_submit(kvcake_put_stream* s, const uint64_t* block_hashes,
                                        const int32_t* layers, const void* const* buffers,
                                        int count, int32_t* out_group);
/* Waits up to timeout_ms for group `group` to be stored: 0 when every value is stored (or
   already was), -KVCAKE_E_DEADLINE_EXCEEDED if it is still being stored (wait again), other
   errors as kvcake_put. group -1 waits for every group submitted so far. */
KVCAKE_API int kvcake_put_stream_wait(kvcake_put_stream* s, int group, int64_t timeout_ms);
/* Stores what was submitted (each request bounded by the client's timeout), then frees. */
KVCAKE_API void kvcake_put_stream_free(kvcake_put_stream* s);

/* Prefill to decode hand-off (docs/cluster.md): the values are stored by the local daemon as
   kvcake_put does, and pushed by it to cluster member `target_node` as soon as they commit.
   `handoff_id` (> 0) names the request; `total_blocks` (> 0) is the number of values of the
   whole hand-off (blocks x layers). A failed push is the daemon's to log and count; the
   return value is the local store's. */
KVCAKE_API int kvcake_put_handoff(kvcake_client* c, const char* target_node, uint64_t handoff_id,
                                  int32_t total_blocks, const uint64_t* block_hashes,
                                  const int32_t* layers, const void* const* buffers, int count);
/* A put stream whose groups are hand-off puts (see kvcake_put_handoff). */
KVCAKE_API int kvcake_put_stream_open_handoff(kvcake_client* c, const char* target_node,
                                              uint64_t handoff_id, int32_t total_blocks,
                                              kvcake_put_stream** out);
/* Prefill side: gives up hand-off `handoff_id` before all its values were saved (a cancelled
   request); its decode side's waits end at once with -KVCAKE_E_ABORTED and `reason` (may be
   NULL). -KVCAKE_E_NOT_FOUND if no hand-off of that id is in progress from this daemon. */
KVCAKE_API int kvcake_abort_handoff(kvcake_client* c, uint64_t handoff_id, const char* reason);
/* Decode side: waits up to timeout_ms (<= 600000) until every value of hand-off `handoff_id`
   has arrived at this client's daemon: 0, -KVCAKE_E_DEADLINE_EXCEEDED, or the hand-off's
   failure on the prefill side (-KVCAKE_E_ABORTED: the prefill engine disconnected or aborted
   it first;
   -KVCAKE_E_UNAVAILABLE: the prefill member left the cluster). */
KVCAKE_API int kvcake_wait_handoff(kvcake_client* c, uint64_t handoff_id, int64_t timeout_ms);

/* Deletes values; *out_deleted (may be NULL) gets how many existed. */
KVCAKE_API int kvcake_delete(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
                             int count, int32_t* out_deleted);
/* Reports a layer's CAKE signals for one prompt (docs/design.md §4): the layer's preference and
   each block's score (kvcake_cake_layer_stats, kvcake_cake_block_scores); window_blocks is
   the observation window in blocks. */
KVCAKE_API int kvcake_report_layer_stats(kvcake_client* c, int32_t layer, double preference,
                                         const uint64_t* block_hashes, const double* block_scores,
                                         int count, int32_t window_blocks);
/* A round trip to the daemon: 0, or why it failed (-KVCAKE_E_UNAVAILABLE for a dead daemon). */
KVCAKE_API int kvcake_ping(kvcake_client* c);
/* 1 when values move through the mapped host segment, 0 when over UCX, <0 for a NULL c. */
KVCAKE_API int kvcake_mapped_path(const kvcake_client* c);
/* The UCX lanes of the connection (e.g. "am:tcp/lo"), NUL-terminated into buf (truncated to
   buf_len - 1 bytes). Returns the full length without the NUL, or a negative error. */
KVCAKE_API int kvcake_transport_info(const kvcake_client* c, char* buf, int buf_len);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KVCAKE_KVCAKE_C_H_ */
