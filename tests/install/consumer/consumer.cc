// Built against the installed tree only, by README.md's find_package and
// pkg-config recipes (tests/install/check_install.sh): put and get a block
// through a running kvcaked, check the bytes and the known-answer namespace seed.
//   engine HOST:PORT
#include <kvcake/client.h>

// The engine's build sets no standard: kvcake::kvcake and kvcake.pc bring it.
static_assert(__cplusplus >= 202002L, "kvcake's C++ API needs C++20");

#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  if (kvcake::NamespaceSeed("kvcake-kat") != kvcake::kNamespaceSeedKnownAnswer) {
    std::fprintf(stderr, "namespace seed differs from the known answer\n");
    return 1;
  }
  kvcake::ClientOptions o;
  o.address = argv[1];
  o.namespace_name = "install-check";
  auto c = kvcake::Client::Connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "connect: %s\n", c.status().ToString().c_str());
    return 1;
  }
  kvcake::Status s = (*c)->RegisterNamespace({2, 16, 4096, "consumer", "", 0});
  if (!s.ok()) {
    std::fprintf(stderr, "register: %s\n", s.ToString().c_str());
    return 1;
  }
  std::vector<uint32_t> tokens(32);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i);
  kvcake::HashChain chain((*c)->seed(), 16);
  chain.Append(tokens);
  std::vector<char> in(4096), out(4096, 0);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<char>(i * 7);
  std::vector<kvcake::PutBlock> put;
  for (uint64_t h : chain.hashes()) put.push_back({h, 1, in.data()});
  s = (*c)->Put(put);
  if (!s.ok()) {
    std::fprintf(stderr, "put: %s\n", s.ToString().c_str());
    return 1;
  }
  auto n = (*c)->LookupPrefix(chain.hashes(), 1);
  if (!n.ok() || *n != chain.hashes().size()) {
    std::fprintf(stderr, "lookup: %s\n", n.ok() ? "short prefix" : n.status().ToString().c_str());
    return 1;
  }
  std::vector<kvcake::GetBlock> get = {{chain.hashes()[1], 1, out.data()}};
  std::vector<bool> found;
  s = (*c)->Get(get, &found);
  if (!s.ok() || !found[0] || std::memcmp(in.data(), out.data(), in.size()) != 0) {
    std::fprintf(stderr, "get: %s\n", s.ok() ? "missing or different bytes" : s.ToString().c_str());
    return 1;
  }
  std::printf("consumer_cpp: ok (%zu blocks)\n", chain.hashes().size());
  return 0;
}
