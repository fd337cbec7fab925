#pragma once

// Helpers shared by the admin tests that run the built binaries
// (header-only).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace kvcake::testing {

// $KVCAKE_BIN_DIR, else the directory of this test binary (<build>/bin, where
// kvcaked and kvcakectl are built too).
inline std::string BinDir() {
  const char* dir = std::getenv("KVCAKE_BIN_DIR");
  if (dir != nullptr && *dir != '\0') return dir;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "build/release/bin" : self.parent_path().string();
}

// The whole content of file `path` ("" if it cannot be read).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace kvcake::testing
