// kvcake-store-bench --json: stdout is one JSON object and nothing else, and
// RocksDB (opened twice per size, the SSD tier and raw) prints nothing of its
// own into the run's output. Not a terminal: no progress line either.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace kvcake {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(StoreBenchJsonTest, StdoutIsOneJsonObjectAndRocksDbStaysQuiet) {
  const char* bin_dir = std::getenv("KVCAKE_BIN_DIR");
  const std::string bin =
      std::string(bin_dir ? bin_dir : "build/release/bin") + "/kvcake-store-bench";
  ASSERT_EQ(::access(bin.c_str(), X_OK), 0) << bin << " not built";
  char tmpl[] = "/tmp/kvcake-store-bench-json-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string cmd = bin +
                          " --quick --json --sizes=65536 --working_set_mb=8 --ssd_mb=8"
                          " --device_cuda=false --dir=" +
                          dir + " >" + dir + "/out 2>" + dir + "/err";
  const int rc = std::system(cmd.c_str());
  const std::string out = ReadFile(dir + "/out");
  const std::string err = ReadFile(dir + "/err");
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << cmd << "\nstderr:\n" << err;

  const nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << "stdout is not one JSON object:\n" << out;
  ASSERT_TRUE(j.contains("results")) << out;
  EXPECT_EQ(j["results"].size(), 1u) << out;
  EXPECT_EQ(err.find("rocksdb"), std::string::npos) << "RocksDB wrote into the output:\n" << err;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(err.find('\r'), std::string::npos) << "a progress line without a terminal:\n" << err;
}

}  // namespace
}  // namespace kvcake
