/* Shared body of abi-signatures.c and abi-signatures.cc: the address of
   every exported function, stored in a pointer of glibc 2.36's exact type
   (free_sized/free_aligned_sized: the C23 types our header declares).
   With -Wall -Wextra -Werror any mismatch between <malloc.h>/<stdlib.h>
   and include/ptmalloc-rs/ptmalloc.h fails the build (a conflicting
   redeclaration, or an incompatible pointer conversion).  */

/* glibc marks mallinfo deprecated; its address is still taken.  */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define SIG_POINTERS                                                      \
  void *(*p_malloc) (size_t) = malloc;                                    \
  void (*p_free) (void *) = free;                                         \
  void *(*p_calloc) (size_t, size_t) = calloc;                            \
  void *(*p_realloc) (void *, size_t) = realloc;                          \
  void *(*p_reallocarray) (void *, size_t, size_t) = reallocarray;        \
  void *(*p_memalign) (size_t, size_t) = memalign;                        \
  void *(*p_aligned_alloc) (size_t, size_t) = aligned_alloc;              \
  int (*p_posix_memalign) (void **, size_t, size_t) = posix_memalign;     \
  void *(*p_valloc) (size_t) = valloc;                                    \
  void *(*p_pvalloc) (size_t) = pvalloc;                                  \
  size_t (*p_malloc_usable_size) (void *) = malloc_usable_size;           \
  void (*p_free_sized) (void *, size_t) = free_sized;                     \
  void (*p_free_aligned_sized) (void *, size_t, size_t)                   \
    = free_aligned_sized;                                                 \
  int (*p_mallopt) (int, int) = mallopt;                                  \
  struct mallinfo (*p_mallinfo) (void) = mallinfo;                        \
  struct mallinfo2 (*p_mallinfo2) (void) = mallinfo2;                     \
  int (*p_malloc_trim) (size_t) = malloc_trim;                            \
  void (*p_malloc_stats) (void) = malloc_stats;                           \
  int (*p_malloc_info) (int, FILE *) = malloc_info;                       \
  const void *sig_all[] = {                                               \
    (const void *) p_malloc, (const void *) p_free,                       \
    (const void *) p_calloc, (const void *) p_realloc,                    \
    (const void *) p_reallocarray, (const void *) p_memalign,             \
    (const void *) p_aligned_alloc, (const void *) p_posix_memalign,      \
    (const void *) p_valloc, (const void *) p_pvalloc,                    \
    (const void *) p_malloc_usable_size, (const void *) p_free_sized,     \
    (const void *) p_free_aligned_sized, (const void *) p_mallopt,        \
    (const void *) p_mallinfo, (const void *) p_mallinfo2,                \
    (const void *) p_malloc_trim, (const void *) p_malloc_stats,          \
    (const void *) p_malloc_info,                                         \
  };                                                                      \
  int sig_count = (int) (sizeof sig_all / sizeof sig_all[0]);             \
  int sig_null = 0;                                                       \
  for (int i = 0; i < sig_count; i++)                                     \
    if (sig_all[i] == NULL)                                               \
      sig_null++;                                                         \
  void *sig_p = p_malloc (10);                                            \
  p_free_sized (sig_p, 10);                                               \
  printf ("%d functions, %d null\n", sig_count, sig_null);                \
  return sig_null == 0 && sig_count == 19 ? 0 : 1;
