#include "cluster/member_info.h"

#include <exception>
#include <nlohmann/json.hpp>

namespace kvcake::cluster {

using json = nlohmann::json;

bool MemberInfo::SamePublished(const MemberInfo& other) const {
  return node_id == other.node_id && advertise_address == other.advertise_address &&
         admin_address == other.admin_address && version == other.version &&
         start_time_unix_ms == other.start_time_unix_ms &&
         host_capacity_bytes == other.host_capacity_bytes &&
         ssd_capacity_bytes == other.ssd_capacity_bytes &&
         gpu_capacity_bytes == other.gpu_capacity_bytes;
}

std::string MemberInfoToJson(const MemberInfo& info) {
  json doc = {
      {"node_id", info.node_id},
      {"advertise_address", info.advertise_address},
      {"admin_address", info.admin_address},
      {"version", info.version},
      {"start_time_unix_ms", info.start_time_unix_ms},
      {"host_capacity_bytes", info.host_capacity_bytes},
      {"ssd_capacity_bytes", info.ssd_capacity_bytes},
      {"gpu_capacity_bytes", info.gpu_capacity_bytes},
  };
  // Replace invalid UTF-8 rather than throw: the strings come from flags.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<MemberInfo> MemberInfoFromJson(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgumentError("member info is not a JSON object");
  }
  MemberInfo info;
  try {
    auto get = [&doc](const char* name, auto* field) {
      auto it = doc.find(name);
      if (it != doc.end() && !it->is_null()) it->get_to(*field);
    };
    get("node_id", &info.node_id);
    get("advertise_address", &info.advertise_address);
    get("admin_address", &info.admin_address);
    get("version", &info.version);
    get("start_time_unix_ms", &info.start_time_unix_ms);
    get("host_capacity_bytes", &info.host_capacity_bytes);
    get("ssd_capacity_bytes", &info.ssd_capacity_bytes);
    get("gpu_capacity_bytes", &info.gpu_capacity_bytes);
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("member info: ") + e.what());
  }
  if (info.node_id.empty()) return InvalidArgumentError("member info has no node_id");
  return info;
}

}  // namespace kvcake::cluster
