#include "tests/bench/layerwise_save.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/result.h"

namespace kvcake::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

class Saver {
 public:
  Saver(Client& client, int layers, int blocks, uint64_t block_bytes)
      : client_(client), layers_(layers), blocks_(blocks) {
    kv_.assign(static_cast<size_t>(layers),
               std::vector<std::vector<char>>(static_cast<size_t>(blocks),
                                              std::vector<char>(block_bytes)));
    for (int l = 0; l < layers; ++l) {
      for (int b = 0; b < blocks; ++b) {
        auto& v = kv_[static_cast<size_t>(l)][static_cast<size_t>(b)];
        for (size_t i = 0; i + 8 <= v.size(); i += 8) {
          const uint64_t x =
              (static_cast<uint64_t>(l) << 40) ^ (static_cast<uint64_t>(b) << 20) ^ i;
          std::memcpy(v.data() + i, &x, 8);
        }
      }
    }
  }

  // Layer l of a prompt whose block hashes start at `base` (fresh per save).
  std::vector<PutBlock> Layer(uint64_t base, int l) const {
    std::vector<PutBlock> group;
    for (int b = 0; b < blocks_; ++b) {
      group.push_back(PutBlock{base + static_cast<uint64_t>(b), static_cast<uint32_t>(l),
                               kv_[static_cast<size_t>(l)][static_cast<size_t>(b)].data()});
    }
    return group;
  }

  // Compute + blocking put per layer; the wall time in ms.
  Result<double> Blocking(uint64_t base, std::chrono::microseconds compute) {
    const auto t0 = Clock::now();
    for (int l = 0; l < layers_; ++l) {
      if (compute.count() > 0) std::this_thread::sleep_for(compute);
      std::vector<PutBlock> group = Layer(base, l);
      RETURN_IF_ERROR(client_.Put(group));
    }
    return MsSince(t0);
  }

  // Compute + submit per layer, then wait for the save; the wall time in ms.
  Result<double> Streamed(uint64_t base, std::chrono::microseconds compute) {
    const auto t0 = Clock::now();
    ASSIGN_OR_RETURN(std::unique_ptr<PutStream> stream, client_.OpenPutStream());
    for (int l = 0; l < layers_; ++l) {
      if (compute.count() > 0) std::this_thread::sleep_for(compute);
      ASSIGN_OR_RETURN(size_t index, stream->Submit(Layer(base, l)));
      (void)index;
    }
    RETURN_IF_ERROR(stream->WaitAll(std::chrono::seconds(60)));
    return MsSince(t0);
  }

  // Deletes what a save with `base` stored (untimed).
  Status Forget(uint64_t base) {
    std::vector<BlockId> keys;
    for (int l = 0; l < layers_; ++l) {
      for (const PutBlock& b : Layer(base, l)) keys.push_back({b.hash, b.layer});
    }
    Result<uint32_t> n = client_.Delete(keys);
    return n.status();
  }

 private:
  Client& client_;
  const int layers_;
  const int blocks_;
  std::vector<std::vector<std::vector<char>>> kv_;
};

}  // namespace

LayerwiseSaveResult MeasureLayerwiseSave(ClientOptions options, int layers, int blocks,
                                         uint64_t block_bytes, int rounds) {
  LayerwiseSaveResult res;
  options.namespace_name = "bench-save";
  auto fail = [&](const Status& s) {
    res.error = s.ToString();
    return res;
  };
  Result<std::unique_ptr<Client>> client = Client::Connect(options);
  if (!client.ok()) return fail(client.status());
  NamespaceGeometry g{static_cast<uint32_t>(layers), 16, block_bytes, "bench", "layerwise", 0};
  if (Status s = (*client)->RegisterNamespace(g); !s.ok()) return fail(s);
  Saver saver(**client, layers, blocks, block_bytes);
  uint64_t base = (static_cast<uint64_t>(::getpid()) << 32) ^ 0x5a5e000000ull;
  auto next_base = [&] { return base += static_cast<uint64_t>(blocks) + 1; };

  // Calibrate: the blocking save without compute, after one untimed pass.
  std::vector<double> alone;
  for (int i = 0; i < 3; ++i) {
    const uint64_t b = next_base();
    Result<double> ms = saver.Blocking(b, std::chrono::microseconds(0));
    if (!ms.ok()) return fail(ms.status());
    if (Status s = saver.Forget(b); !s.ok()) return fail(s);
    if (i > 0) alone.push_back(*ms);
  }
  res.layer_put_ms = Median(alone) / layers;
  const auto compute = std::chrono::microseconds(static_cast<int64_t>(res.layer_put_ms * 1000));

  std::vector<double> blocking, streamed, ratios;
  for (int r = 0; r < rounds; ++r) {
    uint64_t b = next_base();
    Result<double> sync_ms = saver.Blocking(b, compute);
    if (!sync_ms.ok()) return fail(sync_ms.status());
    if (Status s = saver.Forget(b); !s.ok()) return fail(s);
    b = next_base();
    Result<double> stream_ms = saver.Streamed(b, compute);
    if (!stream_ms.ok()) return fail(stream_ms.status());
    if (Status s = saver.Forget(b); !s.ok()) return fail(s);
    blocking.push_back(*sync_ms);
    streamed.push_back(*stream_ms);
    ratios.push_back(*sync_ms / *stream_ms);
  }
  res.blocking_ms = Median(blocking);
  res.stream_ms = Median(streamed);
  res.speedup = Median(ratios);
  res.ideal_speedup = 2;
  res.ok = true;
  return res;
}

}  // namespace kvcake::bench
