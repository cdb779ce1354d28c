/* Single-threaded malloc/free throughput: a first figure against glibc, not a
   test. Three shapes: a fixed size (tcache hit), sizes cycling 16..1024, and a
   working set of 1000 live blocks of random sizes up to 4096 (bins, splits,
   consolidation). Prints nanoseconds per pair for each. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000000;
  volatile uintptr_t sink = 0;

  double t = now();
  for (long i = 0; i < n; i++) { void *p = malloc(64); sink += (uintptr_t)p; free(p); }
  double fixed = (now() - t) / n * 1e9;

  t = now();
  for (long i = 0; i < n; i++) { void *p = malloc(16 + (i & 63) * 16); sink += (uintptr_t)p; free(p); }
  double cycling = (now() - t) / n * 1e9;

  enum { LIVE = 1000 };
  void *slots[LIVE] = {0};
  long m = n / 4;
  t = now();
  for (long i = 0; i < m; i++) {
    unsigned k = next() % LIVE;
    free(slots[k]);
    slots[k] = malloc(1 + next() % 4096);
    *(volatile char *)slots[k] = 1;
  }
  double working = (now() - t) / m * 1e9;
  for (int k = 0; k < LIVE; k++) free(slots[k]);

  printf("fixed-64 %.2f ns/pair\ncycling-16-1024 %.2f ns/pair\nworking-set-4096 %.2f ns/op\n", fixed, cycling, working);
  return (int)(sink & 0);
}
