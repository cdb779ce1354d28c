/* Size-class sweeps: every size 1..4096 and the powers of two up to 64 MiB,
   through malloc (sweep), calloc (calloc) and realloc growth chains
   (realloc).

   sweep    for each size 1..4096: 64 blocks malloc'd, marked, checked and
            freed (even ones first, then odd: the bins see both orders);
            then for each power of two 1 B..64 MiB: 4 blocks, their pages
            sampled. The whole sweep runs several times.
   calloc   the same sweep with calloc: each block checked to be all zero
            (every byte up to 4 KiB, a word a page beyond), then dirtied the
            same way before its free, so memory an allocator hands out again
            really needs zeroing.
   realloc  growth chains, eight at a time, interleaved so neighbours get in
            each other's way: string-building chains (1 to 4 KiB by 1..32
            bytes) and vector-like chains (x1.5 up to 1 MiB, one in eight up
            to 64 MiB). The bytes appended are written (every byte up to
            4 KiB, then one in 512: every page); after each realloc the old
            last byte, a middle one and the first are checked, and all the
            written bytes of a chain are checked before its free. */
#include "bench.h"

#include <string.h>

enum { SMALL_MAX = 4096, PER_SIZE = 64, POW2_MAX_SHIFT = 26, PER_POW2 = 4, PAGE = 4096 };

static tally_t tally;

/* Pages of a large block: every page of the first 64 KiB, then one in 16. */
static size_t next_sample(size_t off) {
  return off < 65536 ? off + PAGE : off + 16 * PAGE;
}

static void write_samples(unsigned char *p, size_t n) {
  for (size_t off = 0; off < n; off = next_sample(off))
    p[off] = (unsigned char)(off >> 12);
}

static int samples_equal(const unsigned char *p, size_t n, int zero) {
  for (size_t off = 0; off < n; off = next_sample(off))
    if (p[off] != (zero ? 0 : (unsigned char)(off >> 12)))
      return 0;
  return 1;
}

static int all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return 0;
  return 1;
}

static void *get(size_t n, int zeroed) {
  unsigned char *p = zeroed ? calloc(1, n) : malloc(n);
  if (p == NULL)
    bench_oom(zeroed ? "calloc" : "malloc", n);
  tally.allocs++;
  if (zeroed && !(n <= SMALL_MAX ? all_zero(p, n) : samples_equal(p, n, 1) && p[n - 1] == 0))
    tally.bad++;
  if (n <= SMALL_MAX) {
    if (zeroed)
      memset(p, 0xa5, n);
    bench_mark(p, n);
  } else {
    write_samples(p, n);
    p[n - 1] = tag_of(n);
  }
  return p;
}

static void put(void *ptr, size_t n) {
  unsigned char *p = ptr;
  if (!(n <= SMALL_MAX ? bench_intact(p, n) : samples_equal(p, n, 0) && p[n - 1] == tag_of(n)))
    tally.bad++;
  free(p);
  tally.frees++;
}

static void sweep(int zeroed, int passes, int pow2_passes) {
  void *blk[PER_SIZE];
  for (int pass = 0; pass < passes; pass++) {
    for (size_t n = 1; n <= SMALL_MAX; n++) {
      for (int i = 0; i < PER_SIZE; i++)
        blk[i] = get(n, zeroed);
      for (int i = 0; i < PER_SIZE; i += 2)
        put(blk[i], n);
      for (int i = 1; i < PER_SIZE; i += 2)
        put(blk[i], n);
    }
  }
  for (int pass = 0; pass < pow2_passes; pass++) {
    for (int shift = 0; shift <= POW2_MAX_SHIFT; shift++) {
      size_t n = (size_t)1 << shift;
      for (int i = 0; i < PER_POW2; i++)
        blk[i] = get(n, zeroed);
      for (int i = 0; i < PER_POW2; i++)
        put(blk[i], n);
    }
  }
}

int wl_sweep(void) {
  int passes = (int)bench_scaled(8), pow2 = (int)bench_scaled(20);
  double t0 = bench_now();
  sweep(0, passes, pow2);
  return bench_report("sweep", bench_now() - t0, &tally, "");
}

int wl_calloc(void) {
  int passes = (int)bench_scaled(3), pow2 = (int)bench_scaled(10);
  double t0 = bench_now();
  sweep(1, passes, pow2);
  return bench_report("calloc", bench_now() - t0, &tally, "");
}

/* ---------------------------------------------------------------- realloc */

enum { CHAINS = 8 };

typedef struct {
  unsigned char *p;
  size_t n, cap; /* current size, the size the chain stops at */
  int additive;  /* string-building steps rather than x1.5 */
  unsigned char seed;
} chain_t;

static unsigned char byte_at(const chain_t *c, size_t i) {
  return (unsigned char)(i * 7 + (i >> 9) + c->seed);
}

/* The bytes a chain writes: all of the first 4 KiB, then one in 512. */
enum { DENSE = 4096, SPARSE_STEP = 512 };

static size_t first_written_at_or_after(size_t i) {
  return i <= DENSE ? i : (i + SPARSE_STEP - 1) / SPARSE_STEP * SPARSE_STEP;
}

static size_t next_written(size_t i) {
  return i < DENSE ? i + 1 : i + SPARSE_STEP;
}

/* First byte, a written one near the middle, the last one (of size n). */
static int chain_intact(const chain_t *c, size_t n) {
  size_t mid = n / 2 < DENSE ? n / 2 : n / 2 / SPARSE_STEP * SPARSE_STEP;
  return c->p[0] == byte_at(c, 0) && c->p[mid] == byte_at(c, mid) && c->p[n - 1] == byte_at(c, n - 1);
}

static void chain_write(chain_t *c, size_t from, size_t to) {
  for (size_t i = first_written_at_or_after(from); i < to; i = next_written(i))
    c->p[i] = byte_at(c, i);
  c->p[to - 1] = byte_at(c, to - 1);
}

static void chain_start(chain_t *c, rng_t *r) {
  uint64_t x = rnd(r);
  c->additive = (x & 1) != 0;
  c->cap = c->additive ? SMALL_MAX : (x & 126) == 0 ? (size_t)64 << 20 : (size_t)1 << 20;
  c->seed = (unsigned char)(x >> 8);
  c->n = 1 + (x >> 16) % 16;
  c->p = malloc(c->n);
  if (c->p == NULL)
    bench_oom("malloc", c->n);
  tally.allocs++;
  chain_write(c, 0, c->n);
}

/* One growth step; returns 0 when the chain is complete (and freed). */
static int chain_grow(chain_t *c, rng_t *r) {
  size_t n = c->additive ? c->n + rnd_range(r, 1, 32) : c->n + c->n / 2 + rnd_range(r, 1, 64);
  if (n > c->cap) {
    for (size_t i = 0; i < c->n; i = next_written(i))
      if (c->p[i] != byte_at(c, i)) {
        tally.bad++;
        break;
      }
    free(c->p);
    tally.frees++;
    return 0;
  }
  unsigned char *p = realloc(c->p, n);
  if (p == NULL)
    bench_oom("realloc", n);
  c->p = p;
  if (!chain_intact(c, c->n))
    tally.bad++;
  chain_write(c, c->n, n);
  c->n = n;
  return 1;
}

int wl_realloc(void) {
  long chains = bench_scaled(3000);
  rng_t r;
  rng_seed(&r, 303);
  chain_t live[CHAINS];
  long started = 0;
  double t0 = bench_now();
  for (int i = 0; i < CHAINS; i++, started++)
    chain_start(&live[i], &r);
  int active = CHAINS;
  while (active > 0) {
    for (int i = 0; i < CHAINS; i++) {
      if (live[i].p == NULL || chain_grow(&live[i], &r))
        continue;
      if (started < chains) {
        chain_start(&live[i], &r);
        started++;
      } else {
        live[i].p = NULL;
        active--;
      }
    }
  }
  return bench_report("realloc", bench_now() - t0, &tally, "");
}
