/* kvcake C ABI, exported from libkvcake.so. All functions are thread-safe
 * unless noted; negative return values are kvcake error codes
 * (-KVCAKE_E_*, the canonical status codes) and kvcake_last_error() returns
 * this thread's message for the last failure. */
#ifndef KVCAKE_KVCAKE_C_H_
#define KVCAKE_KVCAKE_C_H_

#include <stdint.h>

#if defined(__GNUC__)
#define KVCAKE_API __attribute__((visibility("default")))
#else
#define KVCAKE_API
#endif

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

/* ---- CAKE engine-side signals (DESIGN.md §4) ---------------------------- */

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

/* Library version, "MAJOR.MINOR.PATCH". */
KVCAKE_API const char* kvcake_version(void);

/* ---- Connector (DESIGN.md §3, §5) --------------------------------------- */

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
KVCAKE_API void kvcake_close(kvcake_client* c);
KVCAKE_API const char* kvcake_last_error(void); /* this thread's last error message */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KVCAKE_KVCAKE_C_H_ */
