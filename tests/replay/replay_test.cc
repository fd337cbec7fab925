// Runs the real kvcake-replay binary on a slice of the conversation trace
// (or a generated trace when the shared trace is absent) and checks the JSON
// shape and sanity invariants. It does not check the goal ratios.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "policy/policy_factory.h"
#include "tests/replay/attention_model.h"
#include "tests/replay/store_replay.h"
#include "tests/replay/trace.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// kvcake-replay is built next to this test binary (<build>/bin).
std::string BinDir() {
  const char* bin = std::getenv("KVCAKE_BIN_DIR");
  if (bin != nullptr && fs::exists(fs::path(bin) / "kvcake-replay")) return bin;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "build/bin" : self.parent_path().string();
}

// A trace slice: the first 200 requests of the shared trace, else synthetic
// multi-turn conversations over a shared system-prompt block.
fs::path MakeTrace() {
  const fs::path dir =
      fs::temp_directory_path() / ("kvcake_replay_test_" + std::to_string(::getpid()) + "_" +
                                   std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  fs::path out = dir / "trace.jsonl";
  std::ofstream o(out);
  const char* src = std::getenv("KVCAKE_SOURCE_DIR");
  const fs::path shared =
      fs::path(src ? src : ".") / ".." / "shared" / "traces" / "conversation_trace.jsonl";
  std::ifstream in(shared);
  if (in) {
    std::string line;
    for (int i = 0; i < 200 && std::getline(in, line); ++i) o << line << "\n";
    return out;
  }
  std::mt19937_64 rng(3);
  std::vector<std::vector<uint64_t>> convs(40);
  uint64_t next = 1;
  for (int r = 0; r < 200; ++r) {
    auto& c = convs[rng() % convs.size()];
    if (c.empty()) c.push_back(0);
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) c.push_back(next++);
    json j = {{"timestamp", r},
              {"input_length", c.size() * 512},
              {"output_length", 100},
              {"hash_ids", c}};
    o << j.dump() << "\n";
  }
  return out;
}

json RunReplay(const fs::path& trace, const std::string& extra) {
  const std::string cmd =
      BinDir() + "/kvcake-replay --json --layers 4 --trace " + trace.string() + " " + extra;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return json();
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  EXPECT_EQ(rc, 0) << cmd;
  return json::parse(out, nullptr, /*allow_exceptions=*/false);
}

// The tier model's invariants (the oracle's GPU hits, compulsory misses).
TEST(Replay, JsonShapeAndInvariants) {
  const fs::path trace = MakeTrace();
  const json j = RunReplay(trace, "--engine=sim --gpu_fraction 0.05");
  ASSERT_TRUE(j.is_object()) << "kvcake-replay did not print JSON";
  ASSERT_TRUE(j.contains("policies"));
  for (const char* name : {"cake", "lru", "belady", "cake_uniform"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(j["policies"].contains(name));
    const json& p = j["policies"][name];
    double sum = 0;
    for (const char* t : {"gpu", "host", "ssd", "miss"}) {
      const double s = p["hit_share"][t].get<double>();
      EXPECT_GE(s, 0.0);
      EXPECT_LE(s, 1.0);
      sum += s;
    }
    EXPECT_NEAR(sum, 1.0, 1e-9);
    const double g = p["gpu_attention_share"].get<double>();
    EXPECT_GE(g, 0.0);
    EXPECT_LE(g, 1.0);
    for (const char* path : {"gpu_to_host", "host_to_ssd", "ssd_to_host", "host_to_gpu"}) {
      EXPECT_GE(p["bytes_moved"][path].get<double>(), 0.0);
    }
    EXPECT_GE(p["reload_ms_per_request"]["mean"].get<double>(), 0.0);
    EXPECT_EQ(p["requests"].get<uint64_t>(), j["config"]["requests"].get<uint64_t>());
  }
  // The oracle never does worse than LRU on GPU hits; compulsory misses are
  // the same for every policy that keeps what it can (belady, cake).
  EXPECT_GE(j["policies"]["belady"]["hits"]["gpu"].get<uint64_t>(),
            j["policies"]["lru"]["hits"]["gpu"].get<uint64_t>());
  EXPECT_LE(j["policies"]["belady"]["hits"]["miss"].get<uint64_t>(),
            j["policies"]["lru"]["hits"]["miss"].get<uint64_t>());
  fs::remove_all(trace.parent_path());
}

TEST(Replay, EveryBaselineReportsExactServingFigures) {
  const fs::path trace = MakeTrace();
  const json j =
      RunReplay(trace, "--admit_all --policies=lru,lfu,arc,s3fifo,gdsf,cake,adaptive,belady");
  ASSERT_TRUE(j.is_object()) << "kvcake-replay did not print JSON";
  EXPECT_TRUE(j["config"]["admit_all"].get<bool>());
  EXPECT_EQ(j["config"]["engine"].get<std::string>(), "store");
  for (const char* name : {"lru", "lfu", "arc", "s3fifo", "gdsf", "cake", "adaptive", "belady"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(j["policies"].contains(name));
    EXPECT_EQ(j["policies"][name]["engine"].get<std::string>(), "store");
    const json& e = j["policies"][name]["exact"];
    const double gpu = e["gpu_hit_rate"].get<double>();
    const double host = e["host_hit_rate"].get<double>();
    EXPECT_GE(gpu, 0.0);
    EXPECT_GE(host, 0.0);
    EXPECT_LE(gpu + host + e["ssd_hit_rate"].get<double>(), 1.0 + 1e-9);
    EXPECT_GE(e["reload_ms_p99"].get<double>(), 0.0);
    EXPECT_DOUBLE_EQ(e["reload_ms_mean"].get<double>(),
                     j["policies"][name]["reload_ms_per_request"]["mean"].get<double>());
  }
  // Reused prefixes exist in the trace slice, so the oracle hits the GPU.
  EXPECT_GT(j["policies"]["belady"]["exact"]["gpu_hit_rate"].get<double>(), 0.0);
  fs::remove_all(trace.parent_path());
}

TEST(Replay, DumpsTheAttentionFile) {
  const fs::path trace = MakeTrace();
  const fs::path out = trace.parent_path() / "attention.jsonl";
  const std::string cmd = BinDir() + "/kvcake-replay --layers 3 --max_requests 5 --trace " +
                          trace.string() + " --dump_attention " + out.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << line;
    const size_t n = j["block_hashes"].size();
    ASSERT_GT(n, 0u);
    ASSERT_EQ(j["block_tokens"].size(), n);
    ASSERT_EQ(j["layers"].size(), 3u);
    for (const json& l : j["layers"]) {
      ASSERT_EQ(l["heads"].size(), 1u);
      ASSERT_EQ(l["heads"][0]["mean"].size(), n);
      ASSERT_EQ(l["heads"][0]["var"].size(), n);
      double answer = 0;
      for (const json& a : l["answer"]) answer += a.get<double>();
      EXPECT_NEAR(answer, 1.0, 1e-4);
    }
    ++lines;
  }
  EXPECT_EQ(lines, 5);
  const std::string bad = BinDir() + "/kvcake-replay --trace " + trace.string() +
                          " --dump_attention /nonexistent/dir/a.jsonl 2>/dev/null";
  EXPECT_NE(std::system(bad.c_str()), 0);
  fs::remove_all(trace.parent_path());
}

// A trace that cannot be read ends the replayer with exit status 2 and a
// message naming the trace (not just any failure, such as a missing binary).
TEST(Replay, BadTraceIsAnError) {
  const fs::path bin = fs::path(BinDir()) / "kvcake-replay";
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built";
  const fs::path err = fs::temp_directory_path() /
                       ("kvcake_replay_bad_trace_" + std::to_string(::getpid()) + ".err");
  const std::string cmd =
      bin.string() + " --trace /nonexistent/kvcake.jsonl 2>" + err.string() + " >/dev/null";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc)) << rc;
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  std::ifstream in(err);
  const std::string message((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(message.find("/nonexistent/kvcake.jsonl"), std::string::npos) << message;
  fs::remove(err);
}

TEST(AttentionModel, MassSumsToOnePerLayerAndIsDeterministic) {
  kvcake::replay::AttentionModelOptions o;
  o.num_layers = 6;
  o.cake.pool_kernel = 1;
  ASSERT_TRUE(o.Validate().ok());
  kvcake::replay::AttentionModel a(o), b(o);
  const std::vector<uint64_t> hashes = {11, 12, 13, 14, 15};
  auto x = a.Next(hashes);
  auto y = b.Next(hashes);
  ASSERT_EQ(x.layers, 6u);
  ASSERT_EQ(x.blocks, 5u);
  for (uint32_t l = 0; l < 6; ++l) {
    double sum = 0;
    for (uint32_t j = 0; j < 5; ++j) sum += x.Mass(l, j);
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_GE(x.preference[l], 0.0);
  }
  EXPECT_EQ(x.mass, y.mass);
  EXPECT_EQ(x.scores, y.scores);
  EXPECT_TRUE(x.answer_mass.empty());
}

TEST(AttentionModel, ObservingTheAnswerChangesNothingElse) {
  kvcake::replay::AttentionModelOptions o;
  o.num_layers = 4;
  o.cake.pool_kernel = 1;
  kvcake::replay::AttentionModel plain(o);
  o.observe_answer = true;
  kvcake::replay::AttentionModel observed(o);
  const std::vector<uint64_t> hashes = {21, 22, 23, 24, 25, 26};
  const auto x = plain.Next(hashes);
  const auto y = observed.Next(hashes);
  EXPECT_EQ(x.mass, y.mass);
  EXPECT_EQ(x.scores, y.scores);
  ASSERT_EQ(y.answer_mass.size(), 4u * 6u);
  ASSERT_EQ(y.window_mean.size(), 4u * 6u);
  for (uint32_t l = 0; l < 4; ++l) {
    double answer = 0, mean = 0;
    for (uint32_t j = 0; j < 6; ++j) {
      answer += y.answer_mass[l * 6 + j];
      mean += y.window_mean[l * 6 + j];
      EXPECT_GE(y.window_var[l * 6 + j], 0.0f);
    }
    EXPECT_NEAR(answer, 1.0, 1e-5);
    EXPECT_NEAR(mean, 0.8, 1e-4);  // the prefix's share of each query (1 - local_mass)
  }
  EXPECT_NE(y.answer_mass, y.mass);  // other queries, other noise
}

// --- the store engine on a hand-made trace ---------------------------------

// 20 requests: one conversation whose prefix grows by a block a turn (its
// answers complete the next turn's blocks), interleaved with one-off prompts
// that push it out of host memory; the last requests re-read the system
// prompt and the first one-off prompt.
fs::path MakeSmallTrace() {
  const fs::path dir =
      fs::temp_directory_path() / ("kvcake_store_replay_" + std::to_string(::getpid()) + "_" +
                                   std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  const fs::path out = dir / "trace.jsonl";
  std::ofstream o(out);
  std::vector<uint64_t> conv = {1, 2, 3};
  uint64_t next = 100;
  for (int r = 0; r < 20; ++r) {
    std::vector<uint64_t> ids;
    if (r % 2 == 0) {
      ids = conv;
      conv.push_back(10 + static_cast<uint64_t>(r));
    } else if (r < 14) {
      for (int b = 0; b < 8; ++b) ids.push_back(next++);
    } else if (r == 17) {
      ids = {1, 2, 3};  // the system prompt again
    } else {
      for (uint64_t b = 100; b < 108; ++b) ids.push_back(b);  // the first one-off, long gone
    }
    const json j = {{"timestamp", 1000 * r},
                    {"input_length", ids.size() * 512},
                    {"output_length", r % 2 == 0 ? 600 : 0},
                    {"hash_ids", ids}};
    o << j.dump() << "\n";
  }
  return out;
}

struct SmallRun {
  kvcake::replay::TierSimStats stats;
  kvcake::store::StoreStats store;
};

// Replays the small trace on the store engine with `policy`.
SmallRun ReplaySmall(const fs::path& trace, const std::string& policy_name, bool admit_all,
                     uint64_t ssd_blocks = 4096) {
  auto reqs = kvcake::replay::ReadMooncakeTrace(trace.string());
  EXPECT_TRUE(reqs.ok()) << reqs.status().ToString();
  kvcake::policy::PolicyOptions po;
  if (admit_all) po.lru.ssd_admission_hits = 1;
  auto policy = kvcake::policy::MakePolicy(policy_name, po);
  EXPECT_TRUE(policy.ok());
  kvcake::replay::StoreReplayOptions o;
  o.num_layers = 4;
  o.gpu_blocks = 64;  // the smallest tiers: 4096 bytes of 64-byte payloads
  o.host_blocks = 64;
  o.ssd_blocks = ssd_blocks;
  auto replay = kvcake::replay::StoreReplay::Open(std::move(policy).value(), o);
  EXPECT_TRUE(replay.ok()) << replay.status().ToString();
  SmallRun out;
  if (!reqs.ok() || !replay.ok()) return out;
  kvcake::replay::AttentionModelOptions m;
  m.num_layers = o.num_layers;
  m.cake.pool_kernel = 1;
  kvcake::replay::AttentionModel model(m);
  for (const auto& r : *reqs) {
    kvcake::replay::StoreRequest s;
    s.timestamp_ms = r.timestamp_ms;
    for (uint64_t h : r.hash_ids) s.hashes.push_back(kvcake::replay::Mix64(h));
    s.tokens.assign(s.hashes.size(), 512);
    s.output_tokens = r.output_length;
    for (uint64_t k = 0; k < r.output_length / 512; ++k) {
      s.output_hashes.push_back(kvcake::replay::Mix64((uint64_t{1} << 62) | k));
    }
    EXPECT_TRUE((*replay)->Run(s, model.Next(s.hashes)).ok());
  }
  EXPECT_TRUE((*replay)->Finish().ok());
  out.stats = (*replay)->Stats();
  out.store = (*replay)->StoreStats();
  return out;
}

TEST(StoreReplay, SameTraceSameFigures) {
  const fs::path trace = MakeSmallTrace();
  for (const char* name : {"lru", "cake"}) {
    SCOPED_TRACE(name);
    const SmallRun a = ReplaySmall(trace, name, false);
    const SmallRun b = ReplaySmall(trace, name, false);
    EXPECT_EQ(a.stats.requests, 20u);
    EXPECT_EQ(a.stats.hits, b.stats.hits);
    EXPECT_EQ(a.stats.token_hits, b.stats.token_hits);
    EXPECT_EQ(a.stats.reload_seconds, b.stats.reload_seconds);
    EXPECT_EQ(a.stats.host_to_gpu, b.stats.host_to_gpu);
    EXPECT_EQ(a.stats.host_to_ssd, b.stats.host_to_ssd);
    EXPECT_EQ(a.store.moves, b.store.moves);
    EXPECT_EQ(a.store.drops, b.store.drops);
    EXPECT_EQ(a.store.puts, b.store.puts);
    // Every layer-block of every request was looked at once.
    uint64_t sum = 0;
    for (uint64_t h : a.stats.hits) sum += h;
    EXPECT_EQ(sum, a.stats.accesses);
    // Host memory overflowed, so blocks went to SSD and came back.
    EXPECT_GT(a.store.moves[1][2], 0u);
    EXPECT_GT(a.stats.hits[2], 0u);
  }
  fs::remove_all(trace.parent_path());
}

// The mover fills the GPU tier with re-read host blocks (SelectPromotions),
// and later requests find them there.
TEST(StoreReplay, RereadPrefixesArePromotedToTheGpu) {
  const fs::path trace = MakeSmallTrace();
  for (const char* name : {"lru", "cake", "adaptive"}) {
    SCOPED_TRACE(name);
    const SmallRun a = ReplaySmall(trace, name, false);
    EXPECT_GT(a.store.moves[1][0], 0u) << "no host -> GPU promotion";
    EXPECT_GT(a.stats.hits[0], 0u) << "no GPU hit";
    EXPECT_GT(a.stats.token_hits[0], 0.0);
  }
  fs::remove_all(trace.parent_path());
}

// With the SSD tier under pressure, LRU's second-hit admission drops blocks
// read once; admitting every block drops none for admission.
TEST(StoreReplay, SsdAdmissionFollowsThePolicy) {
  const fs::path trace = MakeSmallTrace();
  constexpr size_t kHost = 1, kAdmission = 1;
  const SmallRun second_hit = ReplaySmall(trace, "lru", false, /*ssd_blocks=*/64);
  const SmallRun admit_all = ReplaySmall(trace, "lru", true, /*ssd_blocks=*/64);
  EXPECT_GT(second_hit.store.drop_reasons[kHost][kAdmission], 0u);
  EXPECT_EQ(admit_all.store.drop_reasons[kHost][kAdmission], 0u);
  EXPECT_GT(admit_all.store.moves[1][2], second_hit.store.moves[1][2]);
  fs::remove_all(trace.parent_path());
}

TEST(StoreReplay, BadInputIsAnError) {
  kvcake::replay::StoreReplayOptions o;
  o.host_blocks = 64;
  o.payload_bytes = 100;  // not a power of two
  auto bad = kvcake::replay::StoreReplay::Open(kvcake::policy::MakePolicy("lru", {}).value(), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("payload_bytes"), std::string::npos);
  o.payload_bytes = 64;
  o.num_layers = 1;
  auto replay = kvcake::replay::StoreReplay::Open(kvcake::policy::MakePolicy("lru", {}).value(), o);
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  kvcake::replay::AttentionModelOptions m;
  m.num_layers = 1;
  m.cake.pool_kernel = 1;
  kvcake::replay::AttentionModel model(m);
  kvcake::replay::StoreRequest r;
  r.timestamp_ms = 5000;
  r.hashes = {7, 8};
  r.tokens = {512, 512};
  ASSERT_TRUE((*replay)->Run(r, model.Next(r.hashes)).ok());
  r.timestamp_ms = 4000;  // out of order
  const kvcake::Status s = (*replay)->Run(r, model.Next(r.hashes));
  EXPECT_EQ(s.code(), kvcake::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("timestamp order"), std::string::npos) << s.ToString();
  r.timestamp_ms = 6000;
  r.tokens = {512};  // does not match the blocks
  EXPECT_EQ((*replay)->Run(r, model.Next(r.hashes)).code(), kvcake::StatusCode::kInvalidArgument);
}

// A malformed trace line is an error naming the file and line, from the
// reader and from the replayer (exit status 2), whatever the engine.
TEST(StoreReplay, MalformedTraceIsAnError) {
  const fs::path trace = MakeSmallTrace();
  const fs::path bad = trace.parent_path() / "bad.jsonl";
  {
    std::ifstream in(trace);
    std::ofstream o(bad);
    std::string line;
    for (int i = 0; i < 3 && std::getline(in, line); ++i) o << line << "\n";
    o << "{\"timestamp\": 3000, \"hash_ids\": [1, \"two\"]}\n";
  }
  auto reqs = kvcake::replay::ReadMooncakeTrace(bad.string());
  ASSERT_FALSE(reqs.ok());
  EXPECT_EQ(reqs.status().code(), kvcake::StatusCode::kInvalidArgument);
  EXPECT_NE(reqs.status().message().find("bad.jsonl:4"), std::string::npos)
      << reqs.status().ToString();
  for (const char* engine : {"store", "sim"}) {
    const fs::path err = trace.parent_path() / "err.txt";
    const std::string cmd = BinDir() + "/kvcake-replay --engine=" + engine + " --trace " +
                            bad.string() + " 2>" + err.string() + " >/dev/null";
    const int rc = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(rc)) << rc;
    EXPECT_EQ(WEXITSTATUS(rc), 2) << engine;
    std::ifstream in(err);
    const std::string message((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    EXPECT_NE(message.find("bad.jsonl:4"), std::string::npos) << message;
  }
  const std::string unknown =
      BinDir() + "/kvcake-replay --engine=gpu --trace " + trace.string() + " >/dev/null 2>&1";
  const int rc = std::system(unknown.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  fs::remove_all(trace.parent_path());
}

}  // namespace
