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

TEST(Replay, EveryBaselineReportsExactServingFigures) {
  const fs::path trace = MakeTrace();
  const json j =
      RunReplay(trace, "--admit_all --policies=lru,lfu,arc,s3fifo,gdsf,cake,adaptive,belady");
  ASSERT_TRUE(j.is_object()) << "kvcake-replay did not print JSON";
  EXPECT_TRUE(j["config"]["admit_all"].get<bool>());
  for (const char* name : {"lru", "lfu", "arc", "s3fifo", "gdsf", "cake", "adaptive", "belady"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(j["policies"].contains(name));
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

}  // namespace
