/*
 * A program that knows libptmalloc-rs only through pkg-config: it includes
 * the installed header (before <malloc.h> and <stdlib.h>, which must not
 * clash with it), links with -lptmalloc-rs, calls every exported function,
 * and checks that each one binds to the library it was built against.
 *
 * EXPECT_LIB (optional): the library file the functions must come from.
 */
#define _GNU_SOURCE
#include <ptmalloc.h>
#include <malloc.h>
#include <stdlib.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    checks++;                                                                        \
    if (!(cond)) {                                                                   \
      failures++;                                                                    \
      fprintf(stderr, "consumer: %s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                                \
  } while (0)

/* The shared object a symbol resolves to in the process's global scope. */
static int binds_to_expected(const char *name, const char *expected) {
  void *sym = dlsym(RTLD_DEFAULT, name);
  Dl_info info;
  char have[PATH_MAX], want[PATH_MAX];
  if (!sym || !dladdr(sym, &info) || !info.dli_fname) {
    fprintf(stderr, "consumer: %s: not found\n", name);
    return 0;
  }
  if (!realpath(info.dli_fname, have)) {
    fprintf(stderr, "consumer: %s: %s: %s\n", name, info.dli_fname, strerror(errno));
    return 0;
  }
  if (expected) {
    if (!realpath(expected, want) || strcmp(have, want) != 0) {
      fprintf(stderr, "consumer: %s binds to %s, not %s\n", name, have, expected);
      return 0;
    }
  } else if (!strstr(have, "/libptmalloc-rs.so.")) {
    fprintf(stderr, "consumer: %s binds to %s\n", name, have);
    return 0;
  }
  return 1;
}

int main(void) {
  static const char *const api[] = {
      "malloc",        "free",           "calloc",       "realloc",    "reallocarray",
      "memalign",      "aligned_alloc",  "posix_memalign", "valloc",   "pvalloc",
      "malloc_usable_size", "free_sized", "free_aligned_sized", "mallopt", "mallinfo",
      "mallinfo2",     "malloc_trim",    "malloc_stats", "malloc_info",
  };
  const char *expected = getenv("EXPECT_LIB");
  for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) CHECK(binds_to_expected(api[i], expected));

  /* One call of each, with a result glibc's rules fix. */
  char *p = malloc(100);
  CHECK(p != NULL && malloc_usable_size(p) == 104);
  memset(p, 'x', 100);
  p = realloc(p, 5000);
  CHECK(p != NULL && p[99] == 'x');
  int *z = calloc(1000, sizeof *z);
  CHECK(z != NULL && z[0] == 0 && z[999] == 0);
  volatile size_t huge = SIZE_MAX / 2; /* hidden from the compiler's size checks */
  errno = 0;
  CHECK(calloc(huge, 4) == NULL && errno == ENOMEM);
  long *arr = reallocarray(NULL, 10, sizeof *arr);
  CHECK(arr != NULL);
  void *a = memalign(256, 10), *b = aligned_alloc(64, 128), *c = NULL;
  CHECK(a != NULL && (uintptr_t)a % 256 == 0);
  CHECK(b != NULL && (uintptr_t)b % 64 == 0);
  CHECK(posix_memalign(&c, 4096, 1) == 0 && (uintptr_t)c % 4096 == 0);
  CHECK(posix_memalign(&c, 3, 1) == EINVAL);
  long page = sysconf(_SC_PAGESIZE);
  void *v = valloc(1), *pv = pvalloc(1);
  CHECK(v != NULL && (uintptr_t)v % (uintptr_t)page == 0);
  CHECK(pv != NULL && (uintptr_t)pv % (uintptr_t)page == 0 && malloc_usable_size(pv) >= (size_t)page);
  CHECK(mallopt(M_PERTURB, 0) == 1);
  CHECK(mallopt(M_MXFAST, 1000) == 0);
  struct mallinfo2 mi2 = mallinfo2();
  CHECK(mi2.uordblks > 0 && mi2.arena > 0);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
  CHECK(mi.uordblks > 0);

  char *xml = NULL;
  size_t xml_len = 0;
  FILE *mem = open_memstream(&xml, &xml_len);
  CHECK(mem != NULL && malloc_info(0, mem) == 0);
  if (mem) fclose(mem);
  CHECK(xml != NULL && strncmp(xml, "<malloc version=", 16) == 0);
  free(xml);

  free_sized(p, 5000);
  free_aligned_sized(b, 64, 128);
  free(z);
  free(arr);
  free(a);
  free(c);
  free(v);
  free(pv);
  free(NULL);
  malloc_trim(0);
  if (getenv("CONSUMER_STATS")) malloc_stats();

  printf("consumer: %d checks, %d failed\n", checks, failures);
  return failures != 0;
}
