/* Built with `pkg-config --cflags --libs kvcake-c` against the installed tree:
   the C ABI round trip through a running kvcaked.   consumer_c HOST:PORT */
#include <kvcake/kvcake_c.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  kvcake_client* c = NULL;
  if (kvcake_connect(argv[1], "install-check-c", NULL, &c) != 0) {
    fprintf(stderr, "connect: %s\n", kvcake_last_error());
    return 1;
  }
  if (kvcake_register_namespace(c, 1, 16, 1024) != 0) {
    fprintf(stderr, "register: %s\n", kvcake_last_error());
    return 1;
  }
  char in[1024], out[1024];
  for (int i = 0; i < 1024; ++i) in[i] = (char)(i * 3);
  uint64_t hash = 0x1234;
  int32_t layer = 0, found = 0;
  const void* src[1] = {in};
  void* dst[1] = {out};
  if (kvcake_put(c, &hash, &layer, src, 1) != 0 ||
      kvcake_get(c, &hash, &layer, dst, 1, &found) != 0 || !found ||
      memcmp(in, out, sizeof in) != 0) {
    fprintf(stderr, "round trip: %s\n", kvcake_last_error());
    return 1;
  }
  kvcake_close(c);

  /* Options, token hashing and a layer-wise get, as an engine would use them. */
  kvcake_options o;
  kvcake_options_init(&o);
  o.timeout_ms = 5000;
  if (kvcake_connect_with_options(argv[1], "install-check-c2", &o, &c) != 0 ||
      kvcake_register_namespace_ex(c, 2, 4, 1024, "fp16", "NHD", 0) != 0) {
    fprintf(stderr, "connect/register (options): %s\n", kvcake_last_error());
    return 1;
  }
  uint32_t tokens[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint64_t chain[2];
  int64_t blocks = 0;
  if (kvcake_hash_tokens(c, tokens, 8, chain, 2, &blocks) != 0 || blocks != 2) {
    fprintf(stderr, "hash_tokens: %s\n", kvcake_last_error());
    return 1;
  }
  int32_t layers[2] = {1, 1};
  const void* srcs[2] = {in, in};
  char out2[1024];
  void* dsts[2] = {out, out2};
  int32_t group_sizes[1] = {2}, hits[2] = {0, 0};
  kvcake_pending_get* pending = NULL;
  if (kvcake_put(c, chain, layers, srcs, 2) != 0 ||
      kvcake_get_async(c, chain, layers, dsts, group_sizes, 1, &pending) != 0 ||
      kvcake_pending_get_wait(pending, 0, 5000, hits) != 0 || !hits[0] || !hits[1] ||
      memcmp(in, out2, sizeof in) != 0) {
    fprintf(stderr, "layer-wise get: %s\n", kvcake_last_error());
    return 1;
  }
  kvcake_pending_get_free(pending);
  /* Layer-wise save through a put stream: layer 0 of both blocks, read back. */
  kvcake_put_stream* saver = NULL;
  int32_t layer0[2] = {0, 0}, group = -1;
  char out3[1024];
  void* dsts0[2] = {out3, out2};
  if (kvcake_put_stream_open(c, &saver) != 0 ||
      kvcake_put_stream_submit(saver, chain, layer0, srcs, 2, &group) != 0 || group != 0 ||
      kvcake_put_stream_wait(saver, -1, 5000) != 0) {
    fprintf(stderr, "put stream: %s\n", kvcake_last_error());
    return 1;
  }
  kvcake_put_stream_free(saver);
  if (kvcake_get(c, chain, layer0, dsts0, 2, hits) != 0 || !hits[0] || !hits[1] ||
      memcmp(in, out3, sizeof in) != 0) {
    fprintf(stderr, "get after the put stream: %s\n", kvcake_last_error());
    return 1;
  }
  kvcake_close(c);
  printf("consumer_c: ok\n");
  return 0;
}
