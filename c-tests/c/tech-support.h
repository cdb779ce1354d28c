/* Shared helpers for the heap-exploitation technique programs tech-*.c.

   Each program performs one published glibc 2.36 technique from its
   description, in our own code, and judges it by the technique's goal
   (malloc returned the target address, a target word was overwritten, two
   live allocations overlap).  It prints "info:" lines while it works and
   ends in one of three ways:
     exit 0, "technique succeeded: <what was achieved>"
     exit 1, "technique failed: <the goal that was not reached>"
     exit 3, "technique setup failed: <the layout assumption that broke>"
   or it dies on the way: the allocator stopped it (SIGABRT and a message
   on stderr), or a forged pointer was followed (SIGSEGV).

   The programs know every address they use (they are their own victims),
   so no leak is needed; everything else is done as in the attack: only
   through the writes the technique allows (an overflow, a write after
   free, a fake chunk in memory the attacker controls).  */

#ifndef TECH_SUPPORT_H
#define TECH_SUPPORT_H

#include "tst-support.h"

#include <stddef.h>

/* A chunk header: the two words in front of the user pointer.  */
struct tech_chunk
{
  size_t prev_size;
  size_t size;
  void *fd;
  void *bk;
  void *fd_nextsize;
  void *bk_nextsize;
};

/* The chunk whose user pointer is MEM.  */
TST_FN inline struct tech_chunk *
tech_chunk_of (void *mem)
{
  return (struct tech_chunk *) ((char *) tst_opaque_ptr (mem)
                                - 2 * sizeof (size_t));
}

/* Every block the programs write into goes through here: the compiler
   may otherwise drop stores into memory that nothing is seen to read
   afterwards (the allocator reading them is invisible to it).  */
TST_FN inline void *
tech_keep (void *p)
{
  return tst_opaque_ptr (p);
}

/* The user pointer of the chunk at C.  */
TST_FN inline void *
tech_mem_of (void *c)
{
  return (char *) c + 2 * sizeof (size_t);
}

/* glibc 2.32+ safe-linking: a single-linked list pointer stored at POS
   holds PTR xor (POS >> 12).  */
TST_FN inline void *
tech_protect (const void *pos, const void *ptr)
{
  return (void *) (((uintptr_t) pos >> 12) ^ (uintptr_t) ptr);
}

/* Call first: stdout's line buffer is allocated here, before the
   technique starts shaping the heap.  */
TST_FN void
tech_begin (const char *name)
{
  tst_init ();
  tst_info ("technique %s", name);
}

__attribute__ ((noreturn, format (printf, 2, 3))) TST_FN void
tech_result (bool reached, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  printf ("technique %s: %s\n", reached ? "succeeded" : "failed", buf);
  fflush (stdout);
  exit (reached ? 0 : 1);
}

__attribute__ ((noreturn, format (printf, 1, 2))) TST_FN void
tech_setup_failed (const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  printf ("technique setup failed: %s\n", buf);
  fflush (stdout);
  exit (3);
}

/* The technique relies on B's chunk following A's directly.  */
TST_FN void
tech_require_adjacent (const void *a, const void *b, size_t a_chunk)
{
  if ((const char *) b - (const char *) a != (ptrdiff_t) a_chunk)
    tech_setup_failed ("%p and %p are not neighbours (%#zx-byte chunk)", a,
                       b, a_chunk);
}

/* Whether A and B are the same address.  Through volatile integers: the
   compiler knows malloc returns fresh memory, and would fold the
   comparison of its result with any other object's address to false.  */
TST_FN inline bool
tech_same (const void *a, const void *b)
{
  volatile uintptr_t x = (uintptr_t) a, y = (uintptr_t) b;
  return x == y;
}

/* Whether [A, A + AN) and [B, B + BN) share a byte.  */
TST_FN bool
tech_overlap (const void *a, size_t an, const void *b, size_t bn)
{
  volatile uintptr_t x = (uintptr_t) a, y = (uintptr_t) b;
  return x < y + bn && y < x + an;
}

#endif /* TECH_SUPPORT_H */
