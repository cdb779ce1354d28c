/* tst-usable-sizes: print malloc_usable_size for every request size.

   Pass 1 ("free"): for n = 0 .. 140000 in order, p = malloc (n), print
   "n usable", free (p).  This crosses the 128 KiB mmap threshold, and
   glibc's dynamic threshold moves each time an mmapped block is freed,
   so the exact sequence matters; every run does the same sequence.

   Pass 2 ("keep"): for n = 0 .. 4096, p = malloc (n), print "n usable",
   keeping every block live until the end.

   The harness runs this against glibc and against libptmalloc-rs and
   requires byte-identical output.  A few self-checks follow the data,
   then the closing "N passed, M failed" line.  */

#include "tst-support.h"

#include <malloc.h>

enum { PASS1_MAX = 140000, PASS2_MAX = 4096 };

static void *kept[PASS2_MAX + 1];

/* A static stdio buffer, so printing does not allocate in between.  */
static char outbuf[1 << 16];

int
main (void)
{
  setvbuf (stdout, outbuf, _IOFBF, sizeof outbuf);

  struct tst_acc ge = TST_ACC_INIT, al = TST_ACC_INIT;

  printf ("pass free\n");
  for (size_t n = 0; n <= PASS1_MAX; n++)
    {
      void *p = malloc (n);
      size_t us = malloc_usable_size (p);
      printf ("%zu %zu\n", n, us);
      ACC_CHECK (&ge, p != NULL && us >= n, "malloc (%zu) = %p usable %zu", n,
                 p, us);
      ACC_CHECK (&al, tst_aligned (p, 16), "malloc (%zu) = %p", n, p);
      free (p);
    }

  printf ("pass keep\n");
  for (size_t n = 0; n <= PASS2_MAX; n++)
    {
      kept[n] = malloc (n);
      size_t us = malloc_usable_size (kept[n]);
      printf ("%zu %zu\n", n, us);
      ACC_CHECK (&ge, kept[n] != NULL && us >= n,
                 "kept malloc (%zu) = %p usable %zu", n, kept[n], us);
      ACC_CHECK (&al, tst_aligned (kept[n], 16), "kept malloc (%zu) = %p", n,
                 kept[n]);
    }
  for (size_t n = 0; n <= PASS2_MAX; n++)
    free (kept[n]);

  printf ("pass end\n");
  fflush (stdout);

  /* This prints info lines too; call it only now so the data above is
     not interleaved with anything.  */
  tst_init_counters ();
  tst_acc_report (&ge, "every usable size >= its request");
  tst_acc_report (&al, "every pointer 16-aligned");
  return tst_finish ();
}
