/* Small program compiled, linked and run by the gcc workload of run.sh.
 * It churns the heap (strings in a hash table, realloc-grown arrays, qsort,
 * and threads that free blocks allocated by other threads) and prints
 * results that depend only on its inputs, never on addresses or timing. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t xrand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

struct entry { char *key; long count; struct entry *next; };

#define NBUCKET 4093
static struct entry *buckets[NBUCKET];

static unsigned long hash(const char *s) {
    unsigned long h = 5381;
    while (*s) h = h * 33 + (unsigned char)*s++;
    return h;
}

static void add(const char *key) {
    unsigned long b = hash(key) % NBUCKET;
    for (struct entry *e = buckets[b]; e; e = e->next)
        if (strcmp(e->key, key) == 0) { e->count++; return; }
    struct entry *e = malloc(sizeof *e);
    e->key = strdup(key);
    e->count = 1;
    e->next = buckets[b];
    buckets[b] = e;
}

static int cmp_entry(const void *a, const void *b) {
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* ---- cross-thread producer/consumer ---- */
#define QCAP 256
struct queue {
    void *items[QCAP];
    size_t sizes[QCAP];
    int head, tail, count, done;
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
};

static struct queue q = { .mu = PTHREAD_MUTEX_INITIALIZER,
                          .not_empty = PTHREAD_COND_INITIALIZER,
                          .not_full = PTHREAD_COND_INITIALIZER };

static void *producer(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = 1 + (s >> 33) % 3000;
        unsigned char *p = malloc(n);
        memset(p, (int)(n & 0xff), n);
        pthread_mutex_lock(&q.mu);
        while (q.count == QCAP) pthread_cond_wait(&q.not_full, &q.mu);
        q.items[q.tail] = p;
        q.sizes[q.tail] = n;
        q.tail = (q.tail + 1) % QCAP;
        q.count++;
        pthread_cond_signal(&q.not_empty);
        pthread_mutex_unlock(&q.mu);
    }
    return NULL;
}

static uint64_t consumed_bytes, consumed_sum;

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q.mu);
        while (q.count == 0 && !q.done) pthread_cond_wait(&q.not_empty, &q.mu);
        if (q.count == 0 && q.done) { pthread_mutex_unlock(&q.mu); return NULL; }
        unsigned char *p = q.items[q.head];
        size_t n = q.sizes[q.head];
        q.head = (q.head + 1) % QCAP;
        q.count--;
        consumed_bytes += n;
        pthread_cond_signal(&q.not_full);
        pthread_mutex_unlock(&q.mu);
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) sum += p[i];
        p = realloc(p, n * 2);  /* grow a block allocated by another thread */
        free(p);
        pthread_mutex_lock(&q.mu);
        consumed_sum += sum;
        pthread_mutex_unlock(&q.mu);
    }
}

int main(void) {
    /* 1. string hash table */
    char buf[32];
    for (int i = 0; i < 300000; i++) {
        int len = 1 + (int)(xrand() % 3);
        for (int j = 0; j < len; j++) buf[j] = (char)('a' + xrand() % 12);
        buf[len] = 0;
        add(buf);
    }
    size_t n = 0, cap = 1;
    struct entry **all = malloc(cap * sizeof *all);
    for (int b = 0; b < NBUCKET; b++)
        for (struct entry *e = buckets[b]; e; e = e->next) {
            if (n == cap) { cap *= 2; all = realloc(all, cap * sizeof *all); }
            all[n++] = e;
        }
    qsort(all, n, sizeof *all, cmp_entry);
    printf("distinct keys: %zu\n", n);
    for (size_t i = 0; i < 5 && i < n; i++) printf("top %zu: %s %ld\n", i, all[i]->key, all[i]->count);
    for (size_t i = 0; i < n; i++) { free(all[i]->key); free(all[i]); }
    free(all);

    /* 2. many sizes, calloc / realloc ladders */
    uint64_t check = 0;
    void *slots[4096] = {0};
    for (int i = 0; i < 400000; i++) {
        int k = (int)(xrand() % 4096);
        size_t sz = (size_t)(xrand() % (i % 97 == 0 ? 300000 : 700));
        if (slots[k]) {
            check += ((unsigned char *)slots[k])[0];
            if (xrand() & 1) { free(slots[k]); slots[k] = NULL; continue; }
            slots[k] = realloc(slots[k], sz + 1);
        } else {
            slots[k] = calloc(1, sz + 1);
        }
        ((unsigned char *)slots[k])[0] = (unsigned char)(sz & 0xff);
    }
    for (int k = 0; k < 4096; k++) free(slots[k]);
    printf("ladder check: %llu\n", (unsigned long long)check);

    /* 3. threads: blocks freed by a different thread than the allocator */
    pthread_t pt[2], ct[2];
    for (int i = 0; i < 2; i++) pthread_create(&pt[i], NULL, producer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 2; i++) pthread_create(&ct[i], NULL, consumer, NULL);
    for (int i = 0; i < 2; i++) pthread_join(pt[i], NULL);
    pthread_mutex_lock(&q.mu);
    q.done = 1;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
    for (int i = 0; i < 2; i++) pthread_join(ct[i], NULL);
    printf("threads: %llu bytes, sum %llu\n", (unsigned long long)consumed_bytes, (unsigned long long)consumed_sum);
    return 0;
}
