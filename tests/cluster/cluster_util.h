#pragma once

// Helpers shared by the cluster tests and benchmarks (header-only; their
// targets link tests/chaos/chaos_util.cc for the HTTP client).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/chaos/chaos_util.h"
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake::cluster::testing {

// Waits (bounded) until `pred` holds; returns whether it did.
inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Live (not stale) members the daemon with admin API `admin_address` sees
// while its membership is up; 0 otherwise or if the API does not answer.
inline size_t LiveMembers(const std::string& admin_address) {
  auto r = chaos::HttpGet(chaos::PortOf(admin_address), "/v1/cluster");
  if (!r.ok() || r->status != 200) return 0;
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("members") || j.value("state", "") != "up") return 0;
  size_t n = 0;
  for (const auto& m : j["members"]) n += m.value("stale", false) ? 0 : 1;
  return n;
}

// One raw request `op` with `meta` to the daemon at `address` (UCX tcp, as
// another member sends it); the reply's status.
inline Status CallMember(const std::string& address, transport::RpcOp op, const std::string& meta) {
  transport::RpcClientOptions ro;
  ro.ucx.transport = transport::UcxTransport::kTcp;
  auto raw = transport::RpcClient::Connect(address, ro);
  if (!raw.ok()) return raw.status();
  transport::CallRequest c;
  c.opcode = static_cast<uint16_t>(op);
  c.meta = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(meta.data()), meta.size());
  c.timeout = std::chrono::milliseconds(5000);
  return (*raw)->Call(c).status;
}

}  // namespace kvcake::cluster::testing
