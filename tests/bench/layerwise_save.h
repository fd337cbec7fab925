#pragma once

// kvcake-bench's layer-wise save: an engine computes a prompt layer by layer
// and saves each layer's KV right after computing it, either with a blocking
// Client::Put per layer or through a PutStream (the save of layer l overlaps
// the computation of layer l+1, vLLM's save_kv_layer). The computation is
// modelled as a wait (the GPU works while the engine's CPU thread waits)
// whose length is the measured blocking put of one layer, so a perfect
// overlap at most halves the total. Not thread-safe (one measurement at a
// time).

#include <cstdint>
#include <string>

#include "kvcake/client.h"

namespace kvcake::bench {

struct LayerwiseSaveResult {
  bool ok = false;
  std::string error;
  double layer_put_ms = 0;   // one layer's blocking put (the modelled compute)
  double blocking_ms = 0;    // compute + Put per layer, median over rounds
  double stream_ms = 0;      // compute + Submit per layer, then WaitAll
  double speedup = 0;        // median over rounds of blocking / stream
  double ideal_speedup = 0;  // (compute + save) / max(compute, save) = 2
};

// Connects with `options`, registers its own namespace ("bench-save") and
// measures `rounds` alternating pairs of a blocking and a streamed save of
// `layers` layers x `blocks` blocks of `block_bytes`. Every save writes keys
// not stored before; they are deleted afterwards (untimed).
LayerwiseSaveResult MeasureLayerwiseSave(ClientOptions options, int layers, int blocks,
                                         uint64_t block_bytes, int rounds);

}  // namespace kvcake::bench
