#include "tests/replay/trace.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

namespace kvcake::replay {

Result<std::vector<TraceRequest>> ReadMooncakeTrace(const std::string& path,
                                                    uint64_t max_requests) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open trace " + path);
  std::vector<TraceRequest> out;
  std::string line;
  uint64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (max_requests != 0 && out.size() >= max_requests) break;
    // nlohmann throws on bad input: caught here, where the foreign code is entered.
    try {
      const auto j = nlohmann::json::parse(line);
      TraceRequest r;
      r.timestamp_ms = j.value("timestamp", uint64_t{0});
      r.input_length = j.value("input_length", uint64_t{0});
      r.output_length = j.value("output_length", uint64_t{0});
      std::unordered_set<uint64_t> seen;
      for (const auto& h : j.at("hash_ids")) {
        const uint64_t id = h.get<uint64_t>();
        if (seen.insert(id).second) r.hash_ids.push_back(id);
      }
      out.push_back(std::move(r));
    } catch (const std::exception& e) {
      return InvalidArgumentError(path + ":" + std::to_string(line_no) + ": " + e.what());
    }
  }
  return out;
}

}  // namespace kvcake::replay
