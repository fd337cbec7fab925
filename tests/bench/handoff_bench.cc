// kvcake-handoff-bench: the prefill -> decode hand-off's overlap, on
// 127.0.0.1 with a real etcd and two real kvcaked (UCX tcp between them).
//
// First the time to push one layer (blocks x value) from the prefill node's
// daemon to the decode node is measured as a plain put from the prefill
// engine straight to the decode daemon (the "layer transfer"). Then a
// prefill engine streams every layer to the decode node through its own
// daemon, computing (sleeping) one layer-transfer time per layer, and the
// decode engine waits for the whole request. Printed: the time from the
// prefill's last layer to the decode side holding every layer, in layer
// transfers (goal <= 1.5; a transfer started after the prefill would take
// `layers`).
//
//   kvcake-handoff-bench [--layers=32] [--blocks=4] [--value_kib=256] [--rounds=3] [--json]

#include <gflags/gflags.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/progress.h"
#include "kvcake/client.h"
#include "tests/bench/bench_util.h"
#include "tests/chaos/chaos_util.h"
#include "tests/cluster/cluster_util.h"
#include "tests/cluster/etcd_harness.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/test_engine.h"

DEFINE_uint32(layers, 32, "layers per request");
DEFINE_uint32(blocks, 4, "blocks per layer");
DEFINE_uint32(value_kib, 256, "value size in KiB");
DEFINE_uint32(rounds, 3, "hand-offs measured (median reported)");
DEFINE_bool(json, false, "print one JSON object");

namespace kvcake {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using bench::Median;
using bench::Seconds;

using cluster::testing::WaitFor;

int Run() {
  testing::TempDir dir;
  auto etcd = cluster::testing::EtcdProcess::Start();
  if (!etcd.ok()) {
    std::fprintf(stderr, "etcd: %s\n", etcd.status().ToString().c_str());
    return 1;
  }
  std::ofstream(dir.path() + "/token") << "handoff-bench-token\n";
  const uint64_t size = static_cast<uint64_t>(FLAGS_value_kib) * 1024;
  std::vector<std::unique_ptr<testing::DaemonProcess>> nodes;
  for (const char* id : {"prefill", "decode"}) {
    auto d = testing::DaemonProcess::Start(
        {"--cluster_etcd=" + (*etcd)->endpoint(), "--cluster_name=handoff-bench",
         std::string("--node_id=") + id, "--cluster_token_file=" + dir.path() + "/token",
         "--ucx_tls=tcp", "--io_threads=2", "--host_bytes=1GiB",
         "--slot_bytes=" + std::to_string(size), "--expose_host_segment=false",
         "--ssd_path=" + dir.path() + "/ssd-" + id, "--admin_listen=127.0.0.1:0",
         "--log_level=warning"});
    if (!d.ok()) {
      std::fprintf(stderr, "kvcaked %s: %s\n", id, d.status().ToString().c_str());
      return 1;
    }
    nodes.push_back(std::move(d).value());
  }
  auto members = [&](size_t i) { return cluster::testing::LiveMembers(nodes[i]->admin_address()); };
  if (!WaitFor([&] { return members(0) == 2 && members(1) == 2; }, milliseconds(10000))) {
    std::fprintf(stderr, "members did not see each other\n");
    return 1;
  }
  auto engine = [&](size_t i) -> std::unique_ptr<Client> {
    auto c = testing::ConnectEngine(testing::EngineOptions(nodes[i]->address(), "handoff-bench"),
                                    testing::TestGeometry(FLAGS_layers, size));
    if (!c.ok()) return nullptr;
    return std::move(c).value();
  };

  auto prefill = engine(0);
  auto direct = engine(1);  // the prefill engine's view of the decode daemon
  auto decode = engine(1);
  if (!prefill || !direct || !decode) return 1;
  std::vector<char> data(size, 'k');

  auto layer_blocks = [&](const std::vector<uint64_t>& chain, uint32_t layer) {
    std::vector<PutBlock> g;
    for (uint64_t h : chain) g.push_back({h, layer, data.data()});
    return g;
  };
  std::vector<double> transfer, exposed;
  // A live line on a terminal's stderr (never with --json).
  Progress progress("kvcake-handoff-bench", {.enabled = !FLAGS_json});
  for (uint32_t r = 0; r < FLAGS_rounds; ++r) {
    progress.Update(r, FLAGS_rounds, "hand-off " + std::to_string(r + 1));
    std::vector<uint32_t> tokens(16 * FLAGS_blocks);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = (r + 1) * 7919u + i;
    // One layer transfer: a put of one layer straight to the decode daemon.
    std::vector<uint64_t> probe = direct->HashTokens(tokens);
    for (uint64_t& h : probe) h ^= 0x5a5a5a5aull;  // not the hand-off's keys
    auto t0 = Clock::now();
    if (!direct->Put(layer_blocks(probe, 0), nullptr).ok()) return 1;
    const double layer_s = Seconds(Clock::now() - t0);
    transfer.push_back(layer_s);

    std::vector<uint64_t> chain = prefill->HashTokens(tokens);
    HandoffTarget target{"decode", 1000 + r, FLAGS_layers * FLAGS_blocks};
    auto stream = prefill->OpenHandoffStream(target);
    if (!stream.ok()) {
      std::fprintf(stderr, "handoff stream: %s\n", stream.status().ToString().c_str());
      return 1;
    }
    for (uint32_t l = 0; l < FLAGS_layers; ++l) {
      // The prefill computes layer l, then saves it.
      std::this_thread::sleep_for(std::chrono::duration<double>(layer_s));
      if (!(*stream)->Submit(layer_blocks(chain, l)).ok()) return 1;
    }
    const auto last_layer = Clock::now();
    Status s = decode->WaitHandoff(target.handoff_id, milliseconds(60000));
    const double tail = Seconds(Clock::now() - last_layer);
    if (!s.ok()) {
      std::fprintf(stderr, "hand-off %u: %s\n", r, s.ToString().c_str());
      return 1;
    }
    exposed.push_back(tail / layer_s);
  }
  progress.Done();
  const double layer_ms = Median(transfer) * 1e3;
  const double exposed_layers = Median(exposed);
  if (FLAGS_json) {
    std::printf("%s\n", nlohmann::json{{"layers", FLAGS_layers},
                                       {"blocks", FLAGS_blocks},
                                       {"value_bytes", size},
                                       {"layer_transfer_ms", layer_ms},
                                       {"exposed_layers", exposed_layers},
                                       {"blocking_layers", FLAGS_layers}}
                            .dump()
                            .c_str());
    return 0;
  }
  std::printf(
      "kvcake-handoff-bench: etcd + 2 kvcaked on 127.0.0.1, UCX tcp, %u layers x %u "
      "blocks x %u KiB\n",
      FLAGS_layers, FLAGS_blocks, FLAGS_value_kib);
  std::printf("  one layer transfer %.2f ms (modelled prefill compute per layer: the same)\n",
              layer_ms);
  std::printf(
      "  last layer -> decode holds all layers: %.2f layer transfers (goal <= 1.50; a "
      "transfer after the prefill: %u)\n",
      exposed_layers, FLAGS_layers);
  return 0;
}

}  // namespace
}  // namespace kvcake

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return kvcake::Run();
}
