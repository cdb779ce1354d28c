/* tst-arena-accounting: how many arenas threads get, and what
   malloc_info and mallinfo2 say about them.

   glibc gives a thread that has no arena a new one (until there are 8
   per CPU, counted once more than arena_test = 8 arenas exist), an
   exiting thread's arena goes on a free list for the next new thread,
   and MALLOC_ARENA_MAX (or glibc.malloc.arena_max, or mallopt
   (M_ARENA_MAX)) caps the number.  malloc_info prints one <heap nr=...>
   element per arena, and both malloc_info's totals and mallinfo2 sum
   over every arena.

   Each case runs in a fresh process: this program re-executes itself
   (/proc/self/exe --measure HOW) with the setting in its environment,
   since the settings are read at start-up and the harness runs every
   program with none.  The measuring process starts THREADS threads that
   each allocate BLOCKS blocks and wait at a barrier, so that all of them
   are alive and holding memory at once; the main thread then reads
   mallinfo2 and malloc_info (into a temporary file whose buffer exists
   already, so that nothing allocates in between), lets them check and
   free their blocks, and does it all again with a second batch of
   threads.  It prints what it measured as "m KEY VALUE" lines; this
   process checks them:

   - with MALLOC_ARENA_MAX=1, glibc.malloc.arena_max=1, or mallopt
     (M_ARENA_MAX, 1) before the first thread: exactly one <heap nr=
     element while the 16 threads hold their blocks;
   - with MALLOC_ARENA_MAX=2: exactly two;
   - with the default settings: more than one, at most glibc's limit,
     mallinfo2 ().arena larger than before the threads, and no new
     arenas for the second batch (the first batch's are reused);
   - in every case: mallinfo2 ().uordblks grows by at least the bytes
     the threads hold, malloc_info's <system type="current"> total is
     the sum of its heaps' and equals mallinfo2 ().arena.

   Every check holds for glibc 2.36's malloc.  */

#include "tst-support.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>

enum
{
  THREADS = 16,
  BLOCKS = 16,
  BLOCK_SIZE = 4000,
  /* glibc's default arena_test on 64-bit systems.  */
  ARENA_TEST = 8,
  /* glibc's default arena limit per CPU on 64-bit systems.  */
  ARENAS_PER_CPU = 8,
};

/* How long a measuring process may take.  */
#define MEASURE_DEADLINE_MS 20000L

/* ------------------------------------------------------------------ */
/* The measuring process.  */

static pthread_barrier_t held_barrier;
static pthread_barrier_t measured_barrier;

struct holder
{
  int id;
  long bad;
  long nulls;
};

static void *
holder_thread (void *varg)
{
  struct holder *h = varg;
  unsigned char *p[BLOCKS];
  for (int i = 0; i < BLOCKS; i++)
    {
      size_t n = BLOCK_SIZE + 16 * (size_t) i;
      p[i] = malloc (n);
      if (p[i] == NULL)
        h->nulls++;
      else
        tst_fill (p[i], n, (uintptr_t) (h->id * BLOCKS + i));
    }
  /* Everybody holds their blocks now; main measures; then we let go.  */
  pthread_barrier_wait (&held_barrier);
  pthread_barrier_wait (&measured_barrier);
  for (int i = 0; i < BLOCKS; i++)
    {
      size_t n = BLOCK_SIZE + 16 * (size_t) i;
      if (p[i] != NULL
          && tst_verify (p[i], n, (uintptr_t) (h->id * BLOCKS + i)) != n)
        h->bad++;
      free (p[i]);
    }
  return NULL;
}

/* What malloc_info printed.  */
struct info
{
  int rc;
  bool closed;            /* the </malloc> line was there */
  long heaps;             /* <heap nr= elements */
  size_t heap_system_sum; /* their <system type="current"> sizes */
  size_t system_total;    /* the <system type="current"> after them */
};

/* Call malloc_info (0, F) on the emptied file F and read the output
   back with fgets into a stack buffer: nothing here allocates, F's
   buffer having been allocated by an earlier write.  */
static void
read_info (FILE *f, struct info *in)
{
  memset (in, 0, sizeof *in);
  rewind (f);
  if (ftruncate (fileno (f), 0) != 0)
    {
      in->rc = -1;
      return;
    }
  in->rc = malloc_info (0, f);
  fflush (f);
  rewind (f);
  char line[512];
  bool in_heap = false;
  while (fgets (line, sizeof line, f) != NULL)
    {
      size_t v;
      if (strstr (line, "<heap nr=") != NULL)
        {
          in->heaps++;
          in_heap = true;
        }
      else if (strstr (line, "</heap>") != NULL)
        in_heap = false;
      else if (strstr (line, "</malloc>") != NULL)
        in->closed = true;
      else if (sscanf (line, " <system type=\"current\" size=\"%zu\"/>", &v)
               == 1)
        {
          if (in_heap)
            in->heap_system_sum += v;
          else
            in->system_total = v;
        }
    }
}

struct batch
{
  int started;
  long bad;
  long nulls;
  struct mallinfo2 mi;
  struct info in;
};

/* Start THREADS holder threads, measure while they all hold their
   blocks, let them finish.  */
static void
run_batch (FILE *f, int number, struct batch *b)
{
  static struct holder holders[THREADS];
  pthread_t th[THREADS];
  memset (b, 0, sizeof *b);
  pthread_barrier_init (&held_barrier, NULL, THREADS + 1);
  pthread_barrier_init (&measured_barrier, NULL, THREADS + 1);
  for (int i = 0; i < THREADS; i++)
    {
      holders[i] = (struct holder) { number * THREADS + i, 0, 0 };
      if (pthread_create (&th[i], NULL, holder_thread, &holders[i]) != 0)
        {
          /* The barriers would never open: report and give up.  */
          printf ("m started%d %d\n", number, i);
          fflush (stdout);
          _exit (1);
        }
      b->started++;
    }
  pthread_barrier_wait (&held_barrier);
  b->mi = mallinfo2 ();
  read_info (f, &b->in);
  pthread_barrier_wait (&measured_barrier);
  for (int i = 0; i < THREADS; i++)
    {
      pthread_join (th[i], NULL);
      b->bad += holders[i].bad;
      b->nulls += holders[i].nulls;
    }
  pthread_barrier_destroy (&held_barrier);
  pthread_barrier_destroy (&measured_barrier);
}

static void
print_batch (int number, const struct batch *b)
{
  printf ("m started%d %d\n", number, b->started);
  printf ("m bad%d %ld\n", number, b->bad);
  printf ("m nulls%d %ld\n", number, b->nulls);
  printf ("m arena%d %zu\n", number, b->mi.arena);
  printf ("m uordblks%d %zu\n", number, b->mi.uordblks);
  printf ("m info_rc%d %d\n", number, b->in.rc);
  printf ("m info_closed%d %d\n", number, b->in.closed ? 1 : 0);
  printf ("m heaps%d %ld\n", number, b->in.heaps);
  printf ("m heap_system_sum%d %zu\n", number, b->in.heap_system_sum);
  printf ("m system_total%d %zu\n", number, b->in.system_total);
}

static int
measure (const char *how)
{
  /* Before anything else allocates much, and before any thread.  */
  int mallopt_rc = -1;
  if (strcmp (how, "mallopt-1") == 0)
    mallopt_rc = mallopt (M_ARENA_MAX, 1);

  FILE *f = tmpfile ();
  if (f == NULL || fputs ("allocate the stream's buffer\n", f) < 0
      || fflush (f) != 0)
    {
      printf ("m tmpfile 0\n");
      return 1;
    }
  printf ("m tmpfile 1\n");
  printf ("m mallopt %d\n", mallopt_rc);

  /* Before the threads.  */
  struct batch before;
  memset (&before, 0, sizeof before);
  before.mi = mallinfo2 ();
  read_info (f, &before.in);

  struct batch first, second;
  run_batch (f, 1, &first);
  run_batch (f, 2, &second);

  struct info after;
  read_info (f, &after);

  /* Bookkeeping done: now print (stdout's buffer may allocate).  */
  void *sym = dlsym (RTLD_DEFAULT, "malloc");
  Dl_info dli;
  printf ("provider %s\n", sym != NULL && dladdr (sym, &dli) != 0
          && dli.dli_fname != NULL ? dli.dli_fname : "unknown");
  printf ("m arena0 %zu\n", before.mi.arena);
  printf ("m uordblks0 %zu\n", before.mi.uordblks);
  printf ("m info_rc0 %d\n", before.in.rc);
  printf ("m heaps0 %ld\n", before.in.heaps);
  print_batch (1, &first);
  print_batch (2, &second);
  printf ("m heaps3 %ld\n", after.heaps);
  printf ("m end 1\n");
  fclose (f);
  return 0;
}

/* ------------------------------------------------------------------ */
/* The checking process.  */

enum expect
{
  EXPECT_ONE,
  EXPECT_TWO,
  EXPECT_MANY,
};

struct arena_case
{
  const char *name;
  /* NAME=VALUE put into the environment of the measuring process.  */
  const char *setting;
  const char *how;
  enum expect expect;
};

static const struct arena_case cases[] = {
  { "MALLOC_ARENA_MAX=1", "MALLOC_ARENA_MAX=1", "plain", EXPECT_ONE },
  { "GLIBC_TUNABLES=glibc.malloc.arena_max=1",
    "GLIBC_TUNABLES=glibc.malloc.arena_max=1", "plain", EXPECT_ONE },
  { "mallopt (M_ARENA_MAX, 1)", NULL, "mallopt-1", EXPECT_ONE },
  { "MALLOC_ARENA_MAX=2", "MALLOC_ARENA_MAX=2", "plain", EXPECT_TWO },
  { "default settings", NULL, "plain", EXPECT_MANY },
};

static const struct arena_case *current;

/* The measured values, by key.  */
struct results
{
  char text[8192];
  char provider[512];
};

static bool
value (const struct results *r, const char *key, long long *v)
{
  char want[64];
  snprintf (want, sizeof want, "m %s ", key);
  const char *p = r->text;
  while ((p = strstr (p, want)) != NULL)
    {
      if (p == r->text || p[-1] == '\n')
        return sscanf (p + strlen (want), "%lld", v) == 1;
      p++;
    }
  return false;
}

/* The value of KEY, or -1 (with a FAIL line) if it is missing.  */
static long long
get (const struct results *r, const char *key)
{
  long long v;
  if (value (r, key, &v))
    return v;
  tst_fail (current->name, "the measuring process did not report %s", key);
  return -1;
}

/* The environment of the measuring process: ours without any arena
   setting, plus the case's.  */
static char **
make_env (const char *setting)
{
  extern char **environ;
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **env = calloc (n + 2, sizeof *env);
  if (env == NULL)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp (environ[i], "MALLOC_ARENA_MAX=", 17) != 0
        && strncmp (environ[i], "MALLOC_ARENA_TEST=", 18) != 0
        && strncmp (environ[i], "GLIBC_TUNABLES=", 15) != 0)
      env[k++] = environ[i];
  if (setting != NULL)
    env[k++] = (char *) setting;
  env[k] = NULL;
  return env;
}

/* Run /proc/self/exe --measure HOW with SETTING; true with R filled in
   if it ran to the end.  */
static bool
run_measure (const struct arena_case *c, struct results *r)
{
  memset (r, 0, sizeof *r);
  char **env = make_env (c->setting);
  FILE *out = tmpfile ();
  if (env == NULL || out == NULL)
    {
      tst_fail (c->name, "could not prepare the measuring process: %s",
                strerror (errno));
      return false;
    }
  fflush (stdout);
  fflush (stderr);
  pid_t pid = fork ();
  if (pid == 0)
    {
      dup2 (fileno (out), STDOUT_FILENO);
      char *argv[] = { (char *) "tst-arena-accounting", (char *) "--measure",
                       (char *) c->how, NULL };
      execve ("/proc/self/exe", argv, env);
      _exit (127);
    }
  free (env);
  if (pid < 0)
    {
      tst_fail (c->name, "fork: %s", strerror (errno));
      fclose (out);
      return false;
    }
  int status = 0;
  int w = tst_wait_deadline (pid, &status,
                             MEASURE_DEADLINE_MS * tst_time_scale ());
  rewind (out);
  size_t got = fread (r->text, 1, sizeof r->text - 1, out);
  r->text[got] = '\0';
  fclose (out);
  const char *prov = strstr (r->text, "provider ");
  if (prov != NULL)
    sscanf (prov, "provider %511s", r->provider);

  char st[96];
  if (w != 1 || !WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      tst_fail (c->name, "the measuring process (/proc/self/exe --measure "
                "%s) %s; it printed: %.300s", c->how,
                w == 0 ? "hung and was killed"
                : w < 0 ? "could not be waited for"
                : tst_describe_status (status, st, sizeof st), r->text);
      return false;
    }
  long long end;
  if (!value (r, "end", &end))
    {
      tst_fail (c->name, "the measuring process stopped early: %.300s",
                r->text);
      return false;
    }
  return true;
}

/* The number of CPUs this process may run on, as glibc counts them for
   the arena limit (sched_getaffinity).  */
static int
cpus (void)
{
  cpu_set_t set;
  if (sched_getaffinity (0, sizeof set, &set) != 0)
    return 2;
  int n = CPU_COUNT (&set);
  return n >= 1 ? n : 2;
}

static void
group_case (void)
{
  const struct arena_case *c = current;
  struct results r;
  if (!run_measure (c, &r))
    return;

  /* The measuring process must use the same malloc as this one.  */
  void *sym = dlsym (RTLD_DEFAULT, "malloc");
  Dl_info dli;
  const char *mine = sym != NULL && dladdr (sym, &dli) != 0
                     && dli.dli_fname != NULL ? dli.dli_fname : "unknown";
  if (strcmp (mine, r.provider) == 0)
    tst_ok ("the measuring process gets malloc from the same object");
  else
    tst_fail ("the measuring process gets malloc from the same object",
              "%s, here %s", r.provider, mine);

  const char *n = c->name;
  if (strcmp (c->how, "mallopt-1") == 0)
    CHECK_EQ (get (&r, "mallopt"), 1, "%s: mallopt returns 1", n);
  CHECK_EQ (get (&r, "heaps0"), 1, "%s: malloc_info shows one <heap nr= "
            "before any thread", n);

  long long heaps[3] = { 0 };
  for (int b = 1; b <= 2; b++)
    {
      char k[32];
#define B(key) (snprintf (k, sizeof k, "%s%d", key, b), get (&r, k))
      CHECK_EQ (B ("started"), THREADS, "%s, batch %d: %d threads started",
                n, b, THREADS);
      CHECK (B ("bad") == 0 && B ("nulls") == 0, "%s, batch %d: every "
             "thread's blocks allocated and intact", n, b);
      CHECK (B ("info_rc") == 0 && B ("info_closed") == 1, "%s, batch %d: "
             "malloc_info (0, fp) returns 0 and writes </malloc>", n, b);
      heaps[b] = B ("heaps");
      long long arena = B ("arena"), total = B ("system_total");
      long long sum = B ("heap_system_sum");
      CHECK_EQ (sum, total, "%s, batch %d: malloc_info's <system "
                "type=\"current\"> total is the sum of its heaps'", n, b);
      CHECK_EQ (total, arena, "%s, batch %d: malloc_info's <system "
                "type=\"current\"> total equals mallinfo2 ().arena", n, b);
      long long held = (long long) THREADS * BLOCKS * BLOCK_SIZE;
      long long grew = B ("uordblks") - get (&r, "uordblks0");
      CHECK (grew >= held, "%s, batch %d: mallinfo2 ().uordblks grew by at "
             "least the %lld bytes the threads hold (by %lld)", n, b, held,
             grew);
      if (b == 1)
        tst_info ("%s: %lld heaps with %d threads holding blocks; arena "
                  "%lld before, %lld with the threads", n, heaps[b],
                  THREADS, get (&r, "arena0"), arena);
#undef B
    }

  switch (c->expect)
    {
    case EXPECT_ONE:
      CHECK_EQ (heaps[1], 1, "%s: exactly one <heap nr= element while %d "
                "threads hold blocks", n, THREADS);
      CHECK_EQ (heaps[2], 1, "%s: still one with a second batch of "
                "threads", n);
      break;
    case EXPECT_TWO:
      CHECK_EQ (heaps[1], 2, "%s: exactly two <heap nr= elements while %d "
                "threads hold blocks", n, THREADS);
      CHECK_EQ (heaps[2], 2, "%s: still two with a second batch of "
                "threads", n);
      break;
    case EXPECT_MANY:
      {
        CHECK (heaps[1] > 1, "%s: more than one <heap nr= element while %d "
               "threads hold blocks (%lld)", n, THREADS, heaps[1]);
        /* Arenas are made without a limit until there are more than
           arena_test; then the limit is 8 per CPU.  */
        long long limit = (long long) ARENAS_PER_CPU * cpus ();
        if (limit < ARENA_TEST + 1)
          limit = ARENA_TEST + 1;
        CHECK (heaps[1] <= limit, "%s: at most glibc's limit of %lld arenas "
               "(%lld)", n, limit, heaps[1]);
        long long a0 = get (&r, "arena0"), a1 = get (&r, "arena1");
        CHECK (a1 > a0, "%s: mallinfo2 ().arena grows with the threads' "
               "arenas (%lld before, %lld with the threads)", n, a0, a1);
        CHECK_EQ (heaps[2], heaps[1], "%s: a second batch of %d threads "
                  "reuses the first batch's arenas: no new <heap nr= "
                  "element", n, THREADS);
        break;
      }
    }
  long long h3 = get (&r, "heaps3");
  CHECK_EQ (h3, heaps[2], "%s: arenas stay after their threads exit (%lld "
            "<heap nr= elements)", n, h3);
}

int
main (int argc, char **argv)
{
  if (argc == 3 && strcmp (argv[1], "--measure") == 0)
    return measure (argv[2]);
  if (argc != 1)
    {
      fprintf (stderr, "usage: %s\n", argv[0]);
      return 2;
    }
  tst_init ();
  tst_info ("%d CPUs, %d threads holding %d blocks of about %d bytes each",
            cpus (), THREADS, BLOCKS, BLOCK_SIZE);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      current = &cases[i];
      tst_group (cases[i].name, group_case);
    }
  return tst_finish ();
}
