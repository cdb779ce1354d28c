/* tech-house-of-spirit: free a fake chunk built on the stack (a size for
   the fastbin, and a sane size for the chunk that follows it, the only
   things glibc checks), then get it back from malloc.  The tcache bin of
   that size is filled first, so the fake chunk takes the fastbin path.
   Goal: calloc returns the stack address.  */

#include "tech-support.h"

int
main (void)
{
  tech_begin ("house of spirit");
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = tech_keep (malloc (0x38));
  for (int i = 0; i < 7; i++)
    free (fill[i]); /* the 0x40 tcache bin is full */

  _Alignas (16) size_t stack[16] = { 0 };
  struct tech_chunk *fake = (struct tech_chunk *) stack;
  fake->size = 0x40;
  struct tech_chunk *after = (struct tech_chunk *) ((char *) fake + 0x40);
  after->size = 0x1234; /* above 2 * SIZE_SZ, below the arena's size */

  tst_info ("freeing the stack chunk %p (size 0x40)", fake);
  free (tst_opaque_ptr (tech_mem_of (fake)));
  void *win = tech_keep (calloc (1, 0x38));
  tst_info ("calloc returned %p", win);
  tech_result (tech_same (win, tech_mem_of (fake)),
               "calloc returned the stack address %p (got %p)",
               tech_mem_of (fake), win);
}
