/* thread-churn: threads that come and go, leaving blocks behind.

   Rounds of four short-lived threads (started together, joined together).
   Each thread mallocs 2000 blocks (16..2048 bytes, one in 16 up to 64 KiB),
   frees three quarters of them in random order, frees up to 500 of the
   blocks earlier threads left behind (made by threads that have exited,
   often in another arena), and leaves its last quarter in a shared pool for
   later threads. The allocator sees thread start-up (arena choice, cache
   set-up), thread exit with a full cache, and frees of blocks whose thread
   is gone; RSS shows how well it reuses an exited thread's memory.

   Checks: marker bytes on every block, checked before its free (bench.h);
   the main thread frees what is left in the pool after the clock stops, so
   mallocs and frees balance. */
#include "bench.h"

#include <pthread.h>
#include <string.h>

enum { THREADS = 4, PER_THREAD = 2000, ADOPT = 500, POOL_CAP = 64 * 1024 };

typedef struct {
  void *p;
  size_t n;
} block_t;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static block_t pool[POOL_CAP];
static size_t pool_n;

typedef struct {
  tally_t tally;
  uint64_t seed;
} churner_t;

static size_t churn_size(rng_t *r) {
  uint64_t x = rnd(r);
  return (x & 15) == 0 ? rnd_log_range(r, 2049, 65536) : 16 + (size_t)((x >> 8) % 2033);
}

static void *churner(void *arg) {
  churner_t *c = arg;
  rng_t r;
  rng_seed(&r, c->seed);
  block_t mine[PER_THREAD];
  for (int i = 0; i < PER_THREAD; i++) {
    mine[i].n = churn_size(&r);
    mine[i].p = bench_malloc(mine[i].n, &c->tally);
  }
  /* free three quarters in random order: shuffle, free the front */
  for (int i = PER_THREAD - 1; i > 0; i--) {
    int j = (int)(rnd(&r) % (uint64_t)(i + 1));
    block_t t = mine[i];
    mine[i] = mine[j];
    mine[j] = t;
  }
  int keep = PER_THREAD / 4;
  for (int i = keep; i < PER_THREAD; i++)
    bench_free(mine[i].p, mine[i].n, &c->tally);

  /* adopt some of what dead threads left, leave our quarter */
  block_t adopted[ADOPT];
  int nadopted = 0;
  pthread_mutex_lock(&pool_lock);
  while (nadopted < ADOPT && pool_n > 0)
    adopted[nadopted++] = pool[--pool_n];
  int left = 0;
  while (left < keep && pool_n < POOL_CAP)
    pool[pool_n++] = mine[left++];
  pthread_mutex_unlock(&pool_lock);
  for (int i = 0; i < nadopted; i++)
    bench_free(adopted[i].p, adopted[i].n, &c->tally);
  for (int i = left; i < keep; i++) /* the pool was full */
    bench_free(mine[i].p, mine[i].n, &c->tally);
  return NULL;
}

int wl_thread_churn(void) {
  long rounds = bench_scaled(300);
  churner_t *c = aligned_alloc(64, sizeof(churner_t) * THREADS);
  if (c == NULL)
    bench_oom("aligned_alloc", sizeof(churner_t) * THREADS);
  memset(c, 0, sizeof(churner_t) * THREADS);
  double t0 = bench_now();
  for (long round = 0; round < rounds; round++) {
    pthread_t tid[THREADS];
    for (int i = 0; i < THREADS; i++) {
      c[i].seed = (uint64_t)round * THREADS + (uint64_t)i;
      if (pthread_create(&tid[i], NULL, churner, &c[i]) != 0) {
        fprintf(stderr, "suite: thread-churn: pthread_create failed\n");
        return 1;
      }
    }
    for (int i = 0; i < THREADS; i++)
      pthread_join(tid[i], NULL);
  }
  double elapsed = bench_now() - t0;
  tally_t total = {0};
  for (int i = 0; i < THREADS; i++)
    bench_add(&total, &c[i].tally);
  while (pool_n > 0) {
    pool_n--;
    bench_free(pool[pool_n].p, pool[pool_n].n, &total);
  }
  free(c);
  char extra[64];
  snprintf(extra, sizeof extra, " threads=%ld", rounds * THREADS);
  return bench_report("thread-churn", elapsed, &total, extra);
}
