/* tst-contract: the libptmalloc-rs behaviour contract.

   Every check here holds for glibc 2.36's malloc on x86_64 (the
   reference), except the EXTENSIONS group, which tests where
   libptmalloc-rs deliberately differs; those checks only run with
   PTMALLOC_RS_TEST_EXT=1 and are reported as skipped otherwise.

   Each group runs in its own forked child (see tst-support.h), so
   mallopt settings and heap state do not leak between groups.  */

#include "tst-support.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>

#ifndef M_MXFAST
# define M_MXFAST 1
#endif
#ifndef M_TRIM_THRESHOLD
# define M_TRIM_THRESHOLD -1
#endif
#ifndef M_TOP_PAD
# define M_TOP_PAD -2
#endif
#ifndef M_MMAP_THRESHOLD
# define M_MMAP_THRESHOLD -3
#endif
#ifndef M_MMAP_MAX
# define M_MMAP_MAX -4
#endif
#ifndef M_CHECK_ACTION
# define M_CHECK_ACTION -5
#endif
#ifndef M_PERTURB
# define M_PERTURB -6
#endif
#ifndef M_ARENA_TEST
# define M_ARENA_TEST -7
#endif
#ifndef M_ARENA_MAX
# define M_ARENA_MAX -8
#endif

/* C23 functions glibc 2.36 lacks.  Only declared, never called by name:
   they are looked up with dlsym so that this program links against
   glibc too.  */
void free_sized (void *, size_t);
void free_aligned_sized (void *, size_t, size_t);

#define KiB ((size_t) 1024)
#define MiB (1024 * KiB)

/* Sizes no allocation can satisfy; all but the first exceed
   PTRDIFF_MAX.  */
static const size_t huge_sizes[] = {
  (size_t) PTRDIFF_MAX,
  (size_t) PTRDIFF_MAX + 1,
  (size_t) PTRDIFF_MAX + 4096,
  SIZE_MAX / 2 + 1,
  SIZE_MAX - 4096,
  SIZE_MAX - 15,
  SIZE_MAX,
};
#define N_HUGE (sizeof huge_sizes / sizeof huge_sizes[0])

/* glibc's usable size of a heap chunk for a request of N bytes:
   chunk = max (32, align16 (N + 8)), usable = chunk - 8.  */
static size_t
heap_usable (size_t n)
{
  size_t chunk = (n + 8 + 15) & ~(size_t) 15;
  if (chunk < 32)
    chunk = 32;
  return chunk - 8;
}

static size_t
page_size (void)
{
  return (size_t) sysconf (_SC_PAGESIZE);
}

/* ------------------------------------------------------------------ */

static void
group_alignment (void)
{
  struct tst_acc align = TST_ACC_INIT, usable = TST_ACC_INIT;
  struct tst_acc exact = TST_ACC_INIT;
  for (size_t n = 0; n <= 5000; n++)
    {
      unsigned char *p = malloc (n);
      if (p == NULL)
        {
          tst_acc_fail (&align, "malloc (%zu) returned NULL", n);
          continue;
        }
      size_t us = malloc_usable_size (p);
      ACC_CHECK (&align, tst_aligned (p, 16), "malloc (%zu) = %p", n,
                 (void *) p);
      ACC_CHECK (&usable, us >= n, "malloc_usable_size (malloc (%zu)) = %zu",
                 n, us);
      ACC_CHECK (&exact, us == heap_usable (n),
                 "malloc_usable_size (malloc (%zu)) = %zu, glibc gives %zu",
                 n, us, heap_usable (n));
      memset (p, 0xcd, us);
      free (p);
    }
  tst_acc_report (&align, "malloc (n) is 16-aligned for n = 0..5000 "
                  "(malloc/free in turn)");
  tst_acc_report (&usable, "malloc_usable_size (malloc (n)) >= n for "
                  "n = 0..5000");
  tst_acc_report (&exact, "malloc_usable_size (malloc (n)) == "
                  "max (32, align16 (n + 8)) - 8 for n = 0..5000");

  /* The same with every block kept live, so the heap fills up.  */
  enum { KEPT = 5001 / 7 + 1 };
  static void *kept[KEPT];
  struct tst_acc kalign = TST_ACC_INIT, kusable = TST_ACC_INIT;
  size_t k = 0;
  for (size_t n = 0; n <= 5000; n += 7, k++)
    {
      kept[k] = malloc (n);
      ACC_CHECK (&kalign, kept[k] != NULL && tst_aligned (kept[k], 16),
                 "malloc (%zu) = %p", n, kept[k]);
      ACC_CHECK (&kusable, kept[k] != NULL
                 && malloc_usable_size (kept[k]) >= n,
                 "malloc_usable_size (malloc (%zu)) = %zu", n,
                 kept[k] ? malloc_usable_size (kept[k]) : 0);
      if (kept[k] != NULL)
        tst_fill (kept[k], n, n);
    }
  struct tst_acc kintact = TST_ACC_INIT;
  k = 0;
  for (size_t n = 0; n <= 5000; n += 7, k++)
    {
      if (kept[k] != NULL)
        {
          size_t bad = tst_verify (kept[k], n, n);
          ACC_CHECK (&kintact, bad == n,
                     "block of %zu bytes damaged at offset %zu", n, bad);
        }
      free (kept[k]);
    }
  tst_acc_report (&kalign, "live blocks of 0..5000 bytes are 16-aligned");
  tst_acc_report (&kusable, "live blocks have usable size >= request");
  tst_acc_report (&kintact, "live blocks do not overlap (patterns intact)");

  static const size_t large[] = { 65536, 131064, 131072, 200000, 1 * MiB,
                                  5 * MiB, 40 * MiB, 256 * MiB };
  struct tst_acc lalign = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
    {
      unsigned char *p = malloc (large[i]);
      ACC_CHECK (&lalign, p != NULL && tst_aligned (p, 16)
                 && malloc_usable_size (p) >= large[i],
                 "malloc (%zu) = %p, usable %zu", large[i], (void *) p,
                 p ? malloc_usable_size (p) : 0);
      if (p != NULL)
        {
          p[0] = 1;
          p[large[i] - 1] = 2;
        }
      free (p);
    }
  tst_acc_report (&lalign, "large blocks (64 KiB .. 256 MiB) are 16-aligned "
                  "with usable size >= request");

  void *p24 = malloc (24), *p25 = malloc (25);
  CHECK_EQ (malloc_usable_size (p24), 24, "malloc_usable_size (malloc (24)) "
            "== 24");
  CHECK_EQ (malloc_usable_size (p25), 40, "malloc_usable_size (malloc (25)) "
            "== 40");
  free (p24);
  free (p25);
  CHECK_EQ (malloc_usable_size (NULL), 0, "malloc_usable_size (NULL) == 0");
}

static void
group_malloc0 (void)
{
  void *a = malloc (0), *b = malloc (0);
  CHECK (a != NULL && b != NULL, "malloc (0) returns non-NULL");
  CHECK (a != b, "two malloc (0) calls return distinct pointers");
  CHECK (tst_aligned (a, 16) && tst_aligned (b, 16),
         "malloc (0) is 16-aligned");
  CHECK_EQ (malloc_usable_size (a), 24, "malloc_usable_size (malloc (0)) "
            "== 24 (minimum chunk)");
  free (a);
  free (b);

  enum { N = 100 };
  void *v[N];
  struct tst_acc uniq = TST_ACC_INIT;
  for (int i = 0; i < N; i++)
    {
      v[i] = malloc (0);
      ACC_CHECK (&uniq, v[i] != NULL, "malloc (0) #%d returned NULL", i);
      for (int j = 0; j < i; j++)
        ACC_CHECK (&uniq, v[i] == NULL || v[i] != v[j],
                   "malloc (0) #%d == #%d", i, j);
    }
  for (int i = 0; i < N; i++)
    free (v[i]);
  tst_acc_report (&uniq, "%d live malloc (0) blocks are all distinct", N);
  CHECK (true, "malloc (0) blocks are freeable");
}

/* ------------------------------------------------------------------ */

static void
group_huge (void)
{
  struct tst_acc m = TST_ACC_INIT, c1 = TST_ACC_INIT, c2 = TST_ACC_INIT;
  struct tst_acc rn = TST_ACC_INIT, rp = TST_ACC_INIT, ma = TST_ACC_INIT;
  struct tst_acc aa = TST_ACC_INIT, va = TST_ACC_INIT, pv = TST_ACC_INIT;
  struct tst_acc pm = TST_ACC_INIT;

#define EXPECT_ENOMEM(acc, call, n)                                      \
  do                                                                     \
    {                                                                    \
      errno = 0;                                                         \
      void *r_ = (call);                                                 \
      int e_ = errno;                                                    \
      ACC_CHECK ((acc), r_ == NULL && e_ == ENOMEM,                      \
                 "%s with n = %#zx returned %p, errno %d (%s)", #call,   \
                 (size_t) (n), r_, e_, strerror (e_));                   \
      if (r_ != NULL)                                                    \
        free (r_);                                                       \
    }                                                                    \
  while (0)

  for (size_t i = 0; i < N_HUGE; i++)
    {
      size_t n = tst_opaque_size (huge_sizes[i]);
      EXPECT_ENOMEM (&m, malloc (n), n);
      EXPECT_ENOMEM (&c1, calloc (1, n), n);
      EXPECT_ENOMEM (&c2, calloc (n, 1), n);
      EXPECT_ENOMEM (&rn, realloc (NULL, n), n);
      EXPECT_ENOMEM (&ma, memalign (64, n), n);
      EXPECT_ENOMEM (&aa, aligned_alloc (64, n), n);
      EXPECT_ENOMEM (&va, valloc (n), n);
      EXPECT_ENOMEM (&pv, pvalloc (n), n);

      unsigned char *old = malloc (100);
      tst_fill (old, 100, i);
      errno = 0;
      void *r = realloc (old, n);
      int e = errno;
      ACC_CHECK (&rp, r == NULL && e == ENOMEM && tst_verify (old, 100, i)
                 == 100, "realloc (p, %#zx) returned %p, errno %d", n, r, e);
      free (r != NULL ? r : old);

      void *q = (void *) 1;
      int rc = posix_memalign (&q, 64, n);
      ACC_CHECK (&pm, rc == ENOMEM && q == (void *) 1,
                 "posix_memalign (&q, 64, %#zx) returned %d", n, rc);
      if (rc == 0)
        free (q);
    }
#undef EXPECT_ENOMEM

  tst_acc_report (&m, "malloc (huge) returns NULL with errno ENOMEM");
  tst_acc_report (&c1, "calloc (1, huge) returns NULL with errno ENOMEM");
  tst_acc_report (&c2, "calloc (huge, 1) returns NULL with errno ENOMEM");
  tst_acc_report (&rn, "realloc (NULL, huge) returns NULL with errno ENOMEM");
  tst_acc_report (&rp, "realloc (p, huge) returns NULL with errno ENOMEM, "
                  "p intact");
  tst_acc_report (&ma, "memalign (64, huge) returns NULL with errno ENOMEM");
  tst_acc_report (&aa, "aligned_alloc (64, huge) returns NULL with errno "
                  "ENOMEM");
  tst_acc_report (&va, "valloc (huge) returns NULL with errno ENOMEM");
  tst_acc_report (&pv, "pvalloc (huge) returns NULL with errno ENOMEM");
  tst_acc_report (&pm, "posix_memalign (&p, 64, huge) returns ENOMEM and "
                  "leaves p alone");
}

/* ------------------------------------------------------------------ */

static void
group_calloc (void)
{
  static const size_t pairs[][2] = {
    { SIZE_MAX / 2 + 1, 2 },
    { 2, SIZE_MAX / 2 + 1 },
    { (size_t) 1 << 33, (size_t) 1 << 33 },
    { SIZE_MAX, SIZE_MAX },
    { SIZE_MAX, 2 },
    { 65537, 281470681808897 }, /* product wraps to 2^64 + 1 */
    { (size_t) PTRDIFF_MAX / 2 + 1, 2 }, /* PTRDIFF_MAX + 1, no wrap */
  };
  struct tst_acc ov = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
    {
      size_t a = tst_opaque_size (pairs[i][0]);
      size_t b = tst_opaque_size (pairs[i][1]);
      errno = 0;
      void *p = calloc (a, b);
      int e = errno;
      ACC_CHECK (&ov, p == NULL && e == ENOMEM,
                 "calloc (%#zx, %#zx) returned %p, errno %d", a, b, p, e);
      free (p);
    }
  tst_acc_report (&ov, "calloc with n * size overflowing or > PTRDIFF_MAX "
                  "returns NULL with errno ENOMEM");

  void *z1 = calloc (0, 10), *z2 = calloc (10, 0);
  CHECK (z1 != NULL && z2 != NULL && z1 != z2,
         "calloc (0, 10) and calloc (10, 0) return distinct non-NULL");
  free (z1);
  free (z2);

  /* Fresh memory is zero.  */
  static const size_t sizes[] = { 1, 8, 24, 25, 100, 128, 1000, 1032, 1033,
                                  5000, 65536, 131072, 300000, 4 * MiB };
  struct tst_acc fresh = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    {
      unsigned char *p = calloc (1, sizes[i]);
      size_t bad = p ? tst_first_not (p, sizes[i], 0) : 0;
      ACC_CHECK (&fresh, p != NULL && bad == sizes[i],
                 "calloc (1, %zu) = %p, byte %zu not zero", sizes[i],
                 (void *) p, bad);
      free (p);
    }
  tst_acc_report (&fresh, "calloc returns zeroed memory (1 byte .. 4 MiB)");

  /* A dirtied, freed block of the same size that calloc gets back must
     be cleared.  glibc's calloc bypasses the tcache, so for tcache sizes
     fill the tcache first; the dirty block then sits in a fastbin or the
     unsorted bin where calloc finds it.  */
  static const size_t reuse[] = { 24, 100, 500, 1000, 5000, 300000 };
  for (size_t i = 0; i < sizeof reuse / sizeof reuse[0]; i++)
    {
      size_t n = reuse[i];
      void *fill[7];
      for (int j = 0; j < 7; j++)
        fill[j] = malloc (n);
      unsigned char *dirty = malloc (n);
      void *guard = malloc (16);
      memset (dirty, 0xAA, malloc_usable_size (dirty));
      for (int j = 0; j < 7; j++)
        free (fill[j]);
      free (dirty);
      unsigned char *p = calloc (1, n);
      size_t bad = p ? tst_first_not (p, n, 0) : 0;
      if (p == dirty)
        tst_info ("calloc (1, %zu) reused the dirtied block", n);
      CHECK (p != NULL && bad == n, "calloc (1, %zu) after freeing a dirtied "
             "block of that size is zeroed%s", n,
             p == dirty ? " (same block)" : "");
      if (p != NULL && bad != n)
        tst_info ("first non-zero byte at offset %zu: %#x", bad, p[bad]);
      free (p);
      free (guard);
    }

  /* Dirty memory merged back into the top chunk.  */
  static const size_t top_sizes[] = { 5000, 70000, 120000 };
  for (size_t i = 0; i < sizeof top_sizes / sizeof top_sizes[0]; i++)
    {
      size_t n = top_sizes[i];
      unsigned char *dirty = malloc (n);
      memset (dirty, 0xAA, n);
      free (dirty);
      unsigned char *p = calloc (n, 1);
      size_t bad = p ? tst_first_not (p, n, 0) : 0;
      CHECK (p != NULL && bad == n, "calloc (%zu, 1) carved from a top chunk "
             "that held dirty data is zeroed", n);
      free (p);
    }

  /* Large: the second round is served from the heap because freeing the
     first mmapped block raised glibc's dynamic mmap threshold.  */
  for (int round = 0; round < 3; round++)
    {
      unsigned char *dirty = malloc (300000);
      memset (dirty, 0xAA, 300000);
      free (dirty);
      unsigned char *p = calloc (300000, 1);
      size_t bad = p ? tst_first_not (p, 300000, 0) : 0;
      CHECK (p != NULL && bad == 300000, "calloc (300000, 1) after "
             "malloc/dirty/free of the same size is zeroed (round %d)",
             round);
      free (p);
    }

  /* Churn: many dirty blocks of mixed sizes, freed, then calloc.  */
  enum { CHURN = 300 };
  static void *blocks[CHURN];
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < CHURN; i++)
    {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t n = 1 + x % 3000;
      blocks[i] = malloc (n);
      memset (blocks[i], 0xAA, malloc_usable_size (blocks[i]));
    }
  for (int i = 0; i < CHURN; i += 2)
    free (blocks[i]);
  for (int i = 1; i < CHURN; i += 2)
    free (blocks[i]);
  struct tst_acc churn = TST_ACC_INIT;
  for (int i = 0; i < CHURN; i++)
    {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t n = 1 + x % 3000;
      blocks[i] = calloc (1, n);
      size_t bad = blocks[i] ? tst_first_not (blocks[i], n, 0) : 0;
      ACC_CHECK (&churn, blocks[i] != NULL && bad == n,
                 "calloc (1, %zu) byte %zu not zero", n, bad);
      memset (blocks[i], 0xAA, n);
    }
  for (int i = 0; i < CHURN; i++)
    free (blocks[i]);
  tst_acc_report (&churn, "calloc after churn of dirty mixed-size blocks "
                  "returns zeroed memory (%d calls)", CHURN);
}

/* ------------------------------------------------------------------ */

static void
group_realloc (void)
{
  unsigned char *p = realloc (NULL, 100);
  CHECK (p != NULL && tst_aligned (p, 16) && malloc_usable_size (p) >= 100,
         "realloc (NULL, 100) behaves as malloc (100)");
  free (p);
  p = realloc (NULL, 0);
  CHECK (p != NULL, "realloc (NULL, 0) behaves as malloc (0)");
  free (p);

  p = malloc (100);
  void *r = realloc (p, 0);
  CHECK (r == NULL, "realloc (p, 0) returns NULL");
  void *again = malloc (100);
  CHECK (again == p, "realloc (p, 0) freed p (the next malloc (100) "
         "returns it from the tcache)");
  free (again);

  unsigned char *big = malloc (200000);
  r = realloc (big, 0);
  CHECK (r == NULL, "realloc (mmapped p, 0) returns NULL");

  /* Grow then shrink through the interesting boundaries.  */
  static const size_t steps[] = { 1, 16, 24, 25, 40, 100, 1024, 1032, 1033,
                                  2000, 4096, 65536, 131071, 131072, 131073,
                                  200000, 1 * MiB, 4 * MiB };
  enum { NSTEPS = sizeof steps / sizeof steps[0] };
  struct tst_acc grow = TST_ACC_INIT, shrink = TST_ACC_INIT;
  for (int with_guard = 0; with_guard < 2; with_guard++)
    {
      p = malloc (steps[0]);
      tst_fill (p, steps[0], 0);
      for (int i = 1; i < NSTEPS; i++)
        {
          void *guard = with_guard ? malloc (32) : NULL;
          unsigned char *q = realloc (p, steps[i]);
          if (q == NULL)
            {
              tst_acc_fail (&grow, "realloc (p, %zu) returned NULL", steps[i]);
              free (guard);
              break;
            }
          size_t bad = tst_verify (q, steps[i - 1], i - 1);
          ACC_CHECK (&grow, bad == steps[i - 1] && tst_aligned (q, 16),
                     "realloc %zu -> %zu: byte %zu changed (guard %d)",
                     steps[i - 1], steps[i], bad, with_guard);
          tst_fill (q, steps[i], i);
          p = q;
          free (guard);
        }
      for (int i = NSTEPS - 2; i >= 0; i--)
        {
          void *guard = with_guard ? malloc (32) : NULL;
          unsigned char *q = realloc (p, steps[i]);
          if (q == NULL)
            {
              tst_acc_fail (&shrink, "realloc (p, %zu) returned NULL",
                            steps[i]);
              free (guard);
              break;
            }
          size_t bad = tst_verify (q, steps[i], i + 1);
          ACC_CHECK (&shrink, bad == steps[i] && tst_aligned (q, 16)
                     && malloc_usable_size (q) >= steps[i],
                     "realloc %zu -> %zu: byte %zu changed (guard %d)",
                     steps[i + 1], steps[i], bad, with_guard);
          tst_fill (q, steps[i], i);
          p = q;
          free (guard);
        }
      free (p);
    }
  tst_acc_report (&grow, "realloc growth 1 .. 4 MiB (across 24/25, 1032/1033, "
                  "128 KiB) preserves contents");
  tst_acc_report (&shrink, "realloc shrink 4 MiB .. 1 preserves contents");

  /* Failure leaves the old block alone.  */
  static const size_t olds[] = { 24, 100, 5000, 200000 };
  struct tst_acc fail = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof olds / sizeof olds[0]; i++)
    for (size_t h = 0; h < N_HUGE; h++)
      {
        unsigned char *o = malloc (olds[i]);
        tst_fill (o, olds[i], h);
        errno = 0;
        void *q = realloc (o, tst_opaque_size (huge_sizes[h]));
        int e = errno;
        size_t bad = tst_verify (o, olds[i], h);
        ACC_CHECK (&fail, q == NULL && e == ENOMEM && bad == olds[i],
                   "realloc (malloc (%zu), %#zx) returned %p errno %d, "
                   "old byte %zu changed", olds[i], huge_sizes[h], q, e, bad);
        free (q != NULL ? q : (void *) o);
      }
  tst_acc_report (&fail, "failed realloc returns NULL with errno ENOMEM and "
                  "leaves the old block intact and freeable");
}

static void
group_reallocarray (void)
{
  unsigned char *p = reallocarray (NULL, 10, 10);
  CHECK (p != NULL && malloc_usable_size (p) >= 100,
         "reallocarray (NULL, 10, 10) allocates 100 bytes");
  tst_fill (p, 100, 7);
  unsigned char *q = reallocarray (p, 300, 10);
  CHECK (q != NULL && tst_verify (q, 100, 7) == 100,
         "reallocarray (p, 300, 10) grows and preserves contents");
  tst_fill (q, 3000, 8);

  static const size_t pairs[][2] = {
    { SIZE_MAX / 2 + 1, 2 },
    { (size_t) 1 << 33, (size_t) 1 << 33 },
    { SIZE_MAX, SIZE_MAX },
  };
  struct tst_acc ov = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
    {
      errno = 0;
      void *r = reallocarray (tst_opaque_ptr (q),
                              tst_opaque_size (pairs[i][0]),
                              tst_opaque_size (pairs[i][1]));
      int e = errno;
      size_t bad = tst_verify (q, 3000, 8);
      ACC_CHECK (&ov, r == NULL && e == ENOMEM && bad == 3000,
                 "reallocarray (p, %#zx, %#zx) returned %p errno %d, old "
                 "byte %zu changed", pairs[i][0], pairs[i][1], r, e, bad);
      if (r != NULL)
        q = r;
    }
  tst_acc_report (&ov, "reallocarray overflow returns NULL with errno ENOMEM, "
                  "old block intact");
  free (q);
  CHECK (true, "block survives failed reallocarray and is freeable");
}

/* ------------------------------------------------------------------ */

static bool
free_keeps_errno (void *p)
{
  errno = 12345;
  free (p);
  return errno == 12345;
}

static void
group_free (void)
{
  CHECK (free_keeps_errno (NULL), "free (NULL) does nothing and keeps errno");

  CHECK (free_keeps_errno (malloc (24)), "free of a small block keeps errno");

  void *fill[7], *b = malloc (24), *g = malloc (24);
  for (int i = 0; i < 7; i++)
    fill[i] = malloc (24);
  for (int i = 0; i < 7; i++)
    free (fill[i]);
  CHECK (free_keeps_errno (b), "free into a fastbin (tcache full) keeps "
         "errno");
  free (g);

  void *m = malloc (5000), *g2 = malloc (16);
  CHECK (free_keeps_errno (m), "free of a 5000-byte block keeps errno");
  free (g2);

  CHECK (free_keeps_errno (malloc (200000)), "free of an mmapped block "
         "(munmap) keeps errno");
  CHECK (free_keeps_errno (malloc (40 * MiB)), "free of a 40 MiB mmapped "
         "block keeps errno");

  /* Raise the dynamic threshold, then fill and free enough heap that
     free trims the top of the heap (sbrk with a negative increment).  */
  free (malloc (2 * MiB));
  void *h[4];
  for (int i = 0; i < 4; i++)
    h[i] = malloc (1 * MiB);
  bool all = true;
  for (int i = 3; i >= 0; i--)
    all &= free_keeps_errno (h[i]);
  CHECK (all, "free that trims the heap keeps errno");
}

/* ------------------------------------------------------------------ */

static void
group_posix_memalign (void)
{
  static const size_t bad_align[] = { 0, 1, 2, 4, 12, 24, 3 * sizeof (void *),
                                      40, 48, 100, 1000, 4095, 4097,
                                      SIZE_MAX / 2 + 2, SIZE_MAX };
  struct tst_acc inval = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++)
    {
      void *p = (void *) 1;
      int rc = posix_memalign (&p, tst_opaque_size (bad_align[i]), 16);
      ACC_CHECK (&inval, rc == EINVAL && p == (void *) 1,
                 "posix_memalign (&p, %zu, 16) returned %d", bad_align[i], rc);
      if (rc == 0)
        free (p);
    }
  tst_acc_report (&inval, "posix_memalign returns EINVAL for alignment 0, 4, "
                  "12, 24, 3*sizeof (void *) and other non powers of two or "
                  "non multiples of sizeof (void *), leaving p alone");

  struct tst_acc good = TST_ACC_INIT;
  for (size_t a = sizeof (void *); a <= 1 * MiB; a *= 2)
    {
      static const size_t sizes[] = { 1, 24, 100, 4096, 200000 };
      for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        {
          void *p = NULL;
          int rc = posix_memalign (&p, a, sizes[i]);
          bool okay = rc == 0 && p != NULL && tst_aligned (p, a)
                      && malloc_usable_size (p) >= sizes[i];
          ACC_CHECK (&good, okay, "posix_memalign (&p, %zu, %zu) returned "
                     "%d, p = %p", a, sizes[i], rc, p);
          if (rc == 0)
            {
              memset (p, 0x5c, sizes[i]);
              free (p);
            }
        }
    }
  tst_acc_report (&good, "posix_memalign succeeds (returns 0) for every power "
                  "of two alignment from sizeof (void *) to 1 MiB; memory "
                  "aligned, writable, freeable");

  void *p = (void *) 1;
  int rc = posix_memalign (&p, tst_opaque_size (SIZE_MAX / 2 + 1), 10);
  CHECK_EQ (rc, ENOMEM, "posix_memalign with alignment 2^63 returns ENOMEM");

  /* errno is left alone on success and on EINVAL by glibc 2.36 too; the
     ENOMEM case differs (see group_extensions).  */
  errno = 12345;
  rc = posix_memalign (&p, 64, 100);
  int e = errno;
  CHECK (rc == 0 && e == 12345, "posix_memalign success leaves errno "
         "unchanged (rc %d, errno %d)", rc, e);
  if (rc == 0)
    free (p);
  errno = 12345;
  rc = posix_memalign (&p, 24, 100);
  e = errno;
  CHECK (rc == EINVAL && e == 12345, "posix_memalign EINVAL leaves errno "
         "unchanged (rc %d, errno %d)", rc, e);
}

static void
group_memalign (void)
{
  static const size_t odd[][2] = { { 24, 32 }, { 48, 64 }, { 100, 128 },
                                   { 3000, 4096 }, { 5000, 8192 } };
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
    {
      void *p = memalign (tst_opaque_size (odd[i][0]), 10);
      CHECK (p != NULL && tst_aligned (p, odd[i][1]),
             "memalign (%zu, 10) rounds the alignment up to %zu", odd[i][0],
             odd[i][1]);
      free (p);
    }

  static const size_t small[] = { 0, 1, 2, 4, 8, 16 };
  struct tst_acc sm = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
    {
      void *p = memalign (tst_opaque_size (small[i]), 10);
      ACC_CHECK (&sm, p != NULL && tst_aligned (p, 16),
                 "memalign (%zu, 10) = %p", small[i], p);
      free (p);
    }
  tst_acc_report (&sm, "memalign with alignment 0..16 returns a 16-aligned "
                  "block");

  struct tst_acc ma = TST_ACC_INIT, aa = TST_ACC_INIT;
  for (size_t a = 1; a <= 1 * MiB; a *= 2)
    {
      static const size_t sizes[] = { 1, 100, 5000, 200000 };
      for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        {
          void *p = memalign (a, sizes[i]);
          ACC_CHECK (&ma, p != NULL && tst_aligned (p, a)
                     && malloc_usable_size (p) >= sizes[i],
                     "memalign (%zu, %zu) = %p", a, sizes[i], p);
          if (p != NULL)
            memset (p, 0x33, sizes[i]);
          free (p);
          p = aligned_alloc (a, sizes[i]);
          ACC_CHECK (&aa, p != NULL && tst_aligned (p, a)
                     && malloc_usable_size (p) >= sizes[i],
                     "aligned_alloc (%zu, %zu) = %p", a, sizes[i], p);
          if (p != NULL)
            memset (p, 0x33, sizes[i]);
          free (p);
        }
      void *p = aligned_alloc (a, a);
      ACC_CHECK (&aa, p != NULL && tst_aligned (p, a),
                 "aligned_alloc (%zu, %zu) = %p", a, a, p);
      free (p);
    }
  tst_acc_report (&ma, "memalign works for every power of two alignment up "
                  "to 1 MiB");
  tst_acc_report (&aa, "aligned_alloc works for every power of two alignment "
                  "up to 1 MiB");

  errno = 0;
  void *p = memalign (tst_opaque_size (SIZE_MAX / 2 + 2), 10);
  CHECK (p == NULL && errno == EINVAL, "memalign with alignment > SIZE_MAX/2 "
         "+ 1 returns NULL with errno EINVAL");
  free (p);

  size_t ps = page_size ();
  static const size_t vsizes[] = { 0, 1, 100, 4095, 4096, 4097, 5000, 200000 };
  struct tst_acc va = TST_ACC_INIT, pv = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof vsizes / sizeof vsizes[0]; i++)
    {
      size_t n = vsizes[i];
      void *v = valloc (n);
      ACC_CHECK (&va, v != NULL && tst_aligned (v, ps)
                 && malloc_usable_size (v) >= n,
                 "valloc (%zu) = %p usable %zu", n, v,
                 v ? malloc_usable_size (v) : 0);
      if (v != NULL)
        memset (v, 1, n);
      free (v);
      size_t rounded = (n + ps - 1) & ~(ps - 1);
      void *q = pvalloc (n);
      ACC_CHECK (&pv, q != NULL && tst_aligned (q, ps)
                 && malloc_usable_size (q) >= rounded,
                 "pvalloc (%zu) = %p usable %zu, want >= %zu", n, q,
                 q ? malloc_usable_size (q) : 0, rounded);
      if (q != NULL)
        memset (q, 1, rounded);
      free (q);
    }
  tst_acc_report (&va, "valloc is page aligned");
  tst_acc_report (&pv, "pvalloc is page aligned and usable for the request "
                  "rounded up to whole pages");
  void *q = pvalloc (1);
  CHECK (q != NULL && malloc_usable_size (q) >= 4096,
         "malloc_usable_size (pvalloc (1)) >= 4096");
  /* glibc's pvalloc does not round the chunk to whole pages: the usable
     size of pvalloc (1) is 4104 (a 4112-byte chunk), not a multiple of
     the page size.  */
  CHECK_EQ (malloc_usable_size (q), 4104, "malloc_usable_size (pvalloc (1)) "
            "== 4104 as in glibc");
  free (q);
}

/* ------------------------------------------------------------------ */

static void
group_mallopt (void)
{
  CHECK_EQ (mallopt (M_MXFAST, 0), 1, "mallopt (M_MXFAST, 0) returns 1");
  CHECK_EQ (mallopt (M_MXFAST, 64), 1, "mallopt (M_MXFAST, 64) returns 1");
  CHECK_EQ (mallopt (M_MXFAST, 160), 1, "mallopt (M_MXFAST, 160) returns 1");
  CHECK_EQ (mallopt (M_MXFAST, 161), 0, "mallopt (M_MXFAST, 161) returns 0");
  CHECK_EQ (mallopt (M_MXFAST, -1), 0, "mallopt (M_MXFAST, -1) returns 0");
  CHECK_EQ (mallopt (M_MXFAST, 128), 1, "mallopt (M_MXFAST, 128) (default) "
            "returns 1");

  CHECK_EQ (mallopt (M_TRIM_THRESHOLD, 256 * 1024), 1,
            "mallopt (M_TRIM_THRESHOLD, 256 KiB) returns 1");
  CHECK_EQ (mallopt (M_TOP_PAD, 64 * 1024), 1,
            "mallopt (M_TOP_PAD, 64 KiB) returns 1");

  /* glibc only mmaps when the top chunk cannot serve a request: shrink
     it first (matters with TST_NO_FORK=1, when earlier groups left a big
     top chunk behind).  */
  malloc_trim (0);
  CHECK_EQ (mallopt (M_MMAP_THRESHOLD, 256 * 1024), 1,
            "mallopt (M_MMAP_THRESHOLD, 256 KiB) returns 1");
  struct mallinfo2 a = mallinfo2 ();
  void *p = malloc (200000);
  struct mallinfo2 b = mallinfo2 ();
  CHECK (b.hblks == a.hblks, "with M_MMAP_THRESHOLD 256 KiB, malloc (200000) "
         "is not mmapped (hblks %zu -> %zu)", a.hblks, b.hblks);
  void *q = malloc (300000);
  struct mallinfo2 c = mallinfo2 ();
  CHECK (c.hblks == b.hblks + 1, "with M_MMAP_THRESHOLD 256 KiB, malloc "
         "(300000) is mmapped (hblks %zu -> %zu)", b.hblks, c.hblks);
  free (p);
  free (q);

  /* glibc 2.36 has no upper bound here: HEAP_MAX_SIZE / 2 (32 MiB) is not
     enforced, mallopt returns 1 and the threshold takes effect.  */
  CHECK_EQ (mallopt (M_MMAP_THRESHOLD, 64 * 1024 * 1024), 1,
            "mallopt (M_MMAP_THRESHOLD, 64 MiB) returns 1 (glibc 2.36)");
  a = mallinfo2 ();
  p = malloc (40 * MiB);
  b = mallinfo2 ();
  CHECK (p != NULL && b.hblks == a.hblks && b.arena >= a.arena + 40 * MiB,
         "with M_MMAP_THRESHOLD 64 MiB, malloc (40 MiB) comes from the heap "
         "(hblks %zu -> %zu, arena %zu -> %zu)", a.hblks, b.hblks, a.arena,
         b.arena);
  free (p);
  CHECK_EQ (mallopt (M_MMAP_THRESHOLD, 128 * 1024), 1,
            "mallopt (M_MMAP_THRESHOLD, 128 KiB) returns 1");

  CHECK_EQ (mallopt (M_MMAP_MAX, 0), 1, "mallopt (M_MMAP_MAX, 0) returns 1");
  a = mallinfo2 ();
  p = malloc (1 * MiB);
  b = mallinfo2 ();
  CHECK (p != NULL && b.hblks == a.hblks, "with M_MMAP_MAX 0, malloc (1 MiB) "
         "is not mmapped (hblks %zu -> %zu)", a.hblks, b.hblks);
  free (p);
  CHECK_EQ (mallopt (M_MMAP_MAX, 65536), 1, "mallopt (M_MMAP_MAX, 65536) "
            "returns 1");

  CHECK_EQ (mallopt (M_ARENA_MAX, 1), 1, "mallopt (M_ARENA_MAX, 1) returns 1");
  CHECK_EQ (mallopt (M_ARENA_TEST, 8), 1, "mallopt (M_ARENA_TEST, 8) returns "
            "1");
  CHECK_EQ (mallopt (M_CHECK_ACTION, 3), 1, "mallopt (M_CHECK_ACTION, 3) "
            "returns 1");
  CHECK_EQ (mallopt (12345, 1), 1, "mallopt with an unknown parameter "
            "returns 1 (glibc ignores it)");

  CHECK_EQ (mallopt (M_PERTURB, 0x55), 1, "mallopt (M_PERTURB, 0x55) returns "
            "1");
  unsigned char *pp = malloc (5000);
  size_t bad = pp ? tst_first_not (pp, 5000, 0xAA) : 0;
  CHECK (pp != NULL && bad == 5000, "with M_PERTURB 0x55, a new 5000-byte "
         "block is filled with 0xAA");
  if (pp != NULL && bad != 5000)
    tst_info ("byte %zu is %#x", bad, pp[bad]);
  free (pp);
  pp = calloc (1, 5000);
  CHECK (pp != NULL && tst_first_not (pp, 5000, 0) == 5000,
         "with M_PERTURB 0x55, calloc still returns zeroed memory");
  free (pp);
  CHECK_EQ (mallopt (M_PERTURB, 0), 1, "mallopt (M_PERTURB, 0) returns 1");
}

/* ------------------------------------------------------------------ */

static void
group_mallinfo (void)
{
  enum { N = 1000, SZ = 1000 };
  static void *blk[N];
  struct mallinfo2 before = mallinfo2 ();
  for (int i = 0; i < N; i++)
    blk[i] = malloc (SZ);
  void *guard = malloc (16); /* keeps the blocks out of the top chunk */
  struct mallinfo2 mid = mallinfo2 ();
  CHECK (mid.uordblks >= before.uordblks + (size_t) N * SZ,
         "mallinfo2: uordblks grows by >= %d after %d mallocs of %d bytes "
         "(%zu -> %zu)", N * SZ, N, SZ, before.uordblks, mid.uordblks);
  CHECK (mid.arena >= mid.uordblks, "mallinfo2: arena >= uordblks (%zu, %zu)",
         mid.arena, mid.uordblks);
  CHECK_EQ (mid.arena, mid.uordblks + mid.fordblks, "mallinfo2: arena == "
            "uordblks + fordblks");

  for (int i = 0; i < N; i++)
    free (blk[i]);
  struct mallinfo2 after = mallinfo2 ();
  CHECK (after.fordblks >= mid.fordblks + (size_t) (N - 7) * SZ,
         "mallinfo2: fordblks grows by >= %d after freeing them (%zu -> %zu; "
         "7 stay in the tcache and count as used)", (N - 7) * SZ,
         mid.fordblks, after.fordblks);
  CHECK (after.uordblks < mid.uordblks, "mallinfo2: uordblks shrinks after "
         "freeing (%zu -> %zu)", mid.uordblks, after.uordblks);
  free (guard);

  struct mallinfo2 h0 = mallinfo2 ();
  void *big = malloc (40 * MiB);
  struct mallinfo2 h1 = mallinfo2 ();
  CHECK (h1.hblks == h0.hblks + 1, "mallinfo2: an mmapped 40 MiB block counts "
         "in hblks (%zu -> %zu)", h0.hblks, h1.hblks);
  CHECK (h1.hblkhd >= h0.hblkhd + 40 * MiB, "mallinfo2: hblkhd grows by >= 40 "
         "MiB (%zu -> %zu)", h0.hblkhd, h1.hblkhd);
  free (big);
  struct mallinfo2 h2 = mallinfo2 ();
  CHECK (h2.hblks == h0.hblks && h2.hblkhd == h0.hblkhd,
         "mallinfo2: hblks/hblkhd drop back after free");

  int t = malloc_trim (0);
  CHECK (t == 0 || t == 1, "malloc_trim (0) returns 0 or 1 (got %d)", t);

  /* A big free chunk inside the heap (not at the top): malloc_trim
     releases its pages with madvise and reports 1.  */
  void *hb = malloc (100000);
  void *g = malloc (16);
  memset (hb, 0xAA, 100000);
  free (hb);
  t = malloc_trim (0);
  CHECK_EQ (t, 1, "malloc_trim (0) after freeing a 100000-byte heap block "
            "returns 1");
  t = malloc_trim (0);
  CHECK_EQ (t, 1, "malloc_trim (0) again returns 1 (glibc madvises the free "
            "chunk again)");
  free (g);
}

/* Run FN with stderr redirected to a temporary file; return what it
   wrote (malloc'd, NUL-terminated) or NULL.  */
static char *
capture_stderr (void (*fn) (void))
{
  FILE *tmp = tmpfile ();
  if (tmp == NULL)
    return NULL;
  fflush (stderr);
  int saved = dup (STDERR_FILENO);
  dup2 (fileno (tmp), STDERR_FILENO);
  fn ();
  fflush (stderr);
  dup2 (saved, STDERR_FILENO);
  close (saved);
  off_t len = lseek (fileno (tmp), 0, SEEK_END);
  char *buf = NULL;
  if (len >= 0 && (buf = malloc ((size_t) len + 1)) != NULL)
    {
      ssize_t got = pread (fileno (tmp), buf, (size_t) len, 0);
      buf[got > 0 ? got : 0] = '\0';
    }
  fclose (tmp);
  return buf;
}

static void
call_malloc_stats (void)
{
  malloc_stats ();
}

static void
group_stats (void)
{
  void *keep = malloc (1000);
  char *out = capture_stderr (call_malloc_stats);
  CHECK (out != NULL && strstr (out, "Arena 0:\n") != NULL,
         "malloc_stats writes \"Arena 0:\" to stderr");
  CHECK (out != NULL && strstr (out, "Total (incl. mmap):\n") != NULL,
         "malloc_stats writes \"Total (incl. mmap):\" to stderr");
  CHECK (out != NULL && strstr (out, "system bytes") != NULL
         && strstr (out, "in use bytes") != NULL,
         "malloc_stats writes system and in use bytes");
  CHECK (out != NULL && strstr (out, "max mmap regions") != NULL
         && strstr (out, "max mmap bytes") != NULL,
         "malloc_stats writes max mmap regions and bytes");
  if (out != NULL)
    tst_info ("malloc_stats wrote %zu bytes", strlen (out));
  free (out);
  free (keep);

  FILE *f = tmpfile ();
  if (f == NULL)
    {
      tst_fail ("malloc_info", "tmpfile failed: %s", strerror (errno));
      return;
    }
  int rc = malloc_info (0, f);
  CHECK_EQ (rc, 0, "malloc_info (0, fp) returns 0");
  fflush (f);
  long len = ftell (f);
  char *buf = len > 0 ? malloc ((size_t) len + 1) : NULL;
  if (buf != NULL)
    {
      rewind (f);
      size_t got = fread (buf, 1, (size_t) len, f);
      buf[got] = '\0';
    }
  const char *head = "<malloc version=\"1\">";
  CHECK (buf != NULL && strncmp (buf, head, strlen (head)) == 0,
         "malloc_info output starts with <malloc version=\"1\">");
  size_t blen = buf != NULL ? strlen (buf) : 0;
  while (blen > 0 && (buf[blen - 1] == '\n' || buf[blen - 1] == ' '))
    blen--;
  CHECK (blen >= 9 && strncmp (buf + blen - 9, "</malloc>", 9) == 0,
         "malloc_info output ends with </malloc>");
  CHECK (buf != NULL && strstr (buf, "<heap nr=\"0\">") != NULL,
         "malloc_info output has <heap nr=\"0\">");
  free (buf);

  long before = ftell (f);
  errno = 0;
  rc = malloc_info (1, f);
  /* glibc returns the error number itself (not -1 with errno), and
     writes nothing.  */
  CHECK_EQ (rc, EINVAL, "malloc_info (1, fp) returns EINVAL");
  CHECK_EQ (ftell (f), before, "malloc_info (1, fp) writes nothing");
  fclose (f);
}

/* ------------------------------------------------------------------ */

static void
group_extensions (void)
{
  bool ext = tst_ext_enabled ();
  static const size_t bad[] = { 24, 48, 0, 3, 100 };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      char what[128];
      snprintf (what, sizeof what, "aligned_alloc (%zu, 64) returns NULL with "
                "errno EINVAL", bad[i]);
      if (!ext)
        {
          tst_skip (what, "extension (glibc 2.36 rounds the alignment up)");
          continue;
        }
      errno = 0;
      void *p = aligned_alloc (tst_opaque_size (bad[i]), 64);
      int e = errno;
      if (p == NULL && e == EINVAL)
        tst_ok (what);
      else
        tst_fail (what, "got %p, errno %d", p, e);
      free (p);
    }

  /* glibc 2.36 sets errno to ENOMEM when posix_memalign fails with
     ENOMEM (note: GCC's builtin model assumes posix_memalign never
     writes errno, which is why these programs use -fno-builtin).  */
  /* SIZE_MAX fails the size check; PTRDIFF_MAX passes it and fails in
     mmap/sbrk, so errno is clobbered internally and must be restored.  */
  static const size_t nomem[] = { SIZE_MAX, (size_t) PTRDIFF_MAX };
  for (size_t i = 0; i < sizeof nomem / sizeof nomem[0]; i++)
    {
      char what[128];
      snprintf (what, sizeof what, "posix_memalign ENOMEM (size %#zx) leaves "
                "errno unchanged", nomem[i]);
      if (!ext)
        {
          tst_skip (what, "extension (glibc 2.36 sets errno to ENOMEM)");
          continue;
        }
      void *p = (void *) 1;
      errno = 12345;
      int rc = posix_memalign (&p, 64, tst_opaque_size (nomem[i]));
      int e = errno;
      if (rc == ENOMEM && e == 12345 && p == (void *) 1)
        tst_ok (what);
      else
        tst_fail (what, "returned %d, errno %d, p %p", rc, e, p);
      if (rc == 0)
        free (p);
    }

  __typeof__ (free_sized) *fs = (__typeof__ (free_sized) *)
    dlsym (RTLD_DEFAULT, "free_sized");
  __typeof__ (free_aligned_sized) *fas = (__typeof__ (free_aligned_sized) *)
    dlsym (RTLD_DEFAULT, "free_aligned_sized");
  if (fs == NULL)
    {
      if (ext)
        tst_fail ("free_sized exists", "dlsym found no free_sized");
      else
        tst_skip ("free_sized (p, n)", "extension; not in glibc 2.36");
    }
  else
    {
      for (size_t n = 0; n <= 300000; n = n * 3 + 1)
        {
          void *p = malloc (n);
          memset (p, 1, n);
          fs (p, n);
        }
      fs (NULL, 0);
      CHECK (true, "free_sized (malloc (n), n) frees (n = 0 .. 300000) and "
             "free_sized (NULL, 0) is a no-op");
    }
  if (fas == NULL)
    {
      if (ext)
        tst_fail ("free_aligned_sized exists",
                  "dlsym found no free_aligned_sized");
      else
        tst_skip ("free_aligned_sized (p, a, n)",
                  "extension; not in glibc 2.36");
    }
  else
    {
      for (size_t a = 16; a <= 64 * KiB; a *= 4)
        {
          void *p = aligned_alloc (a, 3 * a);
          memset (p, 1, 3 * a);
          fas (p, a, 3 * a);
        }
      fas (NULL, 64, 0);
      CHECK (true, "free_aligned_sized (aligned_alloc (a, n), a, n) frees");
    }
}

/* ------------------------------------------------------------------ */
/* Threads.  */

enum { STRESS_THREADS = 8, STRESS_OPS = 100000, STRESS_SLOTS = 64 };
enum { XFER_SLOTS = 256 };

struct xfer_entry
{
  unsigned char *p;
  size_t n;
  uintptr_t seed;
  int owner;
};

static struct
{
  pthread_mutex_t lock;
  struct xfer_entry slot[XFER_SLOTS];
  long cross_frees;
} xfer = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct stress_result
{
  long errors;
  long misaligned;
  long null_returns;
  char first_error[160];
};

static void
stress_error (struct stress_result *r, const char *what, size_t n)
{
  if (r->errors++ == 0)
    snprintf (r->first_error, sizeof r->first_error, "%s (size %zu)", what, n);
}

struct stress_arg
{
  int id;
  struct stress_result result;
};

static void *
stress_thread (void *varg)
{
  struct stress_arg *arg = varg;
  struct stress_result *r = &arg->result;
  uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t) (arg->id + 1);
  unsigned char *slot[STRESS_SLOTS] = { 0 };
  size_t len[STRESS_SLOTS] = { 0 };
  uintptr_t seed[STRESS_SLOTS] = { 0 };

  for (long op = 0; op < STRESS_OPS; op++)
    {
      uint64_t x = tst_xorshift (&rng);
      int s = (int) (x % STRESS_SLOTS);
      if (slot[s] != NULL)
        {
          if (tst_verify (slot[s], len[s], seed[s]) != len[s])
            stress_error (r, "pattern damaged before free", len[s]);
          free (slot[s]);
          slot[s] = NULL;
          continue;
        }
      size_t n = 1 + (size_t) ((x >> 8) % 2000);
      unsigned char *p;
      switch ((x >> 24) % 8)
        {
        case 0:
          p = calloc (1, n);
          if (p != NULL && tst_first_not (p, n, 0) != n)
            stress_error (r, "calloc memory not zero", n);
          break;
        case 1:
          /* Grow or shrink a live block instead.  */
          {
            int t = (int) ((x >> 32) % STRESS_SLOTS);
            if (slot[t] != NULL)
              {
                p = realloc (slot[t], n);
                if (p == NULL)
                  {
                    r->null_returns++;
                    continue;
                  }
                size_t keep = len[t] < n ? len[t] : n;
                if (tst_verify (p, keep, seed[t]) != keep)
                  stress_error (r, "realloc lost contents", n);
                slot[t] = NULL;
                s = t;
                break;
              }
            p = malloc (n);
          }
          break;
        case 2:
          p = memalign (64, n);
          if (p != NULL && !tst_aligned (p, 64))
            r->misaligned++;
          break;
        default:
          p = malloc (n);
          break;
        }
      if (p == NULL)
        {
          r->null_returns++;
          continue;
        }
      if (!tst_aligned (p, 16))
        r->misaligned++;
      if (malloc_usable_size (p) < n)
        stress_error (r, "usable size below request", n);
      slot[s] = p;
      len[s] = n;
      seed[s] = (uintptr_t) x;
      tst_fill (p, n, seed[s]);

      /* Every 16th op: trade a block through the shared array.  */
      if ((x >> 40) % 16 == 0)
        {
          int k = (int) ((x >> 44) % XFER_SLOTS);
          pthread_mutex_lock (&xfer.lock);
          struct xfer_entry old = xfer.slot[k];
          xfer.slot[k] = (struct xfer_entry) { slot[s], len[s], seed[s],
                                               arg->id };
          if (old.p != NULL && old.owner != arg->id)
            xfer.cross_frees++;
          pthread_mutex_unlock (&xfer.lock);
          slot[s] = NULL;
          if (old.p != NULL)
            {
              if (tst_verify (old.p, old.n, old.seed) != old.n)
                stress_error (r, "handed-off block damaged", old.n);
              free (old.p);
            }
        }
    }
  for (int s = 0; s < STRESS_SLOTS; s++)
    if (slot[s] != NULL)
      {
        if (tst_verify (slot[s], len[s], seed[s]) != len[s])
          stress_error (r, "pattern damaged at the end", len[s]);
        free (slot[s]);
      }
  return NULL;
}

static void
thread_stress (void)
{
  pthread_t th[STRESS_THREADS];
  static struct stress_arg args[STRESS_THREADS];
  int started = 0;
  for (int i = 0; i < STRESS_THREADS; i++)
    {
      args[i].id = i;
      if (pthread_create (&th[i], NULL, stress_thread, &args[i]) == 0)
        started++;
      else
        break;
    }
  for (int i = 0; i < started; i++)
    pthread_join (th[i], NULL);
  CHECK_EQ (started, STRESS_THREADS, "started %d stress threads",
            STRESS_THREADS);

  long errors = 0, misaligned = 0, nulls = 0;
  const char *first = NULL;
  for (int i = 0; i < started; i++)
    {
      errors += args[i].result.errors;
      misaligned += args[i].result.misaligned;
      nulls += args[i].result.null_returns;
      if (first == NULL && args[i].result.errors > 0)
        first = args[i].result.first_error;
    }
  if (errors == 0)
    tst_ok ("8 threads x 100000 random malloc/calloc/realloc/memalign/free "
            "(1..2000 bytes): every pattern intact");
  else
    tst_fail ("8 threads x 100000 random malloc/free: patterns intact",
              "%ld errors, first: %s", errors, first);
  CHECK_EQ (misaligned, 0, "stress: every pointer aligned");
  CHECK_EQ (nulls, 0, "stress: no allocation failed");

  long leftovers = 0, bad = 0;
  for (int k = 0; k < XFER_SLOTS; k++)
    if (xfer.slot[k].p != NULL)
      {
        leftovers++;
        if (tst_verify (xfer.slot[k].p, xfer.slot[k].n, xfer.slot[k].seed)
            != xfer.slot[k].n)
          bad++;
        free (xfer.slot[k].p);
        xfer.slot[k].p = NULL;
      }
  CHECK (xfer.cross_frees > 1000 && bad == 0,
         "%ld blocks freed by a thread other than their allocator, %ld more "
         "freed by main, all intact", xfer.cross_frees, leftovers);
}

/* A thread that fills its tcache, hands some blocks back and exits.  */
struct exiting_arg
{
  void *handed[6];
  size_t sizes[6];
  int round;
};

static void *
exiting_thread (void *varg)
{
  struct exiting_arg *a = varg;
  void *mine[20];
  for (int i = 0; i < 20; i++)
    {
      size_t n = 16 + (size_t) ((i * 53 + a->round * 7) % 1000);
      mine[i] = malloc (n);
      if (mine[i] != NULL)
        tst_fill (mine[i], n, (uintptr_t) n);
      if (i < 6)
        a->sizes[i] = n;
    }
  for (int i = 0; i < 6; i++)
    a->handed[i] = mine[i];
  for (int i = 6; i < 20; i++)
    free (mine[i]);
  /* Fill one tcache bin completely.  */
  void *same[7];
  for (int i = 0; i < 7; i++)
    same[i] = malloc (72);
  for (int i = 0; i < 7; i++)
    free (same[i]);
  return NULL;
}

static void
thread_exit_cache (void)
{
  enum { ROUNDS = 100 };
  long bad = 0, failed_create = 0;
  for (int r = 0; r < ROUNDS; r++)
    {
      struct exiting_arg a = { .round = r };
      pthread_t th;
      if (pthread_create (&th, NULL, exiting_thread, &a) != 0)
        {
          failed_create++;
          continue;
        }
      pthread_join (th, NULL);
      for (int i = 0; i < 6; i++)
        {
          if (a.handed[i] == NULL
              || tst_verify (a.handed[i], a.sizes[i], a.sizes[i])
                 != a.sizes[i])
            bad++;
          free (a.handed[i]);
        }
      /* Reuse what the dead thread's tcache gave back.  */
      void *again[10];
      for (int i = 0; i < 10; i++)
        {
          again[i] = malloc (72);
          if (again[i] == NULL)
            bad++;
          else
            memset (again[i], 0x77, 72);
        }
      for (int i = 0; i < 10; i++)
        free (again[i]);
    }
  CHECK (bad == 0 && failed_create == 0, "%d threads exiting with full tcache "
         "bins: blocks they handed over are intact and freeable by main, "
         "memory reusable (%ld bad, %ld create failures)", ROUNDS, bad,
         failed_create);
}

/* fork () while other threads are busy in malloc.  */
static volatile int busy_stop;

static void *
busy_thread (void *varg)
{
  uint64_t rng = (uintptr_t) varg * 0x2545F4914F6CDD1Dull + 1;
  void *held[32] = { 0 };
  while (!__atomic_load_n (&busy_stop, __ATOMIC_RELAXED))
    {
      uint64_t x = tst_xorshift (&rng);
      int s = (int) (x % 32);
      free (held[s]);
      size_t n = (x >> 8) % 4 == 0 ? 100000 + (x >> 16) % 200000
                                    : 1 + (x >> 16) % 3000;
      held[s] = malloc (n);
      if (held[s] != NULL)
        memset (held[s], 0x11, n < 64 ? n : 64);
    }
  for (int s = 0; s < 32; s++)
    free (held[s]);
  return NULL;
}

__attribute__ ((noreturn)) static void
fork_child_work (int out_fd)
{
  dup2 (out_fd, STDERR_FILENO);
  static const size_t sizes[] = { 1, 24, 100, 1000, 5000, 70000, 200000,
                                  2 * MiB };
  void *p[sizeof sizes / sizeof sizes[0]];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    {
      p[i] = malloc (sizes[i]);
      if (p[i] == NULL)
        _exit (2);
      memset (p[i], 0x42, sizes[i]);
    }
  unsigned char *c = calloc (1, 4000);
  if (c == NULL || tst_first_not (c, 4000, 0) != 4000)
    _exit (3);
  c = realloc (c, 9000);
  if (c == NULL)
    _exit (4);
  free (c);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    free (p[i]);
  static const char msg[] = "child-ok\n";
  if (write (out_fd, msg, sizeof msg - 1) != (ssize_t) (sizeof msg - 1))
    _exit (5);
  _exit (0);
}

static void
thread_fork (void)
{
  enum { BUSY = 3, FORKS = 50 };
  pthread_t th[BUSY];
  int started = 0;
  __atomic_store_n (&busy_stop, 0, __ATOMIC_RELAXED);
  for (int i = 0; i < BUSY; i++)
    if (pthread_create (&th[i], NULL, busy_thread, (void *) (uintptr_t) i)
        == 0)
      started++;

  int good = 0;
  char first[200] = "";
  for (int i = 0; i < FORKS; i++)
    {
      int fds[2];
      if (pipe (fds) != 0)
        {
          snprintf (first, sizeof first, "pipe failed");
          break;
        }
      /* Let the busy threads get well into malloc.  */
      usleep (2000);
      fflush (stdout);
      fflush (stderr);
      pid_t pid = fork ();
      if (pid == 0)
        {
          alarm (10);
          close (fds[0]);
          fork_child_work (fds[1]);
        }
      close (fds[1]);
      char buf[512];
      size_t used = 0;
      ssize_t got;
      while (used < sizeof buf - 1
             && (got = read (fds[0], buf + used, sizeof buf - 1 - used)) > 0)
        used += (size_t) got;
      buf[used] = '\0';
      close (fds[0]);
      int status = 0;
      if (pid < 0 || waitpid (pid, &status, 0) != pid)
        {
          snprintf (first, sizeof first, "fork/waitpid failed: %s",
                    strerror (errno));
          break;
        }
      if (WIFEXITED (status) && WEXITSTATUS (status) == 0
          && strcmp (buf, "child-ok\n") == 0)
        good++;
      else if (first[0] == '\0')
        {
          char st[96];
          snprintf (first, sizeof first, "fork #%d: child %s, output \"%.80s\"",
                    i, tst_describe_status (status, st, sizeof st), buf);
        }
    }
  __atomic_store_n (&busy_stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < started; i++)
    pthread_join (th[i], NULL);

  if (good == FORKS && started == BUSY)
    tst_ok ("fork () x50 while 3 threads allocate: every child mallocs, "
            "frees, prints nothing else and exits 0");
  else
    tst_fail ("fork () from a multi-threaded process",
              "%d of %d children good, %d busy threads; first problem: %s",
              good, FORKS, started, first);
}

static void
group_threads (void)
{
  thread_stress ();
  thread_exit_cache ();
  thread_fork ();
}

/* ------------------------------------------------------------------ */

int
main (void)
{
  tst_init ();
  tst_group ("alignment and usable size", group_alignment);
  tst_group ("malloc (0)", group_malloc0);
  tst_group ("impossible sizes", group_huge);
  tst_group ("calloc", group_calloc);
  tst_group ("realloc", group_realloc);
  tst_group ("reallocarray", group_reallocarray);
  tst_group ("free", group_free);
  tst_group ("posix_memalign", group_posix_memalign);
  tst_group ("memalign, aligned_alloc, valloc, pvalloc", group_memalign);
  tst_group ("mallopt", group_mallopt);
  tst_group ("mallinfo2 and malloc_trim", group_mallinfo);
  tst_group ("malloc_stats and malloc_info", group_stats);
  tst_group ("extensions", group_extensions);
  tst_group ("threads", group_threads);
  return tst_finish ();
}
