/* tech-overlapping-chunks: an overflow of block 1 rewrites block 2's size
   so that it also spans block 3; freeing block 2 then puts the enlarged
   chunk into a bin, and a malloc of the enlarged size returns memory
   that covers the live block 3.  Goal: two live allocations overlap.  */

#include "tech-support.h"

int
main (void)
{
  tech_begin ("overlapping chunks");
  char *p1 = tech_keep (malloc (0x78));
  char *p2 = tech_keep (malloc (0x4f8));
  char *p3 = tech_keep (malloc (0x78));
  void *guard = tech_keep (malloc (0x10));
  tech_require_adjacent (p1, p2, 0x80);
  tech_require_adjacent (p2, p3, 0x500);
  memset (p3, 'c', 0x78);

  /* The overflow: p2's size now covers p3 as well.  */
  tech_chunk_of (p2)->size = 0x500 + 0x80 + 1;
  tst_info ("freeing %p with its size set to 0x580", p2);
  free (tst_opaque_ptr (p2));

  char *p4 = tech_keep (malloc (0x578));
  tst_info ("malloc (0x578) returned %p; block 3 is %p", p4, p3);
  bool overlap = tech_overlap (p4, 0x578, p3, 0x78);
  memset (p4, 'x', 0x578);
  bool clobbered = p3[0] == 'x';
  free (guard);
  tech_result (overlap && clobbered,
               "the new block %p overlaps the live block %p (a write to one"
               " changed the other: %s)", p4, p3, clobbered ? "yes" : "no");
}
