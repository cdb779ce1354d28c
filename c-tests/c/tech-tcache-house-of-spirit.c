/* tech-tcache-house-of-spirit: free a fake chunk built on the stack; on
   the tcache path glibc checks only its alignment and size class, not
   the chunk after it.  Goal: the next malloc of that size returns the
   stack address.  */

#include "tech-support.h"

int
main (void)
{
  tech_begin ("tcache house of spirit");
  malloc (1); /* set up the tcache before the fake chunk is freed */

  _Alignas (16) size_t stack[8] = { 0 };
  struct tech_chunk *fake = (struct tech_chunk *) stack;
  fake->size = 0x40;

  tst_info ("freeing the stack chunk %p (size 0x40)", fake);
  free (tst_opaque_ptr (tech_mem_of (fake)));
  void *win = tech_keep (malloc (0x38));
  tst_info ("malloc returned %p", win);
  tech_result (tech_same (win, tech_mem_of (fake)),
               "malloc returned the stack address %p (got %p)",
               tech_mem_of (fake), win);
}
