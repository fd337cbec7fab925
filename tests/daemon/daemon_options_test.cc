// DaemonOptions::Validate accepts exactly the policies MakePolicy builds.
#include <gtest/gtest.h>

#include <string>

#include "daemon/daemon.h"
#include "daemon/startup_checks.h"
#include "policy/policy_factory.h"

namespace kvcake::daemon {
namespace {

TEST(DaemonOptionsTest, PolicyNamesAreTheFactorys) {
  for (const char* name :
       {"adaptive", "cake", "cake_uniform", "lru", "lfu", "arc", "s3fifo", "gdsf"}) {
    DaemonOptions o;
    o.policy = name;
    EXPECT_TRUE(o.Validate().ok()) << name << ": " << o.Validate().ToString();
    EXPECT_TRUE(policy::MakePolicy(name).ok()) << name;
  }
  DaemonOptions o;
  o.policy = "lirs";
  const Status st = o.Validate();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("s3fifo"), std::string::npos) << st.ToString();
}

TEST(DaemonOptionsTest, HandoffTransportValues) {
  for (bool built : {false, true}) {
    auto ucx = ParseHandoffTransport("ucx", built);
    ASSERT_TRUE(ucx.ok()) << ucx.status().ToString();
    EXPECT_EQ(*ucx, HandoffTransport::kUcx);
    auto any = ParseHandoffTransport("auto", built);
    ASSERT_TRUE(any.ok()) << any.status().ToString();
    EXPECT_EQ(*any, HandoffTransport::kAuto);
    for (const char* bad : {"", "UCX", "rdma", "nccl ", "ucx,nccl"}) {
      auto r = ParseHandoffTransport(bad, built);
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "'" << bad << "'";
      EXPECT_NE(r.status().message().find("--handoff_transport"), std::string::npos);
    }
  }
  auto nccl = ParseHandoffTransport("nccl", true);
  ASSERT_TRUE(nccl.ok()) << nccl.status().ToString();
  EXPECT_EQ(*nccl, HandoffTransport::kNccl);
  // NCCL asked for explicitly in a build without it is a startup error.
  auto missing = ParseHandoffTransport("nccl", false);
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("built without CUDA"), std::string::npos)
      << missing.status().ToString();
}

}  // namespace
}  // namespace kvcake::daemon
