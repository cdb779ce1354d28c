/* Chunk placement: replay a long deterministic trace of malloc, calloc,
   realloc, memalign, posix_memalign and free (sizes below and above the
   tcache, fastbin, small/large bin and mmap boundaries) and print every
   returned pointer as an offset from the first chunk of the heap (mapped
   chunks print "mmap" and their usable size). The harness requires the
   output under this library to be byte-identical to glibc's: same requests,
   same places. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 512

static uint64_t state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

static size_t pick_size(void) {
  switch (rnd() % 10) {
  case 0: case 1: case 2: return rnd() % 129;            /* tcache/fastbin */
  case 3: case 4: return rnd() % 1100;                   /* small, tcache edge */
  case 5: case 6: return 1000 + rnd() % 8000;            /* large bins */
  case 7: return rnd() % 70000;                          /* up to the consolidation threshold */
  case 8: return 100000 + rnd() % 100000;                /* around the mmap threshold */
  default: return rnd() % 600;
  }
}

static uintptr_t base;

static void show(const char *op, int slot, void *p, size_t n) {
  if (p == NULL) {
    printf("%s %d %zu -> NULL\n", op, slot, n);
    return;
  }
  uintptr_t a = (uintptr_t)p;
  size_t usable = malloc_usable_size(p);
  /* Mapped chunks: their address is the kernel's choice, not the allocator's. */
  if (((size_t *)p)[-1] & 2)
    printf("%s %d %zu -> mmap usable %zu\n", op, slot, n, usable);
  else
    printf("%s %d %zu -> +%#lx usable %zu\n", op, slot, n, (unsigned long)(a - base), usable);
}

int main(int argc, char **argv) {
  long steps = argc > 1 ? atol(argv[1]) : 200000;
  static void *slot[SLOTS];
  static size_t size[SLOTS];
  void *first = malloc(1);
  base = (uintptr_t)first & ~(uintptr_t)0xfff; /* the heap starts on a page */
  free(first);
  int failures = 0;
  for (long i = 0; i < steps; i++) {
    int k = (int)(rnd() % SLOTS);
    if (slot[k] != NULL) {
      unsigned char *c = slot[k];
      for (size_t j = 0; j < size[k]; j += 61)
        if (c[j] != (unsigned char)(k + j)) failures++;
      switch (rnd() % 4) {
      case 0: {
        size_t n = pick_size();
        void *q = realloc(slot[k], n);
        show("realloc", k, q, n);
        if (q != NULL || n == 0) {
          slot[k] = q;
          size[k] = size[k] < n ? size[k] : n;
        }
        break;
      }
      default:
        free(slot[k]);
        printf("free %d\n", k);
        slot[k] = NULL;
        size[k] = 0;
      }
    } else {
      size_t n = pick_size();
      void *p;
      switch (rnd() % 8) {
      case 0: p = calloc(1, n); show("calloc", k, p, n); break;
      case 1: p = memalign((size_t)64 << (rnd() % 6), n); show("memalign", k, p, n); break;
      case 2:
        if (posix_memalign(&p, 32, n) != 0) p = NULL;
        show("posix_memalign", k, p, n);
        break;
      default: p = malloc(n); show("malloc", k, p, n); break;
      }
      slot[k] = p;
      size[k] = p ? n : 0;
    }
    if (slot[k] != NULL) {
      unsigned char *c = slot[k];
      for (size_t j = 0; j < size[k]; j += 61) c[j] = (unsigned char)(k + j);
    }
    if (i % 20000 == 19999) printf("trim %d\n", malloc_trim(rnd() % 200000));
  }
  struct mallinfo2 mi = mallinfo2();
  printf("arena %zu ordblks %zu smblks %zu hblks %zu uordblks %zu fordblks %zu keepcost %zu\n", mi.arena,
         mi.ordblks, mi.smblks, mi.hblks, mi.uordblks, mi.fordblks, mi.keepcost);
  /* The statistics, byte for byte: malloc_info's XML and malloc_stats'
     report (stderr, sent to stdout for the comparison). */
  fflush(stdout);
  if (malloc_info(0, stdout) != 0) failures++;
  fflush(stdout);
  int saved = dup(2);
  dup2(1, 2);
  malloc_stats();
  dup2(saved, 2);
  close(saved);
  for (int k = 0; k < SLOTS; k++) free(slot[k]);
  printf("%s: %d content failures\n", failures ? "FAIL" : "ok", failures);
  printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
  return failures != 0;
}
