// DaemonOptions::Validate accepts exactly the policies MakePolicy builds.
#include <gtest/gtest.h>

#include <string>

#include "daemon/daemon.h"
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

}  // namespace
}  // namespace kvcake::daemon
