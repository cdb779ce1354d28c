/* tst-arena-stress: many threads allocating at once, freeing each
   other's blocks, coming and going, and forking.

   With several arenas (glibc binds each thread to an arena of its own
   until there are 8 per CPU) a block is often freed or reallocated by a
   thread that is not bound to the arena it came from, so the free must
   find that arena from the chunk and take its lock; an exiting thread
   gives its arena back for the next thread to use; a fork must leave
   every arena usable in the child.  This program drives all of that
   with THREADS threads (8 unless argv[1] says otherwise):

   - ring: half the threads produce blocks of random sizes (1 to about
     5000 bytes, and a few above the 128 KiB mmap threshold), the other
     half consume them through a mutex-protected ring buffer, check them
     byte for byte, sometimes realloc them, and free them.  Every serial
     number must arrive exactly once.
   - short-lived threads: rounds of THREADS threads created and joined;
     each allocates, checks and frees blocks, frees a block the main
     thread allocated for it, and leaves blocks behind, some of which
     the main thread frees and some of which go on to a thread of the
     next round.
   - fork: THREADS - 1 threads allocate, free, and swap blocks through a
     shared table while one more thread forks again and again; each
     child checks and frees a block its thread allocated before the
     fork, mallocs, callocs, reallocs and frees a few sizes, runs a
     thread that does the same, and exits 0.  Children are waited for
     with a deadline (a child that hangs on a lock copied while held
     counts as a failure).

   Every block is filled with a pattern derived from its address, size
   and serial number and checked just before it is freed.  Each group
   counts the blocks it allocated and freed; at the end the program
   reports the lost blocks (allocated but never freed) and the corrupted
   ones over all groups, and both must be 0.

   Every check holds for glibc 2.36's malloc.  */

#include "tst-support.h"

#include <malloc.h>
#include <pthread.h>
#include <time.h>

#define KiB ((size_t) 1024)
#define MiB (1024 * KiB)

enum
{
  DEFAULT_THREADS = 8,
  MAX_THREADS = 64,
  RING_SLOTS = 256,
  /* Blocks each producer pushes through the ring.  */
  RING_BLOCKS = 20000,
  SHORT_ROUNDS = 30,
  SHORT_BLOCKS = 64,
  /* Blocks a short-lived thread leaves behind: half for the main
     thread to free, half for the next round.  */
  SHORT_LEFT = 8,
  FORK_SLOTS = 16,
  SWAP_SLOTS = 64,
  FORKS = 40,
};

/* Per-group safety budgets (times TST_TIME_SCALE), far above what the
   work takes natively and within the group child's alarm.  */
#define RING_BUDGET_MS 8000L
#define SHORT_BUDGET_MS 8000L
#define FORK_BUDGET_MS 8000L
/* How long a fork child may take before it counts as hung.  */
#define CHILD_DEADLINE_MS 10000L

static int nthreads = DEFAULT_THREADS;

/* Lost and corrupted blocks of every group, shared with the group
   children (each group runs in a forked child).  */
struct totals
{
  long groups;
  long lost;
  long corrupted;
};

static struct totals *totals;
static struct totals fallback_totals;

static void
add_totals (long lost, long corrupted)
{
  __atomic_fetch_add (&totals->groups, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_add (&totals->lost, lost, __ATOMIC_SEQ_CST);
  __atomic_fetch_add (&totals->corrupted, corrupted, __ATOMIC_SEQ_CST);
}

/* ------------------------------------------------------------------ */
/* Blocks and their patterns.  */

/* The pattern of a block depends on where it is, how big it is and its
   serial number, so a block that overlaps another one, was handed out
   twice, or lost its contents in a realloc is caught: tst_fill's
   pattern depends on the low byte of its seed only, hence this one.  */
static uint64_t
block_seed (const void *p, size_t n, uint64_t serial)
{
  uint64_t s = (uint64_t) (uintptr_t) p * 0x9E3779B97F4A7C15ull;
  s ^= (uint64_t) n * 0xC2B2AE3D27D4EB4Full;
  s ^= (serial + 1) * 0x165667B19E3779F9ull;
  return s != 0 ? s : 1;
}

static void
pattern_fill (unsigned char *p, size_t n, uint64_t seed)
{
  uint64_t s = seed;
  for (size_t i = 0; i < n; i += 8)
    {
      uint64_t w = tst_xorshift (&s);
      size_t k = n - i < 8 ? n - i : 8;
      for (size_t j = 0; j < k; j++)
        p[i + j] = (unsigned char) (w >> (8 * j));
    }
}

/* The index of the first byte of the first N that differs, or N.  */
static size_t
pattern_check (const unsigned char *p, size_t n, uint64_t seed)
{
  uint64_t s = seed;
  for (size_t i = 0; i < n; i += 8)
    {
      uint64_t w = tst_xorshift (&s);
      size_t k = n - i < 8 ? n - i : 8;
      for (size_t j = 0; j < k; j++)
        if (p[i + j] != (unsigned char) (w >> (8 * j)))
          return i + j;
    }
  return n;
}

struct item
{
  unsigned char *p;
  size_t n;
  uint64_t serial;
  uint64_t seed;
  int owner;
};

/* What one thread did: blocks it allocated and freed, and the blocks it
   found damaged (with the first one described).  */
struct tally
{
  long allocs;
  long frees;
  long corrupted;
  long nulls;
  long reallocs;
  char first[200];
};

__attribute__ ((format (printf, 2, 3))) static void
tally_corrupt (struct tally *t, const char *fmt, ...)
{
  if (t->corrupted++ == 0)
    {
      va_list ap;
      va_start (ap, fmt);
      vsnprintf (t->first, sizeof t->first, fmt, ap);
      va_end (ap);
    }
}

static void
merge (struct tally *into, const struct tally *from)
{
  into->allocs += from->allocs;
  into->frees += from->frees;
  into->nulls += from->nulls;
  into->reallocs += from->reallocs;
  if (from->corrupted > 0 && into->corrupted == 0)
    memcpy (into->first, from->first, sizeof into->first);
  into->corrupted += from->corrupted;
}

/* A random size: mostly 1 .. 5000 bytes, one in 128 above the mmap
   threshold (128 KiB .. 384 KiB).  */
static size_t
random_size (uint64_t x)
{
  if ((x >> 20) % 128 == 0)
    return 128 * KiB + 1 + (size_t) ((x >> 28) % (256 * KiB));
  return 1 + (size_t) ((x >> 28) % 5000);
}

/* Allocate a block of N bytes (calloc one time in eight, which must
   come back zeroed), fill it and describe it in *IT.  */
static bool
new_block (struct item *it, size_t n, uint64_t serial, int owner,
           uint64_t x, struct tally *t)
{
  unsigned char *p;
  bool zeroed = (x >> 8) % 8 == 0;
  p = zeroed ? calloc (1, n) : malloc (n);
  if (p == NULL)
    {
      t->nulls++;
      return false;
    }
  t->allocs++;
  if (!tst_aligned (p, 16))
    tally_corrupt (t, "%s (%zu) returned %p, not 16-byte aligned",
                   zeroed ? "calloc" : "malloc", n, (void *) p);
  if (zeroed && tst_first_not (p, n, 0) != n)
    tally_corrupt (t, "calloc (1, %zu) returned memory that is not zero at "
                   "byte %zu", n, tst_first_not (p, n, 0));
  *it = (struct item) { p, n, serial, block_seed (p, n, serial), owner };
  pattern_fill (p, n, it->seed);
  return true;
}

/* Check IT's pattern and free it.  */
static void
check_and_free (struct item *it, struct tally *t, const char *where)
{
  size_t bad = pattern_check (it->p, it->n, it->seed);
  if (bad != it->n)
    tally_corrupt (t, "%s: block %p of %zu bytes (serial %" PRIu64
                   " of thread %d) differs at byte %zu", where,
                   (void *) it->p, it->n, it->serial, it->owner, bad);
  free (it->p);
  t->frees++;
  it->p = NULL;
}

/* Realloc IT to M bytes: the first min (n, m) bytes must survive; the
   block then gets the pattern of its new address and size.  */
static void
realloc_block (struct item *it, size_t m, struct tally *t,
               const char *where)
{
  size_t keep = it->n < m ? it->n : m;
  size_t bad = pattern_check (it->p, keep, it->seed);
  if (bad != keep)
    tally_corrupt (t, "%s: block of %zu bytes (serial %" PRIu64 " of "
                   "thread %d) differs at byte %zu before realloc", where,
                   it->n, it->serial, it->owner, bad);
  unsigned char *q = realloc (it->p, m);
  if (q == NULL)
    {
      t->nulls++;
      return;
    }
  t->reallocs++;
  bad = pattern_check (q, keep, it->seed);
  if (bad != keep)
    tally_corrupt (t, "%s: realloc from %zu to %zu bytes (serial %" PRIu64
                   " of thread %d) lost byte %zu", where, it->n, m,
                   it->serial, it->owner, bad);
  it->p = q;
  it->n = m;
  it->seed = block_seed (q, m, it->serial);
  pattern_fill (q, m, it->seed);
}

/* The checks on a group's blocks, T being the sum over its threads:
   lost = allocated - freed.  */
static void
report_blocks (const char *group, const struct tally *t)
{
  long lost = t->allocs - t->frees;
  tst_info ("%s: %ld blocks allocated, %ld freed, %ld reallocs, %ld lost, "
            "%ld corrupted", group, t->allocs, t->frees, t->reallocs, lost,
            t->corrupted);
  CHECK_EQ (t->nulls, 0, "%s: no allocation returned NULL", group);
  CHECK_EQ (lost, 0, "%s: no block lost (every block allocated was freed)",
            group);
  char what[128];
  snprintf (what, sizeof what, "%s: every block intact until its free",
            group);
  if (t->corrupted == 0)
    tst_ok (what);
  else
    tst_fail (what, "%ld corrupted blocks; first: %s", t->corrupted,
              t->first);
  add_totals (lost, t->corrupted);
}

/* ------------------------------------------------------------------ */
/* Cross-thread frees through a ring.  */

static struct
{
  pthread_mutex_t lock;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  struct item slot[RING_SLOTS];
  size_t head;
  size_t count;
  int producers_left;
  long max_count;
} ring = { .lock = PTHREAD_MUTEX_INITIALIZER,
           .not_empty = PTHREAD_COND_INITIALIZER,
           .not_full = PTHREAD_COND_INITIALIZER };

static long ring_deadline;

struct ring_arg
{
  int id;
  int producers;
  long produced;
  /* For a producer: how often each serial arrived (counted by the
     consumers, atomically).  */
  unsigned char *seen;
  struct tally t;
};

static struct ring_arg ring_args[MAX_THREADS];

static void
ring_push (const struct item *it)
{
  pthread_mutex_lock (&ring.lock);
  while (ring.count == RING_SLOTS)
    pthread_cond_wait (&ring.not_full, &ring.lock);
  ring.slot[(ring.head + ring.count) % RING_SLOTS] = *it;
  ring.count++;
  if ((long) ring.count > ring.max_count)
    ring.max_count = (long) ring.count;
  pthread_cond_signal (&ring.not_empty);
  pthread_mutex_unlock (&ring.lock);
}

/* Take the oldest item; false once the ring is empty and every
   producer is done.  */
static bool
ring_pop (struct item *it)
{
  pthread_mutex_lock (&ring.lock);
  while (ring.count == 0 && ring.producers_left > 0)
    pthread_cond_wait (&ring.not_empty, &ring.lock);
  bool got = ring.count > 0;
  if (got)
    {
      *it = ring.slot[ring.head];
      ring.head = (ring.head + 1) % RING_SLOTS;
      ring.count--;
      pthread_cond_signal (&ring.not_full);
    }
  pthread_mutex_unlock (&ring.lock);
  return got;
}

static void *
producer_thread (void *varg)
{
  struct ring_arg *a = varg;
  uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t) (a->id + 1);
  for (long serial = 0; serial < RING_BLOCKS; serial++)
    {
      if (serial % 256 == 0 && tst_now_ms () > ring_deadline)
        break;
      uint64_t x = tst_xorshift (&rng);
      struct item it;
      if (!new_block (&it, random_size (x), (uint64_t) serial, a->id, x,
                      &a->t))
        continue;
      ring_push (&it);
      a->produced = serial + 1;
      /* Some churn of its own between pushes.  */
      if ((x >> 40) % 4 == 0)
        {
          struct item own;
          uint64_t y = tst_xorshift (&rng);
          if (new_block (&own, 1 + (size_t) (y % 2000), (uint64_t) serial,
                         a->id, y, &a->t))
            check_and_free (&own, &a->t, "producer's own block");
        }
    }
  pthread_mutex_lock (&ring.lock);
  ring.producers_left--;
  pthread_cond_broadcast (&ring.not_empty);
  pthread_mutex_unlock (&ring.lock);
  return NULL;
}

static void *
consumer_thread (void *varg)
{
  struct ring_arg *a = varg;
  uint64_t rng = 0xD1B54A32D192ED03ull * (uint64_t) (a->id + 1);
  struct item it;
  while (ring_pop (&it))
    {
      uint64_t x = tst_xorshift (&rng);
      if (it.owner >= 0 && it.owner < a->producers
          && it.serial < (uint64_t) RING_BLOCKS)
        __atomic_fetch_add (&ring_args[it.owner].seen[it.serial], 1,
                            __ATOMIC_RELAXED);
      else
        tally_corrupt (&a->t, "ring item with owner %d and serial %" PRIu64,
                       it.owner, it.serial);
      /* One in eight is reallocated by this thread first (grown or
         shrunk; the chunk came from the producer's arena).  */
      if (x % 8 == 0)
        realloc_block (&it, random_size (x >> 3), &a->t, "consumer");
      /* Counted as allocated by the producer and as freed here: only
         the sum over the group balances.  */
      check_and_free (&it, &a->t, "consumer");
      /* And allocations of its own, so that it has an arena too.  */
      if ((x >> 32) % 2 == 0)
        {
          struct item own;
          if (new_block (&own, 1 + (size_t) ((x >> 40) % 3000), 0, a->id,
                         x >> 7, &a->t))
            check_and_free (&own, &a->t, "consumer's own block");
        }
    }
  return NULL;
}

static void
group_ring (void)
{
  int producers = nthreads / 2, consumers = nthreads - producers;
  pthread_t th[MAX_THREADS];
  int started = 0;
  ring.producers_left = producers;
  ring_deadline = tst_now_ms () + RING_BUDGET_MS * tst_time_scale ();
  for (int i = 0; i < nthreads; i++)
    {
      ring_args[i].id = i;
      ring_args[i].producers = producers;
      if (i < producers)
        {
          /* Bookkeeping outside the allocator under test.  */
          ring_args[i].seen = mmap (NULL, RING_BLOCKS, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          if (ring_args[i].seen == MAP_FAILED)
            {
              tst_fail ("ring", "mmap: %s", strerror (errno));
              _exit (1);
            }
        }
    }
  long start = tst_now_ms ();
  for (int i = 0; i < nthreads; i++)
    {
      if (pthread_create (&th[i], NULL,
                          i < producers ? producer_thread : consumer_thread,
                          &ring_args[i]) != 0)
        break;
      started++;
    }
  if (started < nthreads)
    {
      tst_fail ("ring", "started only %d of %d threads", started, nthreads);
      _exit (1);
    }
  for (int i = 0; i < nthreads; i++)
    pthread_join (th[i], NULL);
  long elapsed = tst_now_ms () - start;

  struct tally all = { 0 };
  long produced = 0, missing = 0, duplicated = 0;
  for (int i = 0; i < nthreads; i++)
    {
      merge (&all, &ring_args[i].t);
      if (i >= producers)
        continue;
      produced += ring_args[i].produced;
      for (long s = 0; s < ring_args[i].produced; s++)
        if (ring_args[i].seen[s] == 0)
          missing++;
        else if (ring_args[i].seen[s] > 1)
          duplicated++;
    }
  tst_info ("ring: %d producers, %d consumers, %ld blocks through the "
            "ring in %ld ms (at most %ld waiting)", producers, consumers,
            produced, elapsed, ring.max_count);
  if (produced < (long) producers * RING_BLOCKS)
    tst_info ("ring: the %ld ms budget ran out before %d blocks per "
              "producer", RING_BUDGET_MS * tst_time_scale (), RING_BLOCKS);
  CHECK_EQ (started, nthreads, "ring: started %d producer and %d consumer "
            "threads", producers, consumers);
  CHECK_EQ (ring.count, 0, "ring: empty at the end");
  CHECK_EQ (missing, 0, "ring: every block pushed was popped by a consumer");
  CHECK_EQ (duplicated, 0, "ring: no block popped twice");
  CHECK (all.reallocs > 0, "ring: consumers reallocated blocks from other "
         "threads (%ld)", all.reallocs);
  report_blocks ("ring", &all);
}

/* ------------------------------------------------------------------ */
/* Short-lived threads.  */

struct short_arg
{
  int id;
  uint64_t seed;
  /* From the main thread or a thread of the previous round: to check
     and free.  */
  struct item inbox[SHORT_LEFT / 2 + 1];
  int ninbox;
  /* Left behind for others.  */
  struct item left[SHORT_LEFT];
  int nleft;
  struct tally t;
};

static void *
short_thread (void *varg)
{
  struct short_arg *a = varg;
  uint64_t rng = a->seed | 1;
  struct item blk[SHORT_BLOCKS];
  int live = 0;

  /* Free what others left for it, allocated in their arenas.  */
  for (int i = 0; i < a->ninbox; i++)
    check_and_free (&a->inbox[i], &a->t, "short-lived thread's inbox");
  a->ninbox = 0;

  for (int i = 0; i < SHORT_BLOCKS; i++)
    {
      uint64_t x = tst_xorshift (&rng);
      if (new_block (&blk[live], random_size (x), (uint64_t) i, a->id, x,
                     &a->t))
        live++;
      /* Free one now and then in between, not in order.  */
      if (live > 4 && (x >> 50) % 3 == 0)
        {
          int k = (int) ((x >> 52) % (uint64_t) live);
          check_and_free (&blk[k], &a->t, "short-lived thread");
          blk[k] = blk[--live];
        }
    }
  /* Leave some behind, free the rest.  */
  a->nleft = 0;
  while (live > 0 && a->nleft < SHORT_LEFT)
    a->left[a->nleft++] = blk[--live];
  while (live > 0)
    check_and_free (&blk[--live], &a->t, "short-lived thread");
  /* Fill the thread cache with small chunks before exiting: they go
     back to the arena at thread exit.  */
  for (size_t n = 24; n <= 1032; n += 48)
    {
      void *q[7];
      for (int j = 0; j < 7; j++)
        {
          q[j] = malloc (n);
          if (q[j] != NULL)
            memset (q[j], 0x6b, n);
        }
      for (int j = 0; j < 7; j++)
        free (q[j]);
    }
  return NULL;
}

static void
group_short_lived (void)
{
  static struct short_arg args[MAX_THREADS];
  struct tally main_t = { 0 };
  long deadline = tst_now_ms () + SHORT_BUDGET_MS * tst_time_scale ();
  long start = tst_now_ms ();
  int rounds = 0, create_failures = 0;
  uint64_t rng = 0x2545F4914F6CDD1Dull;
  for (int r = 0; r < SHORT_ROUNDS && tst_now_ms () < deadline; r++)
    {
      pthread_t th[MAX_THREADS];
      bool created[MAX_THREADS];
      for (int i = 0; i < nthreads; i++)
        {
          struct short_arg *a = &args[i];
          a->id = 1000 * (r + 1) + i;
          a->seed = tst_xorshift (&rng);
          /* One block from the main thread (the rest of the inbox came
             from this slot's thread of the previous round).  */
          uint64_t x = tst_xorshift (&rng);
          if (a->ninbox < (int) (sizeof a->inbox / sizeof a->inbox[0])
              && new_block (&a->inbox[a->ninbox], random_size (x),
                            (uint64_t) r, -1, x, &main_t))
            a->ninbox++;
          created[i] = pthread_create (&th[i], NULL, short_thread, a) == 0;
          if (!created[i])
            create_failures++;
        }
      for (int i = 0; i < nthreads; i++)
        {
          struct short_arg *a = &args[i];
          if (!created[i])
            continue;
          pthread_join (th[i], NULL);
          /* The thread is gone: check what it left, free half here, and
             pass the other half on to the next round's thread.  */
          for (int k = 0; k < a->nleft; k++)
            {
              struct item *it = &a->left[k];
              if (k % 2 == 0 || a->ninbox >= SHORT_LEFT / 2)
                check_and_free (it, &main_t, "main, after the join");
              else
                {
                  size_t bad = pattern_check (it->p, it->n, it->seed);
                  if (bad != it->n)
                    tally_corrupt (&main_t, "left by a short-lived thread: "
                                   "%zu-byte block differs at byte %zu",
                                   it->n, bad);
                  a->inbox[a->ninbox++] = *it;
                }
            }
          a->nleft = 0;
        }
      rounds++;
    }
  /* What the last round left for a next one.  */
  for (int i = 0; i < nthreads; i++)
    {
      for (int k = 0; k < args[i].ninbox; k++)
        check_and_free (&args[i].inbox[k], &main_t, "main, at the end");
      args[i].ninbox = 0;
    }
  long elapsed = tst_now_ms () - start;

  struct tally all = main_t;
  for (int i = 0; i < nthreads; i++)
    merge (&all, &args[i].t);
  tst_info ("short-lived threads: %d rounds of %d threads in %ld ms",
            rounds, nthreads, elapsed);
  CHECK_EQ (create_failures, 0, "short-lived threads: every pthread_create "
            "succeeded");
  CHECK (rounds >= SHORT_ROUNDS / 3, "short-lived threads: at least %d "
         "rounds within the budget (%d)", SHORT_ROUNDS / 3, rounds);
  report_blocks ("short-lived threads", &all);
}

/* ------------------------------------------------------------------ */
/* fork from a thread while the others allocate.  */

static int fork_stop;

static struct
{
  pthread_mutex_t lock;
  struct item it;
} swap_slot[SWAP_SLOTS];

struct fork_worker
{
  int id;
  long ops;
  long swaps;
  struct tally t;
};

static void *
fork_worker_thread (void *varg)
{
  struct fork_worker *w = varg;
  uint64_t rng = 0xA0761D6478BD642Full * (uint64_t) (w->id + 1);
  struct item slot[FORK_SLOTS];
  memset (slot, 0, sizeof slot);
  uint64_t serial = 0;
  while (!__atomic_load_n (&fork_stop, __ATOMIC_RELAXED))
    {
      uint64_t x = tst_xorshift (&rng);
      int s = (int) (x % FORK_SLOTS);
      w->ops++;
      if (slot[s].p == NULL)
        {
          new_block (&slot[s], random_size (x), serial++, w->id, x, &w->t);
          continue;
        }
      switch ((x >> 8) % 4)
        {
        case 0:
          {
            /* Swap with the shared table: the block we get back was
               allocated by some other thread.  */
            int k = (int) ((x >> 12) % SWAP_SLOTS);
            pthread_mutex_lock (&swap_slot[k].lock);
            struct item got = swap_slot[k].it;
            swap_slot[k].it = slot[s];
            pthread_mutex_unlock (&swap_slot[k].lock);
            slot[s] = got;
            w->swaps++;
            break;
          }
        case 1:
          realloc_block (&slot[s], random_size (x >> 3), &w->t,
                         "fork worker");
          break;
        default:
          check_and_free (&slot[s], &w->t, "fork worker");
          break;
        }
    }
  for (int s = 0; s < FORK_SLOTS; s++)
    if (slot[s].p != NULL)
      check_and_free (&slot[s], &w->t, "fork worker, at the end");
  return NULL;
}

/* Exit codes of a fork child.  */
enum child_code
{
  CHILD_OK = 0,
  CHILD_MALLOC = 2,
  CHILD_PATTERN,
  CHILD_INHERITED,
  CHILD_CALLOC,
  CHILD_REALLOC,
  CHILD_PTHREAD_CREATE,
  CHILD_THREAD_RESULT,
  CHILD_CODE_END
};

static const char *const child_code_names[CHILD_CODE_END] = {
  [CHILD_MALLOC] = "malloc returned NULL",
  [CHILD_PATTERN] = "a block's pattern was damaged",
  [CHILD_INHERITED] = "a block allocated before the fork was damaged",
  [CHILD_CALLOC] = "calloc failed or was not zeroed",
  [CHILD_REALLOC] = "realloc failed or lost contents",
  [CHILD_PTHREAD_CREATE] = "pthread_create failed",
  [CHILD_THREAD_RESULT] = "its thread's allocations failed",
};

static const size_t child_sizes[] = { 1, 24, 200, 1000, 5000, 70000,
                                      200000, 1 * MiB };
#define N_CHILD_SIZES (sizeof child_sizes / sizeof child_sizes[0])

/* malloc, fill, check and free one block of each size, then calloc,
   grow and shrink one with realloc.  */
static int
child_round (uint64_t serial)
{
  struct tally t = { 0 };
  struct item it[N_CHILD_SIZES];
  for (size_t i = 0; i < N_CHILD_SIZES; i++)
    if (!new_block (&it[i], child_sizes[i], serial + i, -2,
                    (uint64_t) i << 8, &t))
      return CHILD_MALLOC;
  for (size_t i = 0; i < N_CHILD_SIZES; i++)
    check_and_free (&it[i], &t, "fork child");
  if (t.corrupted != 0)
    return CHILD_PATTERN;

  unsigned char *c = calloc (1, 5000);
  if (c == NULL || tst_first_not (c, 5000, 0) != 5000)
    return CHILD_CALLOC;
  struct item r = { c, 5000, serial, block_seed (c, 5000, serial), -2 };
  pattern_fill (c, 5000, r.seed);
  realloc_block (&r, 300000, &t, "fork child");
  realloc_block (&r, 100, &t, "fork child");
  if (t.nulls != 0 || t.corrupted != 0)
    return CHILD_REALLOC;
  check_and_free (&r, &t, "fork child");
  return t.corrupted == 0 ? CHILD_OK : CHILD_PATTERN;
}

static void *
child_thread (void *arg)
{
  int rc = child_round ((uintptr_t) arg);
  if (rc == CHILD_OK)
    rc = child_round ((uintptr_t) arg + 100);
  return (void *) (intptr_t) rc;
}

static int
fork_child_work (struct item *inherited, int i)
{
  /* Allocated by the forking thread before the fork.  */
  struct tally t = { 0 };
  check_and_free (inherited, &t, "fork child, inherited block");
  if (t.corrupted != 0)
    return CHILD_INHERITED;
  int rc = child_round ((uint64_t) i * 1000);
  if (rc != CHILD_OK)
    return rc;
  pthread_t th;
  if (pthread_create (&th, NULL, child_thread,
                      (void *) (uintptr_t) (i * 1000 + 500)) != 0)
    return CHILD_PTHREAD_CREATE;
  void *res = NULL;
  pthread_join (th, &res);
  if (res != NULL)
    return CHILD_THREAD_RESULT;
  return child_round ((uint64_t) i * 1000 + 900);
}

struct forker
{
  int forks;
  int good;
  int hung;
  char first[200];
  struct tally t;
};

static void
describe_child (char *buf, size_t n, int i, int r, int status)
{
  tst_describe_fork_child (buf, n, i, r, status,
                           CHILD_DEADLINE_MS * tst_time_scale (),
                           child_code_names, CHILD_CODE_END);
}

static void *
forker_thread (void *varg)
{
  struct forker *f = varg;
  long deadline = tst_now_ms () + FORK_BUDGET_MS * tst_time_scale ();
  uint64_t rng = 0x94D049BB133111EBull;
  for (int i = 0; i < FORKS && tst_now_ms () < deadline; i++)
    {
      /* Let the workers get well into malloc.  */
      usleep (1000);
      struct item inherited;
      uint64_t x = tst_xorshift (&rng);
      if (!new_block (&inherited, random_size (x), (uint64_t) i, -3, x,
                      &f->t))
        continue;
      fflush (stdout);
      fflush (stderr);
      pid_t pid = fork ();
      if (pid == 0)
        {
          alarm ((unsigned) (CHILD_DEADLINE_MS / 1000 * tst_time_scale ()));
          _exit (fork_child_work (&inherited, i));
        }
      if (pid < 0)
        {
          snprintf (f->first, sizeof f->first, "fork #%d failed: %s", i,
                    strerror (errno));
          check_and_free (&inherited, &f->t, "forking thread");
          break;
        }
      f->forks++;
      /* The parent's copy is still its own to check and free.  */
      check_and_free (&inherited, &f->t, "forking thread");
      int status = 0;
      int r = tst_wait_deadline (pid, &status,
                                 CHILD_DEADLINE_MS * tst_time_scale ());
      if (r == 1 && WIFEXITED (status) && WEXITSTATUS (status) == 0)
        f->good++;
      else
        {
          if (r == 0 || (r == 1 && WIFSIGNALED (status)
                         && WTERMSIG (status) == SIGALRM))
            f->hung++;
          if (f->first[0] == '\0')
            describe_child (f->first, sizeof f->first, i, r, status);
        }
    }
  return NULL;
}

static void
group_fork (void)
{
  static struct fork_worker workers[MAX_THREADS];
  static struct forker forker;
  int nworkers = nthreads - 1;
  pthread_t wth[MAX_THREADS], fth;
  int started = 0;
  for (int k = 0; k < SWAP_SLOTS; k++)
    pthread_mutex_init (&swap_slot[k].lock, NULL);
  for (int i = 0; i < nworkers; i++)
    {
      workers[i].id = 100 + i;
      if (pthread_create (&wth[i], NULL, fork_worker_thread, &workers[i])
          != 0)
        break;
      started++;
    }
  long start = tst_now_ms ();
  bool forker_started = pthread_create (&fth, NULL, forker_thread, &forker)
                        == 0;
  if (forker_started)
    pthread_join (fth, NULL);
  long elapsed = tst_now_ms () - start;
  __atomic_store_n (&fork_stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < started; i++)
    pthread_join (wth[i], NULL);

  /* The blocks still in the shared table.  */
  struct tally all = forker.t;
  for (int k = 0; k < SWAP_SLOTS; k++)
    if (swap_slot[k].it.p != NULL)
      check_and_free (&swap_slot[k].it, &all, "main, swap table");
  long ops = 0, swaps = 0;
  for (int i = 0; i < started; i++)
    {
      merge (&all, &workers[i].t);
      ops += workers[i].ops;
      swaps += workers[i].swaps;
    }
  /* Blocks swapped between threads are freed by a thread other than the
     one that counted the allocation: only the sum balances.  */
  tst_info ("fork: %d forks from a thread in %ld ms while %d threads did "
            "%ld operations (%ld swaps through the shared table)",
            forker.forks, elapsed, started, ops, swaps);
  CHECK (started == nworkers && forker_started, "fork: started %d "
         "allocating threads and a forking thread", nworkers);
  CHECK (forker.forks >= FORKS / 2, "fork: at least %d forks within the "
         "budget (%d)", FORKS / 2, forker.forks);
  if (forker.good == forker.forks && forker.forks > 0)
    tst_ok ("fork: every child freed its inherited block, malloc'd, "
            "calloc'd, realloc'd and freed, ran a thread and exited 0 in "
            "time");
  else
    tst_fail ("fork: children", "%d of %d good, %d hung; first problem: %s",
              forker.good, forker.forks, forker.hung, forker.first);
  CHECK_EQ (forker.hung, 0, "fork: no child hung");
  CHECK (ops > 0 && swaps > 0, "fork: the allocating threads ran and "
         "swapped blocks");
  report_blocks ("fork", &all);
}

/* ------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  tst_init ();
  if (argc > 1)
    {
      nthreads = atoi (argv[1]);
      if (nthreads < 2 || nthreads > MAX_THREADS)
        {
          fprintf (stderr, "usage: %s [THREADS (2..%d, default %d)]\n",
                   argv[0], MAX_THREADS, DEFAULT_THREADS);
          return 2;
        }
    }
  void *page = mmap (NULL, sizeof (struct totals), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  totals = page == MAP_FAILED ? &fallback_totals : page;
  tst_info ("%d threads, time scale %ld", nthreads, tst_time_scale ());

  long start = tst_now_ms ();
  tst_group ("cross-thread frees through a ring", group_ring);
  tst_group ("short-lived threads", group_short_lived);
  tst_group ("fork from a thread while others allocate", group_fork);

  tst_info ("lost blocks: %ld, corrupted blocks: %ld (over %ld groups, %ld "
            "ms)", totals->lost, totals->corrupted, totals->groups,
            tst_now_ms () - start);
  CHECK_EQ (totals->groups, 3, "every group accounted for its blocks");
  CHECK_EQ (totals->lost, 0, "lost blocks");
  CHECK_EQ (totals->corrupted, 0, "corrupted blocks");
  return tst_finish ();
}
