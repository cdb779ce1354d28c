/* logic: a two-level logic minimiser's churn (espresso-like).

   A cube over V variables is a bit vector with two bits per variable (01:
   x', 10: x, 11: don't care, 00: empty); a cover is a growable array of
   cubes. Each problem draws V (8..960, so cubes of 16..248 bytes), an on-set
   cover and an off-set, then runs expand passes: every cube is copied, some
   of its literals raised to don't-care, and each raise is tested against
   off-set cubes by computing the intersection into a fresh cube that is
   freed at once; consensus cubes with random partners are tried and kept
   when not void. The new cover replaces the old one (which is freed whole),
   covers grow by realloc. Most objects live for microseconds, a cover for
   one pass.

   Checks: every cube carries a seal (its word count and address) checked
   before its free, and the expand step re-checks that a cube still contains
   the cube it came from. */
#include "bench.h"

#include <string.h>

typedef struct {
  uint32_t nwords;
  uint32_t seal;
  uint64_t bits[];
} cube_t;

typedef struct {
  cube_t **c;
  size_t n, cap;
} cover_t;

enum { OFFSET_CUBES = 16, PASSES = 3, MAX_COVER = 300, RECENT = 6 };

static tally_t tally;

static uint32_t seal_of(const cube_t *c, uint32_t nwords) {
  uint64_t x = ((uint64_t)(uintptr_t)c >> 4) * 0x9e3779b97f4a7c15ull;
  return (uint32_t)(x >> 32) ^ nwords;
}

static cube_t *cube_new(uint32_t nwords) {
  size_t n = sizeof(cube_t) + sizeof(uint64_t) * nwords;
  cube_t *c = malloc(n);
  if (c == NULL)
    bench_oom("malloc", n);
  tally.allocs++;
  c->nwords = nwords;
  c->seal = seal_of(c, nwords);
  return c;
}

static void cube_free(cube_t *c) {
  if (c->seal != seal_of(c, c->nwords))
    tally.bad++;
  free(c);
  tally.frees++;
}

static cube_t *cube_copy(const cube_t *a) {
  cube_t *c = cube_new(a->nwords);
  memcpy(c->bits, a->bits, sizeof(uint64_t) * a->nwords);
  return c;
}

/* A variable whose two bits are 00 makes the cube void (empty). */
static int cube_void(const cube_t *c, uint32_t nvars) {
  for (uint32_t w = 0; w < c->nwords; w++) {
    uint64_t x = c->bits[w];
    uint64_t any = (x | (x >> 1)) & 0x5555555555555555ull;
    uint64_t want = w + 1 < c->nwords || nvars % 32 == 0 ? 0x5555555555555555ull
                                                          : 0x5555555555555555ull >> (64 - 2 * (nvars % 32));
    if ((any & want) != want)
      return 1;
  }
  return 0;
}

static cube_t *cube_and(const cube_t *a, const cube_t *b) {
  cube_t *c = cube_new(a->nwords);
  for (uint32_t w = 0; w < a->nwords; w++)
    c->bits[w] = a->bits[w] & b->bits[w];
  return c;
}

/* Consensus: the intersection with the one conflicting variable (if any)
   raised; void when they conflict in more than one. */
static cube_t *cube_consensus(const cube_t *a, const cube_t *b, uint32_t nvars) {
  cube_t *c = cube_and(a, b);
  uint32_t conflicts = 0, where = 0;
  for (uint32_t v = 0; v < nvars && conflicts < 2; v++) {
    uint64_t bits = (c->bits[v / 32] >> (2 * (v % 32))) & 3;
    if (bits == 0) {
      conflicts++;
      where = v;
    }
  }
  if (conflicts == 1)
    c->bits[where / 32] |= 3ull << (2 * (where % 32));
  return c;
}

static int contains(const cube_t *big, const cube_t *small) {
  for (uint32_t w = 0; w < big->nwords; w++)
    if (small->bits[w] & ~big->bits[w])
      return 0;
  return 1;
}

static void cover_add(cover_t *f, cube_t *c) {
  if (f->n == f->cap) {
    size_t cap = f->cap ? 2 * f->cap : 4;
    cube_t **p = realloc(f->c, sizeof *p * cap);
    if (p == NULL)
      bench_oom("realloc", sizeof *p * cap);
    if (f->c == NULL)
      tally.allocs++;
    f->c = p;
    f->cap = cap;
  }
  f->c[f->n++] = c;
}

static void cover_free(cover_t *f) {
  for (size_t i = 0; i < f->n; i++)
    cube_free(f->c[i]);
  if (f->c != NULL) {
    free(f->c);
    tally.frees++;
  }
  *f = (cover_t){0};
}

static cube_t *random_cube(rng_t *r, uint32_t nvars, int care_one_in) {
  cube_t *c = cube_new((nvars + 31) / 32);
  memset(c->bits, 0, sizeof(uint64_t) * c->nwords);
  for (uint32_t v = 0; v < nvars; v++) {
    uint64_t x = rnd(r);
    uint64_t bits = x % (uint64_t)care_one_in ? 3 : 1 + ((x >> 20) & 1);
    c->bits[v / 32] |= bits << (2 * (v % 32));
  }
  return c;
}

/* Not contained in one of the last few cubes added to f. */
static int is_new(const cover_t *f, const cube_t *c) {
  for (size_t i = f->n; i > 0 && i + RECENT > f->n; i--)
    if (contains(f->c[i - 1], c))
      return 0;
  return 1;
}

static void expand_pass(rng_t *r, cover_t *f, const cover_t *off, uint32_t nvars) {
  cover_t out = {0};
  for (size_t i = 0; i < f->n; i++) {
    const cube_t *a = f->c[i];
    cube_t *e = cube_copy(a);
    for (int k = 0; k < 4; k++) { /* raise a few literals while the off-set allows */
      uint32_t v = (uint32_t)(rnd(r) % nvars);
      uint64_t *word = &e->bits[v / 32], mask = 3ull << (2 * (v % 32));
      if ((*word & mask) == mask)
        continue;
      uint64_t before = *word;
      *word |= mask;
      for (int j = 0; j < 4; j++) {
        cube_t *x = cube_and(e, off->c[rnd(r) % off->n]);
        int hit = !cube_void(x, nvars);
        cube_free(x);
        if (hit) {
          *word = before;
          break;
        }
      }
    }
    if (!contains(e, a))
      tally.bad++; /* an expansion only ever adds points */
    if (is_new(&out, e))
      cover_add(&out, e);
    else
      cube_free(e);
    if (rnd(r) % 4 == 0) {
      cube_t *c = cube_consensus(a, f->c[rnd(r) % f->n], nvars);
      if (!cube_void(c, nvars) && is_new(&out, c) && out.n < MAX_COVER)
        cover_add(&out, c);
      else
        cube_free(c);
    }
  }
  cover_free(f);
  *f = out;
}

int wl_logic(void) {
  long problems = bench_scaled(1500);
  rng_t r;
  rng_seed(&r, 202);
  double t0 = bench_now();
  for (long p = 0; p < problems; p++) {
    uint32_t nvars = (uint32_t)rnd_log_range(&r, 8, 960);
    cover_t on = {0}, off = {0};
    size_t n = rnd_range(&r, 40, 200);
    for (size_t i = 0; i < n; i++)
      cover_add(&on, random_cube(&r, nvars, 5));
    for (int i = 0; i < OFFSET_CUBES; i++)
      cover_add(&off, random_cube(&r, nvars, 2));
    for (int pass = 0; pass < PASSES; pass++)
      expand_pass(&r, &on, &off, nvars);
    cover_free(&on);
    cover_free(&off);
  }
  double elapsed = bench_now() - t0;
  return bench_report("logic", elapsed, &tally, "");
}
