/* Tunables change behaviour observably, the same way as in glibc.

   Run with a knob set through GLIBC_TUNABLES, its legacy MALLOC_*_ variable,
   or `mallopt:PARAM=VALUE` arguments (applied first thing in main). Prints
   one line per observation; the harness compares the output with glibc's for
   the same setting, and with the default output (a working knob changes it,
   a bad value does not). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mmapped(void *p) { return (int)(((size_t *)p)[-1] & 2); }

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    int param, value;
    if (sscanf(argv[i], "mallopt:%d=%d", &param, &value) == 2)
      printf("mallopt(%d, %d) = %d\n", param, value, mallopt(param, value));
  }

  /* top_pad: the size of the heap after the first small request. */
  void *first = malloc(16);
  printf("initial arena: %zu\n", mallinfo2().arena);

  /* perturb: a fresh chunk from the top is filled with perturb ^ 0xff. */
  unsigned char *fresh = malloc(5000);
  printf("fresh byte: %#x\n", fresh[100]);
  free(fresh);

  /* tcache_count / mxfast: where a freed 24-byte block goes. Seven go to
     the tcache (if it holds any), the next to a fastbin (if mxfast allows),
     else to the unsorted bin. */
  void *small[9];
  void *guard = malloc(24);
  for (int i = 0; i < 9; i++) small[i] = malloc(24);
  void *guard2 = malloc(24);
  for (int i = 0; i < 9; i += 2) free(small[i]);
  struct mallinfo2 mi = mallinfo2();
  printf("after 5 small frees: smblks %zu ordblks %zu\n", mi.smblks, mi.ordblks);
  for (int i = 1; i < 9; i += 2) free(small[i]);
  mi = mallinfo2();
  printf("after 9 small frees: smblks %zu ordblks %zu\n", mi.smblks, mi.ordblks);

  /* tcache_max: a freed 1000-byte block stays cached, or reaches a bin. */
  void *mid = malloc(1000);
  void *fence = malloc(24);
  free(mid);
  mi = mallinfo2();
  printf("after a 1000-byte free: ordblks %zu\n", mi.ordblks);

  /* trim_threshold: after freeing 2 MiB of small blocks, is the top given back?
     (Before any mapped chunk is freed: that raises the thresholds.) */
  enum { N = 2048 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = malloc(1000);
  size_t grown = mallinfo2().arena;
  for (int i = 0; i < N; i++) free(blocks[i]);
  size_t after = mallinfo2().arena;
  printf("arena after freeing 2 MiB: %s\n", after < grown ? "trimmed" : "kept");

  /* mmap_threshold / mmap_max: which requests are mapped on their own. */
  void *b1 = malloc(100000), *b2 = malloc(200000), *b3 = malloc(2000000);
  printf("mapped: 100000 %d, 200000 %d, 2000000 %d\n", !!mmapped(b1), !!mmapped(b2), !!mmapped(b3));
  printf("hblks %zu\n", mallinfo2().hblks);
  free(b1);
  free(b2);
  free(b3);

  free(fence);
  free(guard);
  free(guard2);
  free(first);
  printf("1 passed, 0 failed\n");
  return 0;
}
