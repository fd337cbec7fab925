// The pure parts of the etcd gateway client and of MemberInfo.

#include <gtest/gtest.h>

#include <string>

#include "cluster/etcd_client.h"
#include "cluster/member_info.h"
#include "cluster/membership.h"

namespace kvcake::cluster {
namespace {

TEST(EncodingTest, Base64RoundTrip) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= bytes.size(); n += 7) {
    auto decoded = Base64Decode(Base64Encode(bytes.substr(0, n)));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, bytes.substr(0, n));
  }
  EXPECT_EQ(Base64Decode("Zm9").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Base64Decode("Zm9*").status().code(), StatusCode::kInvalidArgument);
}

TEST(EncodingTest, PrefixRangeEnd) {
  EXPECT_EQ(PrefixRangeEnd("/kvcake/c/members/"), "/kvcake/c/members0");
  EXPECT_EQ(PrefixRangeEnd("a\xff"), "b");
  EXPECT_EQ(PrefixRangeEnd("\xff\xff"), std::string(1, '\0'));
}

TEST(EncodingTest, MemberInfoJsonRoundTrip) {
  MemberInfo info;
  info.node_id = "n1";
  info.advertise_address = "10.0.0.1:18515";
  info.admin_address = "10.0.0.1:18516";
  info.version = "0.1.0";
  info.start_time_unix_ms = 1'700'000'000'123;
  info.host_capacity_bytes = 64ull << 30;
  info.ssd_capacity_bytes = 2ull << 40;
  info.gpu_capacity_bytes = 80ull << 30;
  info.last_seen_unix_ms = 5;  // not published
  auto parsed = MemberInfoFromJson(MemberInfoToJson(info));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->SamePublished(info));
  EXPECT_EQ(parsed->last_seen_unix_ms, 0);
  // Unknown fields are ignored; a missing node id or a wrong type is refused.
  EXPECT_TRUE(MemberInfoFromJson(R"({"node_id":"x","future":1})").ok());
  EXPECT_FALSE(MemberInfoFromJson(R"({"version":"1"})").ok());
  EXPECT_FALSE(MemberInfoFromJson(R"({"node_id":"x","start_time_unix_ms":"soon"})").ok());
  EXPECT_FALSE(MemberInfoFromJson("not json").ok());
}

TEST(EncodingTest, GatewayClientRejectsBadEndpoints) {
  for (const char* bad : {"127.0.0.1:2379", "https://h:2379", "http://h", "http://h:0",
                          "http://h:99999", "http://:2379"}) {
    GatewayEtcdClientOptions options;
    options.endpoints = {bad};
    EXPECT_EQ(GatewayEtcdClient::Create(options).status().code(), StatusCode::kInvalidArgument)
        << bad;
  }
  GatewayEtcdClientOptions options;
  options.endpoints = {"http://127.0.0.1:2379", "http://[::1]:2379/"};
  EXPECT_TRUE(GatewayEtcdClient::Create(options).ok());
}

TEST(EncodingTest, MembershipOptionsValidate) {
  MembershipOptions options;
  options.endpoints = {"http://127.0.0.1:2379"};
  options.self.node_id = "n1";
  EXPECT_TRUE(options.Validate().ok());
  options.node_id = "n2";
  EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument);
  options.node_id = "";
  options.cluster_name = "a/b";
  EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument);
  options.cluster_name = "c";
  options.ttl_s = 0;
  EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvcake::cluster
