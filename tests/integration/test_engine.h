#pragma once

// Test helpers for engines talking to a real kvcaked (header-only; every
// target that uses it links kvcake): connecting a client with its namespace
// registered, and batches of one value per layer of a chain of blocks.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "kvcake/client.h"

namespace kvcake::testing {

// The geometry the tests register: `layers` layers of `layer_block_bytes`
// each, 16 tokens a block, fp16.
inline NamespaceGeometry TestGeometry(uint32_t layers, uint64_t layer_block_bytes) {
  NamespaceGeometry g;
  g.num_layers = layers;
  g.block_tokens = 16;
  g.layer_block_bytes = layer_block_bytes;
  g.kv_dtype = "fp16";
  return g;
}

// The options of a test engine on the daemon at `address` ("HOST:PORT") in
// namespace `ns`: UCX tcp, the staged (not the mapped) path, the default
// timeout; a test sets what else it needs.
inline ClientOptions EngineOptions(const std::string& address, const std::string& ns) {
  ClientOptions o;
  o.address = address;
  o.namespace_name = ns;
  o.ucx_tls = "tcp";
  o.use_mapped_path = false;
  return o;
}

// A client connected with `options` whose namespace is registered with
// `geometry`; the error of either step otherwise.
inline Result<std::unique_ptr<Client>> ConnectEngine(const ClientOptions& options,
                                                     const NamespaceGeometry& geometry) {
  Result<std::unique_ptr<Client>> c = Client::Connect(options);
  if (!c.ok()) return c.status();
  if (Status s = (*c)->RegisterNamespace(geometry); !s.ok()) return s;
  return std::move(c).value();
}

// One value of a batch: layer `layer` of block `hash` and its bytes.
struct LayerValue {
  uint64_t hash = 0;
  uint32_t layer = 0;
  std::vector<char> bytes;
};

// Every layer 0..layers-1 of every hash of `hashes`, hash-major, each with
// the bytes `fill(hash, layer)` returns (what to put, or a buffer to get
// into).
inline std::vector<LayerValue> LayerValues(
    const std::vector<uint64_t>& hashes, uint32_t layers,
    const std::function<std::vector<char>(uint64_t hash, uint32_t layer)>& fill) {
  std::vector<LayerValue> values;
  values.reserve(hashes.size() * layers);
  for (uint64_t h : hashes) {
    for (uint32_t l = 0; l < layers; ++l) values.push_back({h, l, fill(h, l)});
  }
  return values;
}

// LayerValues with zeroed buffers of `bytes` each: where a get lands.
inline std::vector<LayerValue> LayerBuffers(const std::vector<uint64_t>& hashes, uint32_t layers,
                                            uint64_t bytes) {
  return LayerValues(hashes, layers,
                     [bytes](uint64_t, uint32_t) { return std::vector<char>(bytes); });
}

// The put of `values` (which must outlive it).
inline std::vector<PutBlock> PutBlocksOf(const std::vector<LayerValue>& values) {
  std::vector<PutBlock> blocks;
  blocks.reserve(values.size());
  for (const LayerValue& v : values) blocks.push_back(PutBlock{v.hash, v.layer, v.bytes.data()});
  return blocks;
}

// The get into `values`' bytes (which must outlive it).
inline std::vector<GetBlock> GetBlocksOf(std::vector<LayerValue>& values) {
  std::vector<GetBlock> blocks;
  blocks.reserve(values.size());
  for (LayerValue& v : values) blocks.push_back(GetBlock{v.hash, v.layer, v.bytes.data()});
  return blocks;
}

}  // namespace kvcake::testing
