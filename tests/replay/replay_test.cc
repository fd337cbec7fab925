// Runs the real kvcake-replay binary on a slice of the conversation trace
// (or a generated trace when the shared trace is absent) and checks the JSON
// shape and sanity invariants. It does not check the goal ratios.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "tests/replay/attention_model.h"
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

TEST(Replay, JsonShapeAndInvariants) {
  const fs::path trace = MakeTrace();
  const json j = RunReplay(trace, "--gpu_fraction 0.05");
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

TEST(Replay, BadTraceIsAnError) {
  const std::string cmd = BinDir() + "/kvcake-replay --trace /nonexistent/kvcake.jsonl 2>/dev/null";
  EXPECT_NE(std::system(cmd.c_str()), 0);
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
}

}  // namespace
