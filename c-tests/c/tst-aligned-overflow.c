/* tst-aligned-overflow: the aligned allocation paths with sizes near
   SIZE_MAX and large alignments.

   In the spirit of glibc's malloc/tst-memalign.c, tst-posix_memalign.c,
   tst-aligned-alloc.c, tst-valloc.c and tst-pvalloc.c (their overflow
   cases), over a grid of alignments from 16 to 2^63 and sizes at and
   around SIZE_MAX, PTRDIFF_MAX, SIZE_MAX - alignment and SIZE_MAX / 2:
   memalign and aligned_alloc return NULL with errno ENOMEM,
   posix_memalign returns ENOMEM and leaves *memptr alone, valloc and
   pvalloc return NULL with ENOMEM; nothing crashes, and the allocator
   works normally afterwards.  */

#include "tst-support.h"

#include <malloc.h>

static const size_t alignments[] = {
  16, 32, 64, 4096, (size_t) 1 << 16, (size_t) 1 << 20, (size_t) 1 << 30,
  (size_t) 1 << 40, (size_t) 1 << 50, (size_t) 1 << 62, (size_t) 1 << 63,
};

/* Requests that can never be satisfied for alignment A.  */
static size_t
huge_size (size_t a, int k)
{
  switch (k)
    {
    case 0: return SIZE_MAX;
    case 1: return SIZE_MAX - 1;
    case 2: return SIZE_MAX - 15;
    case 3: return SIZE_MAX - a;
    case 4: return SIZE_MAX - a + 1;
    case 5: return SIZE_MAX - a - 32;
    case 6:
      return a <= SIZE_MAX / 2 ? SIZE_MAX - 2 * a + 1 : SIZE_MAX - a - 1;
    case 7: return (size_t) PTRDIFF_MAX;
    case 8: return (size_t) PTRDIFF_MAX + 1;
    case 9: return (size_t) PTRDIFF_MAX - a;
    case 10: return SIZE_MAX / 2 + 1;
    case 11: return SIZE_MAX - 4096;
    default: return SIZE_MAX - 65536;
    }
}
enum { HUGE_SIZES = 13 };

#define NALIGN (sizeof alignments / sizeof alignments[0])

static void
group_memalign (void)
{
  struct tst_acc acc = TST_ACC_INIT;
  for (size_t i = 0; i < NALIGN; i++)
    for (int k = 0; k < HUGE_SIZES; k++)
      {
        size_t a = alignments[i], n = huge_size (a, k);
        errno = 0;
        void *p = memalign (tst_opaque_size (a), tst_opaque_size (n));
        int e = errno;
        ACC_CHECK (&acc, p == NULL && e == ENOMEM,
                   "memalign (%#zx, %#zx) = %p, errno %d", a, n, p, e);
        free (p);
      }
  tst_acc_report (&acc, "memalign with sizes near SIZE_MAX: NULL, ENOMEM "
                  "(%zu alignments x %d sizes)", NALIGN, HUGE_SIZES);
}

static void
group_aligned_alloc (void)
{
  struct tst_acc acc = TST_ACC_INIT;
  for (size_t i = 0; i < NALIGN; i++)
    for (int k = 0; k < HUGE_SIZES; k++)
      {
        size_t a = alignments[i], n = huge_size (a, k);
        errno = 0;
        void *p = aligned_alloc (tst_opaque_size (a), tst_opaque_size (n));
        int e = errno;
        ACC_CHECK (&acc, p == NULL && e == ENOMEM,
                   "aligned_alloc (%#zx, %#zx) = %p, errno %d", a, n, p, e);
        free (p);
      }
  tst_acc_report (&acc, "aligned_alloc with sizes near SIZE_MAX: NULL, "
                  "ENOMEM");
}

static void
group_posix_memalign (void)
{
  struct tst_acc acc = TST_ACC_INIT;
  void *const sentinel = (void *) (uintptr_t) 0x1234560;
  for (size_t i = 0; i < NALIGN; i++)
    for (int k = 0; k < HUGE_SIZES; k++)
      {
        size_t a = alignments[i], n = huge_size (a, k);
        void *p = sentinel;
        int r = posix_memalign (&p, tst_opaque_size (a),
                                tst_opaque_size (n));
        ACC_CHECK (&acc, r == ENOMEM && p == sentinel,
                   "posix_memalign (%#zx, %#zx) = %d, *memptr %p", a, n, r,
                   p);
        if (r == 0)
          free (p);
      }
  tst_acc_report (&acc, "posix_memalign with sizes near SIZE_MAX: ENOMEM, "
                  "*memptr untouched");
}

static void
group_page_aligned (void)
{
  struct tst_acc acc = TST_ACC_INIT;
  size_t page = (size_t) sysconf (_SC_PAGESIZE);
  const size_t sizes[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - page, SIZE_MAX - page + 1,
    SIZE_MAX - 2 * page, SIZE_MAX - 2 * page + 1, SIZE_MAX - 2 * page + 2,
    (size_t) PTRDIFF_MAX, (size_t) PTRDIFF_MAX + 1, SIZE_MAX / 2 + 1,
  };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    {
      errno = 0;
      void *p = valloc (tst_opaque_size (sizes[i]));
      int e = errno;
      ACC_CHECK (&acc, p == NULL && e == ENOMEM, "valloc (%#zx) = %p, "
                 "errno %d", sizes[i], p, e);
      free (p);
      errno = 0;
      p = pvalloc (tst_opaque_size (sizes[i]));
      e = errno;
      ACC_CHECK (&acc, p == NULL && e == ENOMEM, "pvalloc (%#zx) = %p, "
                 "errno %d", sizes[i], p, e);
      free (p);
    }
  tst_acc_report (&acc, "valloc and pvalloc with sizes near SIZE_MAX: "
                  "NULL, ENOMEM");
}

/* Large alignments with sizes that are merely too big for the address
   space (the mmap or the heap growth fails, not an overflow check).  */
static void
group_unmappable (void)
{
  struct tst_acc acc = TST_ACC_INIT;
  const size_t big[] = { (size_t) 1 << 47, (size_t) 1 << 50,
                         (size_t) 1 << 60 };
  for (size_t i = 0; i < NALIGN; i++)
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++)
      {
        size_t a = alignments[i], n = big[k];
        errno = 0;
        void *p = memalign (tst_opaque_size (a), tst_opaque_size (n));
        int e = errno;
        ACC_CHECK (&acc, p == NULL && e == ENOMEM,
                   "memalign (%#zx, %#zx) = %p, errno %d", a, n, p, e);
        free (p);
      }
  tst_acc_report (&acc, "memalign of 2^47..2^60 bytes with alignments up "
                  "to 2^63: NULL, ENOMEM");
}

static void
group_after (void)
{
  /* The failures leave the allocator usable, aligned paths included.  */
  free (memalign (tst_opaque_size ((size_t) 1 << 63), tst_opaque_size (SIZE_MAX)));
  free (aligned_alloc (tst_opaque_size (4096), tst_opaque_size (SIZE_MAX - 4096)));
  struct tst_acc acc = TST_ACC_INIT;
  for (size_t i = 0; i < NALIGN && alignments[i] <= ((size_t) 1 << 20); i++)
    {
      size_t a = alignments[i];
      void *p = memalign (a, 100);
      ACC_CHECK (&acc, p != NULL && tst_aligned (p, a),
                 "memalign (%#zx, 100) = %p", a, p);
      if (p != NULL)
        {
          tst_fill (p, 100, a);
          ACC_CHECK (&acc, tst_verify (p, 100, a) == 100,
                     "block of memalign (%#zx, 100) keeps its contents", a);
        }
      free (p);
    }
  tst_acc_report (&acc, "aligned allocations work after the failures");
}

int
main (void)
{
  tst_init ();
  tst_group ("memalign overflow", group_memalign);
  tst_group ("aligned_alloc overflow", group_aligned_alloc);
  tst_group ("posix_memalign overflow", group_posix_memalign);
  tst_group ("valloc and pvalloc overflow", group_page_aligned);
  tst_group ("large alignment, unmappable size", group_unmappable);
  tst_group ("allocation after the failures", group_after);
  return tst_finish ();
}
