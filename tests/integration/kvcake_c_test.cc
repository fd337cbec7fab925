// The connector C ABI (kvcake/kvcake_c.h) against the real kvcaked.

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/block_hash.h"
#include "kvcake/kvcake_c.h"
#include "kvcake/version.h"
#include "tests/integration/daemon_process.h"

namespace kvcake {
namespace {

// The loaded library's version is the one its headers were generated with
// (project(VERSION) in the top-level CMakeLists.txt).
TEST(KvcakeCApiTest, VersionComesFromTheGeneratedHeader) {
  EXPECT_STREQ(kvcake_version(), KVCAKE_VERSION_STRING);
  EXPECT_EQ(std::string(KVCAKE_VERSION_STRING), std::to_string(KVCAKE_VERSION_MAJOR) + "." +
                                                    std::to_string(KVCAKE_VERSION_MINOR) + "." +
                                                    std::to_string(KVCAKE_VERSION_PATCH));
}

TEST(KvcakeCApiTest, ConnectRegisterPutGetLookupAndErrors) {
  testing::TempDir dir;
  auto d = testing::DaemonProcess::Start({"--ssd_path=" + dir.path() + "/ssd", "--host_bytes=16M",
                                          "--slot_bytes=64K", "--log_level=warning"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string addr = (*d)->address();

  kvcake_client* c = nullptr;
  // Argument errors are reported, with a message.
  EXPECT_EQ(kvcake_connect(nullptr, "ns", nullptr, &c), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::strlen(kvcake_last_error()), 0u);
  EXPECT_EQ(kvcake_connect("not-an-address", "ns", nullptr, &c), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr);

  ASSERT_EQ(kvcake_connect(addr.c_str(), "c-api", nullptr, &c), 0) << kvcake_last_error();
  ASSERT_NE(c, nullptr);
  const int64_t kBytes = 4096;
  uint64_t hashes[3] = {11, 22, 33};
  int32_t layers[3] = {0, 1, 0};
  // Keyed calls before registering fail cleanly.
  int32_t prefix = -1;
  EXPECT_EQ(kvcake_lookup_prefix(c, hashes, 3, 0, &prefix), -KVCAKE_E_FAILED_PRECONDITION);
  EXPECT_NE(std::string(kvcake_last_error()).find("RegisterNamespace"), std::string::npos);
  EXPECT_EQ(kvcake_register_namespace(c, 0, 16, kBytes), -KVCAKE_E_INVALID_ARGUMENT);
  ASSERT_EQ(kvcake_register_namespace(c, 2, 16, kBytes), 0) << kvcake_last_error();

  std::vector<std::vector<char>> src(3, std::vector<char>(kBytes));
  for (int i = 0; i < 3; ++i) std::memset(src[i].data(), 'a' + i, kBytes);
  const void* in[3] = {src[0].data(), src[1].data(), src[2].data()};
  ASSERT_EQ(kvcake_put(c, hashes, layers, in, 3), 0) << kvcake_last_error();

  std::vector<std::vector<char>> dst(4, std::vector<char>(kBytes, 0));
  void* out[4] = {dst[0].data(), dst[1].data(), dst[2].data(), dst[3].data()};
  uint64_t get_hashes[4] = {11, 22, 33, 44};
  int32_t get_layers[4] = {0, 1, 0, 0};
  int32_t found[4] = {-1, -1, -1, -1};
  ASSERT_EQ(kvcake_get(c, get_hashes, get_layers, out, 4, found), 0) << kvcake_last_error();
  EXPECT_EQ(found[0], 1);
  EXPECT_EQ(found[1], 1);
  EXPECT_EQ(found[2], 1);
  EXPECT_EQ(found[3], 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(dst[i], src[i]) << i;

  // Layer 0 holds 11 and 33 but not 22: the prefix stops at 22.
  ASSERT_EQ(kvcake_lookup_prefix(c, hashes, 3, 0, &prefix), 0);
  EXPECT_EQ(prefix, 1);
  uint64_t chain[2] = {11, 22};
  int32_t l1 = 1;
  ASSERT_EQ(kvcake_lookup_prefix(c, &chain[1], 1, l1, &prefix), 0);
  EXPECT_EQ(prefix, 1);
  // A daemon in no cluster names no other holder; its own share is `local`.
  kvcake_prefix_holder holders[2];
  int32_t local = -1, count = -1;
  ASSERT_EQ(kvcake_lookup_prefix_holders(c, hashes, 3, 0, &local, holders, 2, &count), 0)
      << kvcake_last_error();
  EXPECT_EQ(local, 1);
  EXPECT_EQ(count, 0);
  EXPECT_EQ(kvcake_lookup_prefix_holders(c, hashes, 3, 0, &local, nullptr, 0, &count), 0);
  EXPECT_EQ(kvcake_lookup_prefix_holders(c, hashes, 3, 0, &local, nullptr, 1, &count),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_lookup_prefix_holders(c, hashes, 3, 0, nullptr, holders, 2, &count),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_lookup_prefix_holders(c, hashes, 3, 0, &local, holders, -1, &count),
            -KVCAKE_E_INVALID_ARGUMENT);
  // A layer beyond the namespace is an argument error from the daemon.
  int32_t bad_layer[1] = {5};
  EXPECT_EQ(kvcake_put(c, hashes, bad_layer, in, 1), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put(c, hashes, layers, in, -1), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put(c, hashes, layers, in, 0), 0);
  kvcake_close(c);
  kvcake_close(nullptr);
  EXPECT_TRUE((*d)->Stop().ok());
}

// The extended connector calls, over UCX (mapped = 0) and over the same-node
// mapped path (mapped = 1).
class KvcakeCApiPathTest : public ::testing::TestWithParam<int> {};

TEST_P(KvcakeCApiPathTest, OptionsHashingLayerwiseGetPutStreamDeleteAndStats) {
  const int mapped = GetParam();
  testing::TempDir dir;
  auto d = testing::DaemonProcess::Start({"--ssd_path=" + dir.path() + "/ssd", "--host_bytes=16M",
                                          "--slot_bytes=64K", "--log_level=warning"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string addr = (*d)->address();

  kvcake_options o;
  kvcake_options_init(&o);
  EXPECT_EQ(o.struct_size, sizeof o);
  EXPECT_EQ(o.use_mapped_path, 1);
  EXPECT_EQ(o.timeout_ms, 30000);
  EXPECT_EQ(o.max_inflight_requests, 16);
  kvcake_client* c = nullptr;
  // An options struct that was never initialised, or from a newer header.
  kvcake_options bad = o;
  bad.struct_size = 0;
  EXPECT_EQ(kvcake_connect_with_options(addr.c_str(), "c-ext", &bad, &c),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvcake_last_error()).find("kvcake_options_init"), std::string::npos);
  bad.struct_size = sizeof o + 8;
  EXPECT_EQ(kvcake_connect_with_options(addr.c_str(), "c-ext", &bad, &c),
            -KVCAKE_E_INVALID_ARGUMENT);
  bad = o;
  bad.timeout_ms = 0;
  EXPECT_EQ(kvcake_connect_with_options(addr.c_str(), "c-ext", &bad, &c),
            -KVCAKE_E_INVALID_ARGUMENT);
  bad = o;
  bad.max_inflight_requests = 0;
  EXPECT_EQ(kvcake_connect_with_options(addr.c_str(), "c-ext", &bad, &c),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr);

  o.use_mapped_path = mapped;
  o.timeout_ms = 5000;
  o.ucx_tls = "tcp";
  ASSERT_EQ(kvcake_connect_with_options(addr.c_str(), "c-ext", &o, &c), 0) << kvcake_last_error();
  EXPECT_EQ(kvcake_mapped_path(c), mapped);
  EXPECT_EQ(kvcake_ping(c), 0) << kvcake_last_error();
  char info[256];
  const int info_len = kvcake_transport_info(c, info, sizeof info);
  ASSERT_GT(info_len, 0);
  EXPECT_NE(std::string(info).find("tcp"), std::string::npos) << info;
  char tiny[4];
  EXPECT_EQ(kvcake_transport_info(c, tiny, sizeof tiny), info_len);  // truncated, full length
  EXPECT_EQ(std::string(tiny), std::string(info, 3));
  EXPECT_EQ(kvcake_transport_info(c, nullptr, 0), info_len);

  // Hashing needs the geometry.
  const int kBlockTokens = 4;
  std::vector<uint32_t> tokens(4 * kBlockTokens + 3);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(1000 + i * 7);
  uint64_t hashes[8] = {};
  int64_t n = -1;
  EXPECT_EQ(
      kvcake_hash_tokens(c, tokens.data(), static_cast<int64_t>(tokens.size()), hashes, 8, &n),
      -KVCAKE_E_FAILED_PRECONDITION);
  const int64_t kBytes = 8192;
  ASSERT_EQ(kvcake_register_namespace_ex(c, 2, kBlockTokens, kBytes, "fp16", "NHD;tp=1;rank=0", 0),
            0)
      << kvcake_last_error();
  ASSERT_EQ(
      kvcake_hash_tokens(c, tokens.data(), static_cast<int64_t>(tokens.size()), hashes, 8, &n), 0)
      << kvcake_last_error();
  ASSERT_EQ(n, 4);  // the 3 trailing tokens are not a full block
  const std::vector<uint64_t> want =
      HashChain::Compute(tokens, NamespaceSeed("c-ext"), static_cast<uint32_t>(kBlockTokens));
  ASSERT_EQ(want.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(hashes[i], want[static_cast<size_t>(i)]) << i;
  EXPECT_EQ(
      kvcake_hash_tokens(c, tokens.data(), static_cast<int64_t>(tokens.size()), hashes, 3, &n),
      -KVCAKE_E_OUT_OF_RANGE);
  EXPECT_EQ(n, 4);  // the size it needs

  // Another client of the same namespace with another layout is refused.
  kvcake_client* other = nullptr;
  ASSERT_EQ(kvcake_connect_with_options(addr.c_str(), "c-ext", &o, &other), 0);
  EXPECT_EQ(
      kvcake_register_namespace_ex(other, 2, kBlockTokens, kBytes, "fp16", "NHD;tp=2;rank=0", 0),
      -KVCAKE_E_FAILED_PRECONDITION);
  kvcake_close(other);

  // Three blocks of the chain, both layers.
  std::vector<std::vector<char>> src(6, std::vector<char>(kBytes));
  std::vector<uint64_t> put_hashes;
  std::vector<int32_t> put_layers;
  std::vector<const void*> in;
  for (int l = 0; l < 2; ++l) {
    for (int b = 0; b < 3; ++b) {
      std::vector<char>& v = src[static_cast<size_t>(l) * 3 + static_cast<size_t>(b)];
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<char>(i * 13 + l * 7 + b);
      put_hashes.push_back(hashes[b]);
      put_layers.push_back(l);
      in.push_back(v.data());
    }
  }
  ASSERT_EQ(kvcake_put(c, put_hashes.data(), put_layers.data(), in.data(), 6), 0)
      << kvcake_last_error();
  int32_t prefix = -1;
  ASSERT_EQ(kvcake_lookup_prefix(c, hashes, 4, 1, &prefix), 0);
  EXPECT_EQ(prefix, 3);

  // Layer-wise: group 0 = layer 0's four blocks (the fourth is a miss),
  // group 1 = layer 1's first two.
  std::vector<std::vector<char>> dst(6, std::vector<char>(kBytes, 0));
  uint64_t get_hashes[6] = {hashes[0], hashes[1], hashes[2], hashes[3], hashes[0], hashes[1]};
  int32_t get_layers[6] = {0, 0, 0, 0, 1, 1};
  void* out[6];
  for (int i = 0; i < 6; ++i) out[i] = dst[static_cast<size_t>(i)].data();
  const int32_t groups[2] = {4, 2};
  kvcake_pending_get* p = nullptr;
  ASSERT_EQ(kvcake_get_async(c, get_hashes, get_layers, out, groups, 2, &p), 0)
      << kvcake_last_error();
  int32_t found1[2] = {-1, -1};
  ASSERT_EQ(kvcake_pending_get_wait(p, 1, 5000, found1), 0) << kvcake_last_error();
  EXPECT_EQ(found1[0], 1);
  EXPECT_EQ(found1[1], 1);
  EXPECT_EQ(dst[4], src[3]);
  EXPECT_EQ(dst[5], src[4]);
  int32_t found0[4] = {-1, -1, -1, -1};
  ASSERT_EQ(kvcake_pending_get_wait(p, 0, 5000, found0), 0) << kvcake_last_error();
  EXPECT_EQ(found0[0], 1);
  EXPECT_EQ(found0[1], 1);
  EXPECT_EQ(found0[2], 1);
  EXPECT_EQ(found0[3], 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(dst[static_cast<size_t>(i)], src[static_cast<size_t>(i)]);
  EXPECT_EQ(kvcake_pending_get_wait(p, 2, 10, nullptr), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_pending_get_wait(p, 0, 0, nullptr), 0);  // done groups return at once
  kvcake_pending_get_free(p);
  kvcake_pending_get_free(nullptr);
  // Bad groups: negative or empty sizes, a null buffer.
  const int32_t negative[1] = {-1};
  EXPECT_EQ(kvcake_get_async(c, get_hashes, get_layers, out, negative, 1, &p),
            -KVCAKE_E_INVALID_ARGUMENT);
  const int32_t empty[2] = {2, 0};
  EXPECT_EQ(kvcake_get_async(c, get_hashes, get_layers, out, empty, 2, &p),
            -KVCAKE_E_INVALID_ARGUMENT);
  void* holes[2] = {dst[0].data(), nullptr};
  const int32_t two[1] = {2};
  EXPECT_EQ(kvcake_get_async(c, get_hashes, get_layers, holes, two, 1, &p),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvcake_last_error()).find("null buffer at 1"), std::string::npos);
  EXPECT_EQ(p, nullptr);

  // CAKE signals for layer 0; a layer beyond the namespace is refused.
  const double scores[3] = {0.5, 0.25, 0.125};
  EXPECT_EQ(kvcake_report_layer_stats(c, 0, 1.5, hashes, scores, 3, 1), 0) << kvcake_last_error();
  EXPECT_EQ(kvcake_report_layer_stats(c, 9, 1.5, hashes, scores, 3, 1), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_report_layer_stats(c, 0, 1.5, nullptr, scores, 3, 1),
            -KVCAKE_E_INVALID_ARGUMENT);

  // Delete layer 1 of blocks 0..2 (and a key that never existed).
  uint64_t del_hashes[4] = {hashes[0], hashes[1], hashes[2], 0xdead};
  int32_t del_layers[4] = {1, 1, 1, 1};
  int32_t deleted = -1;
  ASSERT_EQ(kvcake_delete(c, del_hashes, del_layers, 4, &deleted), 0) << kvcake_last_error();
  EXPECT_EQ(deleted, 3);
  ASSERT_EQ(kvcake_lookup_prefix(c, hashes, 3, 1, &prefix), 0);
  EXPECT_EQ(prefix, 0);
  ASSERT_EQ(kvcake_lookup_prefix(c, hashes, 3, 0, &prefix), 0);
  EXPECT_EQ(prefix, 3);  // layer 0 untouched
  EXPECT_EQ(kvcake_delete(c, del_hashes, nullptr, 4, &deleted), -KVCAKE_E_INVALID_ARGUMENT);

  // Layer-wise save: two groups through a put stream, then read back. Layer 1
  // of blocks 0..2 was deleted above; the stream stores it again.
  kvcake_put_stream* ps = nullptr;
  ASSERT_EQ(kvcake_put_stream_open(c, &ps), 0) << kvcake_last_error();
  const void* layer1[3] = {src[3].data(), src[4].data(), src[5].data()};
  const int32_t ones_layer[3] = {1, 1, 1};
  int32_t group = -1;
  ASSERT_EQ(kvcake_put_stream_submit(ps, hashes, ones_layer, layer1, 2, &group), 0)
      << kvcake_last_error();
  EXPECT_EQ(group, 0);
  ASSERT_EQ(kvcake_put_stream_submit(ps, hashes + 2, ones_layer, layer1 + 2, 1, &group), 0);
  EXPECT_EQ(group, 1);
  EXPECT_EQ(kvcake_put_stream_wait(ps, 1, 20000), 0) << kvcake_last_error();
  EXPECT_EQ(kvcake_put_stream_wait(ps, -1, 20000), 0) << kvcake_last_error();
  EXPECT_EQ(kvcake_put_stream_wait(ps, 2, 10), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put_stream_submit(ps, hashes, ones_layer, layer1, 0, nullptr),
            -KVCAKE_E_INVALID_ARGUMENT);
  const void* hole[1] = {nullptr};
  EXPECT_EQ(kvcake_put_stream_submit(ps, hashes, ones_layer, hole, 1, nullptr),
            -KVCAKE_E_INVALID_ARGUMENT);
  kvcake_put_stream_free(ps);
  kvcake_put_stream_free(nullptr);
  ASSERT_EQ(kvcake_lookup_prefix(c, hashes, 3, 1, &prefix), 0);
  EXPECT_EQ(prefix, 3);
  std::vector<std::vector<char>> back(3, std::vector<char>(kBytes, 0));
  void* back_out[3] = {back[0].data(), back[1].data(), back[2].data()};
  int32_t hits[3] = {0, 0, 0};
  ASSERT_EQ(kvcake_get(c, hashes, ones_layer, back_out, 3, hits), 0) << kvcake_last_error();
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(hits[b], 1);
    EXPECT_EQ(back[static_cast<size_t>(b)], src[static_cast<size_t>(3 + b)]) << "block " << b;
  }

  // A pending get may outlive its client: closing the client finishes or
  // cancels each group, and the buffers hold the right bytes where it finished.
  kvcake_client* brief = nullptr;
  ASSERT_EQ(kvcake_connect_with_options(addr.c_str(), "c-ext", &o, &brief), 0);
  ASSERT_EQ(
      kvcake_register_namespace_ex(brief, 2, kBlockTokens, kBytes, "fp16", "NHD;tp=1;rank=0", 0), 0)
      << kvcake_last_error();
  std::vector<std::vector<char>> late(3, std::vector<char>(kBytes, 0));
  void* late_out[3] = {late[0].data(), late[1].data(), late[2].data()};
  const int32_t ones[3] = {1, 1, 1};
  ASSERT_EQ(kvcake_get_async(brief, hashes, get_layers, late_out, ones, 3, &p), 0)
      << kvcake_last_error();
  kvcake_close(brief);
  for (int g = 0; g < 3; ++g) {
    int32_t hit = -1;
    const int rc = kvcake_pending_get_wait(p, g, 20000, &hit);
    if (rc == 0) {
      EXPECT_EQ(hit, 1);
      EXPECT_EQ(late[static_cast<size_t>(g)], src[static_cast<size_t>(g)]) << "group " << g;
    } else {
      EXPECT_TRUE(rc == -KVCAKE_E_CANCELLED || rc == -KVCAKE_E_UNAVAILABLE)
          << rc << " " << kvcake_last_error();
    }
  }
  kvcake_pending_get_free(p);

  // A dead daemon: ping fails, bounded, and says so.
  ASSERT_TRUE((*d)->Stop().ok());
  const int rc = kvcake_ping(c);
  EXPECT_TRUE(rc == -KVCAKE_E_UNAVAILABLE || rc == -KVCAKE_E_DEADLINE_EXCEEDED)
      << rc << " " << kvcake_last_error();
  kvcake_close(c);
}

INSTANTIATE_TEST_SUITE_P(Paths, KvcakeCApiPathTest, ::testing::Values(0, 1),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param ? std::string("Mapped") : std::string("Ucx");
                         });

}  // namespace
}  // namespace kvcake
