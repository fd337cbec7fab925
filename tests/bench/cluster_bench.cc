// kvcake-cluster-bench: the cluster's cross-node paths against baselines
// measured in the same run, on 127.0.0.1 with a real etcd and three real
// kvcaked (UCX tcp between them):
//
//  - remote get: an engine on C gets blocks that A holds, through its own
//    daemon (C fetches them from A over UCX tcp and keeps a copy), against an
//    engine getting them straight from A's daemon over UCX tcp (goal
//    >= 0.7x). The engine reaches its own daemon C as a same-node engine
//    does by default, through C's mapped host tier; --local_hop=tcp sends
//    that hop over loopback tcp as well (then every byte crosses tcp twice
//    on the same cores). Only C exposes its segment: A stands for another
//    node, so the direct get always goes over tcp;
//  - cluster lookup_prefix of a 1000-block chain answered by a remote
//    directory owner, against the holder's local lookup (goal p50 <= 2x);
//  - membership: kill -9 of a member to its removal everywhere, and a
//    restart to its return.
//
//   kvcake-cluster-bench [--blocks=64] [--value_kib=1024] [--rounds=5]
//                        [--local_hop=mapped|tcp] [--phases] [--json]
//                        [--daemon_flags=--FLAG=VALUE,...]
//
// It also prints the CPU time every process spent in the gets, per GiB
// moved: on a box with few cores the get through the local daemon, which
// moves every byte once more, is bounded by CPU rather than by the wire.

#include <gflags/gflags.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
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

DEFINE_uint32(blocks, 64, "blocks per get round");
DEFINE_uint32(value_kib, 1024, "value size in KiB");
DEFINE_uint32(rounds, 5, "get rounds (each on fresh blocks)");
DEFINE_uint32(lookups, 300, "lookup_prefix calls per measurement");
DEFINE_bool(json, false, "print one JSON object");
DEFINE_string(local_hop, "mapped",
              "how the engine on C reaches its own daemon: mapped (C exposes its host tier "
              "to same-node clients, the default of kvcaked and the client) or tcp (UCX tcp "
              "like the direct get)");
DEFINE_string(daemon_flags, "",
              "more kvcaked flags for all three daemons, comma-separated (e.g. "
              "--busy_poll_us=0,--verify_commits=false)");
DEFINE_bool(phases, false,
            "also time the remote get's two hops apart: C's fetch from A alone (a prefetch "
            "until C holds every block) and then C's local get of them");

namespace kvcake {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using bench::Median;
using bench::ProcessesCpuSeconds;
using bench::Seconds;
using bench::Sum;

using cluster::testing::WaitFor;

struct Bench {
  testing::TempDir dir;
  std::unique_ptr<cluster::testing::EtcdProcess> etcd;
  std::vector<std::unique_ptr<testing::DaemonProcess>> nodes;  // a, b, c
  uint64_t value_bytes = 0;

  std::vector<std::string> Flags(const std::string& id) {
    std::vector<std::string> flags = {
        "--cluster_etcd=" + etcd->endpoint(),
        "--cluster_name=bench",
        "--node_id=" + id,
        "--member_ttl_s=2",
        "--cluster_token_file=" + dir.path() + "/token",
        "--ucx_tls=tcp",
        "--io_threads=2",
        "--host_bytes=2GiB",
        "--slot_bytes=" + std::to_string(value_bytes),
        "--expose_host_segment=" +
            std::string(id == "c" && FLAGS_local_hop == "mapped" ? "true" : "false"),
        "--ssd_path=" + dir.path() + "/ssd-" + id,
        "--admin_listen=127.0.0.1:0",
        "--log_level=warning"};
    for (std::string& f : SplitNonEmpty(FLAGS_daemon_flags, ',')) flags.push_back(std::move(f));
    return flags;
  }

  size_t Members(size_t i) { return cluster::testing::LiveMembers(nodes[i]->admin_address()); }

  std::unique_ptr<Client> Engine(size_t i) {
    ClientOptions o = testing::EngineOptions(nodes[i]->address(), "bench");
    o.use_mapped_path = true;  // only C offers its segment (--local_hop=mapped)
    auto c = testing::ConnectEngine(o, testing::TestGeometry(1, value_bytes));
    if (!c.ok()) {
      std::fprintf(stderr, "engine: %s\n", c.status().ToString().c_str());
      return nullptr;
    }
    return std::move(c).value();
  }
};

std::vector<uint64_t> Chain(Client& c, uint32_t seed, size_t n) {
  std::vector<uint32_t> tokens(16 * n);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = seed * 1000003u + i;
  return c.HashTokens(tokens);
}

// Puts layer 0 of `chain` through `c`: value i from data + i * stride.
bool PutChain(Client& c, const std::vector<uint64_t>& chain, const char* data, uint64_t stride) {
  std::vector<PutBlock> puts;
  for (size_t i = 0; i < chain.size(); ++i) puts.push_back({chain[i], 0, data + i * stride});
  return c.Put(puts, nullptr).ok();
}

// Whether the directory places all of `chain` (layer 0) somewhere, asked
// through `probe` without prefetching: a probing lookup must not start a
// fetch of its own (to the probe's node) that competes with the measurement.
bool Published(Client& probe, const std::vector<uint64_t>& chain) {
  auto l = probe.LookupPrefixDetail(chain, 0, {.prefetch = false});
  return l.ok() && l->total == chain.size();
}

// Fills `data` with bytes that differ per round and per position.
void Fill(std::vector<char>& data, uint32_t round) {
  uint64_t x = 0x9e3779b97f4a7c15ull * (round + 1);
  for (size_t i = 0; i < data.size(); i += sizeof(x)) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&data[i], &x, std::min(sizeof(x), data.size() - i));
  }
}

// Seconds from `start` until every block of `chain` (layer 0) is in `buf`,
// got through `c`; -1 on a miss.
double TimedGet(Client& c, const std::vector<uint64_t>& chain, std::vector<char>& buf,
                uint64_t size, Clock::time_point start) {
  std::vector<GetBlock> blocks;
  for (size_t i = 0; i < chain.size(); ++i) blocks.push_back({chain[i], 0, &buf[i * size]});
  std::vector<bool> found;
  Status s = c.Get(blocks, &found);
  const double secs = Seconds(Clock::now() - start);
  if (!s.ok() || std::count(found.begin(), found.end(), true) != static_cast<long>(chain.size())) {
    return -1;
  }
  return secs;
}

// Whether the first `bytes` of `got` are those of `want` (checked after a
// timed get, outside its time; `got` is cleared before each get).
bool SameBytes(const std::vector<char>& got, const std::vector<char>& want, uint64_t bytes) {
  if (std::memcmp(got.data(), want.data(), bytes) == 0) return true;
  std::fprintf(stderr, "a get returned wrong bytes\n");
  return false;
}

int Run() {
  if (FLAGS_local_hop != "mapped" && FLAGS_local_hop != "tcp") {
    std::fprintf(stderr, "--local_hop must be mapped or tcp, got '%s'\n", FLAGS_local_hop.c_str());
    return 2;
  }
  Bench b;
  b.value_bytes = static_cast<uint64_t>(FLAGS_value_kib) * 1024;
  auto etcd = cluster::testing::EtcdProcess::Start();
  if (!etcd.ok()) {
    std::fprintf(stderr, "etcd: %s\n", etcd.status().ToString().c_str());
    return 1;
  }
  b.etcd = std::move(etcd).value();
  std::ofstream(b.dir.path() + "/token") << "bench-cluster-token\n";
  for (const char* id : {"a", "b", "c"}) {
    auto d = testing::DaemonProcess::Start(b.Flags(id));
    if (!d.ok()) {
      std::fprintf(stderr, "kvcaked %s: %s\n", id, d.status().ToString().c_str());
      return 1;
    }
    b.nodes.push_back(std::move(d).value());
  }
  if (!WaitFor([&] { return b.Members(0) == 3 && b.Members(1) == 3 && b.Members(2) == 3; },
               milliseconds(10000))) {
    std::fprintf(stderr, "members did not see each other\n");
    return 1;
  }
  auto a = b.Engine(0);
  auto probe = b.Engine(1);  // watches publishing (never fetching anything to B)
  auto c = b.Engine(2);
  if (!a || !probe || !c) return 1;
  const uint64_t size = b.value_bytes;
  std::vector<char> data(FLAGS_blocks * size, 'x');
  std::vector<char> buf(FLAGS_blocks * size);

  // ---- remote get through the local daemon vs a direct get from A ----------
  std::vector<double> direct, remote;
  // CPU seconds the counted gets used, per process: the engines (this
  // process), A, B and C.
  const std::vector<pid_t> pids = {0, b.nodes[0]->pid(), b.nodes[1]->pid(), b.nodes[2]->pid()};
  auto cpu_now = [&] { return ProcessesCpuSeconds(pids); };
  std::vector<double> direct_cpu(pids.size()), remote_cpu(pids.size());
  auto add_cpu = [](std::vector<double>& sum, const std::vector<double>& from,
                    const std::vector<double>& to) {
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += to[i] - from[i];
  };
  // A live line on a terminal's stderr (never with --json): get rounds, the
  // lookups, then the membership measurement.
  Progress progress("kvcake-cluster-bench", {.enabled = !FLAGS_json});
  const uint64_t steps = FLAGS_rounds + 2;
  // Round 0 warms both paths (C's connection to A, the namespace on A) and
  // is not counted: every counted round compares warm connections.
  for (uint32_t r = 0; r <= FLAGS_rounds; ++r) {
    progress.Update(r == 0 ? 0 : r - 1, steps, "get round " + std::to_string(r));
    std::vector<uint64_t> chain = Chain(*a, r + 1, FLAGS_blocks);
    Fill(data, r);
    if (!PutChain(*a, chain, data.data(), size)) return 1;
    // Direct: the engine on C's host asks A's daemon itself.
    const uint64_t bytes = chain.size() * size;
    std::fill(buf.begin(), buf.end(), 0);
    const std::vector<double> d0 = cpu_now();
    double d = TimedGet(*a, chain, buf, size, Clock::now());
    const std::vector<double> d1 = cpu_now();
    if (d > 0 && !SameBytes(buf, data, bytes)) d = -1;
    if (!WaitFor([&] { return Published(*probe, chain); }, milliseconds(5000))) {
      std::fprintf(stderr, "the directory never had the chain\n");
      return 1;
    }
    // Remote: the engine on C looks the prefix up and gets it through its own
    // daemon, which fetches from A (the lookup is part of the time).
    std::fill(buf.begin(), buf.end(), 0);
    const std::vector<double> r0 = cpu_now();
    const auto t0 = Clock::now();
    auto where = c->LookupPrefix(chain, 0);
    double t = TimedGet(*c, chain, buf, size, t0);
    const std::vector<double> r1 = cpu_now();
    if (t > 0 && !SameBytes(buf, data, bytes)) t = -1;
    if (!where.ok() || *where != chain.size()) t = -1;
    if (d <= 0 || t <= 0) {
      std::fprintf(stderr, "a get missed (direct %.3f, remote %.3f)\n", d, t);
      return 1;
    }
    if (r == 0) continue;
    direct.push_back(d);
    remote.push_back(t);
    add_cpu(direct_cpu, d0, d1);
    add_cpu(remote_cpu, r0, r1);
  }
  // ---- the two hops apart (diagnostic) --------------------------------------
  std::vector<double> fetch_alone, local_get;
  for (uint32_t r = 0; FLAGS_phases && r < FLAGS_rounds; ++r) {
    std::vector<uint64_t> chain = Chain(*a, 500 + r, FLAGS_blocks);
    Fill(data, 500 + r);
    if (!PutChain(*a, chain, data.data(), size)) return 1;
    if (!WaitFor([&] { return Published(*probe, chain); }, milliseconds(5000))) {
      return 1;
    }
    const auto t0 = Clock::now();
    if (c->LookupPrefix(chain, 0).value_or(0) != chain.size()) return 1;
    auto local = [&] {
      auto l = c->LookupPrefixDetail(chain, 0, {.local_only = true});
      return l.ok() && l->total == chain.size();
    };
    while (!local()) {
      if (Clock::now() - t0 > milliseconds(10000)) {
        std::fprintf(stderr, "C never held the prefetched chain\n");
        return 1;
      }
      std::this_thread::sleep_for(milliseconds(1));
    }
    fetch_alone.push_back(Seconds(Clock::now() - t0));
    std::fill(buf.begin(), buf.end(), 0);
    const double l = TimedGet(*c, chain, buf, size, Clock::now());
    if (l <= 0 || !SameBytes(buf, data, chain.size() * size)) return 1;
    local_get.push_back(l);
  }
  const double bytes = static_cast<double>(FLAGS_blocks) * size;
  const double direct_gbps = bytes / Median(direct) / 1e9;
  // CPU seconds per GiB moved, all processes together, and the cores they
  // kept busy on average (CPU time over wall time).
  const double gib_moved = static_cast<double>(direct.size()) * bytes / (1ull << 30);
  const double direct_cpu_per_gib = Sum(direct_cpu) / gib_moved;
  const double remote_cpu_per_gib = Sum(remote_cpu) / gib_moved;
  const double direct_cores_busy = Sum(direct_cpu) / Sum(direct);
  const double remote_cores_busy = Sum(remote_cpu) / Sum(remote);
  const double remote_gbps = bytes / Median(remote) / 1e9;

  // ---- lookup_prefix of a 1000-block chain: local vs remote owner ------------
  std::vector<uint64_t> chain = Chain(*a, 999, 1000);
  // 1000 values of 1 MiB fit A's 2 GiB host tier.
  if (!PutChain(*a, chain, data.data(), 0)) return 1;
  if (!WaitFor([&] { return Published(*probe, chain); }, milliseconds(5000))) {
    return 1;
  }
  std::vector<double> local_us, remote_us;
  progress.Update(FLAGS_rounds, steps, "lookups");
  for (uint32_t i = 0; i < FLAGS_lookups; ++i) {
    auto t0 = Clock::now();
    auto l = a->LookupPrefix(chain, 0);
    local_us.push_back(Seconds(Clock::now() - t0) * 1e6);
    t0 = Clock::now();
    // Only asks: no prefetch, so every call goes to the directory owner.
    auto r = probe->LookupPrefixDetail(chain, 0, {.prefetch = false});
    remote_us.push_back(Seconds(Clock::now() - t0) * 1e6);
    if (!l.ok() || !r.ok() || *l != chain.size() || r->total != chain.size()) return 1;
  }

  // ---- membership: kill -9 to removal, restart to rejoin ---------------------
  progress.Update(FLAGS_rounds + 1, steps, "membership: kill, removal, rejoin");
  ::kill(b.nodes[1]->pid(), SIGKILL);
  const auto killed = Clock::now();
  WaitFor([&] { return b.Members(0) == 2 && b.Members(2) == 2; }, milliseconds(10000));
  const double removal_s = Seconds(Clock::now() - killed);
  b.nodes[1].reset();
  const auto restart = Clock::now();
  auto again = testing::DaemonProcess::Start(b.Flags("b"));
  if (!again.ok()) return 1;
  b.nodes[1] = std::move(again).value();
  WaitFor([&] { return b.Members(0) == 3 && b.Members(2) == 3; }, milliseconds(10000));
  const double rejoin_s = Seconds(Clock::now() - restart);

  progress.Done();
  const double get_ratio = remote_gbps / direct_gbps;
  const double lookup_ratio = Median(remote_us) / Median(local_us);
  nlohmann::json j = {{"value_bytes", size},
                      {"local_hop", FLAGS_local_hop},
                      {"blocks", FLAGS_blocks},
                      {"direct_get_gbps", direct_gbps},
                      {"remote_get_gbps", remote_gbps},
                      {"remote_get_vs_direct", get_ratio},
                      {"cores", std::thread::hardware_concurrency()},
                      {"direct_get_cpu_s_per_gib", direct_cpu_per_gib},
                      {"remote_get_cpu_s_per_gib", remote_cpu_per_gib},
                      {"direct_get_cores_busy", direct_cores_busy},
                      {"remote_get_cores_busy", remote_cores_busy},
                      {"remote_get_cpu_s_per_gib_by_process",
                       {{"engine", remote_cpu[0] / gib_moved},
                        {"holder_a", remote_cpu[1] / gib_moved},
                        {"local_c", remote_cpu[3] / gib_moved}}},
                      {"lookup_1000_local_p50_us", Median(local_us)},
                      {"lookup_1000_remote_p50_us", Median(remote_us)},
                      {"remote_lookup_vs_local", lookup_ratio},
                      {"member_ttl_s", 2},
                      {"kill_to_removal_s", removal_s},
                      {"restart_to_rejoin_s", rejoin_s}};
  if (FLAGS_phases) {
    j["fetch_alone_gbps"] = bytes / Median(fetch_alone) / 1e9;
    j["local_get_on_c_gbps"] = bytes / Median(local_get) / 1e9;
  }
  if (FLAGS_json) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf(
      "kvcake-cluster-bench: etcd + 3 kvcaked on 127.0.0.1, UCX tcp, %u x %u KiB, "
      "engine to its own daemon: %s\n",
      FLAGS_blocks, FLAGS_value_kib, FLAGS_local_hop.c_str());
  std::printf(
      "  remote get via local daemon  %6.2f GB/s  vs direct get from holder %6.2f GB/s"
      "  = %.2fx (goal >= 0.70)\n",
      remote_gbps, direct_gbps, get_ratio);
  std::printf(
      "  CPU per GiB moved             %6.2f s remote (engine %.2f, holder %.2f, local daemon "
      "%.2f) vs %.2f s direct; cores busy %.1f vs %.1f of %u\n",
      remote_cpu_per_gib, remote_cpu[0] / gib_moved, remote_cpu[1] / gib_moved,
      remote_cpu[3] / gib_moved, direct_cpu_per_gib, remote_cores_busy, direct_cores_busy,
      std::thread::hardware_concurrency());
  if (FLAGS_phases) {
    std::printf("  hops apart: C's fetch from A alone %6.2f GB/s, then C's local get %6.2f GB/s\n",
                j["fetch_alone_gbps"].get<double>(), j["local_get_on_c_gbps"].get<double>());
  }
  std::printf(
      "  lookup_prefix(1000) p50      %6.1f us remote owner vs %6.1f us local"
      "  = %.2fx (goal <= 2.00)\n",
      Median(remote_us), Median(local_us), lookup_ratio);
  std::printf(
      "  kill -9 -> removed everywhere %.2f s (member TTL 2 s); restart -> rejoined %.2f s\n",
      removal_s, rejoin_s);
  return 0;
}

}  // namespace
}  // namespace kvcake

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return kvcake::Run();
}
