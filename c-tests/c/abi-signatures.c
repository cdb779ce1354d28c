/* C: see abi-signatures.h.  glibc's headers first, ours last.  */
#define _GNU_SOURCE 1
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include "ptmalloc.h"
#include "abi-signatures.h"

int
main (void)
{
  SIG_POINTERS
}
