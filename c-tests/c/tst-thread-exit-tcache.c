/* tst-thread-exit-tcache: a thread's cached chunks go back when it
   exits.

   A thread that frees small blocks keeps up to 7 chunks of each of the
   64 tcache sizes in its own cache; glibc returns them to their arena
   when the thread exits (tcache_thread_shutdown).  Were they lost, each
   exiting thread would leak about 240 KiB.

   - sequential: 2000 threads, one after the other, each allocates and
     frees blocks of every tcache size (filling its cache) and exits.
     mallinfo2 and the resident set size must stay bounded, and the
     bytes in use must come back to where they were.
   - concurrent: worker threads allocate, check and free all the time
     (and hand blocks to each other), while rounds of 16 short-lived
     threads start, allocate, check, hand blocks over, fill their caches
     and exit.  Every block is checked against its pattern.

   - outlived: a thread allocates 3 MiB of small blocks and exits; a
     thread of another arena frees them all and exits. The first thread's arena
     gets every block back (none is left waiting for the thread that
     exited), so its heap shrinks: the resident set drops by most of the
     3 MiB.
   - idle owner: a thread allocates 12 MiB of 60 KiB blocks and waits,
     alive, allocating nothing more; the main thread frees them all. Its
     arena gets them back at once (not when its thread next allocates,
     which may be never), so its heap shrinks by most of the 12 MiB.
   - small blocks, idle owner: the same with 4 MiB of 256-byte blocks,
     freed by a thread that then works on (slow calls 50 ms later), and
     again by one that exits: either way the queue the freeing thread
     left is not left waiting for the idle owner.

   Every check holds for glibc 2.36's malloc.  */

#include "tst-support.h"

#include <malloc.h>
#include <pthread.h>
#include <time.h>

#define KiB ((size_t) 1024)
#define MiB (1024 * KiB)

enum
{
  /* tcache bins: chunk sizes 32 .. 1040, requests 24 + 16 * i.  */
  TCACHE_BINS = 64,
  /* Blocks per size: 7 fill the bin, the rest go to the arena.  */
  PER_BIN = 9,
  SEQ_THREADS = 2000,
  WARMUP_THREADS = 50,
};

/* Limits for the whole process, far below what the leak would reach
   (2000 x 240 KiB = 470 MiB) and far above glibc's own use.  */
#define LIMIT_ARENA (64 * MiB)
#define LIMIT_RSS_GROWTH (64 * MiB)
#define LIMIT_INUSE_GROWTH (4 * MiB)

static size_t
bin_request (int i)
{
  return 24 + 16 * (size_t) i;
}

/* ------------------------------------------------------------------ */
/* Sequential threads.  */

struct fill_result
{
  long bad;
  long nulls;
};

/* Allocate PER_BIN blocks of every tcache size with a pattern, check
   them, free them all: the thread's cache ends up full.  */
static void *
fill_cache_thread (void *arg)
{
  struct fill_result *r = arg;
  uintptr_t base = (uintptr_t) r;
  unsigned char *blocks[TCACHE_BINS][PER_BIN];
  for (int i = 0; i < TCACHE_BINS; i++)
    for (int j = 0; j < PER_BIN; j++)
      {
        size_t n = bin_request (i);
        blocks[i][j] = malloc (n);
        if (blocks[i][j] == NULL)
          r->nulls++;
        else
          tst_fill (blocks[i][j], n, base + (uintptr_t) (i * PER_BIN + j));
      }
  /* A few larger blocks too, in the arena's own bins.  */
  void *big[4];
  for (int k = 0; k < 4; k++)
    {
      big[k] = malloc (2000 + 3000 * (size_t) k);
      if (big[k] == NULL)
        r->nulls++;
      else
        memset (big[k], k, 2000);
    }
  for (int i = 0; i < TCACHE_BINS; i++)
    for (int j = 0; j < PER_BIN; j++)
      {
        size_t n = bin_request (i);
        if (blocks[i][j] != NULL
            && tst_verify (blocks[i][j], n,
                           base + (uintptr_t) (i * PER_BIN + j)) != n)
          r->bad++;
        free (blocks[i][j]);
      }
  for (int k = 0; k < 4; k++)
    free (big[k]);
  return NULL;
}

static bool
run_fill_threads (int count, struct fill_result *r, int *create_failures)
{
  for (int t = 0; t < count; t++)
    {
      pthread_t th;
      if (pthread_create (&th, NULL, fill_cache_thread, r) != 0)
        {
          ++*create_failures;
          return false;
        }
      pthread_join (th, NULL);
    }
  return true;
}

static void
group_sequential (void)
{
  struct fill_result r = { 0, 0 };
  int create_failures = 0;

  /* Warm up: thread stacks, arenas and the like exist from here on.  */
  run_fill_threads (WARMUP_THREADS, &r, &create_failures);
  struct mallinfo2 before = mallinfo2 ();
  size_t rss_before = tst_rss_bytes ();

  long start = tst_now_ms ();
  size_t max_arena = 0, max_inuse = 0, max_rss = 0;
  for (int t = 0; t < SEQ_THREADS; t += 100)
    {
      if (!run_fill_threads (100, &r, &create_failures))
        break;
      struct mallinfo2 mi = mallinfo2 ();
      size_t rss = tst_rss_bytes ();
      if (mi.arena + mi.hblkhd > max_arena)
        max_arena = mi.arena + mi.hblkhd;
      if (mi.uordblks > max_inuse)
        max_inuse = mi.uordblks;
      if (rss > max_rss)
        max_rss = rss;
    }
  long elapsed = tst_now_ms () - start;
  struct mallinfo2 after = mallinfo2 ();
  size_t rss_after = tst_rss_bytes ();
  if (rss_after > max_rss)
    max_rss = rss_after;

  tst_info ("%d threads in %ld ms; arena+mmap before %zu, max %zu, after "
            "%zu; in use before %zu, max %zu, after %zu; RSS before %zu, "
            "max %zu", SEQ_THREADS, elapsed, before.arena + before.hblkhd,
            max_arena, after.arena + after.hblkhd, before.uordblks,
            max_inuse, after.uordblks, rss_before, max_rss);

  CHECK_EQ (create_failures, 0, "created %d threads, one after the other",
            WARMUP_THREADS + SEQ_THREADS);
  CHECK_EQ (r.nulls, 0, "no allocation failed in the exiting threads");
  CHECK_EQ (r.bad, 0, "every block of every exiting thread kept its "
            "pattern");
  CHECK (max_arena <= LIMIT_ARENA, "mallinfo2 arena + hblkhd stays below "
         "%zu MiB over %d exiting threads (max %zu bytes)", LIMIT_ARENA / MiB,
         SEQ_THREADS, max_arena);
  CHECK (max_inuse <= before.uordblks + LIMIT_INUSE_GROWTH,
         "mallinfo2 uordblks grows by at most %zu MiB: the exiting threads' "
         "cached chunks are returned (before %zu, max %zu)",
         LIMIT_INUSE_GROWTH / MiB, before.uordblks, max_inuse);
  CHECK (after.uordblks <= before.uordblks + 64 * KiB,
         "bytes in use come back after %d exiting threads (before %zu, "
         "after %zu)", SEQ_THREADS, before.uordblks, after.uordblks);
  if (rss_before == 0)
    tst_skip ("the resident set stays bounded", "/proc/self/statm is not "
              "readable");
  else
    CHECK (max_rss <= rss_before + LIMIT_RSS_GROWTH,
           "the resident set grows by at most %zu MiB (before %zu, max %zu)",
           LIMIT_RSS_GROWTH / MiB, rss_before, max_rss);

  /* What the dead threads gave back can be allocated again here.  */
  struct tst_acc acc = TST_ACC_INIT;
  for (int i = 0; i < TCACHE_BINS; i++)
    {
      void *p[PER_BIN];
      for (int j = 0; j < PER_BIN; j++)
        {
          p[j] = malloc (bin_request (i));
          ACC_CHECK (&acc, p[j] != NULL, "malloc (%zu) returned NULL",
                     bin_request (i));
          if (p[j] != NULL)
            memset (p[j], 0xee, bin_request (i));
        }
      for (int j = 0; j < PER_BIN; j++)
        free (p[j]);
    }
  tst_acc_report (&acc, "the main thread allocates every tcache size "
                  "afterwards");
}

/* ------------------------------------------------------------------ */
/* Short-lived threads among busy ones.  */

enum
{
  BUSY = 3,
  BUSY_SLOTS = 64,
  SHORT_PER_ROUND = 16,
  ROUNDS = 60,
  /* Fewer rounds within the budget only on a badly overloaded machine.  */
  MIN_ROUNDS = 10,
  SHORT_BLOCKS = 96,
  HANDOFF_SLOTS = 128,
};

/* The concurrent part stops starting rounds after this long.  */
#define CONCURRENT_BUDGET_MS 8000L

struct handoff
{
  unsigned char *p;
  size_t n;
  uintptr_t seed;
};

static struct
{
  pthread_mutex_t lock;
  struct handoff slot[HANDOFF_SLOTS];
  long exchanges;
} handoff = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct tally
{
  long checked;
  long bad;
  long nulls;
  char first[160];
};

static void
tally_bad (struct tally *t, const char *what, size_t n)
{
  if (t->bad++ == 0)
    snprintf (t->first, sizeof t->first, "%s (size %zu)", what, n);
}

/* Put a block into a handoff slot; check and free what was there.  */
static void
hand_over (unsigned char *p, size_t n, uintptr_t seed, uint64_t x,
           struct tally *t)
{
  int k = (int) (x % HANDOFF_SLOTS);
  pthread_mutex_lock (&handoff.lock);
  struct handoff old = handoff.slot[k];
  handoff.slot[k] = (struct handoff) { p, n, seed };
  handoff.exchanges++;
  pthread_mutex_unlock (&handoff.lock);
  if (old.p != NULL)
    {
      t->checked++;
      if (tst_verify (old.p, old.n, old.seed) != old.n)
        tally_bad (t, "handed-over block damaged", old.n);
      free (old.p);
    }
}

static int busy_stop;

struct busy_arg
{
  int id;
  long ops;
  struct tally t;
};

static void *
busy_thread (void *varg)
{
  struct busy_arg *a = varg;
  uint64_t rng = 0xD1B54A32D192ED03ull * (uint64_t) (a->id + 1);
  unsigned char *slot[BUSY_SLOTS] = { 0 };
  size_t len[BUSY_SLOTS] = { 0 };
  uintptr_t seed[BUSY_SLOTS] = { 0 };
  while (!__atomic_load_n (&busy_stop, __ATOMIC_RELAXED))
    {
      uint64_t x = tst_xorshift (&rng);
      int s = (int) (x % BUSY_SLOTS);
      a->ops++;
      if (slot[s] != NULL)
        {
          a->t.checked++;
          if (tst_verify (slot[s], len[s], seed[s]) != len[s])
            tally_bad (&a->t, "busy thread's block damaged", len[s]);
          free (slot[s]);
          slot[s] = NULL;
          continue;
        }
      size_t n = (x >> 8) % 16 == 0 ? 2000 + (size_t) ((x >> 16) % 30000)
                                     : 1 + (size_t) ((x >> 16) % 1100);
      unsigned char *p = malloc (n);
      if (p == NULL)
        {
          a->t.nulls++;
          continue;
        }
      tst_fill (p, n, (uintptr_t) x);
      if ((x >> 40) % 8 == 0)
        hand_over (p, n, (uintptr_t) x, x >> 44, &a->t);
      else
        {
          slot[s] = p;
          len[s] = n;
          seed[s] = (uintptr_t) x;
        }
    }
  for (int s = 0; s < BUSY_SLOTS; s++)
    if (slot[s] != NULL)
      {
        a->t.checked++;
        if (tst_verify (slot[s], len[s], seed[s]) != len[s])
          tally_bad (&a->t, "busy thread's block damaged at the end",
                     len[s]);
        free (slot[s]);
      }
  return NULL;
}

struct short_arg
{
  uint64_t seed;
  struct tally t;
};

static void *
short_thread (void *varg)
{
  struct short_arg *a = varg;
  uint64_t rng = a->seed | 1;
  unsigned char *p[SHORT_BLOCKS];
  size_t n[SHORT_BLOCKS];
  uintptr_t sd[SHORT_BLOCKS];
  for (int i = 0; i < SHORT_BLOCKS; i++)
    {
      uint64_t x = tst_xorshift (&rng);
      n[i] = (x >> 8) % 8 == 0 ? 1100 + (size_t) ((x >> 16) % 20000)
                                : 1 + (size_t) ((x >> 16) % 1032);
      sd[i] = (uintptr_t) x;
      p[i] = malloc (n[i]);
      if (p[i] == NULL)
        a->t.nulls++;
      else
        tst_fill (p[i], n[i], sd[i]);
    }
  for (int i = 0; i < SHORT_BLOCKS; i++)
    {
      if (p[i] == NULL)
        continue;
      a->t.checked++;
      if (tst_verify (p[i], n[i], sd[i]) != n[i])
        tally_bad (&a->t, "short-lived thread's block damaged", n[i]);
      /* A few outlive the thread: somebody else frees them.  */
      if (i % 16 == 0)
        hand_over (p[i], n[i], sd[i], tst_xorshift (&rng), &a->t);
      else
        free (p[i]);
    }
  /* Leave the cache full of small chunks on exit.  */
  for (int i = 0; i < TCACHE_BINS; i += 3)
    {
      void *q[7];
      for (int j = 0; j < 7; j++)
        q[j] = malloc (bin_request (i));
      for (int j = 0; j < 7; j++)
        free (q[j]);
    }
  return NULL;
}

static void
merge (struct tally *into, const struct tally *from)
{
  into->checked += from->checked;
  into->nulls += from->nulls;
  if (from->bad > 0 && into->bad == 0)
    memcpy (into->first, from->first, sizeof into->first);
  into->bad += from->bad;
}

static void
group_concurrent (void)
{
  static struct busy_arg busy[BUSY];
  pthread_t bth[BUSY];
  int bstarted = 0;
  for (int i = 0; i < BUSY; i++)
    {
      busy[i].id = i;
      if (pthread_create (&bth[i], NULL, busy_thread, &busy[i]) != 0)
        break;
      bstarted++;
    }
  CHECK_EQ (bstarted, BUSY, "started %d busy threads", BUSY);

  struct mallinfo2 first = mallinfo2 ();
  struct tally total = { 0, 0, 0, "" };
  int rounds = 0, create_failures = 0;
  size_t max_arena = 0;
  long start = tst_now_ms ();
  for (int r = 0; r < ROUNDS && tst_now_ms () - start < CONCURRENT_BUDGET_MS;
       r++)
    {
      static struct short_arg args[SHORT_PER_ROUND];
      pthread_t th[SHORT_PER_ROUND];
      int started = 0;
      for (int i = 0; i < SHORT_PER_ROUND; i++)
        {
          memset (&args[i], 0, sizeof args[i]);
          args[i].seed = 0x9E3779B97F4A7C15ull * (uint64_t) (r * 64 + i + 1);
          if (pthread_create (&th[i], NULL, short_thread, &args[i]) != 0)
            {
              create_failures++;
              break;
            }
          started++;
        }
      for (int i = 0; i < started; i++)
        {
          pthread_join (th[i], NULL);
          merge (&total, &args[i].t);
        }
      rounds++;
      struct mallinfo2 mi = mallinfo2 ();
      if (mi.arena + mi.hblkhd > max_arena)
        max_arena = mi.arena + mi.hblkhd;
    }
  long elapsed = tst_now_ms () - start;

  __atomic_store_n (&busy_stop, 1, __ATOMIC_RELAXED);
  long busy_ops = 0;
  for (int i = 0; i < bstarted; i++)
    {
      pthread_join (bth[i], NULL);
      busy_ops += busy[i].ops;
      merge (&total, &busy[i].t);
    }

  /* What is still in the handoff slots.  */
  for (int k = 0; k < HANDOFF_SLOTS; k++)
    if (handoff.slot[k].p != NULL)
      {
        total.checked++;
        if (tst_verify (handoff.slot[k].p, handoff.slot[k].n,
                        handoff.slot[k].seed) != handoff.slot[k].n)
          tally_bad (&total, "block left in a handoff slot damaged",
                     handoff.slot[k].n);
        free (handoff.slot[k].p);
        handoff.slot[k].p = NULL;
      }
  struct mallinfo2 last = mallinfo2 ();

  tst_info ("%d rounds of %d short-lived threads in %ld ms, %ld busy-thread "
            "operations, %ld handoffs, %ld blocks checked; arena+mmap first "
            "%zu, max %zu; in use first %zu, last %zu", rounds,
            SHORT_PER_ROUND, elapsed, busy_ops, handoff.exchanges,
            total.checked, first.arena + first.hblkhd, max_arena,
            first.uordblks, last.uordblks);
  CHECK (rounds >= MIN_ROUNDS && create_failures == 0,
         "at least %d rounds of %d short-lived threads ran in %ld s (%d ran, "
         "%d create failures)", MIN_ROUNDS, SHORT_PER_ROUND,
         CONCURRENT_BUDGET_MS / 1000, rounds, create_failures);
  if (total.bad == 0 && total.checked > 0)
    tst_ok ("every block of the short-lived and busy threads kept its "
            "pattern, also after changing threads");
  else
    tst_fail ("patterns of the short-lived and busy threads", "%ld of %ld "
              "blocks damaged; first: %s", total.bad, total.checked,
              total.checked ? total.first : "nothing checked");
  CHECK_EQ (total.nulls, 0, "no allocation failed");
  CHECK (max_arena <= LIMIT_ARENA, "mallinfo2 arena + hblkhd stays below "
         "%zu MiB (max %zu bytes)", LIMIT_ARENA / MiB, max_arena);
  CHECK (last.uordblks <= first.uordblks + LIMIT_INUSE_GROWTH,
         "bytes in use come back once every thread has exited (first %zu, "
         "last %zu)", first.uordblks, last.uordblks);
}

/* ------------------------------------------------------------------ */
/* Blocks that outlive the thread that allocated them.  */

/* Allocate N blocks of SIZE bytes into V, each filled with the pattern of
   its index; failures are counted in *NULLS.  */
static void
alloc_filled (unsigned char **v, int n, size_t size, long *nulls)
{
  for (int i = 0; i < n; i++)
    {
      v[i] = malloc (size);
      if (v[i] == NULL)
        ++*nulls;
      else
        tst_fill (v[i], size, (uintptr_t) i);
    }
}

/* Check each block of V against its pattern (damage is counted in *BAD)
   and free it.  */
static void
verify_free (unsigned char **v, int n, size_t size, long *bad)
{
  for (int i = 0; i < n; i++)
    if (v[i] != NULL)
      {
        if (tst_verify (v[i], size, (uintptr_t) i) != size)
          ++*bad;
        free (v[i]);
      }
}

enum
{
  OUTLIVED_BLOCKS = 3000,
  /* A tcache size: the freeing thread's cache and remote frees take it.  */
  OUTLIVED_SIZE = 1000,
};

static unsigned char *outlived[OUTLIVED_BLOCKS];

static void *
outlived_alloc_thread (void *arg)
{
  alloc_filled (outlived, OUTLIVED_BLOCKS, OUTLIVED_SIZE, arg);
  return NULL;
}

static pthread_barrier_t outlived_start;

/* Bound to an arena of its own before the allocating thread exists (a
   thread started later would be given the exited thread's arena), it
   waits until that thread has exited, then frees its blocks.  */
static void *
outlived_free_thread (void *arg)
{
  free (tst_opaque_ptr (malloc (16)));
  pthread_barrier_wait (&outlived_start);
  pthread_barrier_wait (&outlived_start);
  verify_free (outlived, OUTLIVED_BLOCKS, OUTLIVED_SIZE, arg);
  return NULL;
}

static void
group_outlived (void)
{
  long nulls = 0, bad = 0;
  pthread_t freer, th;
  /* This thread keeps the main arena, whatever ran before.  */
  free (tst_opaque_ptr (malloc (16)));
  pthread_barrier_init (&outlived_start, NULL, 2);
  if (pthread_create (&freer, NULL, outlived_free_thread, &bad) != 0)
    {
      tst_fail ("started the freeing thread", "pthread_create failed");
      return;
    }
  pthread_barrier_wait (&outlived_start);
  CHECK_EQ (pthread_create (&th, NULL, outlived_alloc_thread, &nulls), 0,
            "started the allocating thread");
  pthread_join (th, NULL);
  size_t rss_full = tst_rss_bytes ();
  pthread_barrier_wait (&outlived_start);
  pthread_join (freer, NULL);
  pthread_barrier_destroy (&outlived_start);
  size_t rss_freed = tst_rss_bytes ();
  size_t dropped = rss_full > rss_freed ? rss_full - rss_freed : 0;
  tst_info ("RSS with %d blocks of %d bytes live %zu, after another thread "
            "freed them %zu", OUTLIVED_BLOCKS, OUTLIVED_SIZE, rss_full,
            rss_freed);
  CHECK_EQ (nulls, 0, "no allocation failed");
  CHECK_EQ (bad, 0, "every block kept its pattern until it was freed");
  if (rss_full == 0)
    tst_skip ("the arena of an exited thread shrinks", "/proc/self/statm is "
              "not readable");
  else
    CHECK (dropped >= 2 * MiB, "the arena of an exited thread takes back "
           "blocks another thread frees, and shrinks: the resident set drops "
           "by at least 2 MiB (by %zu KiB)", dropped / KiB);
}

/* ------------------------------------------------------------------ */
/* Large blocks freed by another thread while the thread that allocated
   them is alive but idle.  */

enum
{
  IDLE_BLOCKS = 200,
  /* Above the tcache sizes, below the mmap threshold: heap chunks.  */
  IDLE_SIZE = 60 * 1024,
};

static unsigned char *idle_blocks[IDLE_BLOCKS];
static pthread_barrier_t idle_start;

/* A thread that allocates blocks, then idles (alive, allocating nothing)
   until the main thread has measured: it waits twice on `done`.  */
struct idle_owner
{
  unsigned char **blocks;
  int n;
  size_t size;
  pthread_barrier_t *done;
  long nulls;
};

static void *
idle_owner_thread (void *arg)
{
  struct idle_owner *o = arg;
  alloc_filled (o->blocks, o->n, o->size, &o->nulls);
  pthread_barrier_wait (o->done);
  pthread_barrier_wait (o->done);
  return NULL;
}

static void
group_idle_owner (void)
{
  long nulls = 0, bad = 0;
  pthread_t owner;
  /* This thread keeps the arena it has; the owner gets another.  */
  free (tst_opaque_ptr (malloc (16)));
  pthread_barrier_init (&idle_start, NULL, 2);
  struct idle_owner o = { idle_blocks, IDLE_BLOCKS, IDLE_SIZE, &idle_start,
                          0 };
  if (pthread_create (&owner, NULL, idle_owner_thread, &o) != 0)
    {
      tst_fail ("started the allocating thread", "pthread_create failed");
      return;
    }
  pthread_barrier_wait (&idle_start);
  size_t rss_full = tst_rss_bytes ();
  verify_free (idle_blocks, IDLE_BLOCKS, IDLE_SIZE, &bad);
  size_t rss_freed = tst_rss_bytes ();
  pthread_barrier_wait (&idle_start);
  pthread_join (owner, NULL);
  pthread_barrier_destroy (&idle_start);
  nulls = o.nulls;
  size_t dropped = rss_full > rss_freed ? rss_full - rss_freed : 0;
  tst_info ("RSS with %d blocks of %d bytes live %zu, after another thread "
            "freed them (their thread alive, idle) %zu", IDLE_BLOCKS,
            IDLE_SIZE, rss_full, rss_freed);
  CHECK_EQ (nulls, 0, "no allocation failed");
  CHECK_EQ (bad, 0, "every block kept its pattern until it was freed");
  if (rss_full == 0)
    tst_skip ("the arena of an idle thread shrinks", "/proc/self/statm is "
              "not readable");
  else
    CHECK (dropped >= 8 * MiB, "the arena of an idle thread takes back large "
           "blocks another thread frees, and shrinks, without waiting for "
           "that thread: the resident set drops by at least 8 MiB (by %zu "
           "KiB)", dropped / KiB);
}

/* ------------------------------------------------------------------ */
/* Small blocks freed by another thread while the thread that allocated
   them idles: the freeing thread goes on working, or exits.  */

enum
{
  SMALL_IDLE_BLOCKS = 16000,
  /* A tcache size: the freeing thread batches them for their arena.  */
  SMALL_IDLE_SIZE = 256,
  /* Slow calls the freeing thread makes afterwards (calloc takes the
     arena path every time).  */
  SMALL_IDLE_CALLS = 64,
};

static unsigned char *small_idle[SMALL_IDLE_BLOCKS];
static pthread_barrier_t small_owner_done, small_freer_done;

struct small_freer
{
  bool keep_working;
  long bad;
};

/* Frees every block; then either works on (slow calls, after the time a
   busy owner would have taken its queue) and waits, or exits.  */
static void *
small_freer_thread (void *arg)
{
  struct small_freer *f = arg;
  verify_free (small_idle, SMALL_IDLE_BLOCKS, SMALL_IDLE_SIZE, &f->bad);
  if (f->keep_working)
    {
      usleep (50 * 1000);
      for (int i = 0; i < SMALL_IDLE_CALLS; i++)
        free (tst_opaque_ptr (calloc (1, 4096)));
      pthread_barrier_wait (&small_freer_done);
      pthread_barrier_wait (&small_freer_done);
    }
  return NULL;
}

/* One round: the RSS drop once the blocks are freed.  */
static size_t
small_idle_round (bool keep_working, long *nulls, long *bad)
{
  struct small_freer f = { keep_working, 0 };
  pthread_t owner, freer;
  pthread_barrier_init (&small_owner_done, NULL, 2);
  pthread_barrier_init (&small_freer_done, NULL, 2);
  struct idle_owner o = { small_idle, SMALL_IDLE_BLOCKS, SMALL_IDLE_SIZE,
                          &small_owner_done, 0 };
  if (pthread_create (&owner, NULL, idle_owner_thread, &o) != 0)
    return 0;
  pthread_barrier_wait (&small_owner_done);
  size_t full = tst_rss_bytes ();
  if (pthread_create (&freer, NULL, small_freer_thread, &f) != 0)
    {
      pthread_barrier_wait (&small_owner_done);
      pthread_join (owner, NULL);
      return 0;
    }
  if (keep_working)
    pthread_barrier_wait (&small_freer_done);
  else
    pthread_join (freer, NULL);
  size_t freed = tst_rss_bytes ();
  if (keep_working)
    {
      pthread_barrier_wait (&small_freer_done);
      pthread_join (freer, NULL);
    }
  pthread_barrier_wait (&small_owner_done);
  pthread_join (owner, NULL);
  pthread_barrier_destroy (&small_owner_done);
  pthread_barrier_destroy (&small_freer_done);
  *nulls += o.nulls;
  *bad += f.bad;
  tst_info ("RSS with %d blocks of %d bytes live %zu, after another thread "
            "freed them and %s %zu", SMALL_IDLE_BLOCKS, SMALL_IDLE_SIZE, full,
            keep_working ? "worked on" : "exited", freed);
  return full > freed ? full - freed : 0;
}

static void
group_small_idle_owner (void)
{
  long nulls = 0, bad = 0;
  free (tst_opaque_ptr (malloc (16)));
  size_t working = small_idle_round (true, &nulls, &bad);
  size_t exited = small_idle_round (false, &nulls, &bad);
  CHECK_EQ (nulls, 0, "no allocation failed");
  CHECK_EQ (bad, 0, "every block kept its pattern until it was freed");
  if (tst_rss_bytes () == 0)
    {
      tst_skip ("the arena of an idle thread shrinks", "/proc/self/statm "
                "is not readable");
      return;
    }
  CHECK (working >= 2 * MiB, "the arena of an idle thread shrinks once "
         "another thread freed its small blocks and went on working: the "
         "resident set drops by at least 2 MiB (by %zu KiB)", working / KiB);
  CHECK (exited >= 2 * MiB, "the arena of an idle thread shrinks once "
         "another thread freed its small blocks and exited: the resident set "
         "drops by at least 2 MiB (by %zu KiB)", exited / KiB);
}

int
main (void)
{
  tst_init ();
  tst_group ("2000 threads exit with full caches, one after the other",
             group_sequential);
  tst_group ("short-lived threads exit while others allocate",
             group_concurrent);
  tst_group ("blocks freed after the thread that allocated them exited",
             group_outlived);
  tst_group ("large blocks freed while the thread that allocated them idles",
             group_idle_owner);
  tst_group ("small blocks freed while the thread that allocated them idles",
             group_small_idle_owner);
  return tst_finish ();
}
