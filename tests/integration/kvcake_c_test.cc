// The connector C ABI (kvcake/kvcake_c.h) against the real kvcaked.

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "kvcake/kvcake_c.h"
#include "tests/integration/daemon_process.h"

namespace kvcake {
namespace {

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
  // A layer beyond the namespace is an argument error from the daemon.
  int32_t bad_layer[1] = {5};
  EXPECT_EQ(kvcake_put(c, hashes, bad_layer, in, 1), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put(c, hashes, layers, in, -1), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put(c, hashes, layers, in, 0), 0);
  kvcake_close(c);
  kvcake_close(nullptr);
  EXPECT_TRUE((*d)->Stop().ok());
}

}  // namespace
}  // namespace kvcake
