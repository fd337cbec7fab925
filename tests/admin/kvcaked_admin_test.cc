// The admin API and kvcakectl against the real daemon: bin/kvcaked started as
// a child process with --admin_listen=127.0.0.1:0, real traffic from the real
// client library (libkvcake over UCX on loopback), kvcakectl output read
// through --json, the real /metrics checked by promtool.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/kvcakectl/commands.h"
#include "client/kvcakectl/http_client.h"
#include "kvcake/client.h"
#include "tests/admin/admin_test_util.h"

namespace kvcake {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

using kvcake::testing::BinDir;
using kvcake::testing::ReadFile;

// A kvcaked child process; stdout+stderr go to a log file that is scanned for
// the UCX and admin addresses. SIGTERM (then SIGKILL) on destruction.
class Kvcaked {
 public:
  explicit Kvcaked(const std::string& dir) : dir_(dir), log_(dir + "/kvcaked.log") {}
  ~Kvcaked() { Stop(); }

  // Starts and waits up to 60 s for both listening lines (or the exit).
  Status Start(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {BinDir() + "/kvcaked"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    pid_ = fork();
    if (pid_ < 0) return ErrnoToStatus(errno, "fork");
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    static const std::regex kUcx(R"(kvcaked listening on (\S+))");
    static const std::regex kAdmin(R"(admin API listening on http://(\S+):(\d+))");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string log = ReadFile(log_);
      std::smatch m;
      if (std::regex_search(log, m, kAdmin)) admin_port_ = std::stoi(m[2]);
      if (std::regex_search(log, m, kUcx)) ucx_address_ = m[1];
      if (admin_port_ != 0 && !ucx_address_.empty()) return Status::Ok();
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return UnavailableError("kvcaked exited (" + std::to_string(exit_code_) + "): " + log);
      }
      if (!ucx_address_.empty() && admin_port_ == 0 &&
          log.find("no admin server") != std::string::npos) {
        return UnimplementedError("kvcaked built without the admin server");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return DeadlineExceededError("kvcaked did not come up: " + ReadFile(log_));
  }

  // Waits for the process to exit by itself (for start-refusal tests).
  int WaitExit(int timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return exit_code_;
  }

  // SIGTERM, then SIGKILL after 30 s. Returns the exit status (-1: killed).
  int Stop() {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    exit_code_ = -1;
    return exit_code_;
  }

  int admin_port() const { return admin_port_; }
  const std::string& ucx_address() const { return ucx_address_; }
  std::string log() const { return ReadFile(log_); }

 private:
  std::string dir_, log_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  int admin_port_ = 0;
  std::string ucx_address_;
};

struct Ran {
  int exit = -1;
  std::string out, err;
};

class KvcakedAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access((BinDir() + "/kvcaked").c_str(), X_OK) != 0 ||
        access((BinDir() + "/kvcakectl").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "kvcaked/kvcakectl not built in " << BinDir();
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = "/tmp/kvcaked_admin_" + std::to_string(getpid()) + "_" + info->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    token_file_ = dir_ + "/admin.token";
    std::ofstream(token_file_) << "admin-" << getpid() << "\n";
    daemon_ = std::make_unique<Kvcaked>(dir_);
  }
  void TearDown() override {
    daemon_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Starts kvcaked with a small emulated GPU tier, host tier and SSD tier.
  void StartDaemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--listen=127.0.0.1:0",
                                      "--admin_listen=127.0.0.1:0",
                                      "--admin_token_file=" + token_file_,
                                      "--gpu_bytes=1M",
                                      "--host_bytes=4M",
                                      "--slot_bytes=64K",
                                      "--ssd_path=" + dir_ + "/ssd",
                                      "--ssd_bytes=256M",
                                      "--io_threads=1"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    Status s = daemon_->Start(flags);
    if (s.code() == StatusCode::kUnimplemented) GTEST_SKIP() << s.message();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  ctl::HttpClient Http(bool with_token = true) {
    ctl::HttpClientOptions o;
    o.port = static_cast<uint16_t>(daemon_->admin_port());
    if (with_token) o.token = "admin-" + std::to_string(getpid());
    return ctl::HttpClient(o);
  }

  json GetJson(const std::string& target) {
    auto r = Http().Get(target);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return json();
    EXPECT_EQ(r->status, 200) << target << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }

  std::string Metrics() {
    auto r = Http(false).Get("/metrics");
    EXPECT_TRUE(r.ok() && r->status == 200);
    return r.ok() ? r->body : "";
  }

  Ran Ctl(const std::string& args) {
    std::string base = dir_ + "/ctl";
    std::string cmd = "env -u KVCAKE_ADMIN -u KVCAKE_ADMIN_TOKEN_FILE " + BinDir() +
                      "/kvcakectl --admin=127.0.0.1:" + std::to_string(daemon_->admin_port()) +
                      " --token_file=" + token_file_ + " " + args + " >" + base + ".out 2>" + base +
                      ".err";
    int rc = std::system(cmd.c_str());
    Ran r;
    r.exit = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    r.out = ReadFile(base + ".out");
    r.err = ReadFile(base + ".err");
    return r;
  }

  json CtlJson(const std::string& args) {
    Ran r = Ctl("--json " + args);
    EXPECT_EQ(r.exit, 0) << args << ": " << r.err;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << args << ": " << r.out;
    return j;
  }

  // Connects a real client, registers `ns` (budgeted serving if asked) and
  // puts `blocks` x `layers` values of 16 KiB; then gets them all back once.
  void Traffic(const std::string& ns, int blocks, int layers, bool budgeted = false) {
    ClientOptions o;
    o.address = daemon_->ucx_address();
    o.namespace_name = ns;
    o.timeout = std::chrono::milliseconds(20000);
    auto client = Client::Connect(o);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    NamespaceGeometry g;
    g.num_layers = static_cast<uint32_t>(layers);
    g.block_tokens = 16;
    g.layer_block_bytes = 16 << 10;
    g.kv_dtype = "fp16";
    g.budgeted_serving = budgeted;
    ASSERT_TRUE((*client)->RegisterNamespace(g).ok());
    std::vector<uint32_t> tokens(static_cast<size_t>(blocks) * 16);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i * 7 + 1);
    hashes_ = (*client)->HashTokens(tokens);
    ASSERT_EQ(hashes_.size(), static_cast<size_t>(blocks));
    std::vector<std::vector<char>> data;
    std::vector<PutBlock> puts;
    for (int b = 0; b < blocks; ++b) {
      for (int l = 0; l < layers; ++l) {
        data.emplace_back(g.layer_block_bytes, static_cast<char>(b * 31 + l));
      }
    }
    size_t k = 0;
    for (int b = 0; b < blocks; ++b) {
      for (int l = 0; l < layers; ++l) {
        puts.push_back({hashes_[b], static_cast<uint32_t>(l), data[k++].data()});
      }
    }
    Status put = (*client)->Put(puts);
    ASSERT_TRUE(put.ok()) << put.ToString();
    std::vector<std::vector<char>> out(puts.size(), std::vector<char>(g.layer_block_bytes));
    std::vector<GetBlock> gets;
    for (size_t i = 0; i < puts.size(); ++i)
      gets.push_back({puts[i].hash, puts[i].layer, out[i].data()});
    std::vector<bool> found;
    ASSERT_TRUE((*client)->Get(gets, &found).ok());
    for (size_t i = 0; i < found.size(); ++i) {
      EXPECT_TRUE(found[i]) << i;
      if (found[i]) {
        EXPECT_EQ(out[i], data[i]) << i;
      }
    }
  }

  // Value of the sample `name{labels}` in an exposition (-1 if absent).
  static double Sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    }
    return -1;
  }

  // Sum of every sample whose series starts with `prefix`.
  static double SumSamples(const std::string& text, const std::string& prefix) {
    std::istringstream in(text);
    std::string line;
    double sum = 0;
    while (std::getline(in, line)) {
      if (line.rfind(prefix, 0) == 0) sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  }

  std::string dir_, token_file_;
  std::unique_ptr<Kvcaked> daemon_;
  std::vector<uint64_t> hashes_;
};

TEST_F(KvcakedAdminTest, EndpointsAuthAndPromtool) {
  StartDaemon();
  if (IsSkipped() || HasFatalFailure()) return;
  auto health = Http(false).Get("/healthz");
  ASSERT_TRUE(health.ok()) << health.status().ToString();
  EXPECT_EQ(health->status, 200);
  auto unauth = Http(false).Get("/v1/status");
  ASSERT_TRUE(unauth.ok());
  EXPECT_EQ(unauth->status, 401);
  EXPECT_EQ(json::parse(unauth->body)["code"], "UNAUTHENTICATED");
  EXPECT_EQ(Http().Get("/v1/nope")->status, 404);

  json st = GetJson("/v1/status");
  EXPECT_FALSE(st["version"].get<std::string>().empty());
  EXPECT_FALSE(st["policy"].get<std::string>().empty());
  ASSERT_TRUE(st["tiers"].is_array());
  EXPECT_GE(st["tiers"].size(), 2u);
  bool host_seen = false;
  for (const auto& t : st["tiers"]) {
    if (t["tier"] == "host") {
      host_seen = true;
      EXPECT_GT(t["capacity_bytes"].get<uint64_t>(), 0u);
      // The default policy's host tier follows GDSF until LRU proves better.
      if (st["policy"] == "adaptive") {
        EXPECT_EQ(t.value("ranking", ""), "gdsf") << t.dump();
      }
    }
  }
  EXPECT_TRUE(host_seen) << st.dump();
  EXPECT_TRUE(GetJson("/v1/stats").is_object());
  EXPECT_TRUE(GetJson("/v1/namespaces")["namespaces"].is_array());
  EXPECT_TRUE(GetJson("/v1/config")["config"].is_array());
  EXPECT_TRUE(GetJson("/v1/drain").is_object());

  // The daemon's real exposition passes promtool.
  if (access("/usr/bin/promtool", X_OK) == 0) {
    std::string path = dir_ + "/metrics.prom";
    std::ofstream(path) << Metrics();
    std::string cmd =
        "/usr/bin/promtool check metrics < " + path + " > " + dir_ + "/promtool.out 2>&1";
    int rc = std::system(cmd.c_str());
    EXPECT_EQ(rc, 0) << ReadFile(dir_ + "/promtool.out");
    EXPECT_EQ(ReadFile(dir_ + "/promtool.out"), "");
  }

  // After admin traffic the daemon still stops cleanly on SIGTERM (under the
  // sanitizers this also covers leaks and races at shutdown).
  EXPECT_EQ(daemon_->Stop(), 0) << daemon_->log();
  EXPECT_EQ(daemon_->log().find("Sanitizer"), std::string::npos) << daemon_->log();
}

TEST_F(KvcakedAdminTest, TrafficShowsInApiAndMetrics) {
  StartDaemon();
  if (IsSkipped() || HasFatalFailure()) return;
  std::string before = Metrics();
  Traffic("admin-traffic", 6, 2);
  if (HasFatalFailure()) return;
  // The API sees the namespace and its 12 values.
  json ns = GetJson("/v1/namespaces");
  json mine;
  for (const auto& n : ns["namespaces"]) {
    if (n["name"] == "admin-traffic") mine = n;
  }
  ASSERT_TRUE(mine.is_object()) << ns.dump();
  EXPECT_EQ(mine["num_layers"], 2);
  EXPECT_EQ(mine["blocks"], 12);
  json blocks = GetJson("/v1/blocks?ns=admin-traffic&limit=100");
  EXPECT_EQ(blocks["count"], 12) << blocks.dump();
  json layer1 = GetJson("/v1/blocks?ns=admin-traffic&layer=1");
  EXPECT_EQ(layer1["count"], 6);
  json stats = GetJson("/v1/stats");
  EXPECT_GE(stats["puts"].get<uint64_t>(), 12u) << stats.dump();

  // Metric names present and values moving after traffic.
  std::string after = Metrics();
  for (const char* name :
       {"kvcake_tier_capacity_bytes", "kvcake_tier_used_bytes", "kvcake_tier_blocks",
        "kvcake_hits_total", "kvcake_misses_total", "kvcake_requests_total",
        "kvcake_request_duration_seconds", "kvcake_errors_total", "kvcake_leases_expired_total",
        "kvcake_promotions_total", "kvcake_demotions_total", "kvcake_moved_bytes_total"}) {
    EXPECT_NE(after.find("# TYPE " + std::string(name) + " "), std::string::npos) << name;
  }
  double used = 0;
  for (const char* tier : {"gpu", "host", "ssd"}) {
    used +=
        std::max(0.0, Sample(after, "kvcake_tier_used_bytes{tier=\"" + std::string(tier) + "\"}"));
  }
  EXPECT_GE(used, 12.0 * (16 << 10)) << after;
  // Requests are counted per operation (put/get over UCX, reserve/commit/pin/
  // release on the same-node mapped path) and timed.
  EXPECT_GT(SumSamples(after, "kvcake_requests_total{"),
            SumSamples(before, "kvcake_requests_total{"))
      << after;
  EXPECT_GT(SumSamples(after, "kvcake_request_duration_seconds_count{"),
            SumSamples(before, "kvcake_request_duration_seconds_count{"));
  // Every value was read back once: the store's hits reach the catalog.
  EXPECT_GE(SumSamples(after, "kvcake_hits_total{") - SumSamples(before, "kvcake_hits_total{"),
            12.0)
      << after;
}

// A peer's series in kvcake_transport_selected lives as long as its
// connection: a daemon that many short-lived clients visit must not export
// (and keep) a series for every peer it ever saw.
TEST_F(KvcakedAdminTest, PerPeerSeriesEndWithTheirConnection) {
  StartDaemon();
  if (IsSkipped() || HasFatalFailure()) return;
  for (int i = 0; i < 3; ++i) {
    ClientOptions o;
    o.address = daemon_->ucx_address();
    o.namespace_name = "admin-peers";
    o.timeout = std::chrono::milliseconds(20000);
    auto client = Client::Connect(o);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    ASSERT_TRUE((*client)->Ping().ok());
    // While it is connected, its series is exported.
    EXPECT_NE(Metrics().find("kvcake_transport_selected{"), std::string::npos);
  }  // each client disconnects here
  std::string m;
  for (int attempt = 0; attempt < 100; ++attempt) {
    m = Metrics();
    if (m.find("kvcake_transport_selected{") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(m.find("kvcake_transport_selected{"), std::string::npos)
      << "series of closed connections are still exported:\n"
      << m.substr(m.find("kvcake_transport_selected"), 600);
}

// POST /v1/lookup: a prompt's tokens are hashed as the client hashes them,
// and the answer counts the blocks this daemon holds (a daemon in no
// cluster names no other holder). Bad requests are 4xx with the reason.
TEST_F(KvcakedAdminTest, LookupAnswersHowMuchOfAPromptIsHeld) {
  StartDaemon();
  if (IsSkipped() || HasFatalFailure()) return;
  Traffic("admin-lookup", 4, 2);
  if (HasFatalFailure()) return;
  // Traffic's tokens (i * 7 + 1), plus one more block that was never put
  // and a partial block that has no key.
  json tokens = json::array();
  for (uint32_t i = 0; i < 5 * 16 + 3; ++i) tokens.push_back(i * 7 + 1);
  auto post = [&](const json& body) {
    auto r = Http().Post("/v1/lookup", body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ctl::HttpResponse{};
  };
  auto ok = post({{"ns", "admin-lookup"}, {"tokens", tokens}, {"layer", 1}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  json j = json::parse(ok.body);
  EXPECT_EQ(j["blocks"], 5);
  EXPECT_EQ(j["local"], 4);
  EXPECT_EQ(j["layer"], 1);
  EXPECT_TRUE(j["holders"].empty()) << j.dump();
  // The same chain given as hashes; a chain that breaks after two blocks.
  json hashes = json::array();
  for (uint64_t h : {hashes_[0], hashes_[1], hashes_[3] ^ 1}) {
    char hex[24];
    std::snprintf(hex, sizeof(hex), "0x%llx", static_cast<unsigned long long>(h));
    hashes.push_back(hex);
  }
  auto by_hash = post({{"ns", "admin-lookup"}, {"hashes", hashes}});
  ASSERT_EQ(by_hash.status, 200) << by_hash.body;
  EXPECT_EQ(json::parse(by_hash.body)["local"], 2);
  // What is refused, and why.
  EXPECT_EQ(post({{"tokens", tokens}}).status, 400);
  EXPECT_EQ(post({{"ns", "admin-lookup"}}).status, 400);
  EXPECT_EQ(post({{"ns", "admin-lookup"}, {"tokens", tokens}, {"hashes", hashes}}).status, 400);
  EXPECT_EQ(post({{"ns", "admin-lookup"}, {"tokens", {-1}}}).status, 400);
  EXPECT_EQ(post({{"ns", "admin-lookup"}, {"hashes", {"0xzz"}}}).status, 400);
  auto layer = post({{"ns", "admin-lookup"}, {"tokens", tokens}, {"layer", 2}});
  EXPECT_EQ(layer.status, 400);
  EXPECT_NE(layer.body.find("out of range"), std::string::npos) << layer.body;
  EXPECT_EQ(post({{"ns", "no-such-model"}, {"tokens", tokens}}).status, 404);
  EXPECT_EQ(Http().Get("/v1/lookup")->status, 405);

  // kvcakectl lookup prints the same.
  std::string list;
  for (size_t i = 0; i < tokens.size(); ++i) list += (i ? "," : "") + tokens[i].dump();
  Ran table = Ctl("lookup --ns=admin-lookup --tokens=" + list);
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_NE(table.out.find("this daemon holds 4 of 5 blocks"), std::string::npos) << table.out;
  EXPECT_EQ(CtlJson("lookup --ns=admin-lookup --tokens=" + list)["local"], 4);
  EXPECT_EQ(Ctl("lookup --ns=admin-lookup").exit, 1);
  EXPECT_EQ(Ctl("lookup --ns=admin-lookup --tokens=1,x").exit, 1);
}

TEST_F(KvcakedAdminTest, KvcakectlDrivesTheDaemon) {
  StartDaemon();
  if (IsSkipped() || HasFatalFailure()) return;
  Traffic("admin-ctl", 4, 2);
  if (HasFatalFailure()) return;
  json st = CtlJson("status");
  EXPECT_TRUE(st["tiers"].is_array());
  Ran table = Ctl("status");
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_NE(table.out.find("TIER"), std::string::npos) << table.out;
  // The host tier's row ends with the ranking its victims follow now.
  const size_t host_row = table.out.find("\nhost ");
  ASSERT_NE(host_row, std::string::npos) << table.out;
  const std::string row =
      table.out.substr(host_row + 1, table.out.find('\n', host_row + 1) - host_row - 1);
  EXPECT_EQ(row.substr(row.find_last_not_of(' ') - 3, 4), "gdsf") << table.out;
  EXPECT_TRUE(CtlJson("stats").is_object());
  json ns = CtlJson("ns");
  EXPECT_EQ(ns["namespaces"].size(), 1u);
  EXPECT_EQ(CtlJson("ls --ns=admin-ctl")["count"], 8);

  // Pin one block (both layers), evict the namespace: only the pinned stay.
  char hash[32];
  std::snprintf(hash, sizeof(hash), "0x%llx", static_cast<unsigned long long>(hashes_[0]));
  json pinned = CtlJson(std::string("pin --ns=admin-ctl --hash=") + hash);
  EXPECT_EQ(pinned["pinned"], 2) << pinned.dump();
  json evicted = CtlJson("evict --ns=admin-ctl");
  EXPECT_EQ(evicted["evicted"], 6) << evicted.dump();
  EXPECT_EQ(evicted["skipped_pinned"], 2) << evicted.dump();
  EXPECT_EQ(CtlJson("ls --ns=admin-ctl")["count"], 2);
  // The table says what was skipped and why, and names the namespace.
  Ran again = Ctl("evict --ns=admin-ctl");
  ASSERT_EQ(again.exit, 0) << again.err;
  EXPECT_NE(again.out.find("evicted 0 block(s)"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("skipped 2 operator-pinned block(s)"), std::string::npos) << again.out;
  Ran listed = Ctl("ls --ns=admin-ctl");
  ASSERT_EQ(listed.exit, 0) << listed.err;
  EXPECT_NE(listed.out.find("NAMESPACE"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("\nadmin-ctl "), std::string::npos) << listed.out;
  json unpinned = CtlJson(std::string("unpin --ns=admin-ctl --hash=") + hash);
  EXPECT_EQ(unpinned["unpinned"], 2);

  // Drain: everything ends on SSD.
  Traffic("admin-ctl", 4, 2);
  if (HasFatalFailure()) return;
  json drain = CtlJson("drain --interval_ms=50");
  EXPECT_TRUE(drain["done"].get<bool>()) << drain.dump();
  EXPECT_FALSE(drain.contains("error")) << drain.dump();
  json on_ssd = CtlJson("ls --ns=admin-ctl --tier=ssd");
  json all = CtlJson("ls --ns=admin-ctl");
  EXPECT_EQ(on_ssd["count"], all["count"]) << all.dump();
  // The drain shows up as demotions and bytes moved to SSD in /metrics.
  std::string m = Metrics();
  EXPECT_GE(Sample(m, "kvcake_demotions_total{from=\"host\",to=\"ssd\"}") +
                Sample(m, "kvcake_demotions_total{from=\"gpu\",to=\"ssd\"}"),
            all["count"].get<double>())
      << m;
  EXPECT_GT(Sample(m, "kvcake_moved_bytes_total{from=\"host\",to=\"ssd\"}"), 0) << m;

  // Config: read every knob, set one to a new value and read it back.
  json cfg = CtlJson("config get");
  ASSERT_FALSE(cfg["config"].empty());
  std::string knob, value;
  for (const auto& e : cfg["config"]) {
    if (e["name"] == "tier.host.capacity_bytes") {
      knob = e["name"];
      value = e["value"];
    }
  }
  if (!knob.empty()) {
    std::string new_value = std::to_string(std::stoull(value) / 2);
    CtlJson("config set " + knob + "=" + new_value);
    json got = CtlJson("config get " + knob);
    EXPECT_EQ(got["config"][0]["value"].get<std::string>(), new_value);
  }
  EXPECT_EQ(Ctl("config set no.such.knob=1").exit, 4);

  // top for scripts.
  Ran top = Ctl("--json top --iterations=2 --interval_ms=50");
  EXPECT_EQ(top.exit, 0) << top.err;
  EXPECT_EQ(std::count(top.out.begin(), top.out.end(), '\n'), 2) << top.out;

  // Wrong token → exit 3.
  std::string bad = dir_ + "/bad.token";
  std::ofstream(bad) << "nope\n";
  std::string cmd = BinDir() +
                    "/kvcakectl --admin=127.0.0.1:" + std::to_string(daemon_->admin_port()) +
                    " --token_file=" + bad + " status >/dev/null 2>&1";
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 3);
}

// An engine with budgeted serving that reports CAKE statistics gets
// per-layer budgets from the (default, adaptive) policy, and /metrics exports
// them per namespace, tier and layer; an exact-serving one does not.
TEST_F(KvcakedAdminTest, CakeLayerBudgetsAreExported) {
  StartDaemon({"--gpu_bytes=256K", "--slot_bytes=16K"});
  if (IsSkipped() || HasFatalFailure()) return;
  // 12 blocks x 2 layers = 24 layer-blocks; the emulated GPU tier holds 16.
  Traffic("cake-ns", 12, 2, /*budgeted=*/true);
  if (HasFatalFailure()) return;
  EXPECT_EQ(SumSamples(Metrics(), "kvcake_cake_layer_budget_blocks{namespace=\"cake-ns\""), 0)
      << "no statistics reported yet: the namespace is governed by GDSF";

  ClientOptions o;
  o.address = daemon_->ucx_address();
  o.namespace_name = "cake-ns";
  auto client = Client::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  NamespaceGeometry g;
  g.num_layers = 2;
  g.block_tokens = 16;
  g.layer_block_bytes = 16 << 10;
  g.kv_dtype = "fp16";
  g.budgeted_serving = true;
  ASSERT_TRUE((*client)->RegisterNamespace(g).ok());
  // Layer 1 prefers far more budget (P) than layer 0.
  std::vector<double> scores(hashes_.size());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = 1.0 + static_cast<double>(i % 3);
  ASSERT_TRUE((*client)->ReportLayerStats(0, 1.0, hashes_, scores, 1).ok());
  ASSERT_TRUE((*client)->ReportLayerStats(1, 9.0, hashes_, scores, 1).ok());

  std::string m = Metrics();
  const std::string series = "kvcake_cake_layer_budget_blocks{namespace=\"cake-ns\",tier=\"";
  double l0 = Sample(m, series + "gpu\",layer=\"0\"}");
  double l1 = Sample(m, series + "gpu\",layer=\"1\"}");
  ASSERT_GE(l0, 1) << m;
  ASSERT_GE(l1, 1) << m;
  EXPECT_LE(l0 + l1, 16) << "budgets fit the GPU tier (256 KiB / 16 KiB)";
  EXPECT_GT(l1, l0) << "the layer with the larger preference gets more GPU blocks";

  // Exact serving (the default): the same statistics leave it to GDSF.
  Traffic("exact-ns", 4, 2);
  if (HasFatalFailure()) return;
  o.namespace_name = "exact-ns";
  auto exact = Client::Connect(o);
  ASSERT_TRUE(exact.ok()) << exact.status().ToString();
  g.budgeted_serving = false;
  ASSERT_TRUE((*exact)->RegisterNamespace(g).ok());
  const std::vector<double> four_scores = {1.0, 2.0, 3.0, 1.0};
  ASSERT_TRUE((*exact)->ReportLayerStats(1, 9.0, hashes_, four_scores, 1).ok());
  EXPECT_EQ(SumSamples(Metrics(), "kvcake_cake_layer_budget_blocks{namespace=\"exact-ns\""), 0);
  // The admin API says how each namespace is served.
  std::map<std::string, std::string> serving;
  const json listed = GetJson("/v1/namespaces");
  for (const json& n : listed["namespaces"]) {
    serving[n["name"].get<std::string>()] = n.value("serving", "");
  }
  EXPECT_EQ(serving["cake-ns"], "budgeted");
  EXPECT_EQ(serving["exact-ns"], "exact");
}

TEST_F(KvcakedAdminTest, RefusesNonLoopbackAdminWithoutToken) {
  std::vector<std::string> flags = {"--listen=127.0.0.1:0", "--admin_listen=0.0.0.0:0",
                                    "--host_bytes=4M",      "--slot_bytes=64K",
                                    "--ssd_path=",          "--io_threads=1"};
  Status s = daemon_->Start(flags);
  if (s.code() == StatusCode::kUnimplemented) GTEST_SKIP() << s.message();
  EXPECT_FALSE(s.ok()) << "kvcaked started with a non-loopback admin address and no token";
  EXPECT_NE(daemon_->WaitExit(30), 0);
  EXPECT_NE(daemon_->log().find("admin_token_file"), std::string::npos) << daemon_->log();
}

// A one-connection TCP server on 127.0.0.1 that sends `greeting` (maybe
// nothing) to whoever connects first and closes.
class OneShotServer {
 public:
  explicit OneShotServer(std::string greeting) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, greeting = std::move(greeting)] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      if (!greeting.empty()) (void)!::write(c, greeting.data(), greeting.size());
      ::close(c);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept() if nobody came
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// kvcakectl pointed at something that is not the admin API (the daemon's
// data port, a server of another protocol, one that hangs up) fails at once
// and says what to check.
TEST_F(KvcakedAdminTest, KvcakectlAtANonHttpPortFailsAtOnce) {
  StartDaemon();
  if (IsSkipped() || HasFatalFailure()) return;
  OneShotServer ssh("SSH-2.0-OpenSSH_9.2\r\n");
  OneShotServer hangs_up("");
  for (const auto& [address, says] : std::vector<std::pair<std::string, std::string>>{
           {daemon_->ucx_address(), "closed the connection without an HTTP answer"},
           {ssh.address(), "not in HTTP"},
           {hangs_up.address(), "closed the connection without an HTTP answer"}}) {
    const auto start = std::chrono::steady_clock::now();
    Ran r = Ctl("--admin=" + address + " status");
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(r.exit, ctl::kExitUnavailable) << address << ": " << r.err;
    EXPECT_LT(seconds, 1.0) << address << ": " << r.err;
    EXPECT_NE(r.err.find(address + " "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << address << ": " << r.err;
    EXPECT_NE(r.err.find("--admin_listen"), std::string::npos) << address << ": " << r.err;
  }
}

}  // namespace
}  // namespace kvcake
