/* tst-early-init: allocation before main, and from shared objects'
   constructors.

   Three constructors run before main, in priority order:
   - 101 calls malloc, calloc, realloc, free, posix_memalign,
     aligned_alloc, memalign and a large (mmapped) malloc;
   - 102 dlopens libm.so.6, looks up cos with dlsym, calls it and
     dlcloses it, and provokes a dlerror message (which glibc allocates);
   - 103 starts a thread that allocates, and joins it.
   They only record what happened (the check counters do not exist
   yet); main checks it all, including malloc_usable_size of the blocks
   made before main, and frees them.

   Then main dlopens and dlcloses tst-early-init-mod.so 100 times: its
   constructor allocates as it is mapped, its destructor frees.  The
   module's path comes from $TST_EARLY_INIT_MOD, or else it is looked
   for next to this program.

   Every check holds for glibc 2.36's malloc.  */

#include "tst-support.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>

#define KiB ((size_t) 1024)
#define MiB (1024 * KiB)

enum
{
  SMALL = 100,
  CALLOC_N = 10,
  CALLOC_SIZE = 50,
  GROW_FROM = 40,
  GROW_TO = 5000,
  ALIGNED = 1000,
  BIG = 300000,
  MANY = 64,
  THREAD_KEEP = 333,
  MOD_LOOPS = 100,
  MOD_BLOCK = 3000,
};

/* What the constructors did.  */
static struct
{
  bool ran101, ran102, ran103;
  unsigned char *small;
  unsigned char *zeroed;
  bool zeroed_ok;
  unsigned char *grown;
  bool grown_ok;
  int memalign_rc;
  unsigned char *aligned;
  unsigned char *aligned_alloc_p;
  unsigned char *memalign_p;
  unsigned char *big;
  unsigned char *many[MANY];
  bool free_ok;

  bool dlopen_ok, dlsym_ok, cos_ok, dlclose_ok, dlerror_ok;
  char dl_problem[200];

  int thread_create_rc;
  bool thread_ok;
  unsigned char *thread_block;
} early;

static size_t
many_size (int i)
{
  return 1 + 16 * (size_t) i;
}

__attribute__ ((constructor (101))) static void
early_alloc (void)
{
  early.ran101 = true;

  early.small = malloc (SMALL);
  if (early.small != NULL)
    tst_fill (early.small, SMALL, 1);

  early.zeroed = calloc (CALLOC_N, CALLOC_SIZE);
  if (early.zeroed != NULL)
    {
      size_t n = CALLOC_N * CALLOC_SIZE;
      early.zeroed_ok = tst_first_not (early.zeroed, n, 0) == n;
      tst_fill (early.zeroed, n, 2);
    }

  unsigned char *p = malloc (GROW_FROM);
  if (p != NULL)
    {
      tst_fill (p, GROW_FROM, 3);
      early.grown = realloc (p, GROW_TO);
      if (early.grown == NULL)
        free (p);
      else
        {
          early.grown_ok = tst_verify (early.grown, GROW_FROM, 3)
                           == GROW_FROM;
          tst_fill (early.grown, GROW_TO, 3);
        }
    }

  void *a = NULL;
  early.memalign_rc = posix_memalign (&a, 64, ALIGNED);
  early.aligned = a;
  if (early.memalign_rc == 0 && a != NULL)
    tst_fill (early.aligned, ALIGNED, 4);

  early.aligned_alloc_p = aligned_alloc (256, 512);
  if (early.aligned_alloc_p != NULL)
    tst_fill (early.aligned_alloc_p, 512, 5);
  early.memalign_p = memalign (4096, 100);
  if (early.memalign_p != NULL)
    tst_fill (early.memalign_p, 100, 6);

  early.big = malloc (BIG);
  if (early.big != NULL)
    tst_fill (early.big, BIG, 7);

  for (int i = 0; i < MANY; i++)
    {
      early.many[i] = malloc (many_size (i));
      if (early.many[i] != NULL)
        tst_fill (early.many[i], many_size (i), 100 + (uintptr_t) i);
    }
  /* Free every other one, and a few more odds and ends.  */
  for (int i = 0; i < MANY; i += 2)
    {
      free (early.many[i]);
      early.many[i] = NULL;
    }
  void *tmp = malloc (777);
  free (tmp);
  free (NULL);
  tmp = calloc (1, 70000);
  free (tmp);
  early.free_ok = true;
}

__attribute__ ((constructor (102))) static void
early_dlopen (void)
{
  early.ran102 = true;
  void *h = dlopen ("libm.so.6", RTLD_NOW);
  if (h == NULL)
    {
      snprintf (early.dl_problem, sizeof early.dl_problem,
                "dlopen (libm.so.6): %s", dlerror ());
      return;
    }
  early.dlopen_ok = true;
  double (*cosine) (double) = (double (*) (double)) dlsym (h, "cos");
  if (cosine == NULL)
    snprintf (early.dl_problem, sizeof early.dl_problem, "dlsym (cos): %s",
              dlerror ());
  else
    {
      early.dlsym_ok = true;
      volatile double zero = 0.0;
      early.cos_ok = cosine (zero) == 1.0;
    }
  early.dlclose_ok = dlclose (h) == 0;

  /* A failing dlopen: glibc builds the message with malloc.  */
  void *none = dlopen ("libdoes-not-exist-tst-early-init.so.9", RTLD_NOW);
  const char *msg = dlerror ();
  early.dlerror_ok = none == NULL && msg != NULL
                     && strstr (msg, "libdoes-not-exist") != NULL;
  if (none != NULL)
    dlclose (none);
}

static void *
early_thread (void *arg)
{
  (void) arg;
  static const size_t sizes[] = { 8, 24, 200, 1000, 5000, 70000, 200000 };
  enum { N = sizeof sizes / sizeof sizes[0] };
  unsigned char *p[N];
  bool ok = true;
  for (int i = 0; i < N; i++)
    {
      p[i] = malloc (sizes[i]);
      if (p[i] == NULL)
        ok = false;
      else
        tst_fill (p[i], sizes[i], 200 + (uintptr_t) i);
    }
  for (int i = 0; i < N; i++)
    if (p[i] != NULL)
      {
        if (tst_verify (p[i], sizes[i], 200 + (uintptr_t) i) != sizes[i])
          ok = false;
        free (p[i]);
      }
  unsigned char *keep = malloc (THREAD_KEEP);
  if (keep == NULL)
    return NULL;
  tst_fill (keep, THREAD_KEEP, 300);
  return ok ? keep : NULL;
}

__attribute__ ((constructor (103))) static void
early_thread_start (void)
{
  early.ran103 = true;
  pthread_t th;
  early.thread_create_rc = pthread_create (&th, NULL, early_thread, NULL);
  if (early.thread_create_rc != 0)
    return;
  void *res = NULL;
  pthread_join (th, &res);
  early.thread_block = res;
  early.thread_ok = res != NULL;
}

/* ------------------------------------------------------------------ */

/* A sane usable size for a live block of N bytes: at least N, and not
   more than a page (plus the header) above it.  */
static bool
usable_sane (const void *p, size_t n)
{
  size_t us = malloc_usable_size ((void *) p);
  return us >= n && us <= n + (size_t) sysconf (_SC_PAGESIZE) + 32;
}

/* Check a block made before main: usable size and pattern; then free.  */
static void
check_block (const char *what, unsigned char *p, size_t n, uintptr_t seed,
             size_t align)
{
  if (!CHECK (p != NULL, "before main: %s returned a block", what))
    return;
  CHECK (tst_aligned (p, align), "before main: %s is %zu-aligned", what,
         align);
  CHECK (usable_sane (p, n), "before main: malloc_usable_size of %s is "
         "between %zu and a page more (%zu)", what, n,
         malloc_usable_size (p));
  CHECK (tst_verify (p, n, seed) == n, "before main: %s kept its contents "
         "until main", what);
  /* Still writable up to its usable size.  */
  memset (p, 0xab, malloc_usable_size (p));
  free (p);
}

static void
group_constructors (void)
{
  CHECK (early.ran101 && early.ran102 && early.ran103, "the three "
         "constructors ran before main");

  check_block ("malloc (100)", early.small, SMALL, 1, 16);
  CHECK (early.zeroed_ok, "before main: calloc (10, 50) was zeroed");
  check_block ("calloc (10, 50)", early.zeroed, CALLOC_N * CALLOC_SIZE, 2,
               16);
  CHECK (early.grown_ok, "before main: realloc (40 -> 5000) kept the "
         "contents");
  check_block ("realloc (malloc (40), 5000)", early.grown, GROW_TO, 3, 16);
  CHECK_EQ (early.memalign_rc, 0, "before main: posix_memalign (64, 1000) "
            "returned 0");
  check_block ("posix_memalign (64, 1000)", early.aligned, ALIGNED, 4, 64);
  check_block ("aligned_alloc (256, 512)", early.aligned_alloc_p, 512, 5,
               256);
  check_block ("memalign (4096, 100)", early.memalign_p, 100, 6, 4096);
  check_block ("malloc (300000)", early.big, BIG, 7, 16);

  struct tst_acc acc = TST_ACC_INIT;
  for (int i = 1; i < MANY; i += 2)
    {
      unsigned char *p = early.many[i];
      size_t n = many_size (i);
      ACC_CHECK (&acc, p != NULL && usable_sane (p, n)
                 && tst_verify (p, n, 100 + (uintptr_t) i) == n,
                 "block of %zu bytes: %p, usable %zu", n, (void *) p,
                 p != NULL ? malloc_usable_size (p) : 0);
      free (p);
    }
  tst_acc_report (&acc, "before main: 32 blocks of 17 .. 1009 bytes (the "
                  "others freed before main) are sane and intact");
  CHECK (early.free_ok, "before main: free, free (NULL), calloc of 70000 "
         "bytes returned");

  if (early.dl_problem[0] != '\0')
    tst_fail ("before main: dlopen/dlsym of libm.so.6", "%s",
              early.dl_problem);
  CHECK (early.dlopen_ok && early.dlsym_ok && early.cos_ok,
         "before main: dlopen (libm.so.6), dlsym (cos), cos (0) == 1");
  CHECK (early.dlclose_ok, "before main: dlclose (libm.so.6) returned 0");
  CHECK (early.dlerror_ok, "before main: a failing dlopen left its "
         "message for dlerror");

  CHECK_EQ (early.thread_create_rc, 0, "before main: pthread_create");
  CHECK (early.thread_ok, "before main: a thread allocated, checked and "
         "freed blocks of 8 .. 200000 bytes");
  if (early.thread_block != NULL)
    check_block ("the thread's kept block", early.thread_block, THREAD_KEEP,
                 300, 16);

  /* The heap works normally afterwards.  */
  struct tst_acc after = TST_ACC_INIT;
  for (size_t n = 1; n < 400000; n = n * 2 + 3)
    {
      unsigned char *p = malloc (n);
      ACC_CHECK (&after, p != NULL && usable_sane (p, n),
                 "malloc (%zu) = %p", n, (void *) p);
      if (p != NULL)
        memset (p, 1, n);
      free (p);
    }
  tst_acc_report (&after, "in main: malloc and free of 1 .. 400000 bytes");
}

/* ------------------------------------------------------------------ */

static char module_path[PATH_MAX];

typedef int (*mod_check_fn) (void **);

static void
group_module (void)
{
  if (module_path[0] == '\0')
    {
      tst_fail ("find tst-early-init-mod.so", "set TST_EARLY_INIT_MOD to "
                "its path (the harness builds it)");
      return;
    }
  tst_info ("module %s", module_path);

  /* Once, to see it load at all.  */
  void *h = dlopen (module_path, RTLD_NOW | RTLD_LOCAL);
  if (!CHECK (h != NULL, "dlopen (tst-early-init-mod.so)"))
    {
      tst_info ("dlerror: %s", dlerror ());
      return;
    }
  dlclose (h);

  struct mallinfo2 before = mallinfo2 ();
  struct tst_acc opened = TST_ACC_INIT, ctor = TST_ACC_INIT;
  struct tst_acc closed = TST_ACC_INIT;
  for (int i = 0; i < MOD_LOOPS; i++)
    {
      h = dlopen (module_path, RTLD_NOW | RTLD_LOCAL);
      ACC_CHECK (&opened, h != NULL, "dlopen #%d: %s", i,
                 h == NULL ? dlerror () : "");
      if (h == NULL)
        continue;
      mod_check_fn check
        = (mod_check_fn) dlsym (h, "tst_early_init_mod_check");
      void *block = NULL;
      bool ok = check != NULL && check (&block) == 1;
      ACC_CHECK (&ctor, ok && block != NULL && usable_sane (block, MOD_BLOCK),
                 "dlopen #%d: the constructor's blocks (%p, usable %zu) "
                 "are not right", i, block,
                 block != NULL ? malloc_usable_size (block) : 0);
      ACC_CHECK (&closed, dlclose (h) == 0, "dlclose #%d: %s", i, dlerror ());
    }
  struct mallinfo2 after = mallinfo2 ();
  tst_acc_report (&opened, "dlopen (tst-early-init-mod.so) x%d", MOD_LOOPS);
  tst_acc_report (&ctor, "each time, the module's constructor allocated "
                  "(malloc, calloc of 200000 bytes, realloc) before dlopen "
                  "returned");
  tst_acc_report (&closed, "dlclose x%d", MOD_LOOPS);
  tst_info ("in use before the loop %zu, after %zu; mapped %zu, %zu",
            before.uordblks, after.uordblks, before.hblkhd, after.hblkhd);
  CHECK (after.uordblks <= before.uordblks + 1 * MiB
         && after.hblkhd <= before.hblkhd + 1 * MiB,
         "the module's destructor gave its blocks back: in use and mapped "
         "bytes grew by less than 1 MiB over %d loads", MOD_LOOPS);
}

int
main (int argc, char **argv)
{
  (void) argc;
  tst_init ();
  const char *env = getenv ("TST_EARLY_INIT_MOD");
  if (env != NULL && env[0] != '\0')
    snprintf (module_path, sizeof module_path, "%s", env);
  else
    {
      const char *slash = strrchr (argv[0], '/');
      int dir = slash != NULL ? (int) (slash - argv[0] + 1) : 0;
      snprintf (module_path, sizeof module_path, "%.*stst-early-init-mod.so",
                dir, argv[0]);
      if (dir == 0 || access (module_path, R_OK) != 0)
        module_path[0] = '\0';
    }
  tst_group ("allocation in constructors before main", group_constructors);
  tst_group ("dlopen a module that allocates in its constructor",
             group_module);
  return tst_finish ();
}
