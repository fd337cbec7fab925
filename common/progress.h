#pragma once

// One updating progress line for long-running tools (benchmarks, the trace
// replayer, kvcakectl drain). It is drawn only on a terminal, so redirected
// output and --json runs never see it.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvcake {

// Draws "LABEL [######......]  42.0%  420/1000  DETAIL" on one line of `fd`
// (stderr by default), redrawn in place with '\r' and cleared by Done() or
// the destructor. Does nothing unless `enabled` and `fd` is a terminal.
//
// Thread-safety: not thread-safe; one thread updates a Progress.
class Progress {
 public:
  struct Options {
    bool enabled = true;  // false: never draw (e.g. --json)
    int fd = 2;           // where to draw; drawn only if isatty(fd)
    // Redraw at most this often (the last update before Done() may be skipped).
    std::chrono::milliseconds interval{100};
  };

  explicit Progress(std::string label) : Progress(std::move(label), Options()) {}
  Progress(std::string label, Options options);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // True when lines are drawn (enabled and on a terminal).
  bool active() const { return active_; }

  // `done` of `total` units (total 0: unknown; only the count is shown).
  void Update(uint64_t done, uint64_t total, std::string_view detail = {});
  // Changes the label (a new phase) and redraws on the next Update.
  void SetLabel(std::string label);
  // Clears the line; later updates draw again.
  void Done();

  // The text of one line, without control characters, cut to `width`.
  static std::string Render(std::string_view label, uint64_t done, uint64_t total,
                            std::string_view detail, size_t width);

 private:
  void Write(const std::string& text);

  std::string label_;
  Options options_;
  bool active_ = false;
  bool drawn_ = false;  // a line is on screen
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace kvcake
