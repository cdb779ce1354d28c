/* tst-early-init-mod: a shared object for tst-early-init, built with
   -shared -fPIC.  Its constructor allocates as soon as dlopen maps it;
   its destructor frees what is left.  */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MOD_BLOCK = 3000, MOD_BIG = 200000 };

static unsigned char *mod_block;
static unsigned char *mod_big;
static int mod_ctor_ok;

__attribute__ ((constructor)) static void
mod_init (void)
{
  mod_block = malloc (MOD_BLOCK);
  mod_big = calloc (1, MOD_BIG);
  unsigned char *grow = malloc (10);
  if (grow != NULL)
    {
      memcpy (grow, "early-mod", 10);
      unsigned char *g = realloc (grow, 50000);
      if (g != NULL && memcmp (g, "early-mod", 10) == 0)
        mod_ctor_ok = 1;
      free (g != NULL ? g : grow);
    }
  if (mod_block == NULL || mod_big == NULL)
    mod_ctor_ok = 0;
  else
    {
      for (size_t i = 0; i < MOD_BLOCK; i++)
        mod_block[i] = (unsigned char) (i * 7 + 3);
      mod_big[MOD_BIG - 1] = 0x5a;
    }
}

__attribute__ ((destructor)) static void
mod_fini (void)
{
  free (mod_block);
  free (mod_big);
  mod_block = NULL;
  mod_big = NULL;
}

/* 1 if the constructor's allocations worked and still hold their
   contents; the block's address in *BLOCK.  */
int
tst_early_init_mod_check (void **block)
{
  *block = mod_block;
  if (!mod_ctor_ok || mod_block == NULL || mod_big == NULL)
    return 0;
  for (size_t i = 0; i < MOD_BLOCK; i++)
    if (mod_block[i] != (unsigned char) (i * 7 + 3))
      return 0;
  for (size_t i = 0; i < MOD_BIG - 1; i++)
    if (mod_big[i] != 0)
      return 0;
  return mod_big[MOD_BIG - 1] == 0x5a;
}
