/* Built with `pkg-config --cflags --libs kvcake` against the installed tree:
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
  printf("consumer_c: ok\n");
  return 0;
}
