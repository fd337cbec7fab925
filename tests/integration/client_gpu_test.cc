// Put/Get of CUDA device buffers through the client (staged through host
// memory) against the real kvcaked. Skips without a CUDA device.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

#include "kvcake/client.h"
#include "tests/integration/daemon_process.h"

namespace kvcake {
namespace {

TEST(ClientGpuTest, PutAndGetDeviceBuffers) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    GTEST_SKIP() << "no CUDA device";
  }
  testing::TempDir dir;
  auto d = testing::DaemonProcess::Start(
      {"--ssd_path=" + dir.path() + "/ssd", "--host_bytes=16M", "--slot_bytes=64K"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ClientOptions o;
  o.address = (*d)->address();
  o.namespace_name = "gpu";
  auto c = Client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const uint64_t kBytes = 64 * 1024;
  ASSERT_TRUE((*c)->RegisterNamespace({1, 16, kBytes, "fp16", "", 0}).ok());
  std::vector<char> host(kBytes);
  for (size_t i = 0; i < kBytes; ++i) host[i] = static_cast<char>(i * 13);
  void* src = nullptr;
  void* dst = nullptr;
  ASSERT_EQ(cudaMalloc(&src, kBytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dst, kBytes), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(src, host.data(), kBytes, cudaMemcpyHostToDevice), cudaSuccess);
  std::vector<PutBlock> put = {{42, 0, src}};
  Status s = (*c)->Put(put);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::vector<GetBlock> get = {{42, 0, dst}};
  std::vector<bool> found;
  s = (*c)->Get(get, &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(found[0]);
  std::vector<char> back(kBytes);
  ASSERT_EQ(cudaMemcpy(back.data(), dst, kBytes, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(back, host);
  cudaFree(src);
  cudaFree(dst);
}

}  // namespace
}  // namespace kvcake
