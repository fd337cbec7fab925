// The NCCL hand-off channel (transport/nccl_channel.h) on a GPU: a self
// send/recv through a 1-rank communicator, the watchdog aborting an
// initialization whose peer never joins, and the size handshake. With two
// GPUs, a 2-rank send/recv between two pools of this process. Every test
// skips when no CUDA device is present.

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/common/cuda_device.h"
#include "transport/nccl_channel.h"

namespace kvcake::transport {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

#define SKIP_WITHOUT_GPU()                                                    \
  do {                                                                        \
    if (!kvcake::testing::HaveCudaDevice()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

// Device buffers on `device` holding known bytes (`seed` varies them).
class DeviceBuffers {
 public:
  DeviceBuffers(int device, const std::vector<uint64_t>& sizes, uint8_t seed) : device_(device) {
    cudaSetDevice(device);
    for (size_t i = 0; i < sizes.size(); ++i) {
      void* p = nullptr;
      EXPECT_EQ(cudaMalloc(&p, sizes[i]), cudaSuccess);
      ptrs_.push_back(p);
      std::vector<uint8_t> host(sizes[i]);
      for (size_t j = 0; j < host.size(); ++j) host[j] = static_cast<uint8_t>(seed + i * 31 + j);
      EXPECT_EQ(cudaMemcpy(p, host.data(), host.size(), cudaMemcpyHostToDevice), cudaSuccess);
      host_.push_back(std::move(host));
    }
  }
  ~DeviceBuffers() {
    cudaSetDevice(device_);
    for (void* p : ptrs_) cudaFree(p);
  }
  std::vector<ConstBuffer> src() const {
    std::vector<ConstBuffer> v;
    for (size_t i = 0; i < ptrs_.size(); ++i) v.push_back({ptrs_[i], host_[i].size()});
    return v;
  }
  std::vector<MutableBuffer> dst() const {
    std::vector<MutableBuffer> v;
    for (size_t i = 0; i < ptrs_.size(); ++i) v.push_back({ptrs_[i], host_[i].size()});
    return v;
  }
  std::vector<uint64_t> sizes() const {
    std::vector<uint64_t> v;
    for (const auto& h : host_) v.push_back(h.size());
    return v;
  }
  // The bytes buffer `i` holds now on the device.
  std::vector<uint8_t> Read(size_t i) const {
    std::vector<uint8_t> out(host_[i].size());
    cudaSetDevice(device_);
    EXPECT_EQ(cudaMemcpy(out.data(), ptrs_[i], out.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  const std::vector<uint8_t>& written(size_t i) const { return host_[i]; }
  size_t count() const { return ptrs_.size(); }

 private:
  int device_;
  std::vector<void*> ptrs_;
  std::vector<std::vector<uint8_t>> host_;
};

NcclChannelOptions ShortOptions() {
  NcclChannelOptions o;
  o.init_timeout = milliseconds(1500);
  o.transfer_timeout = milliseconds(5000);
  return o;
}

TEST(NcclChannelGpuTest, LoopbackCopiesEveryBuffer) {
  SKIP_WITHOUT_GPU();
  ASSERT_TRUE(NcclCommPool::Built());
  NcclCommPool pool(ShortOptions());
  const std::vector<uint64_t> sizes = {1, 4096, 3 << 20, 777};
  DeviceBuffers from(0, sizes, 7);
  DeviceBuffers into(0, sizes, 200);
  Status s = pool.Loopback(0, from.src(), into.dst());
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(into.Read(i), from.written(i)) << "buffer " << i;
  }
  // The communicator is reused for the next transfer.
  DeviceBuffers again(0, sizes, 99);
  ASSERT_TRUE(pool.Loopback(0, again.src(), into.dst()).ok());
  EXPECT_EQ(into.Read(2), again.written(2));
  const NcclChannelStats st = pool.stats();
  EXPECT_EQ(st.comms_created, 1u);
  EXPECT_EQ(st.transfers, 2u);
  EXPECT_EQ(st.comms_aborted, 0u);
  EXPECT_EQ(pool.size(), 1u);
}

TEST(NcclChannelGpuTest, SizeMismatchIsRefusedBeforeAnythingIsWritten) {
  SKIP_WITHOUT_GPU();
  NcclCommPool pool(ShortOptions());
  DeviceBuffers from(0, {4096, 8192}, 1);
  DeviceBuffers into(0, {4096, 8191}, 50);
  Status s = pool.Loopback(0, from.src(), into.dst());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  DeviceBuffers fewer(0, {4096}, 60);
  EXPECT_EQ(pool.Loopback(0, from.src(), fewer.dst()).code(), StatusCode::kInvalidArgument);
  // Nothing was posted: the destinations hold what they held.
  EXPECT_EQ(into.Read(0), into.written(0));
  EXPECT_EQ(into.Read(1), into.written(1));
  EXPECT_EQ(fewer.Read(0), fewer.written(0));
  // The receiving side checks the announced sizes before it even looks for
  // a communicator.
  const std::vector<uint64_t> announced = {4096, 8192};
  s = pool.Receive(NcclPeer{0, "node-a", 0}, announced, into.dst());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(pool.stats().size_mismatches, 3u);
  EXPECT_EQ(pool.stats().comms_created, 0u);
  // With matching sizes but no communicator: FAILED_PRECONDITION.
  EXPECT_EQ(pool.Receive(NcclPeer{0, "node-a", 0}, from.sizes(), into.dst()).code(),
            StatusCode::kInvalidArgument);  // into's second buffer is 8191 bytes
  DeviceBuffers right(0, {4096, 8192}, 70);
  EXPECT_EQ(pool.Receive(NcclPeer{0, "node-a", 0}, from.sizes(), right.dst()).code(),
            StatusCode::kFailedPrecondition);
}

TEST(NcclChannelGpuTest, WatchdogAbortsInitWhosePeerNeverJoins) {
  SKIP_WITHOUT_GPU();
  NcclChannelOptions o = ShortOptions();
  o.init_timeout = milliseconds(800);
  NcclCommPool pool(o);
  bool exchanged = false;
  // The id "reaches" a peer that never joins.
  auto exchange = [&](const NcclUniqueId&) {
    exchanged = true;
    return Status::Ok();
  };
  const Clock::time_point start = Clock::now();
  Status s = pool.Connect(NcclPeer{0, "gone", 0}, exchange);
  const auto took = Clock::now() - start;
  EXPECT_TRUE(exchanged);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_GE(took, milliseconds(800));
  EXPECT_LT(took, milliseconds(800 + 3000)) << "the abort took too long";
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(pool.stats().deadlines_exceeded, 1u);
  EXPECT_EQ(pool.stats().comms_aborted, 1u);

  // A send to that peer creates a fresh communicator and fails the same way,
  // without announcing anything.
  DeviceBuffers from(0, {64}, 3);
  bool announced = false;
  s = pool.Send(NcclPeer{0, "gone", 0}, from.src(), exchange, [&](std::span<const uint64_t>) {
    announced = true;
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_FALSE(announced);
  EXPECT_EQ(pool.stats().comms_created, 2u);
}

TEST(NcclChannelGpuTest, FailedExchangeAbortsAtOnce) {
  SKIP_WITHOUT_GPU();
  NcclChannelOptions o = ShortOptions();
  o.init_timeout = milliseconds(30'000);
  NcclCommPool pool(o);
  const Clock::time_point start = Clock::now();
  Status s = pool.Connect(NcclPeer{0, "refuses", 0}, [](const NcclUniqueId&) {
    return FailedPreconditionError("NCCL hand-offs are off there");
  });
  // The exchange's own error, so a caller can tell a peer without NCCL apart.
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("NCCL hand-offs are off there"), std::string_view::npos);
  EXPECT_EQ(pool.stats().comms_aborted, 1u);
  EXPECT_LT(Clock::now() - start, milliseconds(10'000));
  EXPECT_EQ(pool.size(), 0u);
}

TEST(NcclChannelGpuTest, JoinWhoseSenderNeverArrivesIsAborted) {
  SKIP_WITHOUT_GPU();
  NcclChannelOptions o = ShortOptions();
  o.init_timeout = milliseconds(800);
  NcclCommPool pool(o);
  // A real id (its bootstrap root lives in this process) whose rank 0 never
  // initializes.
  ncclUniqueId nid;
  ASSERT_EQ(ncclGetUniqueId(&nid), ncclSuccess);
  NcclUniqueId id;
  std::memcpy(id.data(), nid.internal, id.size());
  const NcclPeer peer{0, "silent", 0};
  ASSERT_TRUE(pool.Join(peer, id).ok());
  DeviceBuffers into(0, {256}, 9);
  const Clock::time_point start = Clock::now();
  Status s = pool.Receive(peer, into.sizes(), into.dst());
  EXPECT_TRUE(s.code() == StatusCode::kDeadlineExceeded || s.code() == StatusCode::kUnavailable ||
              s.code() == StatusCode::kFailedPrecondition)
      << s.ToString();
  EXPECT_LT(Clock::now() - start, milliseconds(800 + 3000));
  EXPECT_EQ(into.Read(0), into.written(0));
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(pool.stats().comms_aborted, 1u);
}

TEST(NcclChannelGpuTest, TwoRankSendReceiveAcrossTwoGpus) {
  SKIP_WITHOUT_GPU();
  if (DeviceCount() < 2) GTEST_SKIP() << "needs two CUDA devices";
  NcclCommPool sender(ShortOptions());
  NcclCommPool receiver(ShortOptions());
  const std::vector<uint64_t> sizes = {1 << 20, 12345};
  DeviceBuffers from(0, sizes, 11);
  DeviceBuffers into(1, sizes, 0);
  const NcclPeer to{0, "decode", 1};
  const NcclPeer back{1, "prefill", 0};
  std::thread recv_thread;
  Status received = UnknownError("no receive");
  auto exchange = [&](const NcclUniqueId& id) { return receiver.Join(back, id); };
  auto announce = [&](std::span<const uint64_t> announced) {
    std::vector<uint64_t> copy(announced.begin(), announced.end());
    recv_thread = std::thread([&, copy] { received = receiver.Receive(back, copy, into.dst()); });
    return Status::Ok();
  };
  Status s = sender.Send(to, from.src(), exchange, announce);
  if (recv_thread.joinable()) recv_thread.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(received.ok()) << received.ToString();
  for (size_t i = 0; i < sizes.size(); ++i) EXPECT_EQ(into.Read(i), from.written(i));
  EXPECT_EQ(sender.stats().bytes_sent, (1u << 20) + 12345u);
  EXPECT_EQ(receiver.stats().bytes_received, (1u << 20) + 12345u);
}

}  // namespace
}  // namespace kvcake::transport
