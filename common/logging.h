#pragma once

#include <sstream>
#include <string_view>

namespace kvcake {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

// Names used by KVCAKE_LOG(level).
inline constexpr LogLevel kLogDEBUG = LogLevel::kDebug;
inline constexpr LogLevel kLogINFO = LogLevel::kInfo;
inline constexpr LogLevel kLogWARNING = LogLevel::kWarning;
inline constexpr LogLevel kLogERROR = LogLevel::kError;
inline constexpr LogLevel kLogFATAL = LogLevel::kFatal;

// Global minimum level (default kInfo; KVCAKE_LOG_LEVEL=debug|info|warning|error
// in the environment overrides it at first use). Thread-safe.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warning", "error"; false if unknown.
bool ParseLogLevel(std::string_view text, LogLevel* out);

namespace internal {

// One log line; written to stderr atomically in the destructor. kFatal aborts.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Swallows the stream when the level is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace kvcake

// KVCAKE_LOG(INFO) << "text " << value;   levels: DEBUG INFO WARNING ERROR FATAL
#define KVCAKE_LOG(level)                           \
  (::kvcake::kLog##level < ::kvcake::GetLogLevel()) \
      ? (void)0                                     \
      : ::kvcake::internal::LogVoidify() &          \
            ::kvcake::internal::LogMessage(::kvcake::kLog##level, __FILE__, __LINE__).stream()
