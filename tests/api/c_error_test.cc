// The C ABI's exception barrier: whatever a body throws becomes a negative
// KVCAKE_E_* code and a message in kvcake_last_error's per-thread slot.
#include "client/src/c_error.h"

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "kvcake/kvcake_c.h"

namespace kvcake {
namespace {

TEST(CErrorTest, ReturnsWhatTheBodyReturns) {
  EXPECT_EQ(CatchAll("f", [] { return 0; }), 0);
  EXPECT_EQ(CatchAll("f", [] { return -KVCAKE_E_NOT_FOUND; }), -KVCAKE_E_NOT_FOUND);
}

TEST(CErrorTest, BadAllocIsResourceExhausted) {
  EXPECT_EQ(CatchAll("kvcake_put", []() -> int { throw std::bad_alloc(); }),
            -KVCAKE_E_RESOURCE_EXHAUSTED);
  const std::string message = LastError();
  EXPECT_NE(message.find("RESOURCE_EXHAUSTED"), std::string::npos) << message;
  EXPECT_NE(message.find("kvcake_put: out of memory"), std::string::npos) << message;
}

TEST(CErrorTest, StdExceptionIsInternalWithWhat) {
  EXPECT_EQ(CatchAll("kvcake_get", []() -> int { throw std::runtime_error("broken invariant"); }),
            -KVCAKE_E_INTERNAL);
  const std::string message = LastError();
  EXPECT_NE(message.find("kvcake_get: unexpected exception: broken invariant"), std::string::npos)
      << message;
}

TEST(CErrorTest, AnyOtherExceptionIsInternal) {
  EXPECT_EQ(CatchAll("kvcake_ping", []() -> int { throw 42; }), -KVCAKE_E_INTERNAL);
  EXPECT_EQ(std::string(LastError()), "INTERNAL: kvcake_ping: unexpected exception");
}

TEST(CErrorTest, VoidEntryPointsRecordTheException) {
  SetLastError("");
  CatchAllVoid("kvcake_close", [] { throw std::logic_error("double close"); });
  EXPECT_EQ(std::string(LastError()), "INTERNAL: kvcake_close: unexpected exception: double close");
  bool ran = false;
  CatchAllVoid("kvcake_close", [&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(CErrorTest, MessagesArePerThread) {
  SetLastError("main thread's");
  std::thread([] {
    EXPECT_EQ(std::string(LastError()), "");
    EXPECT_EQ(CatchAll("f", []() -> int { throw std::bad_alloc(); }), -KVCAKE_E_RESOURCE_EXHAUSTED);
  }).join();
  EXPECT_EQ(std::string(LastError()), "main thread's");
}

}  // namespace
}  // namespace kvcake
