/* The benchmark suite's single program: one workload per run, under
   whatever malloc the process has (use LD_PRELOAD to pick one).

     suite WORKLOAD [PERCENT]

   PERCENT scales the workload's default amount of work (100); the runner's
   quick mode passes 10. See bench/README.md for what each one stresses. */
#include "bench.h"

#include <string.h>
#include <time.h>

int bench_percent = 100;

static const struct {
  const char *name;
  int (*run)(void);
} workloads[] = {
    {"symbolic", wl_symbolic},         {"logic", wl_logic},
    {"sweep", wl_sweep},               {"calloc", wl_calloc},
    {"realloc", wl_realloc},           {"cache-thrash", wl_cache_thrash},
    {"cache-scratch", wl_cache_scratch}, {"large", wl_large},
    {"thread-churn", wl_thread_churn}, {"mixed", wl_mixed},
};

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void rng_seed(rng_t *r, uint64_t seed) { /* splitmix64 of the seed, never 0 */
  uint64_t x = seed + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  r->s = (x ^ (x >> 31)) | 1;
}

size_t rnd_log_range(rng_t *r, size_t lo, size_t hi) {
  /* a random doubling between lo and hi, then a uniform size inside it */
  int span = 0;
  while ((lo << (span + 1)) <= hi && span < 62)
    span++;
  size_t base = lo << (rnd(r) % (uint64_t)(span + 1));
  size_t top = base * 2 - 1 < hi ? base * 2 - 1 : hi;
  return rnd_range(r, base, top);
}

_Noreturn void bench_oom(const char *what, size_t n) {
  fprintf(stderr, "suite: %s(%zu) returned NULL\n", what, n);
  abort();
}

void bench_add(tally_t *sum, const tally_t *t) {
  sum->allocs += t->allocs;
  sum->frees += t->frees;
  sum->bad += t->bad;
}

int bench_report(const char *name, double seconds, const tally_t *total, const char *extra) {
  int status = 0;
  if (total->allocs == 0) {
    fprintf(stderr, "suite: %s: nothing was allocated\n", name);
    status = 1;
  }
  if (total->allocs != total->frees) {
    fprintf(stderr, "suite: %s: %ld allocations but %ld frees\n", name, total->allocs, total->frees);
    status = 1;
  }
  if (total->bad != 0) {
    fprintf(stderr, "suite: %s: %ld blocks were damaged before their free\n", name, total->bad);
    status = 1;
  }
  printf("%s seconds=%.6f ops=%ld%s\n", name, seconds, total->allocs + total->frees, extra);
  fflush(stdout);
  return status;
}

long bench_scaled(long n) {
  long s = n / 100 * bench_percent + n % 100 * bench_percent / 100;
  return s < 1 ? 1 : s;
}

static void usage(void) {
  fprintf(stderr, "usage: suite WORKLOAD [PERCENT]\n  workloads:");
  for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
    fprintf(stderr, " %s", workloads[i].name);
  fprintf(stderr, "\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3)
    usage();
  if (argc == 3) {
    bench_percent = atoi(argv[2]);
    if (bench_percent < 1 || bench_percent > 10000)
      usage();
  }
  for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
    if (strcmp(argv[1], workloads[i].name) == 0)
      return workloads[i].run();
  usage();
}
