/* mixed: a long-running program's life, to compare peak RSS with the peak
   of what it really had allocated.

   Eight cycles, each with a different target of live bytes (8..96 MiB):
     grow    malloc until the live bytes reach the target;
     churn   steps that free a random block and malloc a new one, or realloc
             a block to a new size (one step in eight), keeping the live
             bytes near the target;
     shrink  free 85% of the blocks at random, leaving survivors scattered
             through the heap (fragmentation for the next cycle to reuse).
   Sizes: 60% 16..256 bytes, 30% 257..8 KiB, 9% 8..128 KiB, 1% 128 KiB..2 MiB.

   The live bytes (the sizes requested) are tracked exactly; the program
   prints their peak as peak_live_kib=, for the runner to set against the
   peak RSS. Checks: marker bytes on every block (bench.h), checked before
   each free and realloc. */
#include "bench.h"

#include <string.h>

enum { CYCLES = 8, MAX_BLOCKS = 1 << 20 };

typedef struct {
  unsigned char *p;
  size_t n;
} block_t;

static block_t *blocks;
static size_t nblocks;
static size_t live, peak_live;
static tally_t tally;

static size_t mixed_size(rng_t *r) {
  uint64_t x = rnd(r) % 100;
  if (x < 60)
    return rnd_range(r, 16, 256);
  if (x < 90)
    return rnd_log_range(r, 257, 8192);
  if (x < 99)
    return rnd_log_range(r, 8193, 128 * 1024);
  return rnd_log_range(r, 128 * 1024 + 1, 2 << 20);
}

/* One byte written per page past the first (the markers cover the first):
   the pages a program would use are resident, so RSS means something. */
static void touch_pages(unsigned char *p, size_t n) {
  for (size_t off = 4096 + 1; off < n - 1; off += 4096)
    if (off != n / 2)
      p[off] = 0x5a;
}

static void add_block(rng_t *r) {
  size_t n = mixed_size(r);
  blocks[nblocks].p = bench_malloc(n, &tally);
  touch_pages(blocks[nblocks].p, n);
  blocks[nblocks].n = n;
  nblocks++;
  live += n;
  if (live > peak_live)
    peak_live = live;
}

static void drop_block(size_t k) {
  bench_free(blocks[k].p, blocks[k].n, &tally);
  live -= blocks[k].n;
  blocks[k] = blocks[--nblocks];
}

static void resize_block(size_t k, size_t n) {
  block_t *b = &blocks[k];
  if (!bench_intact(b->p, b->n))
    tally.bad++;
  size_t mid = b->n / 2; /* a marker byte the new size still covers, or not */
  unsigned char *p = realloc(b->p, n);
  if (p == NULL)
    bench_oom("realloc", n);
  if (p[0] != (unsigned char)b->n || (mid < n && p[mid] != (unsigned char)~tag_of(b->n)))
    tally.bad++;
  live = live - b->n + n;
  if (live > peak_live)
    peak_live = live;
  b->p = p;
  b->n = n;
  bench_mark(p, n);
  touch_pages(p, n);
}

int wl_mixed(void) {
  static const size_t target_mib[CYCLES] = {32, 8, 96, 16, 64, 24, 80, 12};
  long churn = bench_scaled(5000000);
  rng_t r;
  rng_seed(&r, 505);
  blocks = malloc(sizeof *blocks * MAX_BLOCKS);
  if (blocks == NULL)
    bench_oom("malloc", sizeof *blocks * MAX_BLOCKS);

  double t0 = bench_now();
  for (int cycle = 0; cycle < CYCLES; cycle++) {
    size_t target = (target_mib[cycle] << 20) * (size_t)bench_percent / 100;
    while (live < target && nblocks < MAX_BLOCKS)
      add_block(&r);
    for (long s = 0; s < churn / CYCLES; s++) {
      size_t k = rnd(&r) % nblocks;
      if (rnd(&r) % 8 == 0) {
        resize_block(k, mixed_size(&r));
      } else {
        drop_block(k);
        while (live < target && nblocks < MAX_BLOCKS)
          add_block(&r);
      }
    }
    for (size_t n = nblocks * 85 / 100; n > 0; n--)
      drop_block(rnd(&r) % nblocks);
  }
  while (nblocks > 0)
    drop_block(nblocks - 1);
  double elapsed = bench_now() - t0;
  free(blocks);
  char extra[64];
  snprintf(extra, sizeof extra, " peak_live_kib=%zu", peak_live >> 10);
  return bench_report("mixed", elapsed, &tally, extra);
}
