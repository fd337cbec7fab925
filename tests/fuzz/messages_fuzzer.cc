// libFuzzer target: the op-message decoders (transport/messages.h) — what a
// peer puts in a frame's meta — must never crash, read out of bounds or
// allocate from an unchecked count, and a message that decodes must
// re-encode to bytes that decode to the same message (and the same bytes).
// The first input byte picks the message type.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "transport/messages.h"

namespace {

using namespace kvcake::transport;  // NOLINT: a fuzzer over the whole codec

template <typename M>
void Check(std::string_view bytes) {
  M m{};
  if (!Decode(bytes, &m).ok()) return;
  const std::string again = Encode(m);
  M m2{};
  if (!Decode(again, &m2).ok()) std::abort();
  if (!(m2 == m)) std::abort();
  if (Encode(m2) != again) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 22) {
    case 0:
      Check<PingRequest>(bytes);
      break;
    case 1:
      Check<PingResponse>(bytes);
      break;
    case 2:
      Check<RegisterNamespaceRequest>(bytes);
      break;
    case 3:
      Check<RegisterNamespaceResponse>(bytes);
      break;
    case 4:
      Check<LookupPrefixRequest>(bytes);
      break;
    case 5:
      Check<LookupPrefixResponse>(bytes);
      break;
    case 6:
      Check<KeyedRequest>(bytes);
      break;
    case 7:
      Check<KeyCodesResponse>(bytes);
      break;
    case 8:
      Check<ReportStatsRequest>(bytes);
      break;
    case 9:
      Check<DeleteResponse>(bytes);
      break;
    case 10:
      Check<SlotsResponse>(bytes);
      break;
    case 11:
      Check<PutCommitRequest>(bytes);
      break;
    case 12:
      Check<ReleaseRequest>(bytes);
      break;
    case 13:
      Check<DirectoryPublishRequest>(bytes);
      break;
    case 14:
      Check<DirectoryLookupRequest>(bytes);
      break;
    case 15:
      Check<DirectoryLookupResponse>(bytes);
      break;
    case 16:
      Check<HandoffWaitRequest>(bytes);
      break;
    case 17:
      Check<NcclConnectRequest>(bytes);
      break;
    case 18:
      Check<NcclConnectResponse>(bytes);
      break;
    case 19:
      Check<HandoffNoticeRequest>(bytes);
      break;
    case 20:
      Check<HandoffAbortRequest>(bytes);
      break;
    default:
      Check<ErrorResponse>(bytes);
      break;
  }
  return 0;
}
