/* The allocator's fast path, one malloc/free pair at a time.

     malloc-free-pairs                 timing mode: nanoseconds per pair for
                                       each shape (a first look, noisy)
     malloc-free-pairs SHAPE N         N pairs of one shape, for counting
                                       instructions (bench/run-instr.sh runs
                                       it under valgrind --tool=callgrind)

   Shapes:
     fixed        malloc(64), free: the thread cache's best case
     cycling      sizes 16, 32, ..., 1024, 16, ...: a different bin each time
     calloc       calloc(1, 64), free
     working-set  (timing mode only) 1000 live blocks of random sizes up to
                  4096: bins, splits, consolidation
     loop-fixed, loop-cycling, loop-calloc
                  the same loops with the calls taken out (the pointer is
                  faked from the size): the loop's own instructions, which
                  run-instr.sh subtracts so the figure is the calls' alone
                  (call and return included)

   Every pointer goes into a volatile sink, so the compiler can neither drop
   a pair nor move the calls out of the loop (it is also built with
   -fno-builtin). In timing mode each block's first byte is written and
   read back before its free. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile uintptr_t sink;

/* An opaque "pointer" for the loop-only shapes: the compiler cannot see
   that it is the size, so the loop stays as it is with the calls. */
static inline void *fake(size_t n) {
  void *p = (void *)(uintptr_t)n;
  __asm__ volatile("" : "+r"(p));
  return p;
}

static inline size_t cycling_size(long i) {
  return 16 + (size_t)(i & 63) * 16;
}

static void run_shape(const char *shape, long n) {
  if (strcmp(shape, "fixed") == 0) {
    for (long i = 0; i < n; i++) {
      void *p = malloc(64);
      sink += (uintptr_t)p;
      free(p);
    }
  } else if (strcmp(shape, "cycling") == 0) {
    for (long i = 0; i < n; i++) {
      void *p = malloc(cycling_size(i));
      sink += (uintptr_t)p;
      free(p);
    }
  } else if (strcmp(shape, "calloc") == 0) {
    for (long i = 0; i < n; i++) {
      void *p = calloc(1, 64);
      sink += (uintptr_t)p;
      free(p);
    }
  } else if (strcmp(shape, "loop-fixed") == 0 || strcmp(shape, "loop-calloc") == 0) {
    for (long i = 0; i < n; i++) {
      void *p = fake(64);
      sink += (uintptr_t)p;
      __asm__ volatile("" ::"r"(p));
    }
  } else if (strcmp(shape, "loop-cycling") == 0) {
    for (long i = 0; i < n; i++) {
      void *p = fake(cycling_size(i));
      sink += (uintptr_t)p;
      __asm__ volatile("" ::"r"(p));
    }
  } else {
    fprintf(stderr, "malloc-free-pairs: unknown shape %s\n", shape);
    exit(2);
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Timing mode: each shape, then the working set; ns per pair. */
static int timing(long n) {
  static const char *const shapes[] = {"fixed", "cycling", "calloc"};
  for (int s = 0; s < 3; s++) {
    double t = now();
    run_shape(shapes[s], n);
    printf("%-12s %.2f ns/pair\n", shapes[s], (now() - t) / (double)n * 1e9);
  }
  enum { LIVE = 1000 };
  static unsigned char *slots[LIVE];
  static size_t sizes[LIVE];
  long m = n / 4, bad = 0;
  double t = now();
  for (long i = 0; i < m; i++) {
    unsigned k = next() % LIVE;
    if (slots[k] != NULL && slots[k][0] != (unsigned char)sizes[k])
      bad++;
    free(slots[k]);
    sizes[k] = 1 + next() % 4096;
    slots[k] = malloc(sizes[k]);
    if (slots[k] == NULL) {
      fprintf(stderr, "malloc-free-pairs: malloc failed\n");
      return 1;
    }
    slots[k][0] = (unsigned char)sizes[k];
  }
  printf("%-12s %.2f ns/op\n", "working-set", (now() - t) / (double)m * 1e9);
  for (int k = 0; k < LIVE; k++)
    free(slots[k]);
  if (bad != 0) {
    fprintf(stderr, "malloc-free-pairs: %ld blocks changed before their free\n", bad);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 1)
    return timing(20000000);
  if (argc != 3 || atol(argv[2]) < 1) {
    fprintf(stderr, "usage: malloc-free-pairs [fixed|cycling|calloc|loop-fixed|loop-cycling|loop-calloc N]\n");
    return 2;
  }
  run_shape(argv[1], atol(argv[2]));
  return 0;
}
