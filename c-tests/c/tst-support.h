/* Shared helpers for the libptmalloc-rs C test programs.

   Every program prints one line per check:
     ok: <what>
     FAIL: <what>: <detail>
     skip: <what>: <why>
   plus free-form "info: ..." lines, and closes with the line
     N passed, M failed            (", K skipped" is appended when K > 0)
   It exits 0 only if nothing failed.

   Checks are grouped; by default each group runs in a forked child so
   that a crash in one group is reported as a failure of that group and
   the remaining groups still run.  The pass/fail counters live in a
   MAP_SHARED page, so checks made in children (and in threads) count.
   Set TST_NO_FORK=1 to run the groups in-process (handy under gdb).

   Include this header first: it defines _GNU_SOURCE.  */

#ifndef TST_SUPPORT_H
#define TST_SUPPORT_H

#ifndef _GNU_SOURCE
# define _GNU_SOURCE 1
#endif

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every helper is static; unused ones must not warn.  */
#define TST_FN static __attribute__ ((unused))

/* Counters, shared with forked children.  */
struct tst_counters
{
  long passed;
  long failed;
  long skipped;
};

static struct tst_counters *tst_counts;
static struct tst_counters tst_fallback_counts;

/* Seconds a forked group or child may run before alarm() kills it.  */
#define TST_CHILD_TIMEOUT 30

/* Launder a value through a volatile object so that the compiler can
   neither fold it nor warn about it (e.g. -Walloc-size-larger-than for
   malloc (SIZE_MAX), -Wuse-after-free for a deliberate double free).  */
TST_FN inline size_t
tst_opaque_size (size_t n)
{
  volatile size_t v = n;
  return v;
}

/* The pointer also escapes into a global, so stores through the result
   cannot be dropped as dead (a local volatile is not enough: GCC still
   tracks what it points to).  */
static void *volatile tst_ptr_sink;

TST_FN inline void *
tst_opaque_ptr (void *p)
{
  tst_ptr_sink = p;
  return tst_ptr_sink;
}

/* True when the extension checks (behaviour where libptmalloc-rs
   deliberately differs from glibc 2.36) are to run.  */
TST_FN bool
tst_ext_enabled (void)
{
  const char *e = getenv ("PTMALLOC_RS_TEST_EXT");
  return e != NULL && strcmp (e, "1") == 0;
}

TST_FN void
tst_vline (const char *prefix, const char *what, const char *detail_fmt,
           va_list ap)
{
  char detail[512] = "";
  if (detail_fmt != NULL)
    vsnprintf (detail, sizeof detail, detail_fmt, ap);
  if (detail[0] != '\0')
    printf ("%s: %s: %s\n", prefix, what, detail);
  else
    printf ("%s: %s\n", prefix, what);
  fflush (stdout);
}

TST_FN void
tst_ok (const char *what)
{
  __atomic_fetch_add (&tst_counts->passed, 1, __ATOMIC_SEQ_CST);
  printf ("ok: %s\n", what);
  fflush (stdout);
}

__attribute__ ((format (printf, 2, 3))) TST_FN void
tst_fail (const char *what, const char *detail_fmt, ...)
{
  va_list ap;
  __atomic_fetch_add (&tst_counts->failed, 1, __ATOMIC_SEQ_CST);
  va_start (ap, detail_fmt);
  tst_vline ("FAIL", what, detail_fmt, ap);
  va_end (ap);
}

__attribute__ ((format (printf, 2, 3))) TST_FN void
tst_skip (const char *what, const char *why_fmt, ...)
{
  va_list ap;
  __atomic_fetch_add (&tst_counts->skipped, 1, __ATOMIC_SEQ_CST);
  va_start (ap, why_fmt);
  tst_vline ("skip", what, why_fmt, ap);
  va_end (ap);
}

__attribute__ ((format (printf, 1, 2))) TST_FN void
tst_info (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  printf ("info: ");
  vprintf (fmt, ap);
  printf ("\n");
  fflush (stdout);
  va_end (ap);
}

/* CHECK (cond, "what %d", x): one ok/FAIL line.  */
__attribute__ ((format (printf, 5, 6))) TST_FN bool
tst_check (bool cond, const char *expr, const char *file, int line,
           const char *what_fmt, ...)
{
  char what[256];
  va_list ap;
  va_start (ap, what_fmt);
  vsnprintf (what, sizeof what, what_fmt, ap);
  va_end (ap);
  if (cond)
    tst_ok (what);
  else
    tst_fail (what, "'%s' is false (%s:%d)", expr, file, line);
  return cond;
}

#define CHECK(cond, ...) \
  tst_check ((cond) ? true : false, #cond, __FILE__, __LINE__, __VA_ARGS__)

/* CHECK_EQ (actual, expected, "what"): compares as integers (converted
   to uintmax_t) and shows both values, signed and in hex, on failure.  */
__attribute__ ((format (printf, 7, 8))) TST_FN bool
tst_check_eq (uintmax_t actual, uintmax_t expected, const char *aexpr,
              const char *eexpr, const char *file, int line,
              const char *what_fmt, ...)
{
  char what[256];
  va_list ap;
  va_start (ap, what_fmt);
  vsnprintf (what, sizeof what, what_fmt, ap);
  va_end (ap);
  if (actual == expected)
    {
      tst_ok (what);
      return true;
    }
  tst_fail (what, "%s is %jd (%#jx), expected %s = %jd (%#jx) (%s:%d)",
            aexpr, (intmax_t) actual, actual, eexpr, (intmax_t) expected,
            expected, file, line);
  return false;
}

#define CHECK_EQ(actual, expected, ...) \
  tst_check_eq ((uintmax_t) (actual), (uintmax_t) (expected), #actual, \
                #expected, __FILE__, __LINE__, __VA_ARGS__)

/* Accumulates failures over a loop of sub-checks, then reports one line
   with the number of bad cases and the first one's description.  */
struct tst_acc
{
  long total;
  long bad;
  char first[256];
};

#define TST_ACC_INIT { 0, 0, "" }

TST_FN void
tst_acc_ok (struct tst_acc *acc)
{
  acc->total++;
}

__attribute__ ((format (printf, 2, 3))) TST_FN void
tst_acc_fail (struct tst_acc *acc, const char *fmt, ...)
{
  acc->total++;
  if (acc->bad++ == 0)
    {
      va_list ap;
      va_start (ap, fmt);
      vsnprintf (acc->first, sizeof acc->first, fmt, ap);
      va_end (ap);
    }
}

/* Record one sub-check: ok if COND, else a failure described by FMT.  */
#define ACC_CHECK(acc, cond, ...)          \
  do                                       \
    {                                      \
      if (cond)                            \
        tst_acc_ok (acc);                  \
      else                                 \
        tst_acc_fail ((acc), __VA_ARGS__); \
    }                                      \
  while (0)

__attribute__ ((format (printf, 2, 3))) TST_FN bool
tst_acc_report (const struct tst_acc *acc, const char *what_fmt, ...)
{
  char what[256];
  va_list ap;
  va_start (ap, what_fmt);
  vsnprintf (what, sizeof what, what_fmt, ap);
  va_end (ap);
  if (acc->bad == 0 && acc->total > 0)
    {
      tst_ok (what);
      return true;
    }
  if (acc->total == 0)
    tst_fail (what, "no sub-check ran");
  else
    tst_fail (what, "%ld of %ld sub-checks failed; first: %s", acc->bad,
              acc->total, acc->first);
  return false;
}
/* A deterministic xorshift64 generator; *S is the state (never 0).  */
TST_FN uint64_t
tst_xorshift (uint64_t *s)
{
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Milliseconds on the monotonic clock.  */
TST_FN long
tst_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How much slower than native the program runs: TST_TIME_SCALE (valgrind
   sets 20), else 1.  Time limits and durations are multiplied by it.  */
TST_FN long
tst_time_scale (void)
{
  const char *s = getenv ("TST_TIME_SCALE");
  long v = s != NULL ? atol (s) : 1;
  return v >= 1 ? v : 1;
}

/* Resident set size in bytes from /proc/self/statm, or 0.  */
TST_FN size_t
tst_rss_bytes (void)
{
  FILE *f = fopen ("/proc/self/statm", "r");
  if (f == NULL)
    return 0;
  unsigned long size = 0, resident = 0;
  int n = fscanf (f, "%lu %lu", &size, &resident);
  fclose (f);
  if (n != 2)
    return 0;
  return (size_t) resident * (size_t) sysconf (_SC_PAGESIZE);
}

/* Wait for PID for at most MS milliseconds.  Returns 1 with *STATUS set
   if it ended in time, 0 if it had to be killed (it hung), -1 if waitpid
   failed.  Async-signal-safe: tst-mallocfork2 calls it from a handler.  */
TST_FN int
tst_wait_deadline (pid_t pid, int *status, long ms)
{
  long end = tst_now_ms () + ms;
  for (;;)
    {
      pid_t r = waitpid (pid, status, WNOHANG);
      if (r == pid)
        return 1;
      if (r < 0 && errno != EINTR)
        return -1;
      if (tst_now_ms () >= end)
        {
          kill (pid, SIGKILL);
          while (waitpid (pid, status, 0) < 0 && errno == EINTR)
            ;
          return 0;
        }
      struct timespec ts = { 0, 100 * 1000 };
      nanosleep (&ts, NULL);
    }
}

/* Fill and verify a block with a byte pattern derived from SEED.  */
TST_FN inline unsigned char
tst_pattern_byte (uintptr_t seed, size_t i)
{
  return (unsigned char) ((seed * 131u + i * 7u + (i >> 8)) ^ 0x5a);
}

TST_FN void
tst_fill (void *p, size_t n, uintptr_t seed)
{
  unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    c[i] = tst_pattern_byte (seed, i);
}

/* Returns the index of the first wrong byte, or N if all are right.  */
TST_FN size_t
tst_verify (const void *p, size_t n, uintptr_t seed)
{
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != tst_pattern_byte (seed, i))
      return i;
  return n;
}

/* Returns the index of the first byte that is not B, or N.  */
TST_FN size_t
tst_first_not (const void *p, size_t n, unsigned char b)
{
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != b)
      return i;
  return n;
}

TST_FN bool
tst_aligned (const void *p, size_t alignment)
{
  return ((uintptr_t) p & (alignment - 1)) == 0;
}

/* Human-readable wait status.  */
TST_FN const char *
tst_describe_status (int status, char *buf, size_t n)
{
  if (WIFEXITED (status))
    snprintf (buf, n, "exited with status %d", WEXITSTATUS (status));
  else if (WIFSIGNALED (status))
    snprintf (buf, n, "killed by signal %d (%s)", WTERMSIG (status),
              strsignal (WTERMSIG (status)));
  else
    snprintf (buf, n, "wait status %#x", (unsigned) status);
  return buf;
}

/* What became of fork child #I, from tst_wait_deadline's result R and the
   wait STATUS: hung (killed after DEADLINE_MS), waitpid failed, an exit
   code named in NAMES[0 .. N_NAMES - 1], or its raw status.  */
TST_FN void
tst_describe_fork_child (char *buf, size_t n, int i, int r, int status,
                         long deadline_ms, const char *const *names,
                         int n_names)
{
  char st[96];
  if (r == 0)
    snprintf (buf, n, "fork #%d: the child hung and was killed after %ld ms",
              i, deadline_ms);
  else if (r < 0)
    snprintf (buf, n, "fork #%d: waitpid failed: %s", i, strerror (errno));
  else if (WIFEXITED (status) && WEXITSTATUS (status) > 0
           && WEXITSTATUS (status) < n_names
           && names[WEXITSTATUS (status)] != NULL)
    snprintf (buf, n, "fork #%d: in the child, %s (exit status %d)", i,
              names[WEXITSTATUS (status)], WEXITSTATUS (status));
  else
    snprintf (buf, n, "fork #%d: the child %s", i,
              tst_describe_status (status, st, sizeof st));
}

/* Fork, run FN (ARG) in the child under alarm (TIMEOUT_S) and _exit with
   its return value.  Returns the wait status, or -1 if fork or waitpid
   failed.  Output buffers are flushed on both sides of the fork.  */
TST_FN int
tst_run_child (int (*fn) (void *), void *arg, unsigned timeout_s)
{
  fflush (stdout);
  fflush (stderr);
  pid_t pid = fork ();
  if (pid < 0)
    return -1;
  if (pid == 0)
    {
      alarm (timeout_s);
      int rc = fn (arg);
      fflush (stdout);
      fflush (stderr);
      _exit (rc);
    }
  int status;
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return status;
}

struct tst_group_call
{
  void (*fn) (void);
};

TST_FN int
tst_group_trampoline (void *arg)
{
  const struct tst_group_call *call = arg;
  call->fn ();
  return 0;
}

/* Run one group of checks, in a child unless TST_NO_FORK=1.  */
TST_FN void
tst_group (const char *name, void (*fn) (void))
{
  const char *nofork = getenv ("TST_NO_FORK");
  tst_info ("group %s", name);
  if (nofork != NULL && strcmp (nofork, "1") == 0)
    {
      fn ();
      return;
    }
  struct tst_group_call call = { fn };
  int status = tst_run_child (tst_group_trampoline, &call,
                              TST_CHILD_TIMEOUT * tst_time_scale ());
  char buf[128];
  if (status == -1)
    tst_fail (name, "could not run the group in a child: %s",
              strerror (errno));
  else if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    tst_fail (name, "group child %s (the checks after the last line "
              "printed did not run)",
              tst_describe_status (status, buf, sizeof buf));
}

/* Print which shared object provides malloc, so the harness can verify
   that preloading/linking really replaced glibc's malloc.  */
TST_FN void
tst_print_provider (void)
{
  void *sym = dlsym (RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym != NULL && dladdr (sym, &info) != 0 && info.dli_fname != NULL)
    tst_info ("malloc provider: %s", info.dli_fname);
  else
    tst_info ("malloc provider: unknown");
}

/* Set up the counters and print the info lines, leaving stdout's
   buffering alone.  */
TST_FN void
tst_init_counters (void)
{
  void *page = mmap (NULL, sizeof (struct tst_counters),
                     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                     0);
  tst_counts = page == MAP_FAILED ? &tst_fallback_counts : page;
  tst_print_provider ();
  tst_info ("extension checks %s", tst_ext_enabled () ? "enabled"
            : "disabled (set PTMALLOC_RS_TEST_EXT=1 to enable)");
}

/* Call first thing in main: line-buffers stdout, then as above.  */
TST_FN void
tst_init (void)
{
  setvbuf (stdout, NULL, _IOLBF, 0);
  tst_init_counters ();
}

/* Print the closing line; returns the exit status for main.  */
TST_FN int
tst_finish (void)
{
  fflush (stdout);
  if (tst_counts->skipped > 0)
    printf ("%ld passed, %ld failed, %ld skipped\n", tst_counts->passed,
            tst_counts->failed, tst_counts->skipped);
  else
    printf ("%ld passed, %ld failed\n", tst_counts->passed,
            tst_counts->failed);
  fflush (stdout);
  return tst_counts->failed == 0 && tst_counts->passed > 0 ? 0 : 1;
}

#endif /* TST_SUPPORT_H */
