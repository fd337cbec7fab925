#include "tests/replay/store_replay.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>

namespace kvcake::replay {

namespace {

// The store's smallest page (slot_bytes): a memory tier holds at least this.
constexpr uint64_t kSlotBytes = 4096;
// Trace time 0 on the store's clock.
constexpr uint64_t kClockBase = 1'000'000;

constexpr int Slot(Tier t) { return static_cast<int>(t); }

Status ValidateOptions(const StoreReplayOptions& o) {
  if (o.num_layers == 0) return InvalidArgumentError("store replay: num_layers is 0");
  if (o.payload_bytes < 64 || o.payload_bytes > kSlotBytes ||
      (o.payload_bytes & (o.payload_bytes - 1)) != 0) {
    return InvalidArgumentError("store replay: payload_bytes must be a power of two in [64, 4096]");
  }
  if (o.layer_block_bytes == 0) return InvalidArgumentError("store replay: layer_block_bytes is 0");
  if (o.host_blocks == 0) return InvalidArgumentError("store replay: the host tier is empty");
  if (!(o.host_to_gpu_gbps > 0) || !(o.ssd_to_host_gbps > 0) || !(o.prefill_tokens_per_s > 0) ||
      !(o.decode_ms_per_token >= 0)) {
    return InvalidArgumentError("store replay: bandwidths and prefill rate must be > 0");
  }
  if (o.mover_interval_us == 0) return InvalidArgumentError("store replay: mover_interval_us is 0");
  return Status::Ok();
}

}  // namespace

StoreReplay::StoreReplay(StoreReplayOptions options, std::string dir)
    : options_(std::move(options)),
      dir_(std::move(dir)),
      clock_(std::make_shared<store::ManualClock>(kClockBase)),
      payload_(options_.payload_bytes, '\x5a'),
      buf_(options_.payload_bytes) {}

StoreReplay::~StoreReplay() {
  store_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

Result<std::unique_ptr<StoreReplay>> StoreReplay::Open(std::unique_ptr<policy::Policy> policy,
                                                       StoreReplayOptions options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  std::string parent = options.tmp_parent;
  if (parent.empty()) {
    const char* env = std::getenv("TMPDIR");
    parent = env != nullptr && *env != '\0' ? env : "/tmp";
  }
  std::string tmpl = parent + "/kvcake_replay_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return UnavailableError("store replay: cannot create a directory under " + parent);
  }
  std::unique_ptr<StoreReplay> replay(new StoreReplay(std::move(options), tmpl));
  const StoreReplayOptions& o = replay->options_;
  store::TierManagerOptions t;
  t.slot_bytes = kSlotBytes;
  t.extent_granule_bytes = o.payload_bytes;
  t.device_capacity_bytes =
      o.gpu_blocks == 0 ? 0 : std::max(kSlotBytes, o.gpu_blocks * o.payload_bytes);
  t.host_capacity_bytes = std::max(kSlotBytes, o.host_blocks * o.payload_bytes);
  if (o.ssd_blocks > 0) {
    t.ssd_path = replay->dir_ + "/ssd";
    t.ssd_capacity_bytes = o.ssd_blocks * o.payload_bytes;
  }
  t.device_allow_cuda = false;  // the emulated device: same code path, host memory
  t.host_huge_pages = false;
  t.host_segment_name = "kvcake-replay";
  t.mover_interval_us = 0;  // RunMoverOnce at the replay's points
  t.clock = replay->clock_;
  // A scratch directory, removed at the end: RocksDB's log buys nothing.
  t.ssd_write_ahead_log = false;
  ASSIGN_OR_RETURN(replay->store_, store::TierManager::Open(t, std::move(policy)));
  store::NamespaceConfig ns;
  ns.id = o.ns;
  ns.name = "replay";
  ns.num_layers = o.num_layers;
  ns.block_tokens = 512;
  ns.layer_block_bytes = o.payload_bytes;
  ns.kv_dtype = "fp16";
  ns.layout = "NHD";
  ns.serving = o.serving;
  RETURN_IF_ERROR(replay->store_->RegisterNamespace(ns));
  replay->tiers_.resize(o.num_layers);
  return replay;
}

void StoreReplay::AdvanceTo(uint64_t us) {
  uint64_t now = clock_->NowMicros();
  const uint64_t step = options_.mover_interval_us;
  while (now < us && us - now >= step) {
    clock_->Advance(step);
    now += step;
    // Nothing changes without requests once a run finds nothing to do.
    if (!store_->RunMoverOnce()) break;
  }
  if (now < us) clock_->Advance(us - now);
}

Status StoreReplay::PutBlock(uint64_t hash, uint32_t layer) {
  const BlockKey key{options_.ns, hash, layer};
  Status s = store_->Put(key, payload_.data(), payload_.size(), Tier::kHost);
  store_->RunMoverOnce(/*only_if_woken=*/true);
  if (s.code() == StatusCode::kResourceExhausted) {
    ++put_failures_;
    return Status::Ok();
  }
  return s;
}

Status StoreReplay::StoreAnswersUntil(uint64_t us) {
  while (!answers_.empty() && answers_.top().done_us <= us) {
    Answer a = answers_.top();
    answers_.pop();
    AdvanceTo(a.done_us);
    for (uint32_t l = 0; l < options_.num_layers; ++l) {
      for (uint64_t h : a.hashes) {
        Status s = PutBlock(h, l);
        if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;
      }
    }
    store_->RunMoverOnce(/*only_if_woken=*/true);
  }
  return Status::Ok();
}

Status StoreReplay::Run(const StoreRequest& r, const RequestAttention& attention) {
  const uint32_t layers = options_.num_layers;
  const size_t n = r.hashes.size();
  if (attention.layers != layers || attention.blocks != n || r.tokens.size() != n) {
    return InvalidArgumentError(
        "store replay: the attention or token counts do not match the request");
  }
  const uint64_t arrival = kClockBase + r.timestamp_ms * 1000;
  if (arrival < last_arrival_us_) {
    return InvalidArgumentError(
        "store replay: request at " + std::to_string(r.timestamp_ms) +
        " ms comes after a later one (the trace must be in timestamp order)");
  }
  last_arrival_us_ = arrival;
  RETURN_IF_ERROR(StoreAnswersUntil(arrival));
  AdvanceTo(arrival);
  ++stats_.requests;

  // 1. The usable prefix: a position past any layer's stored prefix needs
  // every layer recomputed.
  size_t usable = n;
  for (uint32_t l = 0; l < layers; ++l) {
    usable = std::min(usable, store_->LookupPrefix(options_.ns, r.hashes, l, &tiers_[l]));
  }
  // 2. Load the usable prefix, layer by layer.
  const uint64_t promotions_before = store_->GetStats().moves[Slot(Tier::kSsd)][Slot(Tier::kHost)];
  uint64_t h2g = 0, s2h = 0;
  std::vector<bool> loaded(n * layers, false);
  for (uint32_t l = 0; l < layers; ++l) {
    for (size_t b = 0; b < usable; ++b) {
      const BlockKey key{options_.ns, r.hashes[b], l};
      Result<uint64_t> got = store_->Get(key, buf_.data(), buf_.size());
      store_->RunMoverOnce(/*only_if_woken=*/true);
      if (!got.ok()) continue;  // lost meanwhile (e.g. corrupt): recomputed below
      loaded[b * layers + l] = true;
      const Tier t = tiers_[l][b];
      ++stats_.hits[Slot(t)];
      stats_.token_hits[Slot(t)] += r.tokens[b];
      if (t == Tier::kDevice) stats_.attention_gpu += attention.Mass(l, static_cast<uint32_t>(b));
      if (t != Tier::kDevice) ++h2g;
      if (t == Tier::kSsd) ++s2h;
    }
  }
  get_promotions_ +=
      store_->GetStats().moves[Slot(Tier::kSsd)][Slot(Tier::kHost)] - promotions_before;
  // 3. Recompute the rest and store it in host memory (as every put lands).
  uint64_t recomputed_tokens = 0;
  for (size_t b = usable; b < n; ++b) recomputed_tokens += r.tokens[b];
  for (uint32_t l = 0; l < layers; ++l) {
    for (size_t b = 0; b < n; ++b) {
      stats_.attention_total += attention.Mass(l, static_cast<uint32_t>(b));
      ++stats_.accesses;
      if (loaded[b * layers + l]) continue;
      ++stats_.hits[3];
      stats_.token_hits[3] += r.tokens[b];
      Status s = PutBlock(r.hashes[b], l);
      if (s.code() == StatusCode::kAlreadyExists) {
        ++stranded_;
      } else if (!s.ok()) {
        return s;
      }
    }
  }
  // 4. The engine reports this prompt's CAKE signals.
  for (uint32_t l = 0; l < layers; ++l) {
    attention.FillSignal(l, r.hashes, &signal_);
    store_->ReportLayerSignal(options_.ns, signal_);
  }
  store_->RunMoverOnce(/*only_if_woken=*/true);
  reload_host_to_gpu_ += h2g;
  reload_ssd_to_host_ += s2h;
  const double bytes = static_cast<double>(options_.layer_block_bytes);
  const double reload_s = h2g * bytes / (options_.host_to_gpu_gbps * 1e9) +
                          s2h * bytes / (options_.ssd_to_host_gbps * 1e9);
  stats_.reload_seconds.push_back(reload_s);
  if (!r.output_hashes.empty()) {
    const double busy_s = reload_s +
                          static_cast<double>(recomputed_tokens) / options_.prefill_tokens_per_s +
                          static_cast<double>(r.output_tokens) * options_.decode_ms_per_token / 1e3;
    answers_.push(Answer{arrival + static_cast<uint64_t>(busy_s * 1e6), seq_++, r.output_hashes});
  }
  return Status::Ok();
}

Status StoreReplay::Finish() { return StoreAnswersUntil(std::numeric_limits<uint64_t>::max()); }

TierSimStats StoreReplay::Stats() const {
  TierSimStats s = stats_;
  const store::StoreStats st = store_->GetStats();
  constexpr int kDev = Slot(Tier::kDevice), kHost = Slot(Tier::kHost), kSsd = Slot(Tier::kSsd);
  s.gpu_to_host = st.moves[kDev][kHost];
  s.host_to_ssd = st.moves[kHost][kSsd] + st.moves[kDev][kSsd];
  // The engine's reads plus the mover's promotions.
  s.ssd_to_host = reload_ssd_to_host_ + (st.moves[kSsd][kHost] - get_promotions_);
  s.host_to_gpu = reload_host_to_gpu_ + st.moves[kHost][kDev];
  s.dropped = 0;
  for (uint64_t d : st.drops) s.dropped += d;
  return s;
}

}  // namespace kvcake::replay
