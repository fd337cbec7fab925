// The connector part of the C ABI (kvcake/kvcake_c.h) over kvcake::Client.

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "client/src/c_error.h"
#include "kvcake/client.h"
#include "kvcake/kvcake_c.h"

struct kvcake_client {
  std::unique_ptr<kvcake::Client> client;
};

// A layer-wise get in flight; `groups` holds each group's size.
struct kvcake_pending_get {
  std::unique_ptr<kvcake::PendingGet> pending;
  std::vector<int32_t> group_sizes;
};

// A layer-wise save; groups are stored in submission order.
struct kvcake_put_stream {
  std::unique_ptr<kvcake::PutStream> stream;
};

namespace {

int BadArgument(const std::string& what) {
  return kvcake::StatusToCError(kvcake::InvalidArgumentError(what));
}

// Checks the parallel arrays of a keyed call (count > 0) and builds the ids
// they name. Returns 0 or a C error.
int MakeIds(const uint64_t* hashes, const int32_t* layers, int count,
            std::vector<kvcake::BlockId>* out) {
  if (!hashes || !layers) return BadArgument("null block_hashes/layers");
  out->resize(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    if (layers[i] < 0) return BadArgument("negative layer at " + std::to_string(i));
    (*out)[static_cast<size_t>(i)] = kvcake::BlockId{hashes[i], static_cast<uint32_t>(layers[i])};
  }
  return 0;
}

// MakeIds, then each id with its buffer (non-null) as a put or get block.
template <typename Block, typename Ptr>
int MakeBlocks(const uint64_t* hashes, const int32_t* layers, Ptr const* buffers, int count,
               std::vector<Block>* out) {
  std::vector<kvcake::BlockId> ids;
  if (int rc = MakeIds(hashes, layers, count, &ids); rc != 0) return rc;
  out->resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!buffers[i]) return BadArgument("null buffer at " + std::to_string(i));
    (*out)[i] = Block{ids[i].hash, ids[i].layer, buffers[i]};
  }
  return 0;
}

void CopyFound(const std::vector<bool>& found, int32_t* out) {
  for (size_t i = 0; i < found.size(); ++i) out[i] = found[i] ? 1 : 0;
}

}  // namespace

extern "C" {

void kvcake_options_init(kvcake_options* options) {
  kvcake::CatchAllVoid("kvcake_options_init", [&] {
    if (!options) return;
    const kvcake::ClientOptions defaults;
    std::memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->use_mapped_path = defaults.use_mapped_path ? 1 : 0;
    options->timeout_ms = defaults.timeout.count();
    options->max_inflight_requests = defaults.max_inflight_requests;
  });
}

int kvcake_connect(const char* address, const char* namespace_name, const char* token,
                   kvcake_client** out) {
  return kvcake::CatchAll("kvcake_connect", [&] {
    kvcake_options options;
    kvcake_options_init(&options);
    options.token = token;
    return kvcake_connect_with_options(address, namespace_name, &options, out);
  });
}

int kvcake_connect_with_options(const char* address, const char* namespace_name,
                                const kvcake_options* options, kvcake_client** out) {
  return kvcake::CatchAll("kvcake_connect_with_options", [&] {
    if (!address || !namespace_name || !out) return BadArgument("null address/namespace/out");
    *out = nullptr;
    kvcake_options o;
    kvcake_options_init(&o);
    if (options) {
      if (options->struct_size < offsetof(kvcake_options, token) ||
          options->struct_size > sizeof o) {
        return BadArgument(
            ("kvcake_options.struct_size is " + std::to_string(options->struct_size) +
             "; call kvcake_options_init (this library knows " + std::to_string(sizeof o) +
             " bytes of options; a larger size means a newer kvcake_c.h than the library)")
                .c_str());
      }
      std::memcpy(&o, options, options->struct_size);
    }
    kvcake::ClientOptions co;
    co.address = address;
    co.namespace_name = namespace_name;
    if (o.token) co.token = o.token;
    if (o.ucx_tls) {
      co.ucx_tls = o.ucx_tls;
    } else if (const char* tls = std::getenv("KVCAKE_UCX_TLS")) {
      co.ucx_tls = tls;
    }
    co.use_mapped_path = o.use_mapped_path != 0;
    if (o.timeout_ms <= 0) return BadArgument("timeout_ms must be > 0");
    co.timeout = std::chrono::milliseconds(o.timeout_ms);
    co.max_inflight_requests = o.max_inflight_requests;
    kvcake::Result<std::unique_ptr<kvcake::Client>> c = kvcake::Client::Connect(co);
    if (!c.ok()) return kvcake::StatusToCError(c.status());
    auto* handle = new (std::nothrow) kvcake_client{std::move(c).value()};
    if (!handle) return kvcake::StatusToCError(kvcake::ResourceExhaustedError("out of memory"));
    *out = handle;
    return 0;
  });
}

int kvcake_register_namespace(kvcake_client* c, int num_layers, int block_tokens,
                              int64_t layer_block_bytes) {
  return kvcake::CatchAll("kvcake_register_namespace", [&] {
    return kvcake_register_namespace_ex(c, num_layers, block_tokens, layer_block_bytes, nullptr,
                                        nullptr, 0);
  });
}

int kvcake_register_namespace_ex(kvcake_client* c, int num_layers, int block_tokens,
                                 int64_t layer_block_bytes, const char* kv_dtype,
                                 const char* layout, int64_t quota_bytes) {
  return kvcake_register_namespace_serving(c, num_layers, block_tokens, layer_block_bytes, kv_dtype,
                                           layout, quota_bytes, KVCAKE_SERVING_EXACT);
}

int kvcake_register_namespace_serving(kvcake_client* c, int num_layers, int block_tokens,
                                      int64_t layer_block_bytes, const char* kv_dtype,
                                      const char* layout, int64_t quota_bytes, int serving) {
  return kvcake::CatchAll("kvcake_register_namespace", [&] {
    if (!c) return BadArgument("null client");
    if (serving != KVCAKE_SERVING_EXACT && serving != KVCAKE_SERVING_BUDGETED) {
      return BadArgument("serving " + std::to_string(serving) +
                         " is neither KVCAKE_SERVING_EXACT (0) nor KVCAKE_SERVING_BUDGETED (1)");
    }
    if (num_layers <= 0 || block_tokens <= 0 || layer_block_bytes <= 0) {
      return BadArgument("num_layers, block_tokens and layer_block_bytes must be > 0");
    }
    if (quota_bytes < 0) return BadArgument("negative quota_bytes");
    kvcake::NamespaceGeometry g;
    g.num_layers = static_cast<uint32_t>(num_layers);
    g.block_tokens = static_cast<uint32_t>(block_tokens);
    g.layer_block_bytes = static_cast<uint64_t>(layer_block_bytes);
    if (kv_dtype) g.kv_dtype = kv_dtype;
    if (layout) g.layout = layout;
    g.quota_bytes = static_cast<uint64_t>(quota_bytes);
    g.budgeted_serving = serving == KVCAKE_SERVING_BUDGETED;
    return kvcake::StatusToCError(c->client->RegisterNamespace(g));
  });
}

int kvcake_put(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
               const void* const* buffers, int count) {
  return kvcake::CatchAll("kvcake_put", [&] {
    if (!c) return BadArgument("null client");
    if (count < 0) return BadArgument("negative count");
    if (count == 0) return 0;
    if (!buffers) return BadArgument("null buffers");
    std::vector<kvcake::PutBlock> blocks;
    if (int rc = MakeBlocks(block_hashes, layers, buffers, count, &blocks); rc != 0) return rc;
    return kvcake::StatusToCError(c->client->Put(blocks));
  });
}

int kvcake_get(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
               void* const* buffers, int count, int32_t* out_found) {
  return kvcake::CatchAll("kvcake_get", [&] {
    if (!c) return BadArgument("null client");
    if (count < 0) return BadArgument("negative count");
    if (count == 0) return 0;
    if (!buffers || !out_found) return BadArgument("null buffers/out_found");
    std::vector<kvcake::GetBlock> blocks;
    if (int rc = MakeBlocks(block_hashes, layers, buffers, count, &blocks); rc != 0) return rc;
    std::vector<bool> found;
    int rc = kvcake::StatusToCError(c->client->Get(blocks, &found));
    if (rc != 0) return rc;
    CopyFound(found, out_found);
    return 0;
  });
}

int kvcake_lookup_prefix(kvcake_client* c, const uint64_t* block_hashes, int count, int32_t layer,
                         int32_t* out_prefix_len) {
  return kvcake::CatchAll("kvcake_lookup_prefix", [&] {
    if (!c || !out_prefix_len) return BadArgument("null client/out_prefix_len");
    if (count < 0 || layer < 0) return BadArgument("negative count/layer");
    if (count > 0 && !block_hashes) return BadArgument("null block_hashes");
    kvcake::Result<uint32_t> n =
        c->client->LookupPrefix(std::span<const uint64_t>(block_hashes, static_cast<size_t>(count)),
                                static_cast<uint32_t>(layer));
    if (!n.ok()) return kvcake::StatusToCError(n.status());
    *out_prefix_len = static_cast<int32_t>(*n);
    return 0;
  });
}

int kvcake_lookup_prefix_holders(kvcake_client* c, const uint64_t* block_hashes, int count,
                                 int32_t layer, int32_t* out_local, kvcake_prefix_holder* holders,
                                 int capacity, int32_t* out_count) {
  return kvcake::CatchAll("kvcake_lookup_prefix_holders", [&] {
    if (!c || !out_local || !out_count) return BadArgument("null client/out_local/out_count");
    if (count < 0 || layer < 0 || capacity < 0) return BadArgument("negative count/layer/capacity");
    if (count > 0 && !block_hashes) return BadArgument("null block_hashes");
    if (capacity > 0 && !holders) return BadArgument("null holders");
    kvcake::Result<kvcake::Client::PrefixLookup> where = c->client->LookupPrefixDetail(
        std::span<const uint64_t>(block_hashes, static_cast<size_t>(count)),
        static_cast<uint32_t>(layer), {.prefetch = false, .all_holders = true});
    if (!where.ok()) return kvcake::StatusToCError(where.status());
    *out_local = static_cast<int32_t>(where->local);
    *out_count = static_cast<int32_t>(where->holders.size());
    for (size_t i = 0; i < where->holders.size() && i < static_cast<size_t>(capacity); ++i) {
      const std::string& node = where->holders[i].node;
      const size_t n = std::min(node.size(), sizeof(holders[i].node) - 1);
      std::memcpy(holders[i].node, node.data(), n);
      holders[i].node[n] = '\0';
      holders[i].blocks = static_cast<int32_t>(where->holders[i].blocks);
    }
    return 0;
  });
}

void kvcake_close(kvcake_client* c) {
  kvcake::CatchAllVoid("kvcake_close", [&] { delete c; });
}

int kvcake_hash_tokens(kvcake_client* c, const uint32_t* tokens, int64_t num_tokens,
                       uint64_t* out_hashes, int64_t capacity, int64_t* out_count) {
  return kvcake::CatchAll("kvcake_hash_tokens", [&] {
    if (!c || !out_count) return BadArgument("null client/out_count");
    if (num_tokens < 0 || capacity < 0) return BadArgument("negative num_tokens/capacity");
    if (num_tokens > 0 && !tokens) return BadArgument("null tokens");
    const uint32_t block_tokens = c->client->geometry().block_tokens;
    if (block_tokens == 0) {
      return kvcake::StatusToCError(kvcake::FailedPreconditionError(
          "kvcake_hash_tokens: call kvcake_register_namespace first (block_tokens comes from the "
          "namespace geometry)"));
    }
    const int64_t n = num_tokens / block_tokens;
    *out_count = n;
    if (n > capacity) {
      return kvcake::StatusToCError(kvcake::OutOfRangeError(
          "kvcake_hash_tokens: " + std::to_string(num_tokens) + " tokens make " +
          std::to_string(n) + " blocks of " + std::to_string(block_tokens) + ", capacity is " +
          std::to_string(capacity)));
    }
    if (n == 0) return 0;
    if (!out_hashes) return BadArgument("null out_hashes");
    std::vector<uint64_t> h =
        c->client->HashTokens(std::span<const uint32_t>(tokens, static_cast<size_t>(num_tokens)));
    std::copy(h.begin(), h.end(), out_hashes);
    return 0;
  });
}

int kvcake_get_async(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
                     void* const* buffers, const int32_t* group_sizes, int num_groups,
                     kvcake_pending_get** out) {
  return kvcake::CatchAll("kvcake_get_async", [&] {
    if (!c || !out) return BadArgument("null client/out");
    *out = nullptr;
    if (num_groups < 0) return BadArgument("negative num_groups");
    if (num_groups > 0 && !group_sizes) return BadArgument("null group_sizes");
    int64_t total = 0;
    for (int g = 0; g < num_groups; ++g) {
      if (group_sizes[g] < 0) return BadArgument("negative size of group " + std::to_string(g));
      total += group_sizes[g];
    }
    if (total > INT32_MAX) return BadArgument("more than 2^31 values");
    std::vector<kvcake::GetBlock> all;
    if (total > 0) {
      if (!buffers) return BadArgument("null buffers");
      if (int rc = MakeBlocks(block_hashes, layers, buffers, static_cast<int>(total), &all);
          rc != 0) {
        return rc;
      }
    }
    std::vector<std::vector<kvcake::GetBlock>> groups(static_cast<size_t>(num_groups));
    size_t pos = 0;
    for (int g = 0; g < num_groups; ++g) {
      const size_t n = static_cast<size_t>(group_sizes[g]);
      groups[static_cast<size_t>(g)].assign(all.begin() + static_cast<std::ptrdiff_t>(pos),
                                            all.begin() + static_cast<std::ptrdiff_t>(pos + n));
      pos += n;
    }
    auto handle = std::unique_ptr<kvcake_pending_get>(new (std::nothrow) kvcake_pending_get);
    if (!handle) return kvcake::StatusToCError(kvcake::ResourceExhaustedError("out of memory"));
    handle->group_sizes.assign(group_sizes, group_sizes + num_groups);
    kvcake::Result<std::unique_ptr<kvcake::PendingGet>> p = c->client->GetAsync(std::move(groups));
    if (!p.ok()) return kvcake::StatusToCError(p.status());
    handle->pending = std::move(p).value();
    *out = handle.release();
    return 0;
  });
}

int kvcake_pending_get_wait(kvcake_pending_get* p, int group, int64_t timeout_ms,
                            int32_t* out_found) {
  return kvcake::CatchAll("kvcake_pending_get_wait", [&] {
    if (!p) return BadArgument("null pending get");
    if (group < 0 || static_cast<size_t>(group) >= p->group_sizes.size()) {
      return BadArgument("group " + std::to_string(group) + " out of [0, " +
                         std::to_string(p->group_sizes.size()) + ")");
    }
    if (timeout_ms < 0) return BadArgument("negative timeout_ms");
    const auto index = static_cast<size_t>(group);
    int rc = kvcake::StatusToCError(p->pending->Wait(index, std::chrono::milliseconds(timeout_ms)));
    if (rc != 0) return rc;
    if (out_found) CopyFound(p->pending->found(index), out_found);
    return 0;
  });
}

void kvcake_pending_get_free(kvcake_pending_get* p) {
  kvcake::CatchAllVoid("kvcake_pending_get_free", [&] { delete p; });
}

int kvcake_put_stream_open(kvcake_client* c, kvcake_put_stream** out) {
  return kvcake::CatchAll("kvcake_put_stream_open", [&] {
    if (!c || !out) return BadArgument("null client/out");
    *out = nullptr;
    auto handle = std::unique_ptr<kvcake_put_stream>(new (std::nothrow) kvcake_put_stream);
    if (!handle) return kvcake::StatusToCError(kvcake::ResourceExhaustedError("out of memory"));
    kvcake::Result<std::unique_ptr<kvcake::PutStream>> s = c->client->OpenPutStream();
    if (!s.ok()) return kvcake::StatusToCError(s.status());
    handle->stream = std::move(s).value();
    *out = handle.release();
    return 0;
  });
}

namespace {

int MakeTarget(const char* target_node, uint64_t handoff_id, int32_t total_blocks,
               kvcake::HandoffTarget* out) {
  if (!target_node) return BadArgument("null target_node");
  if (total_blocks <= 0) return BadArgument("total_blocks must be > 0");
  out->node_id = target_node;
  out->handoff_id = handoff_id;
  out->total_blocks = static_cast<uint32_t>(total_blocks);
  return kvcake::StatusToCError(out->Validate());
}

}  // namespace

int kvcake_put_handoff(kvcake_client* c, const char* target_node, uint64_t handoff_id,
                       int32_t total_blocks, const uint64_t* block_hashes, const int32_t* layers,
                       const void* const* buffers, int count) {
  return kvcake::CatchAll("kvcake_put_handoff", [&] {
    if (!c) return BadArgument("null client");
    kvcake::HandoffTarget target;
    if (int rc = MakeTarget(target_node, handoff_id, total_blocks, &target); rc != 0) return rc;
    if (count < 0) return BadArgument("negative count");
    if (count == 0) return 0;
    if (!buffers) return BadArgument("null buffers");
    std::vector<kvcake::PutBlock> blocks;
    if (int rc = MakeBlocks(block_hashes, layers, buffers, count, &blocks); rc != 0) return rc;
    return kvcake::StatusToCError(c->client->PutHandoff(target, blocks));
  });
}

int kvcake_put_stream_open_handoff(kvcake_client* c, const char* target_node, uint64_t handoff_id,
                                   int32_t total_blocks, kvcake_put_stream** out) {
  return kvcake::CatchAll("kvcake_put_stream_open_handoff", [&] {
    if (!c || !out) return BadArgument("null client/out");
    *out = nullptr;
    kvcake::HandoffTarget target;
    if (int rc = MakeTarget(target_node, handoff_id, total_blocks, &target); rc != 0) return rc;
    auto handle = std::unique_ptr<kvcake_put_stream>(new (std::nothrow) kvcake_put_stream);
    if (!handle) return kvcake::StatusToCError(kvcake::ResourceExhaustedError("out of memory"));
    kvcake::Result<std::unique_ptr<kvcake::PutStream>> s = c->client->OpenHandoffStream(target);
    if (!s.ok()) return kvcake::StatusToCError(s.status());
    handle->stream = std::move(s).value();
    *out = handle.release();
    return 0;
  });
}

int kvcake_abort_handoff(kvcake_client* c, uint64_t handoff_id, const char* reason) {
  return kvcake::CatchAll("kvcake_abort_handoff", [&] {
    if (!c) return BadArgument("null client");
    return kvcake::StatusToCError(c->client->AbortHandoff(handoff_id, reason ? reason : ""));
  });
}

int kvcake_wait_handoff(kvcake_client* c, uint64_t handoff_id, int64_t timeout_ms) {
  return kvcake::CatchAll("kvcake_wait_handoff", [&] {
    if (!c) return BadArgument("null client");
    if (timeout_ms < 0) return BadArgument("negative timeout_ms");
    return kvcake::StatusToCError(
        c->client->WaitHandoff(handoff_id, std::chrono::milliseconds(timeout_ms)));
  });
}

int kvcake_put_stream_submit(kvcake_put_stream* s, const uint64_t* block_hashes,
                             const int32_t* layers, const void* const* buffers, int count,
                             int32_t* out_group) {
  return kvcake::CatchAll("kvcake_put_stream_submit", [&] {
    if (!s) return BadArgument("null put stream");
    if (count <= 0) return BadArgument("a group needs at least one value");
    if (!buffers) return BadArgument("null buffers");
    std::vector<kvcake::PutBlock> blocks;
    if (int rc = MakeBlocks(block_hashes, layers, buffers, count, &blocks); rc != 0) return rc;
    if (s->stream->size() >= INT32_MAX) return BadArgument("more than 2^31 groups");
    kvcake::Result<size_t> index = s->stream->Submit(std::move(blocks));
    if (!index.ok()) return kvcake::StatusToCError(index.status());
    if (out_group) *out_group = static_cast<int32_t>(*index);
    return 0;
  });
}

int kvcake_put_stream_wait(kvcake_put_stream* s, int group, int64_t timeout_ms) {
  return kvcake::CatchAll("kvcake_put_stream_wait", [&] {
    if (!s) return BadArgument("null put stream");
    if (timeout_ms < 0) return BadArgument("negative timeout_ms");
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    if (group == -1) return kvcake::StatusToCError(s->stream->WaitAll(timeout));
    if (group < 0 || static_cast<size_t>(group) >= s->stream->size()) {
      return BadArgument("group " + std::to_string(group) + " out of [0, " +
                         std::to_string(s->stream->size()) + ") (or -1 for all)");
    }
    return kvcake::StatusToCError(s->stream->Wait(static_cast<size_t>(group), timeout));
  });
}

void kvcake_put_stream_free(kvcake_put_stream* s) {
  kvcake::CatchAllVoid("kvcake_put_stream_free", [&] { delete s; });
}

int kvcake_delete(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers, int count,
                  int32_t* out_deleted) {
  return kvcake::CatchAll("kvcake_delete", [&] {
    if (!c) return BadArgument("null client");
    if (count < 0) return BadArgument("negative count");
    if (out_deleted) *out_deleted = 0;
    if (count == 0) return 0;
    std::vector<kvcake::BlockId> ids;
    if (int rc = MakeIds(block_hashes, layers, count, &ids); rc != 0) return rc;
    kvcake::Result<uint32_t> n = c->client->Delete(ids);
    if (!n.ok()) return kvcake::StatusToCError(n.status());
    if (out_deleted) *out_deleted = static_cast<int32_t>(*n);
    return 0;
  });
}

int kvcake_report_layer_stats(kvcake_client* c, int32_t layer, double preference,
                              const uint64_t* block_hashes, const double* block_scores, int count,
                              int32_t window_blocks) {
  return kvcake::CatchAll("kvcake_report_layer_stats", [&] {
    if (!c) return BadArgument("null client");
    if (layer < 0 || count < 0 || window_blocks < 0) {
      return BadArgument("negative layer/count/window_blocks");
    }
    if (count > 0 && (!block_hashes || !block_scores)) {
      return BadArgument("null block_hashes/block_scores");
    }
    const auto n = static_cast<size_t>(count);
    return kvcake::StatusToCError(c->client->ReportLayerStats(
        static_cast<uint32_t>(layer), preference, std::span<const uint64_t>(block_hashes, n),
        std::span<const double>(block_scores, n), static_cast<uint32_t>(window_blocks)));
  });
}

int kvcake_ping(kvcake_client* c) {
  return kvcake::CatchAll("kvcake_ping", [&] {
    if (!c) return BadArgument("null client");
    return kvcake::StatusToCError(c->client->Ping());
  });
}

int kvcake_mapped_path(const kvcake_client* c) {
  return kvcake::CatchAll("kvcake_mapped_path", [&] {
    if (!c) return BadArgument("null client");
    return c->client->mapped_path() ? 1 : 0;
  });
}

int kvcake_transport_info(const kvcake_client* c, char* buf, int buf_len) {
  return kvcake::CatchAll("kvcake_transport_info", [&] {
    if (!c) return BadArgument("null client");
    if (buf_len < 0 || (buf_len > 0 && !buf)) return BadArgument("null buf or negative buf_len");
    const std::string info = c->client->transport_info();
    if (buf_len > 0) {
      const size_t n = std::min(info.size(), static_cast<size_t>(buf_len) - 1);
      std::memcpy(buf, info.data(), n);
      buf[n] = '\0';
    }
    return static_cast<int>(std::min<size_t>(info.size(), INT32_MAX));
  });
}

}  // extern "C"
