// C++: see abi-signatures.h.  Our header first, glibc's after it.
#include "ptmalloc.h"
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <type_traits>
#include "abi-signatures.h"

// C++ sees glibc's __THROW as noexcept: check the exact function types
// (of the functions without attributes, which is_same would ignore).
static_assert (std::is_same<decltype (free_sized),
                            void (void *, size_t) noexcept>::value,
               "free_sized");
static_assert (std::is_same<decltype (mallinfo2),
                            struct mallinfo2 () noexcept>::value,
               "mallinfo2");

int
main ()
{
  SIG_POINTERS
}
