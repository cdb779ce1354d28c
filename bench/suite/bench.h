/* Shared pieces of the benchmark suite (the files of bench/suite/): a clock, a random
   generator, and checked allocation.

   Checked allocation is what keeps a workload from measuring nothing: every
   block gets marker bytes (first, middle, last) derived from its size when
   it is allocated, the markers are checked before the block is freed, and
   each thread tallies its mallocs, frees and damaged blocks. bench_report()
   fails the run when the tallies do not balance, when a block was damaged,
   or when nothing was allocated at all. */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ clock */

double bench_now(void);

/* ----------------------------------------------------------------- random */

typedef struct {
  uint64_t s;
} rng_t;

void rng_seed(rng_t *r, uint64_t seed);

static inline uint64_t rnd(rng_t *r) { /* xorshift64* */
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* uniform in lo..hi (inclusive) */
static inline size_t rnd_range(rng_t *r, size_t lo, size_t hi) {
  return lo + (size_t)(rnd(r) % (uint64_t)(hi - lo + 1));
}

/* log-uniform in lo..hi: as many sizes per doubling, like real programs */
size_t rnd_log_range(rng_t *r, size_t lo, size_t hi);

/* ------------------------------------------------------ checked allocation */

/* One per thread, on its own cache line. */
typedef struct {
  alignas(64) long allocs;
  long frees;
  long bad; /* blocks whose markers had changed when they were freed */
} tally_t;

static inline unsigned char tag_of(size_t n) {
  return (unsigned char)((n * 131u) ^ (n >> 8) ^ 0xa5u);
}

/* Marker bytes for a block of n >= 1 bytes: the first byte, and for n >= 3
   the middle and the last. */
static inline void bench_mark(unsigned char *p, size_t n) {
  p[0] = (unsigned char)n;
  if (n >= 3) {
    p[n / 2] = (unsigned char)~tag_of(n);
    p[n - 1] = tag_of(n);
  }
}

static inline int bench_intact(const unsigned char *p, size_t n) {
  return p[0] == (unsigned char)n && (n < 3 || (p[n - 1] == tag_of(n) && p[n / 2] == (unsigned char)~tag_of(n)));
}

_Noreturn void bench_oom(const char *what, size_t n);

static inline void *bench_malloc(size_t n, tally_t *t) {
  unsigned char *p = malloc(n);
  if (p == NULL)
    bench_oom("malloc", n);
  bench_mark(p, n);
  t->allocs++;
  return p;
}

static inline void bench_free(void *ptr, size_t n, tally_t *t) {
  if (!bench_intact(ptr, n))
    t->bad++;
  free(ptr);
  t->frees++;
}

/* Adds one thread's tally to a sum. */
void bench_add(tally_t *sum, const tally_t *t);

/* Prints the result line and returns the exit status: 0, or 1 with a
   message on stderr when the tally does not balance, a block was damaged or
   nothing was allocated. `extra` ("" or " key=value...") is appended.

     NAME seconds=S ops=MALLOCS+FREES[ extra]                              */
int bench_report(const char *name, double seconds, const tally_t *total, const char *extra);

/* Scale a default amount of work by the percentage given on the command
   line (100 by default; BENCH_QUICK runs pass 10), at least 1. */
long bench_scaled(long n);
extern int bench_percent;

/* ------------------------------------------------------------- workloads */

/* Each runs one workload to the end, prints its result line (bench_report)
   and returns the exit status. One file each; see main.c for the list. */
int wl_symbolic(void);
int wl_logic(void);
int wl_sweep(void);
int wl_calloc(void);
int wl_realloc(void);
int wl_cache_thrash(void);
int wl_cache_scratch(void);
int wl_large(void);
int wl_thread_churn(void);
int wl_mixed(void);

#endif
