/* False sharing between threads (the cache-thrash and cache-scratch shapes).

   cache-thrash   (active false sharing) each of 2 threads repeatedly mallocs
                  an 8-byte object, writes it WRITES times and frees it. An
                  allocator that hands two threads objects on the same cache
                  line makes every write a cache miss.
   cache-scratch  (passive false sharing) the main thread mallocs one 8-byte
                  object per worker, back to back (most allocators put them on
                  one cache line), and hands one to each; each worker frees
                  its object and then runs the cache-thrash loop. An allocator
                  that gives the freed object back to the thread that freed it
                  keeps the threads on the main thread's cache line.

   Checks: each object's 8 bytes hold a counter and its complement, written
   WRITES times and checked before the free. */
#include "bench.h"

#include <pthread.h>
#include <string.h>

enum { WORKERS = 2, OBJ = 8, WRITES = 50 };

typedef struct {
  tally_t tally;
  long iterations;
  void *handed; /* cache-scratch: the object the main thread gave this worker */
} worker_t;

static pthread_barrier_t ready;

static void *worker(void *arg) {
  worker_t *w = arg;
  if (w->handed != NULL)
    bench_free(w->handed, OBJ, &w->tally);
  pthread_barrier_wait(&ready);
  for (long i = 0; i < w->iterations; i++) {
    volatile uint32_t *o = malloc(OBJ);
    if (o == NULL)
      bench_oom("malloc", OBJ);
    w->tally.allocs++;
    o[0] = 0;
    o[1] = ~0u;
    for (uint32_t k = 0; k < WRITES; k++) { /* each write a store to the object's line */
      o[0] = o[0] + 1;
      o[1] = ~o[0];
    }
    if (o[0] != WRITES || o[1] != ~(uint32_t)WRITES)
      w->tally.bad++;
    free((void *)o);
    w->tally.frees++;
  }
  return NULL;
}

static int run(const char *name, int scratch) {
  worker_t *w = aligned_alloc(64, sizeof(worker_t) * WORKERS);
  if (w == NULL)
    bench_oom("aligned_alloc", sizeof(worker_t) * WORKERS);
  memset(w, 0, sizeof(worker_t) * WORKERS);
  tally_t main_tally = {0};
  pthread_barrier_init(&ready, NULL, WORKERS + 1);
  pthread_t tid[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    w[i].iterations = bench_scaled(4000000);
    if (scratch)
      w[i].handed = bench_malloc(OBJ, &main_tally);
  }
  for (int i = 0; i < WORKERS; i++)
    if (pthread_create(&tid[i], NULL, worker, &w[i]) != 0) {
      fprintf(stderr, "suite: %s: pthread_create failed\n", name);
      return 1;
    }
  pthread_barrier_wait(&ready);
  double t0 = bench_now();
  for (int i = 0; i < WORKERS; i++)
    pthread_join(tid[i], NULL);
  double elapsed = bench_now() - t0;
  pthread_barrier_destroy(&ready);
  tally_t total = main_tally;
  for (int i = 0; i < WORKERS; i++)
    bench_add(&total, &w[i].tally);
  free(w);
  return bench_report(name, elapsed, &total, "");
}

int wl_cache_thrash(void) { return run("cache-thrash", 0); }

int wl_cache_scratch(void) { return run("cache-scratch", 1); }
