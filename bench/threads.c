/* Thread-scaling malloc benchmark: three multi-threaded workloads, one per
   run, under whatever malloc the process has (nothing allocator-specific; use
   LD_PRELOAD to pick one).

     threads WORKLOAD T [N]

   WORKLOAD  prodcons | larson | private | idle
   T         thread count (prodcons runs T producers and T consumers)
   N         total work, the same whatever T is (objects for prodcons, steps
             for larson and private); split evenly between the threads, so
             times for different T are comparable. Defaults below.

   prodcons  T producers malloc objects of 16..512 bytes in batches and pass
             them through single-producer/single-consumer rings (one ring per
             producer/consumer pair, no lock) to T consumers that free them:
             every object, and the batch that carries it, is freed by another
             thread than the one that allocated it.
   larson    each thread owns an array of slots; a step frees a random slot
             and mallocs a random size (16..1024, one in 32 up to 8 KiB) into
             it. Every HANDOFF steps a thread puts its array in a shared pool
             and takes the one another thread left there, whose objects it
             then frees as it goes (a short mutex per handoff, not per step).
   private   each thread churns its own working set of 1000 objects of
             8..2048 bytes (free a random slot, malloc a random size into it);
             nothing is shared.
   idle      the fixed cost, for the peak RSS tables: T threads each malloc
             one 64-byte block and free it (so each has what its allocator
             gives a thread: an arena, a cache), then exit. N is ignored.

   Every block gets its first and last byte written, and both are checked
   before it is freed. Mallocs and frees are counted per thread; at the end
   the totals must match (every block allocated was freed) or the program
   exits 1. Time is CLOCK_MONOTONIC from the moment every thread is ready
   (set-up done) until the last one has been joined. Output, one line:

     WORKLOAD threads=T seconds=S ops=MALLOCS+FREES
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 256

/* Defaults for N, chosen for roughly 0.3-1.5 s under glibc on 2 cores. */
#define PRODCONS_N 6000000L
#define LARSON_N 16000000L
#define PRIVATE_N 12000000L

/* ---------------------------------------------------------------- helpers */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Spin a little, then give the CPU away: there may be more threads than
   cores (T = 8 prodcons is 16 threads on this 2-core machine). */
static inline void backoff(unsigned *spins) {
  if (++*spins < 32)
    cpu_relax();
  else
    sched_yield();
}

typedef struct {
  uint64_t s;
} rng_t;

static uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed) {
  r->s = splitmix(seed) | 1;
}

static inline uint64_t rnd(rng_t *r) { /* xorshift64* */
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* Per-thread counters, one cache line each. */
typedef struct {
  alignas(64) long allocs;
  long frees;
  long bad; /* blocks whose marker bytes were not what was written */
} counters_t;

static inline unsigned char tag_of(size_t n) {
  return (unsigned char)((n * 131u) ^ 0xa5u);
}

static inline void *xmalloc(size_t n, counters_t *c) {
  unsigned char *p = malloc(n);
  if (p == NULL) {
    fprintf(stderr, "threads: malloc(%zu) returned NULL\n", n);
    abort();
  }
  p[0] = (unsigned char)n;
  p[n - 1] = tag_of(n);
  c->allocs++;
  return p;
}

static inline void xfree(void *ptr, size_t n, counters_t *c) {
  unsigned char *p = ptr;
  if (p[0] != (unsigned char)n || p[n - 1] != tag_of(n))
    c->bad++;
  free(p);
  c->frees++;
}

static void *xaligned(size_t align, size_t size) {
  size = (size + align - 1) / align * align;
  void *p = aligned_alloc(align, size);
  if (p == NULL) {
    fprintf(stderr, "threads: aligned_alloc(%zu, %zu) failed\n", align, size);
    exit(1);
  }
  memset(p, 0, size);
  return p;
}

static pthread_barrier_t start_barrier;
static counters_t *counters; /* one per worker thread */

/* --------------------------------------------------------------- prodcons */

enum { BATCH = 32, RING = 32 };

/* The guards take the marker bytes xmalloc writes at either end. */
typedef struct {
  uint64_t guard_lo;
  uint32_t n;
  uint32_t size[BATCH];
  void *obj[BATCH];
  uint64_t guard_hi;
} batch_t;

/* Single producer, single consumer. A NULL entry is the producer's "done". */
typedef struct {
  alignas(64) _Atomic size_t head; /* advanced by the consumer */
  alignas(64) _Atomic size_t tail; /* advanced by the producer */
  alignas(64) batch_t *slot[RING];
} ring_t;

static int pc_threads;
static long pc_per_producer;
static ring_t *rings; /* rings[p * T + c]: producer p to consumer c */

static int ring_push(ring_t *r, batch_t *b) {
  size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
  if (t - h == RING)
    return 0;
  r->slot[t % RING] = b;
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
  return 1;
}

static int ring_pop(ring_t *r, batch_t **b) {
  size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
  if (h == t)
    return 0;
  *b = r->slot[h % RING];
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
  return 1;
}

static size_t pc_size(rng_t *r) {
  uint64_t x = rnd(r);
  /* three in four small (16..128), the rest 16..512 */
  return (x & 3) ? 16 + (size_t)((x >> 8) % 113) : 16 + (size_t)((x >> 8) % 497);
}

/* Hand b to consumer *next (round robin); a full ring sends it to the next
   consumer instead, and only when every ring is full does the producer wait. */
static void pc_send(int p, int *next, batch_t *b) {
  int T = pc_threads;
  unsigned spins = 0;
  for (;;) {
    for (int k = 0; k < T; k++) {
      int c = (*next + k) % T;
      if (ring_push(&rings[p * T + c], b)) {
        *next = (c + 1) % T;
        return;
      }
    }
    backoff(&spins);
  }
}

static void *producer(void *arg) {
  int p = (int)(intptr_t)arg;
  int T = pc_threads;
  counters_t *c = &counters[p];
  rng_t r;
  rng_seed(&r, 1000 + (uint64_t)p);
  int next = p % T;
  pthread_barrier_wait(&start_barrier);

  long left = pc_per_producer;
  while (left > 0) {
    batch_t *b = xmalloc(sizeof *b, c);
    b->n = left < BATCH ? (uint32_t)left : BATCH;
    for (uint32_t i = 0; i < b->n; i++) {
      size_t n = pc_size(&r);
      b->size[i] = (uint32_t)n;
      b->obj[i] = xmalloc(n, c);
    }
    left -= b->n;
    pc_send(p, &next, b);
  }
  /* "done" to every consumer; rings are FIFO so it arrives last */
  for (int k = 0; k < T; k++) {
    unsigned spins = 0;
    while (!ring_push(&rings[p * T + k], NULL))
      backoff(&spins);
  }
  return NULL;
}

static void *consumer(void *arg) {
  int cidx = (int)(intptr_t)arg;
  int T = pc_threads;
  counters_t *c = &counters[T + cidx];
  char done[MAX_THREADS] = {0};
  int ndone = 0;
  pthread_barrier_wait(&start_barrier);

  unsigned spins = 0;
  while (ndone < T) {
    int got = 0;
    for (int p = 0; p < T; p++) {
      if (done[p])
        continue;
      batch_t *b;
      /* drain a few batches from this producer, then look at the next */
      for (int k = 0; k < 4 && ring_pop(&rings[p * T + cidx], &b); k++) {
        got = 1;
        if (b == NULL) {
          done[p] = 1;
          ndone++;
          break;
        }
        for (uint32_t i = 0; i < b->n; i++)
          xfree(b->obj[i], b->size[i], c);
        xfree(b, sizeof *b, c);
      }
    }
    if (got)
      spins = 0;
    else
      backoff(&spins);
  }
  return NULL;
}

/* ----------------------------------------------------------------- larson */

enum { LARSON_SLOTS = 1024, LARSON_HANDOFF = 4096 };

typedef struct {
  void *p[LARSON_SLOTS];
  uint32_t n[LARSON_SLOTS];
} slots_t;

static long ls_per_thread;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static slots_t **pool; /* FIFO of arrays waiting for a new owner */
static size_t pool_head, pool_tail, pool_cap;
static slots_t *spare; /* the extra array the pool starts with (filled by thread 0) */

static size_t larson_size(rng_t *r) {
  uint64_t x = rnd(r);
  if ((x & 31) == 0)
    return 1025 + (size_t)((x >> 8) % (8192 - 1024));
  return 16 + (size_t)((x >> 8) % (1024 - 16 + 1));
}

static void fill(slots_t *s, rng_t *r, counters_t *c, size_t (*size)(rng_t *), int count) {
  for (int i = 0; i < count; i++) {
    s->n[i] = (uint32_t)size(r);
    s->p[i] = xmalloc(s->n[i], c);
  }
}

static void drain(slots_t *s, counters_t *c, int count) {
  for (int i = 0; i < count; i++)
    xfree(s->p[i], s->n[i], c);
}

static slots_t *handoff(slots_t *mine) {
  pthread_mutex_lock(&pool_lock);
  pool[pool_tail++ % pool_cap] = mine;
  slots_t *other = pool[pool_head++ % pool_cap];
  pthread_mutex_unlock(&pool_lock);
  return other;
}

static void *larson_worker(void *arg) {
  int id = (int)(intptr_t)arg;
  counters_t *c = &counters[id];
  rng_t r;
  rng_seed(&r, 2000 + (uint64_t)id);
  slots_t *s = xaligned(64, sizeof *s);
  fill(s, &r, c, larson_size, LARSON_SLOTS);
  if (id == 0)
    fill(spare, &r, c, larson_size, LARSON_SLOTS);
  pthread_barrier_wait(&start_barrier);

  for (long step = 1; step <= ls_per_thread; step++) {
    unsigned k = (unsigned)(rnd(&r) % LARSON_SLOTS);
    xfree(s->p[k], s->n[k], c);
    s->n[k] = (uint32_t)larson_size(&r);
    s->p[k] = xmalloc(s->n[k], c);
    if (step % LARSON_HANDOFF == 0)
      s = handoff(s);
  }
  drain(s, c, LARSON_SLOTS);
  free(s);
  return NULL;
}

/* ---------------------------------------------------------------- private */

enum { PRIVATE_SLOTS = 1000 };

static long pv_per_thread;

static size_t private_size(rng_t *r) {
  return 8 + (size_t)(rnd(r) % (2048 - 8 + 1));
}

static void *private_worker(void *arg) {
  int id = (int)(intptr_t)arg;
  counters_t *c = &counters[id];
  rng_t r;
  rng_seed(&r, 3000 + (uint64_t)id);
  slots_t *s = xaligned(64, sizeof *s);
  fill(s, &r, c, private_size, PRIVATE_SLOTS);
  pthread_barrier_wait(&start_barrier);

  for (long step = 0; step < pv_per_thread; step++) {
    unsigned k = (unsigned)(rnd(&r) % PRIVATE_SLOTS);
    xfree(s->p[k], s->n[k], c);
    s->n[k] = (uint32_t)private_size(&r);
    s->p[k] = xmalloc(s->n[k], c);
  }
  drain(s, c, PRIVATE_SLOTS);
  free(s);
  return NULL;
}

/* ------------------------------------------------------------------- idle */

static void *idle_worker(void *arg) {
  counters_t *c = &counters[(intptr_t)arg];
  pthread_barrier_wait(&start_barrier);
  xfree(xmalloc(64, c), 64, c);
  return NULL;
}

/* ------------------------------------------------------------------- main */

static void usage(void) {
  fprintf(stderr, "usage: threads prodcons|larson|private|idle THREADS [TOTAL_WORK]\n"
                  "  defaults: prodcons %ld objects, larson %ld steps, private %ld steps\n",
          PRODCONS_N, LARSON_N, PRIVATE_N);
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4)
    usage();
  const char *w = argv[1];
  int T = atoi(argv[2]);
  if (T < 1 || T > MAX_THREADS)
    usage();
  long n = argc == 4 ? atol(argv[3]) : 0;
  if (argc == 4 && n < 1)
    usage();

  void *(*fn)(void *) = NULL;
  int workers = T;
  if (strcmp(w, "prodcons") == 0) {
    if (n == 0)
      n = PRODCONS_N;
    pc_threads = T;
    pc_per_producer = n / T;
    rings = xaligned(64, sizeof(ring_t) * (size_t)T * (size_t)T);
    workers = 2 * T;
  } else if (strcmp(w, "larson") == 0) {
    if (n == 0)
      n = LARSON_N;
    ls_per_thread = n / T;
    pool_cap = (size_t)T + 2;
    pool = xaligned(64, sizeof *pool * pool_cap);
    spare = xaligned(64, sizeof *spare);
    pool[pool_tail++] = spare;
    fn = larson_worker;
  } else if (strcmp(w, "private") == 0) {
    if (n == 0)
      n = PRIVATE_N;
    pv_per_thread = n / T;
    fn = private_worker;
  } else if (strcmp(w, "idle") == 0) {
    fn = idle_worker;
  } else {
    usage();
  }

  counters = xaligned(64, sizeof *counters * (size_t)workers);
  pthread_t tid[2 * MAX_THREADS];
  pthread_barrier_init(&start_barrier, NULL, (unsigned)workers + 1);
  for (int i = 0; i < workers; i++) {
    void *(*f)(void *) = fn;
    intptr_t a = i;
    if (f == NULL) { /* prodcons: producers 0..T-1, consumers T..2T-1 */
      f = i < T ? producer : consumer;
      a = i < T ? i : i - T;
    }
    int e = pthread_create(&tid[i], NULL, f, (void *)a);
    if (e != 0) {
      fprintf(stderr, "threads: pthread_create: %s\n", strerror(e));
      return 1;
    }
  }
  pthread_barrier_wait(&start_barrier);
  double t0 = now();
  for (int i = 0; i < workers; i++)
    pthread_join(tid[i], NULL);
  double elapsed = now() - t0;

  long allocs = 0, frees = 0, bad = 0;
  if (fn == larson_worker) {
    /* one array is always waiting in the pool (the spare, or the last one
       handed off): empty it, after the clock has stopped */
    counters_t mc = {0};
    while (pool_head != pool_tail) {
      slots_t *s = pool[pool_head++ % pool_cap];
      drain(s, &mc, LARSON_SLOTS);
      free(s);
    }
    allocs += mc.allocs;
    frees += mc.frees;
    bad += mc.bad;
  }
  for (int i = 0; i < workers; i++) {
    allocs += counters[i].allocs;
    frees += counters[i].frees;
    bad += counters[i].bad;
  }
  int status = 0;
  if (allocs != frees) {
    fprintf(stderr, "threads: %s T=%d: %ld mallocs but %ld frees\n", w, T, allocs, frees);
    status = 1;
  }
  if (bad != 0) {
    fprintf(stderr, "threads: %s T=%d: %ld blocks had their marker bytes changed\n", w, T, bad);
    status = 1;
  }
  printf("%s threads=%d seconds=%.6f ops=%ld\n", w, T, elapsed, allocs + frees);
  free(counters);
  free(rings);
  free(pool);
  pthread_barrier_destroy(&start_barrier);
  return status;
}
