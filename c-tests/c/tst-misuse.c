/* tst-misuse CASE: one misuse of the allocator per case.

   Each misuse case performs one misuse (a double free, a free of a
   pointer malloc never returned, an overflow, a write after free, a
   realloc of a freed block ...).  An allocator that detects it prints one
   line to stderr (glibc: with LIBC_FATAL_STDERR_=1) and aborts.  If the
   call returns instead, the program prints a FAIL line ("misuse not
   detected") and exits 1; a forged pointer followed by the allocator may
   also end it with SIGSEGV.  A case whose setup does not hold (e.g. two
   blocks expected to be neighbours are not) exits 3 with a "setup:" FAIL
   line.  The harness (tests/hardening.rs) runs every case in its own
   process under glibc and libptmalloc-rs and holds the table of what
   each allocator is expected to do.

   The cases "huge", "calloc-overflow", "memalign-overflow",
   "realloc-overflow" and "bad-alignment" are ordinary check programs:
   impossible requests give NULL (or an error number) with the right
   errno; they exit 0.  */

#include "tst-support.h"

#include <malloc.h>

/* Report that a misuse went undetected and exit.  */
__attribute__ ((noreturn)) static void
not_detected (const char *what)
{
  tst_fail (what, "misuse not detected, the call returned");
  tst_finish ();
  exit (1);
}

__attribute__ ((noreturn)) static void
setup_failed (const char *fmt, ...)
{
  char buf[256];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  tst_fail ("setup", "%s", buf);
  tst_finish ();
  exit (3);
}

/* Expect two blocks to be neighbours: B's chunk right after A's.  */
static void
require_adjacent (const void *a, const void *b, size_t chunk)
{
  if ((const char *) b - (const char *) a != (ptrdiff_t) chunk)
    setup_failed ("blocks %p and %p are not neighbours (%zu-byte chunks)",
                  a, b, chunk);
}

static void
case_double_free_tcache (void)
{
  void *p = malloc (24);
  free (p);
  tst_info ("freeing a 24-byte block a second time (it is in the tcache)");
  free (tst_opaque_ptr (p));
  not_detected ("double free of a block in the tcache");
}

static void
case_double_free_fastbin (void)
{
  void *a = malloc (24);
  void *b = malloc (24);
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = malloc (24);
  for (int i = 0; i < 7; i++)
    free (fill[i]); /* the tcache bin for 32-byte chunks is now full */
  free (a);         /* so A goes to the fastbin */
  tst_info ("freeing the block at the top of the fastbin again");
  free (tst_opaque_ptr (a));
  free (b);
  not_detected ("double free of the fastbin top");
}

static void
case_double_free_normal (void)
{
  void *p = malloc (5000); /* beyond the tcache (1032 bytes) */
  void *g = malloc (5000); /* keeps P from merging into the top */
  free (p);
  tst_info ("freeing a 5000-byte block (now in the unsorted bin) again");
  free (tst_opaque_ptr (p));
  free (g);
  not_detected ("double free of a 5000-byte block");
}

static void
case_double_free_top (void)
{
  void *p = malloc (5000);
  free (p); /* merges into the top chunk */
  tst_info ("freeing a 5000-byte block that merged into the top again");
  free (tst_opaque_ptr (p));
  not_detected ("double free of a block merged into the top");
}

static void
case_double_free_interleaved_tcache (void)
{
  void *a = malloc (24);
  void *b = malloc (24);
  free (a);
  free (b);
  tst_info ("freeing A again after B (both in the tcache)");
  free (tst_opaque_ptr (a));
  not_detected ("interleaved double free in the tcache");
}

/* The 32-byte tcache bin full of other blocks.  */
static void
fill_tcache_32 (void)
{
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = malloc (24);
  for (int i = 0; i < 7; i++)
    free (fill[i]);
}

static void
case_double_free_interleaved_fastbin (void)
{
  void *a = malloc (24);
  void *b = malloc (24);
  fill_tcache_32 ();
  free (a);
  free (b);
  tst_info ("freeing A again after B (both in the fastbin; A not at its top)");
  free (tst_opaque_ptr (a));
  not_detected ("interleaved double free in the fastbin");
}

static void
case_double_free_tcache_key (void)
{
  void *p = malloc (40);
  free (p);
  tst_info ("clearing the key word of a freed 40-byte block, then freeing it again");
  ((void **) tst_opaque_ptr (p))[1] = NULL;
  free (tst_opaque_ptr (p));
  void *q = malloc (40);
  void *r = malloc (40);
  tst_info ("malloc returned %p, then %p", q, r);
  not_detected ("a double free past the tcache key");
}

static void
case_double_free_large (void)
{
  void *p = malloc (0x2000);
  void *g = malloc (24);
  free (p);
  void *bigger = malloc (0x3000); /* sorts P into its large bin */
  tst_info ("freeing a 0x2000-byte block (now in a large bin) again");
  free (tst_opaque_ptr (p));
  free (bigger);
  free (g);
  not_detected ("double free of a block in a large bin");
}

static void
case_double_free_mmapped (void)
{
  void *p = malloc (4 << 20); /* mmapped */
  free (p);
  tst_info ("freeing a 4 MiB (mmapped, now unmapped) block again");
  free (tst_opaque_ptr (p));
  not_detected ("double free of an mmapped block");
}

static void
case_invalid_free (void)
{
  unsigned char *p = malloc (64);
  memset (p, 0, 64); /* the "size field" free finds at p + 8 is 0 */
  tst_info ("freeing p + 16 of a zeroed 64-byte block");
  free (tst_opaque_ptr (p + 16));
  not_detected ("free of a pointer into the middle of a block");
}

static void
case_invalid_free_misaligned (void)
{
  unsigned char *p = malloc (64);
  memset (p, 0, 64);
  tst_info ("freeing p + 1 of a zeroed 64-byte block");
  free (tst_opaque_ptr (p + 1));
  not_detected ("free of a misaligned pointer");
}

static void
case_invalid_free_stack (void)
{
  _Alignas (16) size_t local[8] = { 0 };
  tst_info ("freeing the address of a (zeroed) stack array element");
  free (tst_opaque_ptr (&local[2]));
  not_detected ("free of a stack address");
}

static void
case_invalid_free_stack_header (void)
{
  _Alignas (16) size_t local[8] = { 0 };
  local[1] = 0x31; /* a plausible in-use 48-byte chunk */
  tst_info ("freeing a stack address with a plausible chunk header");
  free (tst_opaque_ptr (&local[2]));
  not_detected ("free of a stack address with a plausible header");
}

static void
case_invalid_free_interior_header (void)
{
  size_t *p = malloc (0x100);
  memset (p, 0, 0x100);
  p[3] = 0x41; /* data that happens to look like an in-use 64-byte chunk */
  tst_info ("freeing p + 32 of a 0x100-byte block (a plausible size before it)");
  free (tst_opaque_ptr (&p[4]));
  not_detected ("free of an interior pointer with a plausible header");
}

static void
case_corrupt_size (void)
{
  void *a = malloc (104);
  void *b = malloc (104);
  void *g = malloc (104);
  require_adjacent (a, b, 112);
  /* Overflow A by 8 bytes: that writes B's size field.  */
  size_t *b_size = (size_t *) ((char *) tst_opaque_ptr (a) + 104);
  *b_size = 0x11; /* a 16-byte chunk: below the minimum */
  tst_info ("freeing a block whose size field was overwritten with 0x11");
  free (tst_opaque_ptr (b));
  free (g);
  not_detected ("free of a block with a corrupted size");
}

static void
case_corrupt_next_size_fast (void)
{
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = malloc (104);
  void *b = malloc (104);
  void *c = malloc (104);
  void *g = malloc (104);
  require_adjacent (b, c, 112);
  for (int i = 0; i < 7; i++)
    free (fill[i]); /* the tcache bin is full: B goes the fastbin way */
  size_t *c_size = (size_t *) ((char *) tst_opaque_ptr (b) + 104);
  *c_size = 0x1; /* next chunk size 0, PREV_INUSE */
  tst_info ("freeing a fastbin-sized block whose neighbour's size is 0");
  free (tst_opaque_ptr (b));
  free (g);
  not_detected ("free with a corrupted next size (fastbin)");
}

static void
case_corrupt_next_size_normal (void)
{
  void *b = malloc (5000);
  void *c = malloc (5000);
  void *g = malloc (24);
  require_adjacent (b, c, 5008);
  size_t *c_size = (size_t *) ((char *) tst_opaque_ptr (b) + 5000);
  *c_size = 0x1; /* next chunk size 0, PREV_INUSE */
  tst_info ("freeing a 5000-byte block whose neighbour's size is 0");
  free (tst_opaque_ptr (b));
  free (g);
  not_detected ("free with a corrupted next size (normal)");
}

static void
case_munmap_invalid (void)
{
  size_t *p = malloc (200000); /* above the 128 KiB mmap threshold */
  size_t *hdr = tst_opaque_ptr (p);
  /* prev_size of an mmapped chunk is its offset into the mapping; make
     the mapping start misaligned.  */
  hdr[-2] = 8;
  tst_info ("freeing an mmapped block whose prev_size was set to 8");
  free (tst_opaque_ptr (p));
  not_detected ("free of an mmapped block with corrupted prev_size");
}

static void
case_realloc_invalid (void)
{
  unsigned char *p = malloc (64);
  memset (p, 0, 64);
  tst_info ("realloc of p + 8 (a misaligned chunk) of a zeroed block");
  void *q = realloc (tst_opaque_ptr (p + 8), 100);
  tst_info ("realloc returned %p", q);
  not_detected ("realloc of a misaligned pointer");
}

static void
case_overflow_next_header (void)
{
  char *a = malloc (104);
  char *b = malloc (104);
  void *g = malloc (104);
  require_adjacent (a, b, 112);
  tst_info ("writing 112 bytes of 'A' into the 104-byte block A");
  memset (tst_opaque_ptr (a), 'A', 112); /* B's size is now 'AAAAAAAA' */
  free (a);
  free (tst_opaque_ptr (b));
  free (g);
  not_detected ("free of a block whose header was overrun");
}

static void
case_overflow_next_size (void)
{
  char *a = malloc (104);
  char *b = malloc (104);
  char *c = malloc (24);
  void *g = malloc (24);
  require_adjacent (a, b, 112);
  require_adjacent (b, c, 112);
  /* The overflow gives B a larger, plausible size: B's chunk now covers
     C's as well.  */
  *(size_t *) ((char *) tst_opaque_ptr (a) + 104) = 0x91;
  tst_info ("freeing B after its size was overwritten with 0x91 (was 0x71)");
  free (tst_opaque_ptr (b));
  free (c);
  free (g);
  not_detected ("free of a block whose size was overwritten");
}

static void
case_overflow_next_header_normal (void)
{
  char *a = malloc (5000);
  char *b = malloc (5000);
  void *g = malloc (24);
  require_adjacent (a, b, 5008);
  /* The overflow gives B a plausible size: its own and G's, in use.  */
  *(size_t *) ((char *) tst_opaque_ptr (a) + 5000) = 5008 + 32 + 1;
  tst_info ("freeing A after B's size was overwritten with %#x (was %#x)",
            5008 + 32 + 1, 5008 + 1);
  free (tst_opaque_ptr (a));
  free (g);
  not_detected ("free of a block whose neighbour's header was overwritten");
}

static void
case_write_after_free_tcache_next (void)
{
  unsigned char *a = malloc (40);
  unsigned char *b = malloc (40);
  free (a);
  free (b); /* the tcache: b -> a */
  tst_info ("flipping bit 3 of B's first byte (its tcache link) after free");
  ((unsigned char *) tst_opaque_ptr (b))[0] ^= 0x08;
  void *p = malloc (40); /* b; the list head is now misaligned */
  void *q = malloc (40);
  tst_info ("malloc returned %p, then %p", p, q);
  not_detected ("a write after free into a tcache link");
}

static void
case_write_after_free_fastbin_fd (void)
{
  unsigned char *a = malloc (24);
  unsigned char *b = malloc (24);
  void *g = malloc (24);
  fill_tcache_32 ();
  free (a);
  free (b); /* the fastbin: b -> a */
  tst_info ("flipping bit 3 of B's first byte (its fastbin link) after free");
  ((unsigned char *) tst_opaque_ptr (b))[0] ^= 0x08;
  void *p = calloc (1, 24); /* calloc does not use the tcache */
  void *q = calloc (1, 24);
  tst_info ("calloc returned %p, then %p", p, q);
  free (g);
  not_detected ("a write after free into a fastbin link");
}

static void
case_write_after_free_fastbin_size (void)
{
  unsigned char *a = malloc (24);
  void *g = malloc (24);
  fill_tcache_32 ();
  free (a); /* the fastbin: a */
  /* A fake chunk of the wrong size class (0x30) on the stack.  */
  _Alignas (16) size_t fake[8] = { 0 };
  fake[1] = 0x30;
  tst_info ("pointing the freed A's fastbin link at a 0x30-byte fake chunk");
  void **link = tst_opaque_ptr (a);
  *link = (void *) (((uintptr_t) link >> 12) ^ (uintptr_t) fake);
  void *p = calloc (1, 24); /* a */
  void *q = calloc (1, 24); /* the fake chunk, from the 0x20 fastbin */
  tst_info ("calloc returned %p, then %p", p, q);
  free (g);
  not_detected ("a fastbin link to a chunk of another size");
}

static void
case_write_after_free_unsorted_bk (void)
{
  size_t *p = malloc (5000);
  void *g = malloc (24);
  free (p); /* the unsorted bin */
  _Alignas (16) size_t local[8] = { 0 };
  tst_info ("overwriting the freed block's bk link with a stack address");
  ((size_t *) tst_opaque_ptr (p))[1] = (size_t) local;
  void *q = malloc (5000);
  tst_info ("malloc returned %p", q);
  free (g);
  not_detected ("a write after free into an unsorted-bin link");
}

static void
case_write_after_free_smallbin_bk (void)
{
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = malloc (0x100);
  size_t *p = malloc (0x100);
  void *g = malloc (24);
  for (int i = 0; i < 7; i++)
    free (fill[i]); /* the 0x110 tcache bin is full */
  free (p);         /* the unsorted bin */
  void *big = malloc (0x200); /* sorts P into its small bin */
  _Alignas (16) size_t local[8] = { 0 };
  tst_info ("overwriting the freed block's bk link (small bin) with a stack "
            "address");
  ((size_t *) tst_opaque_ptr (p))[1] = (size_t) local;
  void *q = calloc (1, 0x100); /* calloc does not use the tcache */
  tst_info ("calloc returned %p", q);
  free (big);
  free (g);
  not_detected ("a write after free into a small-bin link");
}

static void
case_write_after_free_unlink (void)
{
  size_t *a = malloc (5000);
  void *b = malloc (5000);
  void *g = malloc (24);
  require_adjacent (a, b, 5008);
  free (a); /* the unsorted bin */
  _Alignas (16) size_t local[8] = { 0 };
  tst_info ("overwriting the freed A's fd and bk, then freeing its neighbour");
  size_t *links = tst_opaque_ptr (a);
  links[0] = (size_t) local;
  links[1] = (size_t) local;
  free (tst_opaque_ptr (b)); /* merges with A: unlinks it */
  free (g);
  not_detected ("a write after free into the links of a merged block");
}

static void
case_overflow_top_size (void)
{
  char *a = malloc (24); /* the last block before the top chunk */
  tst_info ("overwriting the top chunk's size with all ones, then malloc");
  *(size_t *) ((char *) tst_opaque_ptr (a) + 24) = SIZE_MAX;
  void *p = malloc (0x1000);
  tst_info ("malloc returned %p", p);
  not_detected ("an overwritten top chunk size");
}

static void
case_overflow_fastbin_size (void)
{
  char *a = malloc (24);
  char *b = malloc (24);
  void *g = malloc (24);
  require_adjacent (a, b, 32);
  fill_tcache_32 ();
  free (b); /* the 0x20 fastbin */
  tst_info ("overflowing A into the freed B's size (0x21 -> 0x31), then a "
            "large malloc (consolidates the fastbins)");
  *(size_t *) ((char *) tst_opaque_ptr (a) + 24) = 0x31;
  void *p = malloc (0x500);
  tst_info ("malloc returned %p", p);
  free (g);
  not_detected ("a fastbin chunk with an overwritten size");
}

static void
case_write_after_free (void)
{
  unsigned char *p = malloc (200);
  free (p);
  tst_info ("writing byte 100 of a freed 200-byte block, then malloc (200)");
  ((unsigned char *) tst_opaque_ptr (p))[100] = 0x5a;
  void *q = malloc (200);
  tst_info ("malloc returned %p", q);
  not_detected ("a write after free into a block's data");
}

static void
case_off_by_one_nul_tcache (void)
{
  char *a = malloc (0x108);
  char *b = malloc (0x200); /* chunk 0x210, size field 0x211 */
  void *g = malloc (24);
  require_adjacent (a, b, 0x110);
  tst_info ("a NUL byte one past A's 0x108 bytes: B's size 0x211 -> 0x200");
  memset (a, 'A', 0x108);
  ((char *) tst_opaque_ptr (a))[0x108] = '\0';
  free (tst_opaque_ptr (b)); /* a tcache-sized free */
  free (g);
  not_detected ("free of a block whose size lost its low byte");
}

static void
case_off_by_one_nul_consolidate (void)
{
  char *a = malloc (0x108);
  char *b = malloc (0x4f8); /* chunk 0x500, size field 0x501 */
  void *g = malloc (24);
  require_adjacent (a, b, 0x110);
  tst_info ("a NUL byte one past A's 0x108 bytes: B's PREV_INUSE cleared");
  memset (a, 'A', 0x108); /* B's prev_size is now 'AAAAAAAA' */
  ((char *) tst_opaque_ptr (a))[0x108] = '\0';
  free (tst_opaque_ptr (b)); /* beyond the tcache: consolidates backwards */
  free (g);
  not_detected ("free of a block whose PREV_INUSE was cleared");
}

static void
case_realloc_freed_tcache (void)
{
  void *p = malloc (40);
  free (p);
  tst_info ("realloc of a freed 40-byte block (in the tcache)");
  void *q = realloc (tst_opaque_ptr (p), 32);
  tst_info ("realloc returned %p", q);
  not_detected ("realloc of a freed block");
}

static void
case_realloc_freed_unsorted (void)
{
  void *p = malloc (5000);
  void *g = malloc (24);
  free (p);
  tst_info ("realloc of a freed 5000-byte block (in the unsorted bin) to 100");
  void *q = realloc (tst_opaque_ptr (p), 100);
  tst_info ("realloc returned %p", q);
  free (g);
  not_detected ("realloc of a freed block");
}

static void
case_huge (void)
{
  static const size_t sizes[] = { (size_t) PTRDIFF_MAX + 1, SIZE_MAX,
                                  SIZE_MAX - 4096, SIZE_MAX / 2 + 1 };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    {
      size_t n = tst_opaque_size (sizes[i]);
      errno = 0;
      void *p = malloc (n);
      CHECK (p == NULL && errno == ENOMEM, "malloc (%#zx): NULL, ENOMEM", n);
      errno = 0;
      p = calloc (n, 1);
      CHECK (p == NULL && errno == ENOMEM, "calloc (%#zx, 1): NULL, ENOMEM",
             n);
      errno = 0;
      p = calloc (n, 16);
      CHECK (p == NULL && errno == ENOMEM, "calloc (%#zx, 16): NULL, ENOMEM",
             n);
      void *old = malloc (32);
      errno = 0;
      p = realloc (old, n);
      CHECK (p == NULL && errno == ENOMEM, "realloc (p, %#zx): NULL, ENOMEM",
             n);
      free (p != NULL ? p : old);
    }
}

static void
case_calloc_overflow (void)
{
  static const size_t pairs[][2] = { { SIZE_MAX / 2 + 1, 2 },
                                     { (size_t) 1 << 32, (size_t) 1 << 32 },
                                     { SIZE_MAX, SIZE_MAX },
                                     { 3, SIZE_MAX / 3 + 1 } };
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
    {
      size_t n = tst_opaque_size (pairs[i][0]), m = tst_opaque_size (pairs[i][1]);
      errno = 0;
      void *p = calloc (n, m);
      CHECK (p == NULL && errno == ENOMEM,
             "calloc (%#zx, %#zx) (product overflows): NULL, ENOMEM", n, m);
    }
}

static void
case_memalign_overflow (void)
{
  static const size_t sizes[] = { SIZE_MAX, SIZE_MAX - 4096,
                                  (size_t) PTRDIFF_MAX + 1 };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    {
      size_t n = tst_opaque_size (sizes[i]);
      void *p = (void *) 1;
      int r = posix_memalign (&p, 64, n);
      CHECK (r == ENOMEM && p == (void *) 1,
             "posix_memalign (&p, 64, %#zx): ENOMEM, p untouched", n);
      errno = 0;
      p = memalign (4096, n);
      CHECK (p == NULL && errno == ENOMEM, "memalign (4096, %#zx): NULL, ENOMEM",
             n);
      errno = 0;
      p = aligned_alloc (64, n);
      CHECK (p == NULL && errno == ENOMEM,
             "aligned_alloc (64, %#zx): NULL, ENOMEM", n);
    }
}

static void
case_realloc_overflow (void)
{
  static const size_t sizes[] = { SIZE_MAX, SIZE_MAX - 8,
                                  (size_t) PTRDIFF_MAX + 1 };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    {
      size_t n = tst_opaque_size (sizes[i]);
      unsigned char *old = malloc (64);
      memset (old, 0x6b, 64);
      errno = 0;
      void *p = realloc (old, n);
      CHECK (p == NULL && errno == ENOMEM, "realloc (p, %#zx): NULL, ENOMEM",
             n);
      CHECK (tst_first_not (old, 64, 0x6b) == 64,
             "realloc (p, %#zx): the old block is intact", n);
      free (p != NULL ? p : old);
    }
}

static void
case_bad_alignment (void)
{
  static const size_t bad[] = { 0, 1, 4, 24, 48, 100, SIZE_MAX / 2 + 2 };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      size_t a = tst_opaque_size (bad[i]);
      void *p = (void *) 1;
      int r = posix_memalign (&p, a, 64);
      CHECK (r == EINVAL && p == (void *) 1,
             "posix_memalign (&p, %#zx, 64): EINVAL, p untouched", a);
    }
  size_t huge = tst_opaque_size (SIZE_MAX / 2 + 2);
  errno = 0;
  void *p = memalign (huge, 64);
  CHECK (p == NULL && errno == EINVAL, "memalign (%#zx, 64): NULL, EINVAL",
         huge);
  errno = 0;
  p = aligned_alloc (huge, 64);
  CHECK (p == NULL && errno == EINVAL, "aligned_alloc (%#zx, 64): NULL, EINVAL",
         huge);
}

struct misuse_case
{
  const char *name;
  void (*run) (void);
};

static const struct misuse_case cases[] = {
  { "double-free-tcache", case_double_free_tcache },
  { "double-free-fastbin", case_double_free_fastbin },
  { "double-free-normal", case_double_free_normal },
  { "double-free-top", case_double_free_top },
  { "double-free-interleaved-tcache", case_double_free_interleaved_tcache },
  { "double-free-interleaved-fastbin", case_double_free_interleaved_fastbin },
  { "double-free-tcache-key", case_double_free_tcache_key },
  { "double-free-large", case_double_free_large },
  { "double-free-mmapped", case_double_free_mmapped },
  { "invalid-free", case_invalid_free },
  { "invalid-free-misaligned", case_invalid_free_misaligned },
  { "invalid-free-stack", case_invalid_free_stack },
  { "invalid-free-stack-header", case_invalid_free_stack_header },
  { "invalid-free-interior-header", case_invalid_free_interior_header },
  { "corrupt-size", case_corrupt_size },
  { "corrupt-next-size-fast", case_corrupt_next_size_fast },
  { "corrupt-next-size-normal", case_corrupt_next_size_normal },
  { "munmap-invalid", case_munmap_invalid },
  { "realloc-invalid", case_realloc_invalid },
  { "overflow-next-header", case_overflow_next_header },
  { "overflow-next-size", case_overflow_next_size },
  { "overflow-next-header-normal", case_overflow_next_header_normal },
  { "write-after-free-tcache-next", case_write_after_free_tcache_next },
  { "write-after-free-fastbin-fd", case_write_after_free_fastbin_fd },
  { "write-after-free-fastbin-size", case_write_after_free_fastbin_size },
  { "write-after-free-unsorted-bk", case_write_after_free_unsorted_bk },
  { "write-after-free-smallbin-bk", case_write_after_free_smallbin_bk },
  { "write-after-free-unlink", case_write_after_free_unlink },
  { "overflow-top-size", case_overflow_top_size },
  { "overflow-fastbin-size", case_overflow_fastbin_size },
  { "write-after-free", case_write_after_free },
  /* The same misuse; the harness runs it with PTMALLOC_RS_FREE_CHECK=1,
     libptmalloc-rs's opt-in check of freed memory.  */
  { "write-after-free-free-check", case_write_after_free },
  { "off-by-one-nul-tcache", case_off_by_one_nul_tcache },
  { "off-by-one-nul-consolidate", case_off_by_one_nul_consolidate },
  { "realloc-freed-tcache", case_realloc_freed_tcache },
  { "realloc-freed-unsorted", case_realloc_freed_unsorted },
  { "huge", case_huge },
  { "calloc-overflow", case_calloc_overflow },
  { "memalign-overflow", case_memalign_overflow },
  { "realloc-overflow", case_realloc_overflow },
  { "bad-alignment", case_bad_alignment },
};

int
main (int argc, char **argv)
{
  if (argc == 2 && strcmp (argv[1], "--list") == 0)
    {
      for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        printf ("%s\n", cases[i].name);
      return 0;
    }
  tst_init ();
  for (size_t i = 0; argc == 2 && i < sizeof cases / sizeof cases[0]; i++)
    if (strcmp (argv[1], cases[i].name) == 0)
      {
        tst_info ("case %s", cases[i].name);
        cases[i].run ();
        return tst_finish ();
      }
  fprintf (stderr, "usage: %s CASE | --list\n", argv[0]);
  return 2;
}
