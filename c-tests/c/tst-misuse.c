/* tst-misuse CASE: misuse of the allocator that glibc detects.

   Each abort case performs one misuse that glibc 2.36 detects; glibc
   then prints one line to stderr (with LIBC_FATAL_STDERR_=1) and aborts.
   The harness runs every case in its own process and requires SIGABRT
   plus the same stderr line from libptmalloc-rs.  If the misuse is not
   detected, the program prints a FAIL line and exits 1.  A case whose
   setup does not hold (e.g. two blocks expected to be neighbours are
   not) exits 3 with a "setup:" FAIL line.

   The "huge" case is an ordinary check program: impossible sizes give
   NULL and ENOMEM; it exits 0.  */

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
  { "invalid-free", case_invalid_free },
  { "invalid-free-misaligned", case_invalid_free_misaligned },
  { "invalid-free-stack", case_invalid_free_stack },
  { "corrupt-size", case_corrupt_size },
  { "corrupt-next-size-fast", case_corrupt_next_size_fast },
  { "corrupt-next-size-normal", case_corrupt_next_size_normal },
  { "munmap-invalid", case_munmap_invalid },
  { "realloc-invalid", case_realloc_invalid },
  { "huge", case_huge },
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
