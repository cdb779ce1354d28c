/* tst-free-errno: free preserves errno, also when munmap fails.

   In the spirit of glibc's malloc/tst-free-errno.c.  free must leave
   errno alone (POSIX 2024, and glibc since 2.33), including on the path
   where it gives a mapped chunk back with munmap and munmap fails.

   Making munmap fail: a chunk mapped on its own is placed inside a
   larger anonymous read-write mapping (a hole left in a read-write region
   gets the chunk, and the rest of the hole is mapped again with
   MAP_FIXED_NOREPLACE, so that all of it is one VMA), then the
   process's mappings are multiplied (single pages, alternately readable
   and inaccessible so that they do not merge) until mmap fails: the
   process is at vm.max_map_count.  Unmapping the chunk would split its
   VMA in two, one more mapping, so munmap fails with ENOMEM (checked
   first on a test region of the same shape).  Then errno is set to a
   marker value and the chunk freed: errno must still hold the marker.

   If the kernel will not place the neighbours, or munmap does not fail
   at the limit, the group says so with a skip line.  The plain cases
   (free of heap and mapped chunks with munmap succeeding, free (NULL))
   always run.  */

#include "tst-support.h"

#include <malloc.h>

#ifndef MAP_FIXED_NOREPLACE
# define MAP_FIXED_NOREPLACE 0x100000
#endif

enum { MARKER = 0x4711 };

static void
group_plain (void)
{
  static const size_t sizes[] = { 0, 24, 1000, 70000, 200000, 1 << 22 };
  struct tst_acc acc = TST_ACC_INIT;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (int e = 1; e <= 3; e++)
      {
        int want = e == 1 ? MARKER : e == 2 ? ENOMEM : 0;
        void *p = malloc (tst_opaque_size (sizes[i]));
        errno = want;
        free (p);
        int got = errno;
        ACC_CHECK (&acc, got == want, "free of a %zu-byte block changed "
                   "errno %d to %d", sizes[i], want, got);
      }
  errno = MARKER;
  free (NULL);
  ACC_CHECK (&acc, errno == MARKER, "free (NULL) changed errno to %d",
             errno);
  tst_acc_report (&acc, "free preserves errno (heap and mapped chunks, "
                  "NULL)");
}

/* Map LEN bytes at ADDR exactly, read-write, or fail.  */
static bool
map_at (uintptr_t addr, size_t len)
{
  void *p = mmap ((void *) addr, len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED)
    return false;
  if ((uintptr_t) p != addr)
    {
      /* An old kernel took the flag as a hint.  */
      munmap (p, len);
      return false;
    }
  return true;
}

/* The VMA of /proc/self/maps that contains ADDR.  */
static bool
vma_of (uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
  FILE *f = fopen ("/proc/self/maps", "r");
  if (f == NULL)
    return false;
  char line[512];
  bool found = false;
  while (fgets (line, sizeof line, f) != NULL)
    {
      unsigned long s, e;
      if (sscanf (line, "%lx-%lx", &s, &e) == 2 && s <= addr && addr < e)
        {
          *start = s;
          *end = e;
          found = true;
          break;
        }
    }
  fclose (f);
  return found;
}

static void
group_munmap_fails (void)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);
  /* A read-write region with an 8 MiB hole: mmap places new mappings in
     the highest gap that fits, which is the hole.  */
  size_t rlen = 64 << 20, hlen = 8 << 20;
  char *region = mmap (NULL, rlen, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!CHECK (region != MAP_FAILED, "mmap of a 64 MiB region"))
    return;
  uintptr_t hole = (uintptr_t) region + (16 << 20);
  munmap ((void *) hole, hlen);
  /* A chunk mapped on its own (well above the mmap threshold).  */
  char *p = malloc (tst_opaque_size (4 << 20));
  if (!CHECK (p != NULL, "malloc of 4 MiB"))
    return;
  p[0] = 1;
  uintptr_t start = (uintptr_t) p & ~(uintptr_t) (page - 1);
  uintptr_t end = ((uintptr_t) p + malloc_usable_size (p) + page - 1)
                  & ~(uintptr_t) (page - 1);
  if (start >= hole && end <= hole + hlen)
    {
      /* Close the rest of the hole around the chunk.  */
      if (start > hole)
        map_at (hole, start - hole);
      if (end < hole + hlen)
        map_at (end, hole + hlen - end);
    }
  else
    {
      tst_info ("the chunk at %#lx is not in the hole at %#lx",
                (unsigned long) start, (unsigned long) hole);
      /* One page just below and just above, if they are free.  */
      map_at (start - page, page);
      map_at (end, page);
    }
  uintptr_t vs, ve;
  if (!vma_of (start, &vs, &ve) || !(vs < start && ve > end))
    {
      tst_skip ("free preserves errno when munmap fails", "could not place "
                "the mapped chunk inside a larger mapping");
      return;
    }

  /* A test region of the same shape: three read-write pages.  */
  char *t = mmap (NULL, 3 * page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!CHECK (t != MAP_FAILED, "mmap of the test region"))
    return;

  /* Fill the map count.  */
  long fillers = 0;
  for (;;)
    {
      void *f = mmap (NULL, page, fillers % 2 ? PROT_READ : PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (f == MAP_FAILED)
        break;
      fillers++;
      if (fillers > 10 * 1000 * 1000)
        break;
    }
  int r = munmap (t + page, page);
  int e = errno;
  tst_info ("%ld filler mappings; munmap of the middle of a mapping: %d "
            "(%s)", fillers, r, r == 0 ? "success" : strerror (e));
  if (r == 0 || e != ENOMEM)
    {
      tst_skip ("free preserves errno when munmap fails", "munmap does not "
                "fail at vm.max_map_count here");
      return;
    }

  errno = MARKER;
  free (p);
  int got = errno;
  /* (stdout is line buffered and its buffer exists: printing needs no
     new mapping.)  */
  CHECK_EQ (got, MARKER, "free of a mapped chunk whose munmap fails "
            "preserves errno");
  /* (msync needs no memory: it fails with ENOMEM on unmapped pages.)  */
  CHECK (msync ((void *) start, page, MS_ASYNC) == 0, "the chunk is still "
         "mapped (its munmap failed)");
  errno = ENOENT;
  free (NULL);
  CHECK_EQ (errno, ENOENT, "free (NULL) at the map limit preserves errno");
}

int
main (void)
{
  tst_init ();
  tst_group ("free preserves errno", group_plain);
  tst_group ("free preserves errno when munmap fails", group_munmap_fails);
  return tst_finish ();
}
