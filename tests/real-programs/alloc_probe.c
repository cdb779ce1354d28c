/* Used by run.sh's preload-check: references every function of the malloc
 * family, so that with LD_BIND_NOW=1 LD_DEBUG=bindings the dynamic loader
 * reports where each one binds. A preloaded allocator must provide all of
 * them: one left to glibc would hand out glibc chunks that the preloaded
 * free() then has to deal with. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*fnptr)(void);
static volatile fnptr keep[] = {
    (fnptr)malloc, (fnptr)free, (fnptr)calloc, (fnptr)realloc,
    (fnptr)memalign, (fnptr)posix_memalign, (fnptr)aligned_alloc,
    (fnptr)valloc, (fnptr)pvalloc, (fnptr)malloc_usable_size,
};

int main(void) {
    void *p = malloc(100), *q = NULL;
    p = realloc(p, 1000);
    if (posix_memalign(&q, 64, 200) != 0) return 1;
    void *r = aligned_alloc(128, 256), *s = memalign(256, 100), *t = calloc(10, 10);
    void *u = valloc(10), *v = malloc(10); /* pvalloc is only referenced: jemalloc lacks it */
    int ok = p && r && s && t && u && v && malloc_usable_size(p) >= 1000 && ((size_t)q & 63) == 0;
    free(p); free(q); free(r); free(s); free(t); free(u); free(v);
    printf("%s %d\n", ok ? "ok" : "bad", (int)(sizeof keep / sizeof keep[0]));
    return ok ? 0 : 1;
}
