/* tst-malloc-fork-deadlock: fork while other threads malloc, free and
   use stdio.

   In the spirit of glibc's malloc/tst-malloc-fork-deadlock.c (bug
   19431): worker threads keep calling malloc/free (small blocks, blocks
   above the 128 KiB mmap threshold, calloc, realloc, malloc_trim, so
   that the break moves up and down all the time) and stdio
   (fprintf and fflush on a FILE opened on /dev/null, fopen/fclose,
   fflush (NULL)); another thread forks trivial children all the time;
   and the main thread forks FORKS children one after the other.  Each
   child mallocs and frees, uses stdio, creates and joins a thread that
   allocates, forks a grandchild that allocates, and exits 0.

   A fork that copies a lock held by another thread (an allocator lock
   or a stdio lock) leaves the child deadlocked as soon as it needs that
   lock; jemalloc and tcmalloc are known to hang here.  Every child is
   waited for with a deadline, killed if it does not finish, and counted
   as a failure if it hung, crashed or exited non-zero.

   Every check holds for glibc 2.36's malloc.  */

#include "tst-support.h"

#include <malloc.h>
#include <pthread.h>
#include <time.h>

enum
{
  WORKERS = 3,
  FORKERS = 1,
  FORKS = 200,
  WORKER_SLOTS = 16,
};

/* How long a child (or grandchild) may take before it counts as hung.  */
#define CHILD_DEADLINE_MS 10000L
/* The main thread stops forking after this long, whatever the count.  */
#define FORK_BUDGET_MS 20000L

#define KiB ((size_t) 1024)
#define MiB (1024 * KiB)

static int stop_flag;
static FILE *devnull;

static bool
stopping (void)
{
  return __atomic_load_n (&stop_flag, __ATOMIC_RELAXED) != 0;
}

/* Bytes of a block that get a pattern (all of a small one, the head of
   a large one, so that the workers stay fast).  */
static size_t
pattern_len (size_t n)
{
  return n < 4096 ? n : 4096;
}

/* ------------------------------------------------------------------ */
/* Worker threads: malloc/free and stdio until told to stop.  */

struct worker
{
  int id;
  long ops;
  long errors;
  long nulls;
  char first[160];
};

static void
worker_error (struct worker *w, const char *what, size_t n)
{
  if (w->errors++ == 0)
    snprintf (w->first, sizeof w->first, "worker %d: %s (size %zu)", w->id,
              what, n);
}

static void *
worker_thread (void *varg)
{
  struct worker *w = varg;
  uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t) (w->id + 1);
  unsigned char *slot[WORKER_SLOTS] = { 0 };
  size_t len[WORKER_SLOTS] = { 0 };
  uintptr_t seed[WORKER_SLOTS] = { 0 };

  while (!stopping ())
    {
      uint64_t x = tst_xorshift (&rng);
      int s = (int) (x % WORKER_SLOTS);
      w->ops++;
      if (slot[s] != NULL)
        {
          size_t pl = pattern_len (len[s]);
          if (tst_verify (slot[s], pl, seed[s]) != pl)
            worker_error (w, "pattern damaged before free", len[s]);
          free (slot[s]);
          slot[s] = NULL;
        }
      else
        {
          size_t n;
          switch ((x >> 8) % 16)
            {
            case 0:
              n = 128 * KiB + 1 + (size_t) ((x >> 16) % (256 * KiB));
              break;
            case 1:
            case 2:
              n = 4 * KiB + (size_t) ((x >> 16) % (60 * KiB));
              break;
            default:
              n = 1 + (size_t) ((x >> 16) % 1024);
              break;
            }
          unsigned char *p;
          if ((x >> 32) % 8 == 0)
            {
              p = calloc (1, n);
              if (p != NULL && tst_first_not (p, pattern_len (n), 0)
                               != pattern_len (n))
                worker_error (w, "calloc memory not zero", n);
            }
          else
            p = malloc (n);
          if (p == NULL)
            {
              w->nulls++;
              continue;
            }
          if (!tst_aligned (p, 16))
            worker_error (w, "misaligned block", n);
          if ((x >> 36) % 8 == 0)
            {
              /* Grow it through realloc, contents kept.  */
              tst_fill (p, pattern_len (n), (uintptr_t) x);
              size_t m = n + 1 + (size_t) ((x >> 40) % (200 * KiB));
              unsigned char *q = realloc (p, m);
              if (q == NULL)
                {
                  w->nulls++;
                  free (p);
                  continue;
                }
              if (tst_verify (q, pattern_len (n), (uintptr_t) x)
                  != pattern_len (n))
                worker_error (w, "realloc lost contents", m);
              p = q;
              n = m;
            }
          slot[s] = p;
          len[s] = n;
          seed[s] = (uintptr_t) x;
          tst_fill (p, pattern_len (n), seed[s]);
        }

      /* stdio, which has its own locks and allocates too.  */
      if (w->ops % 16 == 0
          && fprintf (devnull, "worker %d op %ld %s %g\n", w->id, w->ops,
                      "some text", (double) w->ops / 3.0) < 0)
        worker_error (w, "fprintf to /dev/null failed", 0);
      if (w->ops % 64 == 0 && fflush (devnull) != 0)
        worker_error (w, "fflush (/dev/null) failed", 0);
      if (w->ops % 512 == 0)
        {
          FILE *f = fopen ("/dev/null", "w");
          if (f == NULL)
            worker_error (w, "fopen (/dev/null) failed", 0);
          else
            {
              fprintf (f, "worker %d private stream %ld\n", w->id, w->ops);
              if (fclose (f) != 0)
                worker_error (w, "fclose failed", 0);
            }
        }
      if (w->id == 0 && w->ops % 256 == 0 && fflush (NULL) != 0)
        worker_error (w, "fflush (NULL) failed", 0);
      /* Move the break down now and then (it moves up by itself).  */
      if (w->id == 1 && w->ops % 1024 == 0)
        malloc_trim (0);
    }
  for (int s = 0; s < WORKER_SLOTS; s++)
    if (slot[s] != NULL)
      {
        size_t pl = pattern_len (len[s]);
        if (tst_verify (slot[s], pl, seed[s]) != pl)
          worker_error (w, "pattern damaged at the end", len[s]);
        free (slot[s]);
      }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Forker threads: fork trivial children all the time, as glibc's test
   does from four threads.  */

struct forker
{
  int id;
  long forks;
  long bad;
  char first[160];
};

static void *
forker_thread (void *varg)
{
  struct forker *f = varg;
  while (!stopping ())
    {
      pid_t pid = fork ();
      if (pid == 0)
        {
          alarm (10);
          void *p = malloc (100);
          void *q = malloc (200 * KiB);
          if (p == NULL || q == NULL)
            _exit (2);
          memset (p, 1, 100);
          memset (q, 2, 200 * KiB);
          free (q);
          free (p);
          _exit (17);
        }
      if (pid < 0)
        {
          if (f->bad++ == 0)
            snprintf (f->first, sizeof f->first, "forker %d: fork: %s",
                      f->id, strerror (errno));
          break;
        }
      int status = 0;
      int r = tst_wait_deadline (pid, &status, CHILD_DEADLINE_MS);
      f->forks++;
      /* Leave the CPU to the others now and then (2 cores suffice).  */
      usleep (500);
      if (r != 1 || !WIFEXITED (status) || WEXITSTATUS (status) != 17)
        {
          if (f->bad++ == 0)
            {
              char st[96];
              snprintf (f->first, sizeof f->first, "forker %d, fork #%ld: %s",
                        f->id, f->forks,
                        r == 0 ? "child hung and was killed"
                        : r < 0 ? "waitpid failed"
                        : tst_describe_status (status, st, sizeof st));
            }
        }
    }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* The main thread's children.  */

/* Exit codes of a child, with what they mean.  */
enum child_code
{
  CHILD_OK = 0,
  CHILD_MALLOC = 2,
  CHILD_PATTERN,
  CHILD_CALLOC,
  CHILD_REALLOC,
  CHILD_FOPEN,
  CHILD_FPRINTF,
  CHILD_FFLUSH,
  CHILD_ASPRINTF,
  CHILD_PTHREAD_CREATE,
  CHILD_THREAD_RESULT,
  CHILD_FORK,
  CHILD_GRANDCHILD_HUNG,
  CHILD_GRANDCHILD_STATUS,
  CHILD_CODE_END
};

static const char *const child_code_names[CHILD_CODE_END] = {
  [CHILD_MALLOC] = "malloc returned NULL",
  [CHILD_PATTERN] = "a block's pattern was damaged",
  [CHILD_CALLOC] = "calloc failed or was not zeroed",
  [CHILD_REALLOC] = "realloc failed or lost contents",
  [CHILD_FOPEN] = "fopen (/dev/null) failed",
  [CHILD_FPRINTF] = "fprintf failed",
  [CHILD_FFLUSH] = "fflush/fclose failed",
  [CHILD_ASPRINTF] = "asprintf failed or printed wrongly",
  [CHILD_PTHREAD_CREATE] = "pthread_create failed",
  [CHILD_THREAD_RESULT] = "its thread's allocations failed",
  [CHILD_FORK] = "fork of the grandchild failed",
  [CHILD_GRANDCHILD_HUNG] = "the grandchild hung",
  [CHILD_GRANDCHILD_STATUS] = "the grandchild exited badly",
};

static const size_t child_sizes[] = { 1, 24, 100, 1000, 5000, 70000,
                                      200000, 2 * MiB };
#define N_CHILD_SIZES (sizeof child_sizes / sizeof child_sizes[0])

/* malloc, fill, verify and free one block of each size (the pattern
   covers the head of a large block, whose last byte is checked too).  */
static int
alloc_round (uintptr_t seed)
{
  unsigned char *p[N_CHILD_SIZES];
  for (size_t i = 0; i < N_CHILD_SIZES; i++)
    {
      size_t n = child_sizes[i];
      p[i] = malloc (n);
      if (p[i] == NULL)
        return CHILD_MALLOC;
      tst_fill (p[i], pattern_len (n), seed + i);
      if (n > pattern_len (n))
        p[i][n - 1] = (unsigned char) (seed + i);
    }
  int rc = CHILD_OK;
  for (size_t i = 0; i < N_CHILD_SIZES; i++)
    {
      size_t n = child_sizes[i];
      if (tst_verify (p[i], pattern_len (n), seed + i) != pattern_len (n)
          || (n > pattern_len (n)
              && p[i][n - 1] != (unsigned char) (seed + i)))
        rc = CHILD_PATTERN;
      free (p[i]);
    }
  return rc;
}

static void *
child_thread (void *arg)
{
  int rc = alloc_round ((uintptr_t) arg);
  if (rc == CHILD_OK)
    rc = alloc_round ((uintptr_t) arg + 100);
  return (void *) (intptr_t) rc;
}

static int
child_work (int i)
{
  int rc = alloc_round ((uintptr_t) i);
  if (rc != CHILD_OK)
    return rc;

  unsigned char *c = calloc (1, 5000);
  if (c == NULL || tst_first_not (c, 5000, 0) != 5000)
    return CHILD_CALLOC;
  tst_fill (c, 5000, 7);
  c = realloc (c, 300000);
  if (c == NULL || tst_verify (c, 5000, 7) != 5000)
    return CHILD_REALLOC;
  free (c);

  FILE *f = fopen ("/dev/null", "w");
  if (f == NULL)
    return CHILD_FOPEN;
  if (fprintf (f, "child %d: %s %f\n", i, "stdio in a fork child", 1.5) < 0)
    return CHILD_FPRINTF;
  if (fflush (f) != 0 || fclose (f) != 0)
    return CHILD_FFLUSH;
  char *s = NULL;
  if (asprintf (&s, "child %d %s", i, "asprintf") < 0 || s == NULL)
    return CHILD_ASPRINTF;
  char want[64];
  snprintf (want, sizeof want, "child %d %s", i, "asprintf");
  if (strcmp (s, want) != 0)
    return CHILD_ASPRINTF;
  free (s);

  pthread_t th;
  if (pthread_create (&th, NULL, child_thread, (void *) (uintptr_t) i) != 0)
    return CHILD_PTHREAD_CREATE;
  void *res = NULL;
  pthread_join (th, &res);
  if (res != NULL)
    return CHILD_THREAD_RESULT;

  pid_t pid = fork ();
  if (pid < 0)
    return CHILD_FORK;
  if (pid == 0)
    {
      alarm (10);
      _exit (alloc_round ((uintptr_t) i + 1000));
    }
  int status = 0;
  int r = tst_wait_deadline (pid, &status, CHILD_DEADLINE_MS);
  if (r != 1)
    return CHILD_GRANDCHILD_HUNG;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    return CHILD_GRANDCHILD_STATUS;

  return alloc_round ((uintptr_t) i + 2000);
}

static void
describe_child (char *buf, size_t n, int i, int r, int status)
{
  tst_describe_fork_child (buf, n, i, r, status, CHILD_DEADLINE_MS,
                           child_code_names, CHILD_CODE_END);
}

/* The main thread's children, counted: how many forked, exited 0 in
   time, hung; the first problem.  */
struct fork_tally
{
  int forks, good, hung;
  char first[200];
};

/* Fork child #I, which exits with WORK (I) (or is killed by its alarm
   after 10 s), and wait for it with the deadline; false if fork failed.  */
static bool
fork_and_wait (int i, int (*work) (int), struct fork_tally *t)
{
  pid_t pid = fork ();
  if (pid == 0)
    {
      alarm (10);
      _exit (work (i));
    }
  if (pid < 0)
    {
      snprintf (t->first, sizeof t->first, "fork #%d failed: %s", i,
                strerror (errno));
      return false;
    }
  t->forks++;
  int status = 0;
  int r = tst_wait_deadline (pid, &status, CHILD_DEADLINE_MS);
  if (r == 1 && WIFEXITED (status) && WEXITSTATUS (status) == 0)
    t->good++;
  else
    {
      if (r == 0 || (r == 1 && WIFSIGNALED (status)
                     && WTERMSIG (status) == SIGALRM))
        t->hung++;
      if (t->first[0] == '\0')
        describe_child (t->first, sizeof t->first, i, r, status);
    }
  return true;
}

static void
group_fork_deadlock (void)
{
  devnull = fopen ("/dev/null", "w");
  if (!CHECK (devnull != NULL, "fopen (\"/dev/null\", \"w\")"))
    return;

  static struct worker workers[WORKERS];
  static struct forker forkers[FORKERS];
  pthread_t wth[WORKERS], fth[FORKERS];
  int wstarted = 0, fstarted = 0;
  for (int i = 0; i < WORKERS; i++)
    {
      workers[i].id = i;
      if (pthread_create (&wth[i], NULL, worker_thread, &workers[i]) != 0)
        break;
      wstarted++;
    }
  for (int i = 0; i < FORKERS; i++)
    {
      forkers[i].id = i;
      if (pthread_create (&fth[i], NULL, forker_thread, &forkers[i]) != 0)
        break;
      fstarted++;
    }
  CHECK (wstarted == WORKERS && fstarted == FORKERS,
         "started %d malloc/stdio threads and %d forking threads", WORKERS,
         FORKERS);

  /* Let the workers get going.  */
  usleep (20 * 1000);

  long start = tst_now_ms ();
  struct fork_tally t = { 0 };
  for (int i = 0; i < FORKS && tst_now_ms () - start < FORK_BUDGET_MS; i++)
    if (!fork_and_wait (i, child_work, &t))
      break;
  long fork_ms = tst_now_ms () - start;

  __atomic_store_n (&stop_flag, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < wstarted; i++)
    pthread_join (wth[i], NULL);
  for (int i = 0; i < fstarted; i++)
    pthread_join (fth[i], NULL);

  tst_info ("%d forks from the main thread in %ld ms", t.forks, fork_ms);
  CHECK_EQ (t.forks, FORKS, "the main thread forked %d times within %ld s",
            FORKS, FORK_BUDGET_MS / 1000);
  if (t.good == t.forks && t.forks > 0)
    tst_ok ("every child of the main thread mallocs, frees, uses stdio, "
            "runs a thread, forks a grandchild and exits 0 in time");
  else
    tst_fail ("children of the main thread", "%d of %d good, %d hung; "
              "first problem: %s", t.good, t.forks, t.hung, t.first);
  CHECK_EQ (t.hung, 0, "no child of the main thread hung");

  long fforks = 0, fbad = 0;
  const char *ffirst = NULL;
  for (int i = 0; i < fstarted; i++)
    {
      fforks += forkers[i].forks;
      fbad += forkers[i].bad;
      if (ffirst == NULL && forkers[i].bad > 0)
        ffirst = forkers[i].first;
    }
  tst_info ("%ld more forks from the %d forking threads", fforks, fstarted);
  if (fbad == 0 && fforks > 0)
    tst_ok ("children forked by the other threads malloc, free and exit 17 "
            "in time");
  else
    tst_fail ("children forked by the other threads", "%ld of %ld bad; "
              "first: %s", fbad, fforks, ffirst ? ffirst : "none forked");

  long ops = 0, errors = 0, nulls = 0;
  const char *wfirst = NULL;
  for (int i = 0; i < wstarted; i++)
    {
      ops += workers[i].ops;
      errors += workers[i].errors;
      nulls += workers[i].nulls;
      if (wfirst == NULL && workers[i].errors > 0)
        wfirst = workers[i].first;
    }
  tst_info ("%ld malloc/free operations in the worker threads", ops);
  if (errors == 0 && ops > 0)
    tst_ok ("worker threads: every block intact and every stdio call "
            "succeeded across the forks");
  else
    tst_fail ("worker threads", "%ld errors in %ld operations; first: %s",
              errors, ops, wfirst ? wfirst : "no operation ran");
  CHECK_EQ (nulls, 0, "worker threads: no allocation failed");

  CHECK (fclose (devnull) == 0, "fclose (/dev/null) after the threads");

  /* The parent's heap is still fine after all of it.  */
  CHECK_EQ (alloc_round (99), CHILD_OK, "the parent mallocs and frees "
            "every size after the forks");
}

/* ------------------------------------------------------------------ */
/* A child whose first allocations come from several threads at once.
   The allocator finds out in the child, at its first call that may take
   a lock, that a fork happened (ours: a page the kernel wipes in the
   child); when several of the child's threads make that call together,
   one must set the child's allocator right while the others wait for
   it.  The parent's threads allocate all the time, so the arenas' locks
   are often held at the fork.  */

enum
{
  RACE_FORKS = 200,
  RACE_THREADS = 4, /* the tst_ok message says 4 */
  RACE_ROUNDS = 300,
  RACE_CHURNERS = 4,
};

static pthread_barrier_t race_barrier;

/* One thread of a child: waits until all of them exist, then allocates,
   fills, checks and frees blocks of every size below 2 MiB.  */
static void *
race_thread (void *arg)
{
  uintptr_t id = (uintptr_t) arg;
  pthread_barrier_wait (&race_barrier);
  for (int i = 0; i < RACE_ROUNDS; i++)
    {
      size_t n = child_sizes[(id + (uintptr_t) i) % (N_CHILD_SIZES - 1)];
      unsigned char *p = malloc (n);
      if (p == NULL)
        return (void *) (uintptr_t) CHILD_MALLOC;
      size_t pl = pattern_len (n);
      tst_fill (p, pl, id * 1000 + (uintptr_t) i);
      if (tst_verify (p, pl, id * 1000 + (uintptr_t) i) != pl)
        return (void *) (uintptr_t) CHILD_PATTERN;
      free (p);
    }
  return NULL;
}

static int
race_child (int i)
{
  (void) i;
  pthread_t th[RACE_THREADS];
  pthread_barrier_init (&race_barrier, NULL, RACE_THREADS);
  for (uintptr_t t = 0; t < RACE_THREADS; t++)
    if (pthread_create (&th[t], NULL, race_thread, (void *) t) != 0)
      return CHILD_PTHREAD_CREATE;
  int code = CHILD_OK;
  for (int t = 0; t < RACE_THREADS; t++)
    {
      void *r = NULL;
      pthread_join (th[t], &r);
      if (r != NULL && code == CHILD_OK)
        code = (int) (uintptr_t) r;
    }
  return code;
}

/* The parent's churn: small and mmapped blocks, until told to stop.  */
static void *
churn_thread (void *arg)
{
  long *ops = arg;
  void *keep[8] = { NULL };
  for (unsigned i = 0; !stopping (); i++)
    {
      free (keep[i % 8]);
      keep[i % 8] = malloc (i % 64 == 0 ? 200 * KiB : 16 + i % 1000);
      ++*ops;
    }
  for (int k = 0; k < 8; k++)
    free (keep[k]);
  return NULL;
}

static void
group_fork_race (void)
{
  __atomic_store_n (&stop_flag, 0, __ATOMIC_RELAXED);
  static long churn_ops[RACE_CHURNERS];
  pthread_t cth[RACE_CHURNERS];
  int started = 0;
  for (int i = 0; i < RACE_CHURNERS; i++)
    if (pthread_create (&cth[i], NULL, churn_thread, &churn_ops[i]) == 0)
      started++;
  CHECK_EQ (started, RACE_CHURNERS, "started the parent's allocating "
            "threads");
  usleep (10 * 1000);

  struct fork_tally t = { 0 };
  for (int i = 0; i < RACE_FORKS; i++)
    if (!fork_and_wait (i, race_child, &t))
      break;
  __atomic_store_n (&stop_flag, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < started; i++)
    pthread_join (cth[i], NULL);

  long ops = 0;
  for (int i = 0; i < started; i++)
    ops += churn_ops[i];
  tst_info ("%d children of %d threads each; %ld operations in the "
            "parent's threads meanwhile", t.forks, RACE_THREADS, ops);
  if (t.good == RACE_FORKS)
    tst_ok ("every child's 4 threads allocate at once from their start, "
            "check their blocks and exit 0 in time");
  else
    tst_fail ("children whose threads allocate at once", "%d of %d good, "
              "%d hung; first problem: %s", t.good, t.forks, t.hung, t.first);
}

int
main (void)
{
  tst_init ();
  tst_group ("fork while threads malloc and use stdio", group_fork_deadlock);
  tst_group ("a child's first allocations come from several threads at once",
             group_fork_race);
  return tst_finish ();
}
