/* tst-alloc-fail-threads: allocation failure in many threads under
   RLIMIT_AS.

   In the spirit of glibc's malloc/tst-malloc-thread-fail.c: the address
   space is limited with setrlimit (RLIMIT_AS) to what the process uses
   plus a margin; then THREADS threads (started before the limit, so
   their stacks exist) allocate blocks of mixed sizes (small, heap-sized,
   mmapped) with malloc, calloc, realloc and memalign until the first
   failure (and a few more tries).  Every failure must be a NULL with
   errno ENOMEM, no thread may crash, the blocks keep their contents,
   once everything is freed every thread allocates again (still under
   the limit), and with the limit raised again large allocations work.
   The blocks are kept on a list threaded through the blocks themselves,
   so that nothing else needs memory while the address space is full.  */

#include "tst-support.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

enum
{
  THREADS = 16,
  /* The margin over the current address-space size.  */
  MARGIN = 256 << 20,
  /* A thread stops after this many blocks even without a failure.  */
  MAX_BLOCKS = 1 << 20,
};

struct block
{
  struct block *next;
  size_t size;
  uintptr_t seed;
};

struct worker
{
  int id;
  pthread_t thread;
  long blocks;
  long bytes;
  int failures;      /* allocations that returned NULL */
  int bad_errno;     /* ... without ENOMEM */
  int last_errno;
  int corrupt;       /* blocks whose contents changed */
  int limited_bad;   /* a malloc under the limit after freeing failed
                        without ENOMEM */
  int after_ok;      /* a small malloc succeeded once the limit was lifted */
};

static pthread_barrier_t start_barrier;
static pthread_barrier_t limit_barrier;
static pthread_barrier_t freed_barrier;
static pthread_barrier_t lifted_barrier;
/* The limit in force before the test; the last thread to free restores it.  */
static struct rlimit saved_limit;

static size_t
vm_size (void)
{
  FILE *f = fopen ("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f != NULL)
    {
      if (fscanf (f, "%lu", &pages) != 1)
        pages = 0;
      fclose (f);
    }
  return pages * (size_t) sysconf (_SC_PAGESIZE);
}

/* The I-th allocation of worker W: its size and how it is made.  */
static void *
allocate (struct worker *w, long i, size_t *size)
{
  static const size_t sizes[] = { 24, 100, 1000, 5000, 40000, 200000,
                                  1 << 20 };
  size_t n = sizes[(i + w->id) % (sizeof sizes / sizeof sizes[0])];
  if (n < sizeof (struct block))
    n = sizeof (struct block);
  *size = n;
  switch ((i / 7 + w->id) % 4)
    {
    case 0:
      return malloc (n);
    case 1:
      return calloc (1, n);
    case 2:
      return realloc (NULL, n);
    default:
      return memalign (64, n);
    }
}

static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  struct block *list = NULL;
  pthread_barrier_wait (&start_barrier);
  /* The main thread sets the limit between the barriers.  */
  pthread_barrier_wait (&limit_barrier);
  for (long i = 0; i < MAX_BLOCKS; i++)
    {
      size_t n;
      errno = 0;
      struct block *b = allocate (w, i, &n);
      if (b == NULL)
        {
          w->failures++;
          w->last_errno = errno;
          if (errno != ENOMEM)
            w->bad_errno++;
          /* A few more tries, then stop: the address space is full.  */
          if (w->failures >= 8)
            break;
          continue;
        }
      b->next = list;
      b->size = n;
      b->seed = (uintptr_t) w->id * 1000003u + (uintptr_t) i;
      /* Touch only the head and the tail: the limit is on address
         space, not on memory.  */
      size_t body = n - sizeof *b < 64 ? n - sizeof *b : 64;
      tst_fill (b + 1, body, b->seed);
      list = b;
      w->blocks++;
      w->bytes += (long) n;
    }
  while (list != NULL)
    {
      struct block *next = list->next;
      size_t body = list->size - sizeof *list < 64
        ? list->size - sizeof *list : 64;
      if (tst_verify (list + 1, body, list->seed) != body)
        w->corrupt++;
      free (list);
      list = next;
    }
  /* Still under the limit, a small request may or may not fit: glibc
     keeps every arena's heap reserved after its chunks are freed, so a
     thread served by the main arena can find no room to grow it. What
     must hold is that a failure is a clean ENOMEM.  */
  errno = 0;
  void *p = malloc (100);
  if (p == NULL && errno != ENOMEM)
    w->limited_bad++;
  free (p);
  /* Once everyone has freed everything, the limit goes and every thread
     must allocate again.  */
  if (pthread_barrier_wait (&freed_barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
    setrlimit (RLIMIT_AS, &saved_limit);
  pthread_barrier_wait (&lifted_barrier);
  p = malloc (100);
  w->after_ok = p != NULL;
  free (p);
  return NULL;
}

static void
group_threads (void)
{
  static struct worker workers[THREADS];
  struct rlimit old;
  if (getrlimit (RLIMIT_AS, &old) != 0)
    {
      tst_fail ("getrlimit (RLIMIT_AS)", "%s", strerror (errno));
      return;
    }
  pthread_barrier_init (&start_barrier, NULL, THREADS + 1);
  pthread_barrier_init (&limit_barrier, NULL, THREADS + 1);
  pthread_barrier_init (&freed_barrier, NULL, THREADS);
  pthread_barrier_init (&lifted_barrier, NULL, THREADS);
  saved_limit = old;
  pthread_attr_t attr;
  pthread_attr_init (&attr);
  pthread_attr_setstacksize (&attr, 256 * 1024);
  int started = 0;
  for (int i = 0; i < THREADS; i++)
    {
      workers[i].id = i;
      if (pthread_create (&workers[i].thread, &attr, worker_main,
                          &workers[i]) != 0)
        break;
      started++;
    }
  pthread_attr_destroy (&attr);
  if (!CHECK_EQ (started, THREADS, "started %d threads", THREADS))
    _exit (1); /* the others wait at a barrier forever */
  pthread_barrier_wait (&start_barrier);

  size_t vm = vm_size ();
  struct rlimit lim = old;
  lim.rlim_cur = vm + MARGIN;
  if (old.rlim_max != RLIM_INFINITY && lim.rlim_cur > old.rlim_max)
    lim.rlim_cur = old.rlim_max;
  int r = setrlimit (RLIMIT_AS, &lim);
  CHECK (r == 0, "setrlimit (RLIMIT_AS) to the current %zu MiB + %d MiB",
         vm >> 20, MARGIN >> 20);
  pthread_barrier_wait (&limit_barrier);

  for (int i = 0; i < THREADS; i++)
    pthread_join (workers[i].thread, NULL);
  setrlimit (RLIMIT_AS, &old);

  long blocks = 0, bytes = 0;
  int failed = 0, bad = 0, corrupt = 0, after = 0, first_bad = -1;
  int limited_bad = 0;
  for (int i = 0; i < THREADS; i++)
    {
      blocks += workers[i].blocks;
      bytes += workers[i].bytes;
      failed += workers[i].failures > 0;
      bad += workers[i].bad_errno;
      if (workers[i].bad_errno > 0 && first_bad < 0)
        first_bad = i;
      corrupt += workers[i].corrupt;
      after += workers[i].after_ok;
      limited_bad += workers[i].limited_bad;
    }
  tst_info ("%d threads allocated %ld blocks, %ld MiB, before failing",
            THREADS, blocks, bytes >> 20);
  CHECK_EQ (failed, THREADS, "every thread saw an allocation fail under "
            "RLIMIT_AS");
  if (!CHECK_EQ (bad, 0, "every failed allocation set errno to ENOMEM"))
    tst_info ("thread %d: errno %d", first_bad,
              workers[first_bad].last_errno);
  CHECK_EQ (corrupt, 0, "every block kept its contents");
  CHECK_EQ (limited_bad, 0, "a small malloc after freeing, still under the "
            "limit, succeeds or fails with ENOMEM");
  CHECK_EQ (after, THREADS, "every thread allocates again once its blocks "
            "are freed and the limit is lifted");

  /* With the limit gone, large and small allocations work again.  */
  void *big = malloc (64 << 20);
  void *small = malloc (100);
  CHECK (big != NULL && small != NULL, "malloc works after the limit is "
         "lifted (64 MiB: %p, 100 bytes: %p)", big, small);
  free (big);
  free (small);
}

/* The same in one thread, the main one, against the main heap.  */
static void
group_main_thread (void)
{
  struct rlimit old, lim;
  getrlimit (RLIMIT_AS, &old);
  lim = old;
  lim.rlim_cur = vm_size () + MARGIN;
  CHECK (setrlimit (RLIMIT_AS, &lim) == 0, "setrlimit (RLIMIT_AS) in the "
         "main thread");
  struct worker w = { .id = 0 };
  pthread_barrier_init (&start_barrier, NULL, 1);
  pthread_barrier_init (&limit_barrier, NULL, 1);
  pthread_barrier_init (&freed_barrier, NULL, 1);
  pthread_barrier_init (&lifted_barrier, NULL, 1);
  saved_limit = old;
  worker_main (&w);
  setrlimit (RLIMIT_AS, &old);
  tst_info ("main thread: %ld blocks, %ld MiB before failing", w.blocks,
            w.bytes >> 20);
  CHECK (w.failures > 0, "the main thread saw an allocation fail");
  CHECK_EQ (w.bad_errno, 0, "its failures set errno to ENOMEM");
  CHECK_EQ (w.corrupt, 0, "its blocks kept their contents");
  CHECK_EQ (w.limited_bad, 0, "under the limit after freeing: success or "
            "ENOMEM");
  CHECK (w.after_ok, "it allocates again once the limit is lifted");
}

int
main (void)
{
  tst_init ();
  tst_group ("allocation failure in the main thread under RLIMIT_AS",
             group_main_thread);
  tst_group ("allocation failure in 16 threads under RLIMIT_AS",
             group_threads);
  return tst_finish ();
}
