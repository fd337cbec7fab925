#include "common/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics_catalog.h"

namespace kvcake::metrics {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Expects each of `parts` in exposition `text` (most are whole lines, their
// "\n" included).
void ExpectLines(const std::string& text, std::initializer_list<const char*> parts) {
  for (const char* part : parts) {
    EXPECT_TRUE(Contains(text, part)) << "no \"" << part << "\" in:\n" << text;
  }
}

TEST(MetricsTest, NameValidation) {
  EXPECT_TRUE(ValidateMetricName("kvcake_hits_total").ok());
  EXPECT_TRUE(ValidateMetricName("a:b_c9").ok());
  EXPECT_FALSE(ValidateMetricName("").ok());
  EXPECT_FALSE(ValidateMetricName("9abc").ok());
  EXPECT_FALSE(ValidateMetricName("a-b").ok());
  EXPECT_TRUE(ValidateLabelName("tier").ok());
  EXPECT_FALSE(ValidateLabelName("__name").ok());
  EXPECT_FALSE(ValidateLabelName("le").ok());
  EXPECT_FALSE(ValidateLabelName("a:b").ok());
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(MetricsTest, CounterRendersWithLabels) {
  Registry r;
  auto& f = r.AddCounter("t_requests_total", "Requests.", {"op"});
  f.WithLabels({"get"})->Increment();
  f.WithLabels({"get"})->Increment(4);
  f.WithLabels({"put"})->Increment();
  EXPECT_EQ(f.WithLabels({"get"})->Value(), 5u);
  std::string text = r.Expose();
  ExpectLines(text, {"# HELP t_requests_total Requests.\n", "# TYPE t_requests_total counter\n",
                     "t_requests_total{op=\"get\"} 5\n", "t_requests_total{op=\"put\"} 1\n"});
}

TEST(MetricsTest, ReRegistrationReturnsSameFamily) {
  Registry r;
  auto& a = r.AddGauge("t_used_bytes", "Used.", {"tier"});
  auto& b = r.AddGauge("t_used_bytes", "Used.", {"tier"});
  EXPECT_EQ(&a, &b);
  a.WithLabels({"host"})->Set(42);
  EXPECT_EQ(b.WithLabels({"host"})->Value(), 42);
  EXPECT_EQ(r.Find("t_used_bytes"), &a);
  EXPECT_EQ(r.Find("nope"), nullptr);
}

TEST(MetricsTest, GaugeAndEscaping) {
  Registry r;
  auto& g = r.AddGauge("t_temp", "Line1\nline2 \\ back.", {"name"});
  g.WithLabels({"we\"ird\\"})->Set(1.5);
  g.WithLabels({"we\"ird\\"})->Add(1);
  g.WithLabels({"x"})->Sub(3);
  std::string text = r.Expose();
  ExpectLines(text, {"# HELP t_temp Line1\\nline2 \\\\ back.\n",
                     "t_temp{name=\"we\\\"ird\\\\\"} 2.5\n", "t_temp{name=\"x\"} -3\n"});
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry r;
  auto& h = r.AddHistogram("t_latency_seconds", "Latency.", {"op"}, {0.1, 1, 10});
  Histogram* get = h.WithLabels({"get"});
  get->Observe(0.05);
  get->Observe(0.1);  // le is inclusive
  get->Observe(0.5);
  get->Observe(100);
  Histogram::Snapshot s = get->Take();
  ASSERT_EQ(s.cumulative.size(), 4u);
  EXPECT_EQ(s.cumulative[0], 2u);
  EXPECT_EQ(s.cumulative[1], 3u);
  EXPECT_EQ(s.cumulative[2], 3u);
  EXPECT_EQ(s.cumulative[3], 4u);
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.sum, 100.65);
  std::string text = r.Expose();
  ExpectLines(text, {"# TYPE t_latency_seconds histogram\n",
                     "t_latency_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n",
                     "t_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n",
                     "t_latency_seconds_count{op=\"get\"} 4\n",
                     "t_latency_seconds_sum{op=\"get\"} 100.65\n"});
}

TEST(MetricsTest, UnlabelledHistogramAndScopedLatency) {
  Registry r;
  auto& h = r.AddHistogram("t_op_seconds", "Op.");
  { ScopedLatency t(h.Get()); }
  EXPECT_EQ(h.Get()->Count(), 1u);
  EXPECT_GE(h.Get()->Sum(), 0.0);
  std::string text = r.Expose();
  ExpectLines(text, {"t_op_seconds_bucket{le=\"1e-05\"}", "t_op_seconds_count 1\n"});
}

TEST(MetricsTest, WrongArityIsDetachedNotExported) {
  Registry r;
  auto& f = r.AddCounter("t_x_total", "X.", {"a", "b"});
  Counter* bad = f.WithLabels({"only-one"});
  ASSERT_NE(bad, nullptr);
  bad->Increment();
  EXPECT_FALSE(Contains(r.Expose(), "only-one"));
}

TEST(MetricsTest, ClearDropsChildrenButKeepsPointersValid) {
  Registry r;
  auto& g = r.AddGauge("t_budget", "B.", {"layer"});
  Gauge* old = g.WithLabels({"0"});
  old->Set(3);
  g.Clear();
  old->Set(4);  // still valid memory
  EXPECT_FALSE(Contains(r.Expose(), "t_budget{layer=\"0\"}"));
  g.WithLabels({"1"})->Set(7);
  EXPECT_TRUE(Contains(r.Expose(), "t_budget{layer=\"1\"} 7\n"));
}

TEST(MetricsTest, CollectHookRunsBeforeExposeAndCanBeRemoved) {
  Registry r;
  auto& g = r.AddGauge("t_blocks", "Blocks.");
  int calls = 0;
  int id = r.AddCollectHook([&] { g.Get()->Set(++calls); });
  EXPECT_TRUE(Contains(r.Expose(), "t_blocks 1\n"));
  EXPECT_TRUE(Contains(r.Expose(), "t_blocks 2\n"));
  r.RemoveCollectHook(id);
  EXPECT_TRUE(Contains(r.Expose(), "t_blocks 2\n"));
  EXPECT_EQ(calls, 2);
}

TEST(MetricsTest, ConcurrentRecordingIsExact) {
  Registry r;
  auto& c = r.AddCounter("t_conc_total", "C.", {"t"});
  auto& h = r.AddHistogram("t_conc_seconds", "H.", {}, {0.5});
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Counter* mine = c.WithLabels({std::to_string(i % 2)});
      for (int k = 0; k < kIters; ++k) {
        mine->Increment();
        h.Get()->Observe(k % 2 ? 0.25 : 1.0);
        if (k % 5000 == 0) (void)r.Expose();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.WithLabels({"0"})->Value() + c.WithLabels({"1"})->Value(),
            uint64_t{kThreads} * kIters);
  Histogram::Snapshot s = h.Get()->Take();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kIters);
  EXPECT_EQ(s.cumulative[0], uint64_t{kThreads} * kIters / 2);
}

TEST(MetricsTest, CatalogRecordsIntoFamilies) {
  Registry r;
  Catalog cat(r);
  cat.Hit(Tier::kHost)->Increment(3);
  cat.Miss(Tier::kSsd)->Increment();
  cat.RecordDemotion(Tier::kHost, Tier::kSsd, 4096);
  cat.RecordPromotion(Tier::kSsd, Tier::kDevice, 100);
  cat.RecordDrop(Tier::kSsd, "capacity");
  cat.RecordError("get", StatusCode::kNotFound);
  cat.Latency("get")->Observe(0.001);
  std::string text = r.Expose();
  ExpectLines(text,
              {"kvcake_hits_total{tier=\"host\"} 3\n", "kvcake_misses_total{tier=\"ssd\"} 1\n",
               "kvcake_demotions_total{from=\"host\",to=\"ssd\"} 1\n",
               "kvcake_moved_bytes_total{from=\"host\",to=\"ssd\"} 4096\n",
               "kvcake_promotions_total{from=\"ssd\",to=\"gpu\"} 1\n",
               "kvcake_drops_total{tier=\"ssd\",reason=\"capacity\"} 1\n",
               "kvcake_errors_total{op=\"get\",code=\"NOT_FOUND\"} 1\n",
               "kvcake_requests_total{op=\"get\"} 1\n",
               "kvcake_request_duration_seconds_count{op=\"get\"} 1\n"});
}

TEST(MetricsTest, CatalogMirrorsSnapshotsAndKeepsPeerPathsLazy) {
  Registry r;
  Catalog cat(r);
  std::string text = r.Expose();
  EXPECT_TRUE(Contains(text, "kvcake_demotions_total{from=\"host\",to=\"ssd\"} 0\n")) << text;
  EXPECT_FALSE(Contains(text, "to=\"remote\"")) << text;
  // A collect hook mirrors counters kept by another component.
  uint64_t store_demotions = 0;
  r.AddCollectHook([&] {
    cat.Demotion(Tier::kHost, Tier::kSsd)->Set(store_demotions);
    cat.MovedBytes(Tier::kHost, Tier::kSsd)->Set(store_demotions * 4096);
  });
  store_demotions = 7;
  text = r.Expose();
  EXPECT_TRUE(Contains(text, "kvcake_demotions_total{from=\"host\",to=\"ssd\"} 7\n")) << text;
  EXPECT_TRUE(Contains(text, "kvcake_moved_bytes_total{from=\"host\",to=\"ssd\"} 28672\n"));
  // Peer paths appear once used.
  cat.RecordPromotion(Tier::kRemote, Tier::kHost, 10);
  text = r.Expose();
  EXPECT_TRUE(Contains(text, "kvcake_promotions_total{from=\"remote\",to=\"host\"} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "kvcake_moved_bytes_total{from=\"remote\",to=\"host\"} 10\n"));
  EXPECT_EQ(cat.Drop(Tier::kSsd, "corrupt"), cat.drops.WithLabels({"ssd", "corrupt"}));
}

// The exposition of the full catalog (every family with samples) passes
// `promtool check metrics` (Prometheus' own linter for names, types, units).
TEST(MetricsTest, PromtoolAcceptsCatalogExposition) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool not installed";
  Registry r;
  Catalog cat(r);
  for (int t = 0; t < 3; ++t) {
    Tier tier = static_cast<Tier>(t);
    std::string name(TierName(tier));
    cat.tier_capacity_bytes.WithLabels({name})->Set(1 << 20);
    cat.tier_used_bytes.WithLabels({name})->Set(4096);
    cat.tier_blocks.WithLabels({name})->Set(1);
    cat.Hit(tier)->Increment();
    cat.Miss(tier)->Increment();
  }
  cat.RecordDemotion(Tier::kDevice, Tier::kHost, 1);
  cat.RecordDrop(Tier::kSsd, "admission");
  cat.RecordError("put", StatusCode::kResourceExhausted);
  cat.Latency("put")->Observe(0.0002);
  cat.leases_expired.Get()->Increment();
  cat.transport_selected.WithLabels({"10.0.0.2:18515", "tcp"})->Set(1);
  cat.layer_budget_blocks.WithLabels({"llama", "gpu", "0"})->Set(12);
  cat.build_info.WithLabels({"0.1.0"})->Set(1);
  cat.start_time.Get()->Set(1.7e9);
  cat.admin_requests.WithLabels({"/v1/status", "200"})->Increment();

  std::string path = "/tmp/kvcake_metrics_" + std::to_string(getpid()) + ".prom";
  {
    std::ofstream out(path);
    out << r.Expose();
  }
  std::string cmd = "/usr/bin/promtool check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof(buf), p) != nullptr) output += buf;
  int rc = pclose(p);
  std::remove(path.c_str());
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output, "") << output;
}

}  // namespace
}  // namespace kvcake::metrics
