#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace kvcake::replay {

// One request of a Mooncake-format trace (JSONL: timestamp, input_length,
// output_length, hash_ids; 512-token blocks).
struct TraceRequest {
  uint64_t timestamp_ms = 0;
  uint64_t input_length = 0;
  uint64_t output_length = 0;
  std::vector<uint64_t> hash_ids;  // prefix block ids, duplicates removed
};

// Reads up to `max_requests` (0 = all) requests. NOT_FOUND if the file cannot
// be opened; INVALID_ARGUMENT (with the line number) on a malformed line.
Result<std::vector<TraceRequest>> ReadMooncakeTrace(const std::string& path,
                                                    uint64_t max_requests = 0);

}  // namespace kvcake::replay
