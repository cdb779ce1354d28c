/* malloc_trim gives memory back: fill 500 MiB with small blocks, free a
   scattered 90% of them, then trim. Prints the resident set size before and
   after and what malloc_trim returned; the harness requires this library to
   release at least as much as glibc does on the same program. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long rss_kib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
  if (f) fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(void) {
  static uint64_t state = 0x9e3779b97f4a7c15ull;
  const size_t total = (size_t)500 << 20;
  size_t n = 0, bytes = 0, cap = 4 << 20;
  void **blocks = malloc(cap * sizeof *blocks);
  if (blocks == NULL) return 2;
  while (bytes < total && n < cap) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    size_t size = 16 + state % 480;
    blocks[n] = malloc(size);
    memset(blocks[n], 0x5a, size);
    bytes += size;
    n++;
  }
  long filled = rss_kib();
  for (size_t i = 0; i < n; i++) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    if (state % 10 != 0) { free(blocks[i]); blocks[i] = NULL; }
  }
  long freed = rss_kib();
  int released = malloc_trim(0);
  long trimmed = rss_kib();
  printf("blocks %zu filled %ld KiB freed %ld KiB trimmed %ld KiB returned %d\n", n, filled, freed, trimmed, released);
  int ok = released == 1 && trimmed < freed;
  printf("%s: malloc_trim released memory\n", ok ? "ok" : "FAIL");
  for (size_t i = 0; i < n; i++) free(blocks[i]);
  free(blocks);
  printf("%d passed, %d failed\n", ok, !ok);
  return !ok;
}
