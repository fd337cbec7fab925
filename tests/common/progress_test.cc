#include "common/progress.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace kvcake {
namespace {

// A pseudo-terminal: the tool side (`tty`) is a terminal for isatty().
class Pty {
 public:
  Pty() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
    tty_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY);
  }
  ~Pty() {
    if (tty_ >= 0) ::close(tty_);
    if (master_ >= 0) ::close(master_);
  }
  int tty() const { return tty_; }
  // Everything written to the terminal so far.
  std::string Drain() {
    std::string out;
    char buf[4096];
    pollfd p{master_, POLLIN, 0};
    while (::poll(&p, 1, 50) == 1) {
      ssize_t n = ::read(master_, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int master_ = -1;
  int tty_ = -1;
};

Progress::Options On(int fd) {
  Progress::Options o;
  o.fd = fd;
  o.interval = std::chrono::milliseconds(0);
  return o;
}

TEST(ProgressTest, RendersBarCountAndDetailWithinTheWidth) {
  EXPECT_EQ(Progress::Render("replay", 5, 10, "lru", 200),
            "replay [##########..........]  50.0%  5/10  lru");
  EXPECT_EQ(Progress::Render("puts", 7, 0, "", 200), "puts 7");
  EXPECT_EQ(Progress::Render("replay", 50, 10, "", 200).find("100.0%  50/10"), 30u);
  EXPECT_EQ(Progress::Render("replay", 5, 10, "a long detail", 20).size(), 19u);
}

TEST(ProgressTest, DrawsOneUpdatingLineOnATerminalAndClearsIt) {
  Pty pty;
  ASSERT_GE(pty.tty(), 0) << "no pseudo-terminal";
  {
    Progress p("bench", On(pty.tty()));
    ASSERT_TRUE(p.active());
    p.Update(1, 4);
    p.Update(2, 4, "host");
    p.Done();
    const std::string out = pty.Drain();
    EXPECT_NE(out.find("\r\x1b[Kbench [#####...............]  25.0%  1/4"), std::string::npos)
        << out;
    EXPECT_NE(out.find("\r\x1b[Kbench [##########..........]  50.0%  2/4  host"), std::string::npos)
        << out;
    EXPECT_EQ(out.substr(out.size() - 4), "\r\x1b[K") << out;
    EXPECT_EQ(out.find('\n'), std::string::npos) << out;
    p.Update(3, 4);
  }
  // The destructor clears a line left on screen.
  const std::string out = pty.Drain();
  EXPECT_NE(out.find("75.0%"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 4), "\r\x1b[K") << out;
}

TEST(ProgressTest, SilentWhenDisabledOrNotATerminal) {
  Pty pty;
  ASSERT_GE(pty.tty(), 0) << "no pseudo-terminal";
  Progress::Options off = On(pty.tty());
  off.enabled = false;
  {
    Progress p("json", off);
    EXPECT_FALSE(p.active());
    p.Update(1, 2);
  }
  EXPECT_EQ(pty.Drain(), "");

  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  {
    Progress p("piped", On(pipefd[1]));
    EXPECT_FALSE(p.active());
    p.Update(1, 2);
  }
  ::close(pipefd[1]);
  char c;
  EXPECT_EQ(::read(pipefd[0], &c, 1), 0) << "something was written to a pipe";
  ::close(pipefd[0]);
}

TEST(ProgressTest, RedrawsAtMostOncePerInterval) {
  Pty pty;
  ASSERT_GE(pty.tty(), 0) << "no pseudo-terminal";
  Progress::Options o = On(pty.tty());
  o.interval = std::chrono::hours(1);
  Progress p("slow", o);
  for (uint64_t i = 1; i <= 100; ++i) p.Update(i, 100);
  p.Done();
  const std::string out = pty.Drain();
  EXPECT_NE(out.find("1/100"), std::string::npos) << out;
  EXPECT_EQ(out.find("2/100"), std::string::npos) << out;
}

}  // namespace
}  // namespace kvcake
