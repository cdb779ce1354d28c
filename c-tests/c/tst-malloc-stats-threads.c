/* tst-malloc-stats-threads: malloc_stats with threads around.

   malloc_stats prints to standard error, which this program sends to a
   temporary file (dup2) and reads back.  The output of each call is a
   block:

     Arena 0:
     system bytes     =     135168
     in use bytes     =       1232
     [Arena 1: ... for further arenas]
     Total (incl. mmap):
     system bytes     =     135168
     in use bytes     =       1232
     max mmap regions =          0
     max mmap bytes   =          0

   with in use <= system in each arena, and the totals exceeding the
   sums over the arenas by the same amount (the mmapped bytes) in both
   lines.

   - several threads call malloc_stats while others allocate: one at a
     time (a mutex in this program), when every block must be whole;
     then all at once, when glibc 2.36 lets the blocks of different
     calls interleave (its stderr lock does not keep them apart), so
     only each line must be whole, with one "Arena 0:" and one
     "Total (incl. mmap):" line per call;
   - malloc_stats is not a cancellation point: glibc marks stderr
     _IO_FLAGS2_NOTCANCEL for the call, so a thread with a cancellation
     request pending prints its whole block and returns;
   - threads with deferred cancellation call malloc_stats in a loop
     between cancellation points and get cancelled: each is gone in
     time, and malloc and malloc_stats still work afterwards (no lock
     left held).

   Every check holds for glibc 2.36's malloc.  */

#include "tst-support.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <time.h>

#define KiB ((size_t) 1024)

enum
{
  ALLOCATORS = 3,
  STATS_THREADS = 4,
  STATS_CALLS = 40,
  MAIN_CALLS = 5,
  CANCEL_ROUNDS = 20,
};

/* ------------------------------------------------------------------ */
/* Capturing standard error.  */

struct capture
{
  int saved;
  int fd;
};

static bool
capture_begin (struct capture *c)
{
  char name[] = "/tmp/tst-malloc-stats-threads-XXXXXX";
  c->fd = mkstemp (name);
  if (c->fd < 0)
    return false;
  unlink (name);
  fflush (stderr);
  c->saved = dup (STDERR_FILENO);
  if (c->saved < 0 || dup2 (c->fd, STDERR_FILENO) < 0)
    {
      close (c->fd);
      return false;
    }
  return true;
}

/* Restore standard error and return what was written (malloc'd,
   NUL-terminated), or NULL.  */
static char *
capture_end (struct capture *c)
{
  fflush (stderr);
  dup2 (c->saved, STDERR_FILENO);
  close (c->saved);
  off_t size = lseek (c->fd, 0, SEEK_END);
  char *buf = size >= 0 ? malloc ((size_t) size + 1) : NULL;
  if (buf != NULL)
    {
      size_t got = 0;
      while (got < (size_t) size)
        {
          ssize_t n = pread (c->fd, buf + got, (size_t) size - got,
                             (off_t) got);
          if (n <= 0)
            break;
          got += (size_t) n;
        }
      buf[got] = '\0';
    }
  close (c->fd);
  return buf;
}

/* ------------------------------------------------------------------ */
/* Parsing malloc_stats output.  */

struct stats_check
{
  long blocks;
  long bad;
  long max_arenas;
  char first[240];
};

static void
stats_bad (struct stats_check *sc, long lineno, const char *why,
           const char *line)
{
  if (sc->bad++ == 0)
    snprintf (sc->first, sizeof sc->first, "line %ld: %s: \"%.80s\"", lineno,
              why, line);
}

/* Whether LINE is exactly LABEL followed by a number printed with
   %10lu; the number in *VALUE.  */
static bool
number_line (const char *line, const char *label, unsigned long *value)
{
  size_t l = strlen (label);
  if (strncmp (line, label, l) != 0)
    return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul (line + l, &end, 10);
  if (errno != 0 || end == line + l || *end != '\0')
    return false;
  char again[128];
  snprintf (again, sizeof again, "%s%10lu", label, v);
  if (strcmp (again, line) != 0)
    return false;
  *value = v;
  return true;
}

enum stats_state
{
  WANT_ARENA0,
  WANT_ARENA_SYSTEM,
  WANT_ARENA_INUSE,
  WANT_ARENA_OR_TOTAL,
  WANT_TOTAL_SYSTEM,
  WANT_TOTAL_INUSE,
  WANT_MAX_REGIONS,
  WANT_MAX_BYTES,
};

/* Check every line of TEXT (which gets modified).  */
static void
check_stats_output (char *text, struct stats_check *sc)
{
  memset (sc, 0, sizeof *sc);
  enum stats_state st = WANT_ARENA0;
  long arena = 0;
  /* Sums modulo 2^32, as malloc_stats adds them in unsigned int.  */
  uint32_t sum_system = 0, sum_inuse = 0, arena_system = 0;
  uint32_t total_system = 0;
  long lineno = 0;
  char *p = text;
  while (*p != '\0')
    {
      char *nl = strchr (p, '\n');
      if (nl == NULL)
        {
          lineno++;
          stats_bad (sc, lineno, "no newline at the end", p);
          st = WANT_ARENA0;
          break;
        }
      *nl = '\0';
      char *line = p;
      p = nl + 1;
      lineno++;
      unsigned long v = 0;
      char want[32];
      switch (st)
        {
        case WANT_ARENA0:
          if (strcmp (line, "Arena 0:") == 0)
            {
              arena = 0;
              sum_system = sum_inuse = 0;
              st = WANT_ARENA_SYSTEM;
            }
          else
            stats_bad (sc, lineno, "expected \"Arena 0:\"", line);
          break;
        case WANT_ARENA_SYSTEM:
          if (number_line (line, "system bytes     = ", &v))
            {
              arena_system = (uint32_t) v;
              sum_system += (uint32_t) v;
              st = WANT_ARENA_INUSE;
            }
          else
            {
              stats_bad (sc, lineno, "expected an arena's system bytes",
                         line);
              st = WANT_ARENA0;
            }
          break;
        case WANT_ARENA_INUSE:
          if (number_line (line, "in use bytes     = ", &v))
            {
              if ((uint32_t) v > arena_system)
                stats_bad (sc, lineno, "in use exceeds system bytes", line);
              sum_inuse += (uint32_t) v;
              st = WANT_ARENA_OR_TOTAL;
            }
          else
            {
              stats_bad (sc, lineno, "expected an arena's in use bytes",
                         line);
              st = WANT_ARENA0;
            }
          break;
        case WANT_ARENA_OR_TOTAL:
          snprintf (want, sizeof want, "Arena %ld:", arena + 1);
          if (strcmp (line, want) == 0)
            {
              arena++;
              st = WANT_ARENA_SYSTEM;
            }
          else if (strcmp (line, "Total (incl. mmap):") == 0)
            st = WANT_TOTAL_SYSTEM;
          else
            {
              stats_bad (sc, lineno, "expected the next arena or the total",
                         line);
              st = WANT_ARENA0;
            }
          break;
        case WANT_TOTAL_SYSTEM:
          if (number_line (line, "system bytes     = ", &v)
              && (uint32_t) v >= sum_system)
            {
              total_system = (uint32_t) v;
              st = WANT_TOTAL_INUSE;
            }
          else
            {
              stats_bad (sc, lineno, "expected total system bytes >= the "
                         "arenas' sum", line);
              st = WANT_ARENA0;
            }
          break;
        case WANT_TOTAL_INUSE:
          if (number_line (line, "in use bytes     = ", &v)
              && (uint32_t) v - sum_inuse == total_system - sum_system)
            st = WANT_MAX_REGIONS;
          else
            {
              stats_bad (sc, lineno, "expected total in use bytes exceeding "
                         "the arenas' sum by the same mmapped amount as "
                         "the system bytes", line);
              st = WANT_ARENA0;
            }
          break;
        case WANT_MAX_REGIONS:
          if (number_line (line, "max mmap regions = ", &v))
            st = WANT_MAX_BYTES;
          else
            {
              stats_bad (sc, lineno, "expected max mmap regions", line);
              st = WANT_ARENA0;
            }
          break;
        case WANT_MAX_BYTES:
          if (number_line (line, "max mmap bytes   = ", &v))
            {
              sc->blocks++;
              if (arena + 1 > sc->max_arenas)
                sc->max_arenas = arena + 1;
            }
          else
            stats_bad (sc, lineno, "expected max mmap bytes", line);
          st = WANT_ARENA0;
          break;
        }
    }
  if (st != WANT_ARENA0)
    stats_bad (sc, lineno, "the output ends inside a block", "");
}

/* ------------------------------------------------------------------ */
/* Allocating threads.  */

static int alloc_stop;

struct alloc_arg
{
  int id;
  long ops;
  long bad;
  long nulls;
};

static void *
alloc_thread (void *varg)
{
  struct alloc_arg *a = varg;
  uint64_t rng = 0x2545F4914F6CDD1Dull * (uint64_t) (a->id + 1);
  enum { SLOTS = 32 };
  unsigned char *slot[SLOTS] = { 0 };
  size_t len[SLOTS] = { 0 };
  uintptr_t seed[SLOTS] = { 0 };
  while (!__atomic_load_n (&alloc_stop, __ATOMIC_RELAXED))
    {
      uint64_t x = tst_xorshift (&rng);
      int s = (int) (x % SLOTS);
      a->ops++;
      if (slot[s] != NULL)
        {
          size_t chk = len[s] < 4096 ? len[s] : 4096;
          if (tst_verify (slot[s], chk, seed[s]) != chk)
            a->bad++;
          free (slot[s]);
          slot[s] = NULL;
          continue;
        }
      size_t n = (x >> 8) % 32 == 0 ? 130 * KiB + (size_t) ((x >> 16) % 100000)
                                     : 1 + (size_t) ((x >> 16) % 3000);
      slot[s] = malloc (n);
      if (slot[s] == NULL)
        {
          a->nulls++;
          continue;
        }
      len[s] = n;
      seed[s] = (uintptr_t) x;
      tst_fill (slot[s], n < 4096 ? n : 4096, seed[s]);
    }
  for (int s = 0; s < SLOTS; s++)
    if (slot[s] != NULL)
      {
        size_t chk = len[s] < 4096 ? len[s] : 4096;
        if (tst_verify (slot[s], chk, seed[s]) != chk)
          a->bad++;
        free (slot[s]);
      }
  return NULL;
}

/* Check that every line of TEXT is one malloc_stats prints, and count
   the "Arena 0:" and "Total (incl. mmap):" lines.  */
static void
check_stats_lines (const char *text, struct stats_check *sc, long *arena0,
                   long *totals)
{
  static const char *const labels[] = {
    "system bytes     = ", "in use bytes     = ", "max mmap regions = ",
    "max mmap bytes   = ",
  };
  memset (sc, 0, sizeof *sc);
  *arena0 = *totals = 0;
  long lineno = 0;
  const char *p = text;
  while (*p != '\0')
    {
      const char *nl = strchr (p, '\n');
      lineno++;
      if (nl == NULL)
        {
          stats_bad (sc, lineno, "no newline at the end", p);
          break;
        }
      char line[160];
      size_t len = (size_t) (nl - p);
      snprintf (line, sizeof line, "%.*s", (int) len, p);
      p = nl + 1;
      unsigned long v;
      int arena, used = 0;
      bool ok = len < sizeof line - 1;
      if (!ok)
        ;
      else if (strcmp (line, "Total (incl. mmap):") == 0)
        ++*totals;
      else if (sscanf (line, "Arena %d:%n", &arena, &used) == 1
               && used == (int) len && arena >= 0)
        {
          char again[32];
          snprintf (again, sizeof again, "Arena %d:", arena);
          ok = strcmp (again, line) == 0;
          if (arena == 0)
            ++*arena0;
        }
      else
        {
          ok = false;
          for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
            ok |= number_line (line, labels[i], &v);
        }
      if (!ok)
        stats_bad (sc, lineno, "not a line malloc_stats prints", line);
    }
}

/* Serializes malloc_stats calls in the first phase.  */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

struct stats_arg
{
  bool serialize;
  long calls;
};

static void
call_malloc_stats (struct stats_arg *a)
{
  if (a->serialize)
    pthread_mutex_lock (&stats_lock);
  malloc_stats ();
  a->calls++;
  if (a->serialize)
    pthread_mutex_unlock (&stats_lock);
}

static void *
stats_thread (void *arg)
{
  struct stats_arg *a = arg;
  for (int i = 0; i < STATS_CALLS; i++)
    {
      call_malloc_stats (a);
      void *p = malloc (100 + (size_t) i * 37);
      free (p);
    }
  return NULL;
}

/* Run STATS_THREADS threads calling malloc_stats (serialized with a
   mutex if SERIALIZE) while ALLOCATORS threads allocate; return the
   output (or NULL) and the number of calls.  */
static char *
stats_phase (bool serialize, long *calls)
{
  struct capture cap;
  *calls = 0;
  if (!CHECK (capture_begin (&cap), "standard error redirected to a "
              "temporary file"))
    return NULL;

  static struct alloc_arg aargs[ALLOCATORS];
  static struct stats_arg sargs[STATS_THREADS + 1];
  pthread_t ath[ALLOCATORS], sth[STATS_THREADS];
  int astarted = 0, sstarted = 0;
  __atomic_store_n (&alloc_stop, 0, __ATOMIC_RELAXED);
  for (int i = 0; i < ALLOCATORS; i++)
    {
      memset (&aargs[i], 0, sizeof aargs[i]);
      aargs[i].id = i;
      if (pthread_create (&ath[i], NULL, alloc_thread, &aargs[i]) != 0)
        break;
      astarted++;
    }
  for (int i = 0; i <= STATS_THREADS; i++)
    sargs[i] = (struct stats_arg) { serialize, 0 };
  for (int i = 0; i < STATS_THREADS; i++)
    {
      if (pthread_create (&sth[i], NULL, stats_thread, &sargs[i]) != 0)
        break;
      sstarted++;
    }
  for (int i = 0; i < MAIN_CALLS; i++)
    {
      usleep (2000);
      call_malloc_stats (&sargs[STATS_THREADS]);
    }
  for (int i = 0; i < sstarted; i++)
    pthread_join (sth[i], NULL);
  __atomic_store_n (&alloc_stop, 1, __ATOMIC_RELAXED);
  long ops = 0, bad = 0, nulls = 0;
  for (int i = 0; i < astarted; i++)
    {
      pthread_join (ath[i], NULL);
      ops += aargs[i].ops;
      bad += aargs[i].bad;
      nulls += aargs[i].nulls;
    }
  char *out = capture_end (&cap);

  const char *how = serialize ? "one at a time" : "at the same time";
  CHECK (astarted == ALLOCATORS && sstarted == STATS_THREADS,
         "started %d allocating threads and %d threads calling malloc_stats "
         "%s", ALLOCATORS, STATS_THREADS, how);
  for (int i = 0; i <= STATS_THREADS; i++)
    *calls += sargs[i].calls;
  CHECK (bad == 0 && nulls == 0 && ops > 0, "the allocating threads' "
         "blocks stayed intact (%ld operations, %ld damaged, %ld NULL)",
         ops, bad, nulls);
  CHECK (out != NULL, "read back standard error");
  return out;
}

static void
group_concurrent (void)
{
  /* malloc_stats one thread at a time, while others allocate: every
     block whole and consistent.  */
  long calls;
  char *out = stats_phase (true, &calls);
  if (out != NULL)
    {
      struct stats_check sc;
      check_stats_output (out, &sc);
      tst_info ("%ld malloc_stats calls one at a time, %ld blocks read "
                "back, up to %ld arenas", calls, sc.blocks, sc.max_arenas);
      if (sc.bad == 0)
        tst_ok ("malloc_stats from several threads, one at a time, while "
                "others allocate: only whole, well-formed, consistent "
                "blocks");
      else
        tst_fail ("malloc_stats output is well-formed", "%ld problems; "
                  "first: %s", sc.bad, sc.first);
      CHECK_EQ (sc.blocks, calls, "one block per malloc_stats call (%ld "
                "calls from %d threads and main)", calls, STATS_THREADS);
      free (out);
    }

  /* At the same time: glibc 2.36 does not keep the blocks of concurrent
     calls apart, but every line is whole.  */
  out = stats_phase (false, &calls);
  if (out != NULL)
    {
      struct stats_check sc;
      long arena0, totals;
      check_stats_lines (out, &sc, &arena0, &totals);
      tst_info ("%ld malloc_stats calls at the same time: %ld \"Arena 0:\" "
                "and %ld \"Total (incl. mmap):\" lines", calls, arena0,
                totals);
      if (sc.bad == 0)
        tst_ok ("malloc_stats from several threads at the same time: every "
                "line whole and well-formed");
      else
        tst_fail ("concurrent malloc_stats lines are well-formed", "%ld "
                  "problems; first: %s", sc.bad, sc.first);
      CHECK (arena0 == calls && totals == calls, "one \"Arena 0:\" and one "
             "\"Total (incl. mmap):\" line per call (%ld calls)", calls);
      free (out);
    }
}

/* ------------------------------------------------------------------ */
/* Cancellation.  */

static pthread_barrier_t pending_barrier;
static int returned_from_stats;

static void *
pending_cancel_thread (void *arg)
{
  (void) arg;
  pthread_setcanceltype (PTHREAD_CANCEL_DEFERRED, NULL);
  /* Not cancellation points: the request stays pending.  */
  pthread_barrier_wait (&pending_barrier);
  pthread_barrier_wait (&pending_barrier);
  malloc_stats ();
  __atomic_store_n (&returned_from_stats, 1, __ATOMIC_RELEASE);
  pthread_testcancel ();
  return NULL;
}

static bool
timed_join (pthread_t th, void **res, long ms)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000)
    {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
  return pthread_timedjoin_np (th, res, &ts) == 0;
}

static void
pending_cancel (void)
{
  struct capture cap;
  if (!CHECK (capture_begin (&cap), "standard error redirected (pending "
              "cancellation)"))
    return;
  pthread_barrier_init (&pending_barrier, NULL, 2);
  pthread_t th;
  int rc = pthread_create (&th, NULL, pending_cancel_thread, NULL);
  void *res = NULL;
  bool joined = false;
  if (rc == 0)
    {
      pthread_barrier_wait (&pending_barrier);
      pthread_cancel (th);
      pthread_barrier_wait (&pending_barrier);
      joined = timed_join (th, &res, 10000);
    }
  char *out = capture_end (&cap);
  if (!CHECK_EQ (rc, 0, "pthread_create (pending cancellation)"))
    return;
  if (!CHECK (joined, "the thread with a pending cancellation request "
              "ended within 10 s"))
    _exit (1);
  CHECK (res == PTHREAD_CANCELED, "it was cancelled (at the "
         "pthread_testcancel after malloc_stats)");
  CHECK (__atomic_load_n (&returned_from_stats, __ATOMIC_ACQUIRE),
         "malloc_stats is not a cancellation point: it returned with the "
         "request pending");
  if (out != NULL)
    {
      struct stats_check sc;
      check_stats_output (out, &sc);
      CHECK (sc.bad == 0 && sc.blocks == 1, "it printed one whole "
             "malloc_stats block (%ld blocks, %ld problems%s%s)", sc.blocks,
             sc.bad, sc.bad ? "; first: " : "", sc.first);
    }
  free (out);
}

static int cancel_started;

static void *
cancelled_thread (void *arg)
{
  uint64_t rng = (uintptr_t) arg * 0x9E3779B97F4A7C15ull + 1;
  pthread_setcanceltype (PTHREAD_CANCEL_DEFERRED, NULL);
  __atomic_store_n (&cancel_started, 1, __ATOMIC_RELEASE);
  for (;;)
    {
      pthread_testcancel ();
      malloc_stats ();
      pthread_testcancel ();
      uint64_t x = tst_xorshift (&rng);
      size_t n = (x >> 8) % 8 == 0 ? 200000 : 1 + (size_t) ((x >> 16) % 2000);
      unsigned char *p = malloc (n);
      if (p != NULL)
        memset (p, 0x3c, n < 256 ? n : 256);
      free (p);
      /* A cancellation point outside the allocator.  */
      usleep (50);
    }
  return NULL;
}

static void
loop_cancel (void)
{
  struct capture cap;
  if (!CHECK (capture_begin (&cap), "standard error redirected (cancelled "
              "threads)"))
    return;
  int cancelled = 0, hung = 0, failed = 0;
  for (int r = 0; r < CANCEL_ROUNDS; r++)
    {
      __atomic_store_n (&cancel_started, 0, __ATOMIC_RELAXED);
      pthread_t th;
      if (pthread_create (&th, NULL, cancelled_thread,
                          (void *) (uintptr_t) (r + 1)) != 0)
        {
          failed++;
          continue;
        }
      while (!__atomic_load_n (&cancel_started, __ATOMIC_ACQUIRE))
        sched_yield ();
      usleep (1000 + 500 * (r % 7));
      pthread_cancel (th);
      void *res = NULL;
      if (!timed_join (th, &res, 10000))
        {
          hung++;
          break;
        }
      if (res == PTHREAD_CANCELED)
        cancelled++;
      else
        failed++;
    }
  if (hung > 0)
    {
      capture_end (&cap);
      tst_fail ("cancelled malloc_stats threads", "a thread did not end "
                "within 10 s of pthread_cancel");
      _exit (1);
    }
  /* Afterwards: main can allocate and print statistics.  */
  unsigned char *p = malloc (5000);
  bool malloc_ok = p != NULL;
  if (p != NULL)
    memset (p, 1, 5000);
  free (p);
  malloc_stats ();
  char *out = capture_end (&cap);

  CHECK (cancelled == CANCEL_ROUNDS && failed == 0,
         "%d threads calling malloc_stats in a loop were each cancelled "
         "(%d cancelled, %d failures)", CANCEL_ROUNDS, cancelled, failed);
  CHECK (malloc_ok, "malloc works after the cancellations");
  if (!CHECK (out != NULL, "read back standard error (cancelled threads)"))
    return;
  struct stats_check sc;
  check_stats_output (out, &sc);
  tst_info ("%ld malloc_stats blocks from the cancelled threads and main",
            sc.blocks);
  if (sc.bad == 0 && sc.blocks > CANCEL_ROUNDS)
    tst_ok ("malloc_stats output of cancelled threads: only whole, "
            "well-formed blocks, and main's block at the end");
  else
    tst_fail ("malloc_stats output of cancelled threads", "%ld blocks, %ld "
              "problems; first: %s", sc.blocks, sc.bad,
              sc.bad ? sc.first : "(none: too few blocks)");
  free (out);
}

static void
group_cancel (void)
{
  pending_cancel ();
  loop_cancel ();
}

int
main (void)
{
  tst_init ();
  tst_group ("malloc_stats from several threads while others allocate",
             group_concurrent);
  tst_group ("malloc_stats in threads that get cancelled", group_cancel);
  return tst_finish ();
}
