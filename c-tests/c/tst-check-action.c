/* EXTENSION (ours only): MALLOC_CHECK_ / M_CHECK_ACTION choose what a
   detected corruption does, as glibc did before 2.34: 0 ignore, 1 print the
   message, 2 abort, 3 print and abort (the default). glibc 2.36 always
   aborts, so the harness skips this program's glibc run.

   Usage: tst-check-action MODE, where MODE is "env" (MALLOC_CHECK_ is set by
   the harness) or "mallopt:N" (M_CHECK_ACTION set here). With action 0 or 1
   the program must survive a double free and a free of a forged chunk, and
   the heap must stay usable. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  int action = -1;
  if (argc > 1 && sscanf(argv[1], "mallopt:%d", &action) == 1)
    printf("mallopt(M_CHECK_ACTION, %d) = %d\n", action, mallopt(M_CHECK_ACTION, action));
  int failed = 0;

  void *p = malloc(24);
  free(p);
  free(p); /* tcache double free: dropped */
  void *a = malloc(24), *b = malloc(24);
  if (a == b) failed++, printf("FAIL: double free handed out one block twice\n");
  else printf("ok: tcache double free ignored, later blocks distinct\n");

  void *big = malloc(5000), *guard = malloc(16);
  free(big);
  free(big); /* double free of a binned chunk: dropped */
  void *c = malloc(5000), *d = malloc(5000);
  if (c == d) failed++, printf("FAIL: binned double free handed out one block twice\n");
  else printf("ok: binned double free ignored\n");

  size_t *forged = malloc(64);
  size_t saved = forged[-1];
  forged[-1] = 0x11; /* invalid size */
  free(forged);
  forged[-1] = saved;
  printf("ok: free of a forged size ignored\n");

  for (int i = 0; i < 1000; i++) {
    char *q = malloc((size_t)i * 7 % 3000 + 1);
    memset(q, 1, (size_t)i * 7 % 3000 + 1);
    free(q);
  }
  printf("ok: heap still usable\n");
  free(a); free(b); free(c); free(d); free(guard); free(forged);
  printf("%d passed, %d failed\n", 4 - failed, failed);
  return failed != 0;
}
