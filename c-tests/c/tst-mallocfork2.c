/* tst-mallocfork2: fork from a signal handler that interrupted malloc.

   In the spirit of glibc's malloc/tst-mallocfork2.c (async-signal-safe
   fork with respect to malloc): the main thread loops over free and
   malloc of random sizes (and now and then a plain fork), while other
   senders keep hitting it with SIGUSR1; the handler forks, and waits
   for the child with a deadline.  The senders and the main thread meet
   at a barrier before and after each round, so that the signals land
   inside fork/free/malloc.

   Groups, each in its own process:

   - senders are processes, the child _exits at once: glibc's own test.
     glibc's fork is async-signal-safe with respect to malloc only while
     the process is single-threaded (it then skips the malloc locks), so
     the senders are processes and the main thread is the only thread.
   - senders are processes, the child calls malloc and free before it
     exits.  glibc 2.36 makes no such promise: a single-threaded process
     takes no malloc lock, and the child runs on whatever state the
     interrupted call left (some of its children die of a malloc
     assertion).  The parent must go on unharmed (asserted everywhere);
     that every child allocates successfully and exits 0 in time is an
     extension check (libptmalloc-rs retires the interrupted arena in
     the child).
   - senders are threads (extension checks): glibc deadlocks here, since
     in a multi-threaded process its fork takes the arena locks, one of
     which the interrupted malloc holds; libptmalloc-rs takes no lock
     before fork.  Once with a child that _exits at once, once with a
     child that allocates.  In these groups the main thread calls no
     fork itself (glibc's fork takes its atfork lock then, and a fork
     from a handler interrupting it deadlocks whatever the allocator).

   Each group runs for 0.75 to 2 seconds; a group that hangs is
   killed by its alarm and reported as failed.  */

#include "tst-support.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

enum
{
  SENDERS = 3,
  SLOTS = 1009,
  MAX_SIZE = 70000,
  MAX_ROUNDS = 20000,
  /* Between two meetings, each sender waits a random 0 .. JITTER_US
     microseconds and signals; meanwhile the main thread frees and
     mallocs for WINDOW_US microseconds (and until a signal has come, up
     to MAX_OPS operations), so that most signals land in free or
     malloc.  */
  JITTER_US = 1000,
  WINDOW_US = 2000,
  MAX_OPS = 20000,
  /* Fewer signals delivered than this means the test did not test.  */
  MIN_SIGNALS = 50,
};

/* Each group runs for at least MIN_RUN_MS, then until WANTED_HITS
   signals have landed in free or malloc, but no longer than
   MAX_RUN_MS.  */
#define MIN_RUN_MS 750L
#define MAX_RUN_MS 2000L
#define WANTED_HITS 30
/* How long the handler waits for its child before calling it hung.  */
#define CHILD_DEADLINE_MS 5000L
/* The whole group is killed (and fails) after this many seconds.  */
#define GROUP_ALARM_S 15

static long
now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ */
/* The signal handler and what it records.  */

/* What the child forked from the handler does.  */
static volatile sig_atomic_t child_allocates;
/* /dev/null, for the standard error of children that allocate.  */
static int quiet_fd = -1;

static volatile sig_atomic_t sigusr1_received;
static volatile sig_atomic_t round_signals;
static volatile sig_atomic_t handler_forks;
static volatile sig_atomic_t handler_fork_errors;
static volatile sig_atomic_t handler_wait_errors;
static volatile sig_atomic_t children_hung;
static volatile sig_atomic_t children_bad;
static volatile sig_atomic_t first_bad_status;

/* Exit codes of a child that allocates.  */
enum
{
  CHILD_MALLOC = 2,
  CHILD_PATTERN,
  CHILD_CALLOC,
  CHILD_REALLOC,
};

static int
child_alloc (void)
{
  static const size_t sizes[] = { 16, 100, 1000, 5000, 70000, 200000 };
  enum { N = sizeof sizes / sizeof sizes[0] };
  unsigned char *p[N];
  for (int i = 0; i < N; i++)
    {
      p[i] = malloc (sizes[i]);
      if (p[i] == NULL)
        return CHILD_MALLOC;
      memset (p[i], 0x30 + i, sizes[i]);
    }
  for (int i = 0; i < N; i++)
    {
      if (tst_first_not (p[i], sizes[i], (unsigned char) (0x30 + i))
          != sizes[i])
        return CHILD_PATTERN;
      free (p[i]);
    }
  unsigned char *c = calloc (1, 3000);
  if (c == NULL || tst_first_not (c, 3000, 0) != 3000)
    return CHILD_CALLOC;
  memset (c, 0x55, 3000);
  c = realloc (c, 9000);
  if (c == NULL || tst_first_not (c, 3000, 0x55) != 3000)
    return CHILD_REALLOC;
  free (c);
  return 0;
}

static void
sigusr1_handler (int signo)
{
  (void) signo;
  int saved_errno = errno;
  sigusr1_received = 1;
  round_signals++;
  pid_t pid = fork ();
  if (pid == 0)
    {
      if (child_allocates)
        {
          alarm (5);
          /* glibc's children may abort with a malloc assertion: keep
             its message out of the log (the status is reported).  */
          if (quiet_fd >= 0)
            dup2 (quiet_fd, STDERR_FILENO);
          _exit (child_alloc ());
        }
      _exit (0);
    }
  if (pid < 0)
    handler_fork_errors++;
  else
    {
      handler_forks++;
      int status = 0;
      int r = tst_wait_deadline (pid, &status, CHILD_DEADLINE_MS);
      if (r < 0)
        handler_wait_errors++;
      else if (r == 0
               || (WIFSIGNALED (status) && WTERMSIG (status) == SIGALRM))
        children_hung++;
      else if (status != 0 && children_bad++ == 0)
        first_bad_status = status;
    }
  errno = saved_errno;
}

static void
reset_counters (void)
{
  sigusr1_received = 0;
  handler_forks = 0;
  handler_fork_errors = 0;
  handler_wait_errors = 0;
  children_hung = 0;
  children_bad = 0;
  first_bad_status = 0;
}

static bool
install_handler (void)
{
  struct sigaction sa;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = sigusr1_handler;
  sigemptyset (&sa.sa_mask);
  return sigaction (SIGUSR1, &sa, NULL) == 0;
}

/* ------------------------------------------------------------------ */
/* Senders.  */

struct shared
{
  pthread_barrier_t barrier;
  int stop;
};

static struct shared *shared;

static bool
init_shared (bool pshared)
{
  if (shared == NULL)
    {
      void *p = mmap (NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED)
        return false;
      shared = p;
    }
  shared->stop = 0;
  pthread_barrierattr_t attr;
  pthread_barrierattr_init (&attr);
  pthread_barrierattr_setpshared (&attr, pshared ? PTHREAD_PROCESS_SHARED
                                  : PTHREAD_PROCESS_PRIVATE);
  int r = pthread_barrier_init (&shared->barrier, &attr, SENDERS + 1);
  pthread_barrierattr_destroy (&attr);
  return r == 0;
}

/* One round of a sender: meet the main thread, signal it, meet it
   again.  Returns false when the main thread has finished.  */
static bool
sender_round (pid_t target_pid, pthread_t target_thread, bool thread,
              unsigned *seed)
{
  pthread_barrier_wait (&shared->barrier);
  long until = now_us () + rand_r (seed) % JITTER_US;
  while (now_us () < until)
    ;
  if (thread)
    pthread_kill (target_thread, SIGUSR1);
  else
    kill (target_pid, SIGUSR1);
  pthread_barrier_wait (&shared->barrier);
  return !__atomic_load_n (&shared->stop, __ATOMIC_ACQUIRE);
}

__attribute__ ((noreturn)) static void
sender_process (pid_t target)
{
  /* Never outlive the test.  */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  alarm (GROUP_ALARM_S + 5);
  signal (SIGUSR1, SIG_IGN);
  unsigned seed = (unsigned) getpid ();
  while (sender_round (target, 0, false, &seed))
    ;
  _exit (0);
}

static pthread_t main_thread;

static void *
sender_thread (void *arg)
{
  unsigned seed = (unsigned) (uintptr_t) arg;
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGUSR1);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
  while (sender_round (0, main_thread, true, &seed))
    ;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* The main loop.  */

static unsigned char *objects[SLOTS];
static size_t object_sizes[SLOTS];

/* Each block carries its size at both ends.  */
static void
tag (unsigned char *p, size_t n)
{
  if (n >= 2 * sizeof (size_t))
    {
      memcpy (p, &n, sizeof n);
      memcpy (p + n - sizeof n, &n, sizeof n);
    }
}

static bool
tag_ok (const unsigned char *p, size_t n)
{
  size_t a, b;
  if (n < 2 * sizeof (size_t))
    return true;
  memcpy (&a, p, sizeof a);
  memcpy (&b, p + n - sizeof b, sizeof b);
  return a == n && b == n;
}

struct loop_result
{
  long rounds;
  long direct_forks;
  long direct_fork_bad;
  long fork_signals, free_signals, malloc_signals;
  long nulls;
  long damaged;
};

static void
run_loop (bool direct_forks, struct loop_result *res)
{
  memset (res, 0, sizeof *res);
  unsigned seed = 1;
  long start = tst_now_ms ();
  bool last = false;
  for (long i = 0; !last; i++)
    {
      long ran = tst_now_ms () - start;
      last = i + 1 >= MAX_ROUNDS || ran >= MAX_RUN_MS
             || (ran >= MIN_RUN_MS
                 && res->free_signals + res->malloc_signals >= WANTED_HITS);
      bool do_fork = direct_forks && rand_r (&seed) % 7 == 0;

      round_signals = 0;
      pthread_barrier_wait (&shared->barrier);
      long window_end = now_us () + WINDOW_US;
      if (do_fork)
        {
          sigusr1_received = 0;
          pid_t pid = fork ();
          if (sigusr1_received)
            res->fork_signals++;
          if (pid == 0)
            _exit (0);
          int status = 0;
          res->direct_forks++;
          if (pid < 0 || tst_wait_deadline (pid, &status, CHILD_DEADLINE_MS) != 1
              || status != 0)
            res->direct_fork_bad++;
        }
      for (int k = 0; k < MAX_OPS
                      && (round_signals == 0 || now_us () < window_end); k++)
        {
          int slot = rand_r (&seed) % SLOTS;
          size_t size = (size_t) (rand_r (&seed) % MAX_SIZE);
          if (objects[slot] != NULL
              && !tag_ok (objects[slot], object_sizes[slot]))
            res->damaged++;
          sigusr1_received = 0;
          free (objects[slot]);
          if (sigusr1_received)
            res->free_signals++;
          sigusr1_received = 0;
          objects[slot] = malloc (size);
          if (sigusr1_received)
            res->malloc_signals++;
          object_sizes[slot] = size;
          if (objects[slot] == NULL)
            res->nulls++;
          else
            tag (objects[slot], size);
        }
      if (last)
        __atomic_store_n (&shared->stop, 1, __ATOMIC_RELEASE);
      pthread_barrier_wait (&shared->barrier);
      res->rounds++;
    }
  for (int slot = 0; slot < SLOTS; slot++)
    {
      if (objects[slot] != NULL
          && !tag_ok (objects[slot], object_sizes[slot]))
        res->damaged++;
      free (objects[slot]);
      objects[slot] = NULL;
    }
}

/* What a variant asserts about its children.  */
enum strictness
{
  /* Every child exits 0.  */
  STRICT,
  /* Children do not hang; their exit status is only reported (checked
     as an extension).  */
  LENIENT,
};

static void
report (const char *name, const struct loop_result *res,
        enum strictness strictness)
{
  tst_info ("%s: %ld rounds, %ld handler forks; signals during fork %ld, "
            "free %ld, malloc %ld; %ld direct forks", name, res->rounds,
            (long) handler_forks, res->fork_signals, res->free_signals,
            res->malloc_signals, res->direct_forks);
  CHECK (handler_forks >= MIN_SIGNALS, "%s: at least %d forks from the "
         "signal handler (%ld)", name, MIN_SIGNALS, (long) handler_forks);
  CHECK_EQ (handler_fork_errors + handler_wait_errors, 0,
            "%s: fork and waitpid in the handler never failed", name);
  char st[96] = "none";
  if (children_bad > 0)
    tst_describe_status (first_bad_status, st, sizeof st);
  char what[200];
  if (strictness == STRICT)
    {
      CHECK_EQ (children_hung, 0, "%s: no child forked from the handler "
                "hung", name);
      snprintf (what, sizeof what, "%s: every child forked from the "
                "handler exited 0", name);
      if (children_bad == 0)
        tst_ok (what);
      else
        tst_fail (what, "%ld of %ld did not; the first %s",
                  (long) children_bad, (long) handler_forks, st);
    }
  else
    {
      /* A child that hangs is killed by its alarm: glibc makes no
         promise about it either.  */
      tst_info ("%s: %ld of %ld children forked from the handler did not "
                "exit 0 (%ld hung); the first %s", name, (long) children_bad,
                (long) handler_forks, (long) children_hung, st);
      snprintf (what, sizeof what, "extension: %s: every child forked from "
                "the handler allocates and exits 0 in time", name);
      if (!tst_ext_enabled ())
        tst_skip (what, "glibc 2.36 does not promise it");
      else if (children_bad == 0 && children_hung == 0)
        tst_ok (what);
      else
        tst_fail (what, "%ld of %ld did not, %ld hung; the first %s",
                  (long) (children_bad + children_hung), (long) handler_forks,
                  (long) children_hung, st);
    }
  CHECK_EQ (res->direct_fork_bad, 0, "%s: direct forks: every child exited "
            "0 in time", name);
  CHECK_EQ (res->nulls, 0, "%s: malloc never returned NULL", name);
  CHECK_EQ (res->damaged, 0, "%s: every block kept its tags", name);

  /* The parent's heap is still usable.  */
  struct tst_acc acc = TST_ACC_INIT;
  for (size_t n = 1; n < 300000; n = n * 3 + 5)
    {
      unsigned char *p = malloc (n);
      ACC_CHECK (&acc, p != NULL, "malloc (%zu) returned NULL", n);
      if (p != NULL)
        {
          tst_fill (p, n, n);
          ACC_CHECK (&acc, tst_verify (p, n, n) == n, "block of %zu damaged",
                     n);
        }
      free (p);
    }
  tst_acc_report (&acc, "%s: the parent allocates normally afterwards",
                  name);
}

/* ------------------------------------------------------------------ */

static void
run_with_processes (const char *name, bool allocating_child)
{
  alarm (GROUP_ALARM_S);
  reset_counters ();
  child_allocates = allocating_child;
  if (!CHECK (install_handler (), "%s: sigaction (SIGUSR1)", name)
      || !CHECK (init_shared (true), "%s: process-shared barrier", name))
    return;

  pid_t self = getpid ();
  pid_t senders[SENDERS];
  int started = 0;
  for (int i = 0; i < SENDERS; i++)
    {
      fflush (stdout);
      senders[i] = fork ();
      if (senders[i] == 0)
        sender_process (self);
      if (senders[i] < 0)
        break;
      started++;
    }
  if (!CHECK_EQ (started, SENDERS, "%s: started %d sender processes", name,
                 SENDERS))
    {
      for (int i = 0; i < started; i++)
        kill (senders[i], SIGKILL);
      return;
    }

  struct loop_result res;
  run_loop (true, &res);
  signal (SIGUSR1, SIG_IGN);

  int bad = 0;
  for (int i = 0; i < started; i++)
    {
      int status = 0;
      if (tst_wait_deadline (senders[i], &status, 5000) != 1 || status != 0)
        bad++;
    }
  CHECK_EQ (bad, 0, "%s: the sender processes finished", name);
  report (name, &res, allocating_child ? LENIENT : STRICT);
}

static void
run_with_threads (const char *name, bool allocating_child)
{
  alarm (GROUP_ALARM_S);
  reset_counters ();
  child_allocates = allocating_child;
  main_thread = pthread_self ();
  if (!CHECK (install_handler (), "%s: sigaction (SIGUSR1)", name)
      || !CHECK (init_shared (false), "%s: barrier", name))
    return;

  pthread_t th[SENDERS];
  int started = 0;
  for (int i = 0; i < SENDERS; i++)
    {
      if (pthread_create (&th[i], NULL, sender_thread,
                          (void *) (uintptr_t) (i + 1)) != 0)
        break;
      started++;
    }
  if (!CHECK_EQ (started, SENDERS, "%s: started %d sender threads", name,
                 SENDERS))
    _exit (1);

  struct loop_result res;
  run_loop (false, &res);
  for (int i = 0; i < started; i++)
    pthread_join (th[i], NULL);
  signal (SIGUSR1, SIG_IGN);
  report (name, &res, STRICT);
}

static void
group_procs_exit (void)
{
  run_with_processes ("sender processes, child _exits", false);
}

static void
group_procs_alloc (void)
{
  run_with_processes ("sender processes, child allocates", true);
}

static void
group_threads_exit (void)
{
  run_with_threads ("extension: sender threads, child _exits", false);
}

static void
group_threads_alloc (void)
{
  run_with_threads ("extension: sender threads, child allocates", true);
}

int
main (void)
{
  tst_init ();
  quiet_fd = open ("/dev/null", O_WRONLY);
  tst_group ("signal senders are processes, the child _exits",
             group_procs_exit);
  tst_group ("signal senders are processes, the child allocates",
             group_procs_alloc);
  if (tst_ext_enabled ())
    {
      tst_group ("extension: signal senders are threads, the child _exits",
                 group_threads_exit);
      tst_group ("extension: signal senders are threads, the child "
                 "allocates", group_threads_alloc);
    }
  else
    {
      tst_skip ("extension: fork from a signal handler in a multi-threaded "
                "process, the child _exits", "glibc 2.36 deadlocks (its "
                "fork takes the arena lock the interrupted malloc holds)");
      tst_skip ("extension: fork from a signal handler in a multi-threaded "
                "process, the child allocates", "glibc 2.36 deadlocks");
    }
  return tst_finish ();
}
