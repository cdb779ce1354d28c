/* large: blocks of 0.5-64 MiB allocated and freed over and over, where the
   cost of mmap/munmap, page faults on fresh memory and the trimming policy
   show.

   A working set of four slots; each step frees a random slot and mallocs a
   log-uniform size between 512 KiB and 64 MiB into it. Like a program that
   fills part of a big buffer, each block gets one byte written per page in
   its first 256 KiB, then one per 64 KiB, and its last byte.

   Checks: the written bytes are checked before the free. */
#include "bench.h"

enum { SLOTS = 4, PAGE = 4096, DENSE = 256 * 1024, SPARSE = 64 * 1024 };

static size_t next_touched(size_t off) {
  return off < DENSE ? off + PAGE : off + SPARSE;
}

static unsigned char byte_for(size_t off, size_t n) {
  return (unsigned char)((off >> 12) ^ n ^ (n >> 16));
}

static void touch(unsigned char *p, size_t n) {
  for (size_t off = 0; off < n; off = next_touched(off))
    p[off] = byte_for(off, n);
  p[n - 1] = tag_of(n);
}

static int touched_intact(const unsigned char *p, size_t n) {
  for (size_t off = 0; off < n; off = next_touched(off))
    if (p[off] != byte_for(off, n))
      return 0;
  return p[n - 1] == tag_of(n);
}

int wl_large(void) {
  long steps = bench_scaled(2000);
  rng_t r;
  rng_seed(&r, 404);
  tally_t t = {0};
  unsigned char *slot[SLOTS] = {0};
  size_t size[SLOTS] = {0};
  double t0 = bench_now();
  for (long s = 0; s < steps + SLOTS; s++) {
    unsigned k = s < SLOTS ? (unsigned)s : (unsigned)(rnd(&r) % SLOTS);
    if (slot[k] != NULL) {
      if (!touched_intact(slot[k], size[k]))
        t.bad++;
      free(slot[k]);
      t.frees++;
    }
    size[k] = rnd_log_range(&r, 512 * 1024, (size_t)64 << 20);
    slot[k] = malloc(size[k]);
    if (slot[k] == NULL)
      bench_oom("malloc", size[k]);
    t.allocs++;
    touch(slot[k], size[k]);
  }
  for (unsigned k = 0; k < SLOTS; k++) {
    if (!touched_intact(slot[k], size[k]))
      t.bad++;
    free(slot[k]);
    t.frees++;
  }
  return bench_report("large", bench_now() - t0, &t, "");
}
