#include "common/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

namespace kvcake {
namespace {

size_t TerminalWidth(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

Progress::Progress(std::string label, Options options)
    : label_(std::move(label)),
      options_(options),
      active_(options.enabled && ::isatty(options.fd) == 1) {}

Progress::~Progress() { Done(); }

std::string Progress::Render(std::string_view label, uint64_t done, uint64_t total,
                             std::string_view detail, size_t width) {
  std::string line(label);
  char buf[96];
  if (total > 0) {
    const double frac =
        std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
    constexpr int kBar = 20;
    const int filled = static_cast<int>(std::lround(frac * kBar));
    std::snprintf(buf, sizeof(buf), " [%s%s] %5.1f%%  %llu/%llu", std::string(filled, '#').c_str(),
                  std::string(kBar - filled, '.').c_str(), frac * 100,
                  static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
  } else {
    std::snprintf(buf, sizeof(buf), " %llu", static_cast<unsigned long long>(done));
  }
  line += buf;
  if (!detail.empty()) {
    line += "  ";
    line += detail;
  }
  // One column short of the width: a full line would wrap on some terminals.
  if (width > 1 && line.size() >= width) line.resize(width - 1);
  return line;
}

void Progress::Update(uint64_t done, uint64_t total, std::string_view detail) {
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < options_.interval) return;
  last_draw_ = now;
  Write("\r\x1b[K" + Render(label_, done, total, detail, TerminalWidth(options_.fd)));
  drawn_ = true;
}

void Progress::SetLabel(std::string label) {
  label_ = std::move(label);
  last_draw_ = {};
}

void Progress::Done() {
  if (!active_ || !drawn_) return;
  Write("\r\x1b[K");
  drawn_ = false;
}

void Progress::Write(const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(options_.fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a closed terminal: drop the line
    off += static_cast<size_t>(n);
  }
}

}  // namespace kvcake
