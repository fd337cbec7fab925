#include "common/split.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kvcake {
namespace {

using Items = std::vector<std::string>;

TEST(SplitNonEmptyTest, DropsEmptyItems) {
  EXPECT_EQ(SplitNonEmpty("a,b,c", ','), (Items{"a", "b", "c"}));
  EXPECT_EQ(SplitNonEmpty(",a,,b,", ','), (Items{"a", "b"}));
  EXPECT_EQ(SplitNonEmpty("http://h:1", ','), (Items{"http://h:1"}));
  EXPECT_TRUE(SplitNonEmpty("", ',').empty());
  EXPECT_TRUE(SplitNonEmpty(",,,", ',').empty());
  EXPECT_EQ(SplitNonEmpty("--a=1;--b", ';'), (Items{"--a=1", "--b"}));
}

}  // namespace
}  // namespace kvcake
