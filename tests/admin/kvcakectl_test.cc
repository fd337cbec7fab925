// kvcakectl (the real binary, run as a subprocess) against a real AdminServer
// on loopback; output read through --json. The daemon-backed run is in
// kvcaked_admin_test.cc.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "client/kvcakectl/commands.h"
#include "daemon/admin/admin_server.h"
#include "tests/admin/admin_test_util.h"
#include "tests/admin/memory_backend.h"

namespace kvcake::admin {
namespace {

using json = nlohmann::json;

struct Ran {
  int exit = -1;
  std::string out, err;
};

using kvcake::testing::BinDir;
using kvcake::testing::ReadFile;

// Runs `kvcakectl <args>` with `env` prepended ("VAR=x VAR2=y").
Ran RunCtl(const std::string& args, const std::string& env = "") {
  static int counter = 0;
  std::string base =
      "/tmp/kvcakectl_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
  std::string cmd = "env -u KVCAKE_ADMIN -u KVCAKE_ADMIN_TOKEN_FILE " + env + " " + BinDir() +
                    "/kvcakectl " + args + " >" + base + ".out 2>" + base + ".err";
  int rc = std::system(cmd.c_str());
  Ran r;
  r.exit = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = ReadFile(base + ".out");
  r.err = ReadFile(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}

class KvcakectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access((BinDir() + "/kvcakectl").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "kvcakectl not built in " << BinDir();
    }
    token_file_ = "/tmp/kvcakectl_token_" + std::to_string(getpid());
    std::ofstream(token_file_) << "tok-" << getpid() << "\n";
    AdminServerOptions o;
    o.listen = "127.0.0.1:0";
    o.token_file = token_file_;
    auto s = AdminServer::Start(o, &backend_, &registry_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    flags_ = "--admin=127.0.0.1:" + std::to_string(server_->port()) +
             " --token_file=" + token_file_ + " ";
  }
  void TearDown() override {
    server_.reset();
    if (!token_file_.empty()) unlink(token_file_.c_str());
  }

  json Json(const Ran& r) {
    EXPECT_EQ(r.exit, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }

  metrics::Registry registry_;
  testing::MemoryBackend backend_;
  std::unique_ptr<AdminServer> server_;
  std::string token_file_;
  std::string flags_;
};

TEST_F(KvcakectlTest, StatusJsonAndTable) {
  json j = Json(RunCtl(flags_ + "--json status"));
  EXPECT_EQ(j["version"], "0.1.0-test");
  EXPECT_EQ(j["tiers"].size(), 3u);
  Ran t = RunCtl(flags_ + "status");
  ASSERT_EQ(t.exit, 0) << t.err;
  EXPECT_NE(t.out.find("TIER"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("CAPACITY"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("policy cake"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("24.0 KiB"), std::string::npos) << t.out;  // 6 x 4 KiB on gpu
}

TEST_F(KvcakectlTest, StatsNamespacesHealth) {
  EXPECT_EQ(Json(RunCtl(flags_ + "--json stats"))["puts"], 12);
  Ran st = RunCtl(flags_ + "stats");
  ASSERT_EQ(st.exit, 0) << st.err;
  EXPECT_NE(st.out.find("DROPPED BECAUSE"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("admission=2 corrupt=1"), std::string::npos) << st.out;
  json n = Json(RunCtl(flags_ + "--json ns"));
  EXPECT_EQ(n["namespaces"][0]["name"], "llama");
  Ran t = RunCtl(flags_ + "ns");
  EXPECT_NE(t.out.find("CAKE layer budgets"), std::string::npos) << t.out;
  EXPECT_EQ(Json(RunCtl(flags_ + "--json health"))["status"], "ok");
}

TEST_F(KvcakectlTest, ListEvictPinUnpin) {
  json ls = Json(RunCtl(flags_ + "--json ls --ns=llama --tier=gpu --limit=3"));
  EXPECT_EQ(ls["count"], 3);
  EXPECT_EQ(Json(RunCtl(flags_ + "--json pin --ns=llama --hash=0x3"))["pinned"], 4);
  EXPECT_EQ(Json(RunCtl(flags_ + "--json evict --ns=llama"))["evicted"], 8);
  EXPECT_EQ(Json(RunCtl(flags_ + "--json unpin --ns=llama --hash=3 --layer=2"))["unpinned"], 1);
  Ran t = RunCtl(flags_ + "ls --ns=llama");
  ASSERT_EQ(t.exit, 0) << t.err;
  EXPECT_NE(t.out.find("4 block(s)"), std::string::npos) << t.out;
  // Missing --ns is a usage error, unknown namespace an API error.
  EXPECT_EQ(RunCtl(flags_ + "evict").exit, ctl::kExitUsage);
  Ran bad = RunCtl(flags_ + "evict --ns=ghost");
  EXPECT_EQ(bad.exit, ctl::kExitApiError);
  EXPECT_NE(bad.err.find("NOT_FOUND"), std::string::npos) << bad.err;
}

TEST_F(KvcakectlTest, DrainWithProgress) {
  Ran t = RunCtl(flags_ + "drain --interval_ms=1");
  ASSERT_EQ(t.exit, 0) << t.err;
  EXPECT_NE(t.out.find("100.0%"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("drain complete"), std::string::npos) << t.out;
  json d = Json(RunCtl(flags_ + "--json drain status"));
  EXPECT_TRUE(d["done"].get<bool>());
  EXPECT_EQ(d["moved_blocks"], 12);
}

TEST_F(KvcakectlTest, ConfigGetSet) {
  json c = Json(RunCtl(flags_ + "--json config get policy.gamma"));
  ASSERT_EQ(c["config"].size(), 1u);
  EXPECT_EQ(c["config"][0]["value"], "200");
  Json(RunCtl(flags_ + "--json config set policy.gamma=120 tier.host.capacity_bytes=4096"));
  c = Json(RunCtl(flags_ + "--json config get policy.gamma"));
  EXPECT_EQ(c["config"][0]["value"], "120");
  EXPECT_EQ(RunCtl(flags_ + "config set nonsense").exit, ctl::kExitUsage);
  EXPECT_EQ(RunCtl(flags_ + "config set no.such.knob=1").exit, ctl::kExitApiError);
  EXPECT_EQ(RunCtl(flags_ + "config get no.such.knob").exit, ctl::kExitApiError);
}

TEST_F(KvcakectlTest, TopIterations) {
  Ran t = RunCtl(flags_ + "--json top --iterations=2 --interval_ms=10");
  ASSERT_EQ(t.exit, 0) << t.err;
  std::istringstream lines(t.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_TRUE(j.contains("status") && j.contains("stats") && j.contains("namespaces"));
    ++n;
  }
  EXPECT_EQ(n, 2);
  Ran table = RunCtl(flags_ + "top --iterations=2 --interval_ms=10");
  ASSERT_EQ(table.exit, 0) << table.err;
  EXPECT_NE(table.out.find("refresh #2"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("HITS/S"), std::string::npos) << table.out;
}

TEST_F(KvcakectlTest, EnvironmentDefaults) {
  std::string env = "KVCAKE_ADMIN=127.0.0.1:" + std::to_string(server_->port()) +
                    " KVCAKE_ADMIN_TOKEN_FILE=" + token_file_;
  EXPECT_EQ(Json(RunCtl("--json status", env))["node_id"], "node-a");
}

TEST_F(KvcakectlTest, WrongTokenAndDaemonDownGiveClearErrors) {
  std::string bad = "/tmp/kvcakectl_badtoken_" + std::to_string(getpid());
  std::ofstream(bad) << "wrong\n";
  Ran r = RunCtl("--admin=127.0.0.1:" + std::to_string(server_->port()) + " --token_file=" + bad +
                 " status");
  unlink(bad.c_str());
  EXPECT_EQ(r.exit, ctl::kExitAuth);
  EXPECT_NE(r.err.find("authentication failed"), std::string::npos) << r.err;
  Ran none = RunCtl("--admin=127.0.0.1:" + std::to_string(server_->port()) + " status");
  EXPECT_EQ(none.exit, ctl::kExitAuth);
  Ran missing = RunCtl("--admin=127.0.0.1:1 --token_file=/nonexistent/tok status");
  EXPECT_EQ(missing.exit, ctl::kExitAuth);

  uint16_t port = server_->port();
  server_.reset();
  Ran down = RunCtl("--admin=127.0.0.1:" + std::to_string(port) + " --timeout_ms=3000 status");
  EXPECT_EQ(down.exit, ctl::kExitUnavailable);
  EXPECT_NE(down.err.find("is kvcaked running"), std::string::npos) << down.err;
}

TEST_F(KvcakectlTest, UsageErrors) {
  EXPECT_EQ(RunCtl(flags_).exit, ctl::kExitUsage);
  Ran r = RunCtl(flags_ + "frobnicate");
  EXPECT_EQ(r.exit, ctl::kExitUsage);
  EXPECT_NE(r.err.find("unknown command"), std::string::npos);
  EXPECT_EQ(RunCtl(flags_ + "status extra").exit, ctl::kExitUsage);
  EXPECT_EQ(RunCtl("--admin=nohost: status").exit, ctl::kExitUsage);
  EXPECT_EQ(RunCtl(flags_ + "help").exit, 0);
}

TEST(KvcakectlFormatTest, HumanBytesAndTable) {
  EXPECT_EQ(ctl::HumanBytes(512), "512 B");
  EXPECT_EQ(ctl::HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(ctl::HumanBytes(3.0 * (1ull << 30)), "3.0 GiB");
  std::string t = ctl::RenderTable({{"NAME", "N"}, {"a", "1"}, {"bbbb", "100"}});
  EXPECT_EQ(t, "NAME  N\na       1\nbbbb  100\n");
}

}  // namespace
}  // namespace kvcake::admin
