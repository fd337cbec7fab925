// kvcake-handoff-bench: the prefill -> decode hand-off's overlap, on
// 127.0.0.1 with a real etcd and two real kvcaked (UCX tcp between them).
//
// First the time to push one layer (blocks x value) from the prefill node's
// daemon to the decode node is measured as a plain put from the prefill
// engine straight to the decode daemon (the "layer transfer", the median of
// several such puts). Then a
// prefill engine streams every layer to the decode node through its own
// daemon, computing (sleeping) one layer-transfer time per layer, and the
// decode engine waits for the whole request. The prefill engine reaches its
// own daemon as a same-node engine does by default, through the daemon's
// mapped host tier (--local_hop=tcp: over UCX tcp instead). Printed: the time
// from the prefill's last layer to the decode side holding every layer, in
// layer transfers (goal <= 1.5; a transfer started after the prefill would
// take `layers`).
//
//   kvcake-handoff-bench [--layers=32] [--blocks=4] [--value_kib=256] [--rounds=3]
//                        [--local_hop=mapped|tcp] [--daemon_flags=--FLAG=VALUE,...] [--json]

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
#include "common/split.h"
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
DEFINE_string(local_hop, "mapped",
              "how the prefill engine reaches its own daemon: mapped (the daemon exposes its "
              "host tier to same-node clients, the default of kvcaked and the client) or tcp "
              "(UCX tcp like the layer transfer)");
DEFINE_double(compute, 1.0,
              "modelled prefill compute per layer, in layer transfers (0: the layers are "
              "saved back to back, which measures the hand-off's throughput)");
DEFINE_bool(verify_commits, true,
            "kvcaked --verify_commits of both daemons (false: the prefill daemon records the "
            "prefill engine's checksums without hashing each layer again)");
DEFINE_string(daemon_flags, "",
              "more kvcaked flags for both daemons, comma-separated (e.g. --busy_poll_us=0)");
DEFINE_bool(json, false, "print one JSON object");

namespace kvcake {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using bench::Median;
using bench::ProcessesCpuSeconds;
using bench::Seconds;
using bench::Sum;

using cluster::testing::WaitFor;

constexpr uint32_t kTransferSamples = 7;

int Run() {
  if (FLAGS_local_hop != "mapped" && FLAGS_local_hop != "tcp") {
    std::fprintf(stderr, "--local_hop must be mapped or tcp, got '%s'\n", FLAGS_local_hop.c_str());
    return 2;
  }
  const bool mapped = FLAGS_local_hop == "mapped";
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
    std::vector<std::string> flags = {
        "--cluster_etcd=" + (*etcd)->endpoint(),
        "--cluster_name=handoff-bench",
        std::string("--node_id=") + id,
        "--cluster_token_file=" + dir.path() + "/token",
        "--ucx_tls=tcp",
        "--io_threads=2",
        "--host_bytes=1GiB",
        "--slot_bytes=" + std::to_string(size),
        "--expose_host_segment=" +
            std::string(mapped && id == std::string("prefill") ? "true" : "false"),
        "--ssd_path=" + dir.path() + "/ssd-" + id,
        "--admin_listen=127.0.0.1:0",
        "--log_level=warning",
        std::string("--verify_commits=") + (FLAGS_verify_commits ? "true" : "false")};
    for (std::string& f : SplitNonEmpty(FLAGS_daemon_flags, ',')) flags.push_back(std::move(f));
    auto d = testing::DaemonProcess::Start(flags);
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
    ClientOptions o = testing::EngineOptions(nodes[i]->address(), "handoff-bench");
    o.use_mapped_path = true;  // only the prefill daemon offers its segment
    auto c = testing::ConnectEngine(o, testing::TestGeometry(FLAGS_layers, size));
    if (!c.ok()) {
      std::fprintf(stderr, "engine: %s\n", c.status().ToString().c_str());
      return nullptr;
    }
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
  std::vector<double> transfer, exposed, saved;
  // CPU seconds of the engines (this process) and both daemons, per layer:
  // in the direct puts, and in a hand-off (its compute is a sleep).
  const std::vector<pid_t> pids = {0, nodes[0]->pid(), nodes[1]->pid()};
  auto cpu_now = [&] { return ProcessesCpuSeconds(pids); };
  auto per_layer = [](const std::vector<double>& t0, const std::vector<double>& t1, double n) {
    std::vector<double> d;
    for (size_t i = 0; i < t0.size(); ++i) d.push_back((t1[i] - t0[i]) / n);
    return d;
  };
  // Per round: CPU seconds per layer of {engines, prefill daemon, decode daemon}.
  std::vector<std::vector<double>> transfer_cpu, handoff_cpu;
  // A live line on a terminal's stderr (never with --json).
  Progress progress("kvcake-handoff-bench", {.enabled = !FLAGS_json});
  for (uint32_t r = 0; r < FLAGS_rounds; ++r) {
    progress.Update(r, FLAGS_rounds, "hand-off " + std::to_string(r + 1));
    std::vector<uint32_t> tokens(16 * FLAGS_blocks);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = (r + 1) * 7919u + i;
    // One layer transfer: a put of one layer straight to the decode daemon,
    // the median of kTransferSamples (one put on a VM can be off by half).
    std::vector<double> samples;
    const std::vector<double> put_cpu0 = cpu_now();
    for (uint32_t i = 0; i < kTransferSamples; ++i) {
      std::vector<uint64_t> probe = direct->HashTokens(tokens);
      for (uint64_t& h : probe) h ^= 0x5a5a5a5aull + i;  // not the hand-off's keys
      auto t0 = Clock::now();
      if (!direct->Put(layer_blocks(probe, 0), nullptr).ok()) return 1;
      samples.push_back(Seconds(Clock::now() - t0));
    }
    const double layer_s = Median(samples);
    transfer.push_back(layer_s);
    transfer_cpu.push_back(per_layer(put_cpu0, cpu_now(), kTransferSamples));
    const std::vector<double> handoff_cpu0 = cpu_now();

    std::vector<uint64_t> chain = prefill->HashTokens(tokens);
    HandoffTarget target{"decode", 1000 + r, FLAGS_layers * FLAGS_blocks};
    auto stream = prefill->OpenHandoffStream(target);
    if (!stream.ok()) {
      std::fprintf(stderr, "handoff stream: %s\n", stream.status().ToString().c_str());
      return 1;
    }
    for (uint32_t l = 0; l < FLAGS_layers; ++l) {
      // The prefill computes layer l, then saves it.
      if (FLAGS_compute > 0) {
        std::this_thread::sleep_for(std::chrono::duration<double>(FLAGS_compute * layer_s));
      }
      if (!(*stream)->Submit(layer_blocks(chain, l)).ok()) return 1;
    }
    const auto last_layer = Clock::now();
    // The decode side's wait, and beside it the prefill's own save.
    Status saved_status;
    double saved_s = 0;
    std::thread saver([&] {
      saved_status = (*stream)->WaitAll(milliseconds(60000));
      saved_s = Seconds(Clock::now() - last_layer);
    });
    Status s = decode->WaitHandoff(target.handoff_id, milliseconds(60000));
    const double tail = Seconds(Clock::now() - last_layer);
    saver.join();
    if (!s.ok() || !saved_status.ok()) {
      std::fprintf(stderr, "hand-off %u: %s / save: %s\n", r, s.ToString().c_str(),
                   saved_status.ToString().c_str());
      return 1;
    }
    handoff_cpu.push_back(per_layer(handoff_cpu0, cpu_now(), FLAGS_layers));
    exposed.push_back(tail / layer_s);
    saved.push_back(saved_s / layer_s);
  }
  progress.Done();
  const double layer_ms = Median(transfer) * 1e3;
  const double exposed_layers = Median(exposed);
  const double saved_layers = Median(saved);
  // The median of each process's CPU per layer over the rounds, in ms.
  auto cpu_ms = [](const std::vector<std::vector<double>>& rounds) {
    std::vector<double> ms;
    for (size_t p = 0; p < rounds.front().size(); ++p) {
      std::vector<double> v;
      for (const std::vector<double>& r : rounds) v.push_back(r[p]);
      ms.push_back(Median(v) * 1e3);
    }
    return ms;
  };
  const std::vector<double> transfer_ms = cpu_ms(transfer_cpu);
  const std::vector<double> handoff_ms = cpu_ms(handoff_cpu);
  if (FLAGS_json) {
    std::printf("%s\n", nlohmann::json{{"layers", FLAGS_layers},
                                       {"blocks", FLAGS_blocks},
                                       {"value_bytes", size},
                                       {"local_hop", FLAGS_local_hop},
                                       {"verify_commits", FLAGS_verify_commits},
                                       {"layer_transfer_ms", layer_ms},
                                       {"compute_layers", FLAGS_compute},
                                       {"exposed_layers", exposed_layers},
                                       {"prefill_saved_layers", saved_layers},
                                       {"cpu_ms_per_layer_transfer", Sum(transfer_ms)},
                                       {"cpu_ms_per_handoff_layer", Sum(handoff_ms)},
                                       {"handoff_cpu_ms_engines_prefill_decode", handoff_ms},
                                       {"blocking_layers", FLAGS_layers}}
                            .dump()
                            .c_str());
    return 0;
  }
  std::printf(
      "kvcake-handoff-bench: etcd + 2 kvcaked on 127.0.0.1, UCX tcp, %u layers x %u "
      "blocks x %u KiB, prefill engine to its daemon: %s\n",
      FLAGS_layers, FLAGS_blocks, FLAGS_value_kib, FLAGS_local_hop.c_str());
  std::printf("  one layer transfer %.2f ms (modelled prefill compute per layer: %.2f of it)\n",
              layer_ms, FLAGS_compute);
  std::printf(
      "  last layer -> decode holds all layers: %.2f layer transfers (goal <= 1.50; a "
      "transfer after the prefill: %u)\n",
      exposed_layers, FLAGS_layers);
  std::printf("  last layer -> prefill daemon holds all layers: %.2f layer transfers\n",
              saved_layers);
  std::printf(
      "  CPU per layer (all processes): %.2f ms in a hand-off vs %.2f ms in a direct put, "
      "%u cores\n",
      Sum(handoff_ms), Sum(transfer_ms), std::thread::hardware_concurrency());
  std::printf(
      "    engines / prefill daemon / decode daemon: hand-off %.2f / %.2f / %.2f ms, "
      "direct put %.2f / %.2f / %.2f ms\n",
      handoff_ms[0], handoff_ms[1], handoff_ms[2], transfer_ms[0], transfer_ms[1], transfer_ms[2]);
  return 0;
}

}  // namespace
}  // namespace kvcake

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return kvcake::Run();
}
