// The connector part of the C ABI (kvcake/kvcake_c.h) over kvcake::Client.

#include <cstdlib>
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

namespace {

int BadArgument(const char* what) {
  return kvcake::StatusToCError(kvcake::InvalidArgumentError(what));
}

}  // namespace

extern "C" {

int kvcake_connect(const char* address, const char* namespace_name, const char* token,
                   kvcake_client** out) {
  if (!address || !namespace_name || !out) return BadArgument("null address/namespace/out");
  *out = nullptr;
  kvcake::ClientOptions options;
  options.address = address;
  options.namespace_name = namespace_name;
  if (token) options.token = token;
  if (const char* tls = std::getenv("KVCAKE_UCX_TLS")) options.ucx_tls = tls;
  kvcake::Result<std::unique_ptr<kvcake::Client>> c = kvcake::Client::Connect(options);
  if (!c.ok()) return kvcake::StatusToCError(c.status());
  auto* handle = new (std::nothrow) kvcake_client{std::move(c).value()};
  if (!handle) return kvcake::StatusToCError(kvcake::ResourceExhaustedError("out of memory"));
  *out = handle;
  return 0;
}

int kvcake_register_namespace(kvcake_client* c, int num_layers, int block_tokens,
                              int64_t layer_block_bytes) {
  if (!c) return BadArgument("null client");
  if (num_layers <= 0 || block_tokens <= 0 || layer_block_bytes <= 0) {
    return BadArgument("num_layers, block_tokens and layer_block_bytes must be > 0");
  }
  kvcake::NamespaceGeometry g;
  g.num_layers = static_cast<uint32_t>(num_layers);
  g.block_tokens = static_cast<uint32_t>(block_tokens);
  g.layer_block_bytes = static_cast<uint64_t>(layer_block_bytes);
  return kvcake::StatusToCError(c->client->RegisterNamespace(g));
}

int kvcake_put(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
               const void* const* buffers, int count) {
  if (!c) return BadArgument("null client");
  if (count < 0) return BadArgument("negative count");
  if (count == 0) return 0;
  if (!block_hashes || !layers || !buffers) return BadArgument("null array");
  std::vector<kvcake::PutBlock> blocks(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    if (layers[i] < 0) return BadArgument("negative layer");
    if (!buffers[i]) return BadArgument("null buffer");
    blocks[i] = kvcake::PutBlock{block_hashes[i], static_cast<uint32_t>(layers[i]), buffers[i]};
  }
  return kvcake::StatusToCError(c->client->Put(blocks));
}

int kvcake_get(kvcake_client* c, const uint64_t* block_hashes, const int32_t* layers,
               void* const* buffers, int count, int32_t* out_found) {
  if (!c) return BadArgument("null client");
  if (count < 0) return BadArgument("negative count");
  if (count == 0) return 0;
  if (!block_hashes || !layers || !buffers || !out_found) return BadArgument("null array");
  std::vector<kvcake::GetBlock> blocks(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    if (layers[i] < 0) return BadArgument("negative layer");
    if (!buffers[i]) return BadArgument("null buffer");
    blocks[i] = kvcake::GetBlock{block_hashes[i], static_cast<uint32_t>(layers[i]), buffers[i]};
  }
  std::vector<bool> found;
  int rc = kvcake::StatusToCError(c->client->Get(blocks, &found));
  if (rc != 0) return rc;
  for (int i = 0; i < count; ++i) out_found[i] = found[static_cast<size_t>(i)] ? 1 : 0;
  return 0;
}

int kvcake_lookup_prefix(kvcake_client* c, const uint64_t* block_hashes, int count, int32_t layer,
                         int32_t* out_prefix_len) {
  if (!c || !out_prefix_len) return BadArgument("null client/out_prefix_len");
  if (count < 0 || layer < 0) return BadArgument("negative count/layer");
  if (count > 0 && !block_hashes) return BadArgument("null block_hashes");
  kvcake::Result<uint32_t> n =
      c->client->LookupPrefix(std::span<const uint64_t>(block_hashes, static_cast<size_t>(count)),
                              static_cast<uint32_t>(layer));
  if (!n.ok()) return kvcake::StatusToCError(n.status());
  *out_prefix_len = static_cast<int32_t>(*n);
  return 0;
}

void kvcake_close(kvcake_client* c) { delete c; }

}  // extern "C"
