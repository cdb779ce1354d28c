#!/usr/bin/env python3
"""Classic glibc heap techniques, step by step, on a private glibc-2.36 heap.

Each technique follows the shape of its how2heap write-up for glibc 2.36
(safe-linking on, tcache in front): the script sets the heap up, corrupts it
the way a bug would, prints the bins and the chunks between steps, and shows
the result (malloc returning the attacker's address, a pointer rewritten,
two live chunks that overlap). The last part shows glibc's checks firing
where glibc 2.36 stops the same attempt.

    python examples/techniques.py            # all of them
    python examples/techniques.py fastbin    # the ones whose name contains "fastbin"
"""

import sys

from ptmalloc_rs import Heap, HeapAbort, bins_text, protect_ptr, vis


def step(text):
    print(f"\n--- {text}")


def show_bins(heap):
    print(bins_text(heap), end="")


def show_chunks(heap, start, count):
    print(vis(heap, start, count), end="")


def verdict(ok, text):
    print(f"\n==> {'SUCCESS' if ok else 'FAILED'}: {text}")
    return ok


def tcache_poisoning():
    """Overwrite a freed tcache chunk's next pointer: malloc returns any aligned address."""
    heap = Heap()
    victim = heap.malloc(0x100)  # stands for a target the attacker wants (a struct, a GOT...)
    target = victim + 0x40
    a = heap.malloc(0x18)
    b = heap.malloc(0x18)
    step(f"target is {target:#x}; free a={a:#x} then b={b:#x}: tcache 0x20 holds b -> a")
    heap.free(a)
    heap.free(b)
    show_bins(heap)
    step("a use-after-free write into b: next = protect_ptr(&b->next, target) (safe-linking)")
    heap.write_word(b, protect_ptr(b, target))
    show_bins(heap)
    show_chunks(heap, b - 0x10, 2)
    first = heap.malloc(0x18)
    second = heap.malloc(0x18)
    step(f"malloc(0x18) = {first:#x}, malloc(0x18) = {second:#x}")
    return verdict(second == target, f"malloc returned the target address {target:#x}")


def fastbin_dup():
    """Free a chunk twice with another in between: the fastbin hands it out twice."""
    heap = Heap()
    fillers = [heap.malloc(8) for _ in range(7)]
    step("fill the 0x20 tcache with 7 frees, so later frees go to the fastbin")
    for p in fillers:
        heap.free(p)
    a, b, c = heap.calloc(1, 8), heap.calloc(1, 8), heap.calloc(1, 8)
    step(f"calloc x3 (calloc skips the tcache): a={a:#x} b={b:#x} c={c:#x}; free a, b, a")
    heap.free(a)
    heap.free(b)
    heap.free(a)  # only the bin's top is compared with the chunk freed: a != b passes
    show_bins(heap)
    x, y, z = heap.calloc(1, 8), heap.calloc(1, 8), heap.calloc(1, 8)
    step(f"calloc x3 again: {x:#x} {y:#x} {z:#x}")
    return verdict(x == z == a, f"the same chunk {a:#x} was returned twice")


def house_of_spirit():
    """Free a fake chunk forged in memory we control; malloc then returns it."""
    heap = Heap()
    fillers = [heap.malloc(0x38) for _ in range(7)]
    for p in fillers:
        heap.free(p)
    stack = heap.malloc(0x30000)  # mmapped: a writable region outside the heap, standing for a stack
    fake = stack + 0x100  # the fake chunk header (16-aligned)
    step(f"forge a 0x40 chunk at {fake:#x}, and a sane size for the chunk after it")
    heap.write_word(fake + 8, 0x40)  # size: no flags, main arena
    heap.write_word(fake + 0x40 + 8, 0x1234)  # next size: > 16 and < system_mem
    print(
        f"fake chunk: prev_size {heap.read_word(fake):#x}, size {heap.read_word(fake + 8):#x}; "
        f"the next chunk's size {heap.read_word(fake + 0x48):#x}"
    )
    step(f"free({fake + 0x10:#x}): the tcache for 0x40 is full, so it goes to the fastbin")
    where = heap.free(fake + 0x10)
    print(f"free -> {where.where} {where.bin}")
    show_bins(heap)
    got = heap.calloc(1, 0x30)
    step(f"calloc(1, 0x30) = {got:#x}")
    return verdict(got == fake + 0x10, "malloc returned the fake chunk inside our region")


def unsafe_unlink():
    """Forge a free chunk inside chunk0 and free chunk1: unlink rewrites the global pointer."""
    heap = Heap()
    globals_area = heap.malloc(0x40)  # stands for .bss
    global_ptr = globals_area + 0x20  # "chunk0_ptr", a global holding chunk0's user pointer
    chunk0 = heap.malloc(0x420)  # 0x430 chunks: above the tcache, so free consolidates
    chunk1 = heap.malloc(0x420)
    heap.write_word(global_ptr, chunk0)
    step(f"&chunk0_ptr = {global_ptr:#x}, chunk0 = {chunk0:#x}, chunk1 = {chunk1:#x}")
    # The fake chunk at chunk0's user data: size 0x420, fd/bk around the global so fd->bk == bk->fd == fake.
    heap.write_word(chunk0 + 8, 0x421)
    heap.write_word(chunk0 + 16, global_ptr - 24)
    heap.write_word(chunk0 + 24, global_ptr - 16)
    # An overflow from chunk0 into chunk1's header: prev_size = 0x420, PREV_INUSE cleared.
    heap.write_word(chunk1 - 16, 0x420)
    heap.write_word(chunk1 - 8, heap.read_word(chunk1 - 8) & ~1)
    show_chunks(heap, chunk0 - 0x10, 1)
    print(f"chunk1 header: prev_size {heap.read_word(chunk1 - 16):#x}, size {heap.read_word(chunk1 - 8):#x}")
    step("free(chunk1): backward consolidation unlinks the fake chunk")
    where = heap.free(chunk1)
    print(f"free -> {where.where}, merged {where.merged}")
    rewritten = heap.read_word(global_ptr)
    print(f"chunk0_ptr is now {rewritten:#x} (&chunk0_ptr - 0x18 = {global_ptr - 24:#x})")
    secret = heap.malloc(0x18)
    heap.write_word(rewritten + 24, secret)  # chunk0_ptr[3] = secret: chunk0_ptr now points at secret
    heap.write_word(heap.read_word(global_ptr), 0x4141414141414141)  # chunk0_ptr[0] = ...
    step(f"chunk0_ptr[3] = {secret:#x}; chunk0_ptr[0] = 0x4141414141414141")
    print(f"*secret = {heap.read_word(secret):#x}")
    return verdict(
        rewritten == global_ptr - 24 and heap.read_word(secret) == 0x4141414141414141,
        "the global pointer was rewritten and then used to write anywhere",
    )


def overlapping_chunks():
    """Grow a chunk's size over its neighbour: the freed big chunk comes back overlapping it."""
    heap = Heap()
    p1 = heap.malloc(0x80 - 8)
    p2 = heap.malloc(0x500 - 8)
    p3 = heap.malloc(0x80 - 8)
    guard = heap.malloc(0x18)  # keeps p2 away from the top chunk
    heap.write(p3, b"p3 data!" * 4)
    step(f"p1={p1:#x} p2={p2:#x} p3={p3:#x}; an overflow out of p1 sets p2's size to 0x581 (covers p3)")
    heap.write_word(p2 - 8, 0x581)
    show_chunks(heap, p1 - 0x10, 4)
    step("free(p2): the chunk of 0x580 goes to the unsorted bin")
    where = heap.free(p2)
    print(f"free -> {where.where}")
    show_bins(heap)
    p4 = heap.malloc(0x580 - 8)
    step(f"malloc(0x578) = {p4:#x}; write through p4 at the offset of p3")
    heap.write(p4 + (p3 - p2), b"OVERWRITTEN BY P4")
    print(f"p3 now reads {heap.read(p3, 17)!r}")
    del guard
    return verdict(p4 == p2 and p4 < p3 < p4 + 0x578, f"p4 [{p4:#x}, {p4 + 0x578:#x}) overlaps live p3 {p3:#x}")


def glibc_checks():
    """Where glibc 2.36 aborts, the heap raises HeapAbort with glibc's message."""
    ok = True
    heap = Heap()
    p = heap.malloc(0x18)
    heap.free(p)
    step("free the same tcache chunk twice")
    try:
        heap.free(p)
        ok = False
    except HeapAbort as abort:
        print(f"HeapAbort: {abort.message}")
        ok &= abort.message == "free(): double free detected in tcache 2"
    heap = Heap()
    fillers = [heap.malloc(8) for _ in range(7)]
    for f in fillers:
        heap.free(f)
    a = heap.calloc(1, 8)
    heap.calloc(1, 8)
    heap.free(a)
    step("fastbin dup without the chunk in between: free a, a")
    try:
        heap.free(a)
        ok = False
    except HeapAbort as abort:
        print(f"HeapAbort: {abort.message}")
        ok &= abort.message == "double free or corruption (fasttop)"
    heap = Heap()
    a, b = heap.malloc(0x18), heap.malloc(0x18)
    heap.free(a)
    heap.free(b)
    heap.write_word(b, protect_ptr(b, a + 8))  # a misaligned target
    heap.malloc(0x18)
    step("tcache poisoning with a misaligned target")
    try:
        heap.malloc(0x18)
        ok = False
    except HeapAbort as abort:
        print(f"HeapAbort: {abort.message}")
        ok &= abort.message == "malloc(): unaligned tcache chunk detected"
    return verdict(ok, "each attempt stopped with glibc's own message")


TECHNIQUES = [tcache_poisoning, fastbin_dup, house_of_spirit, unsafe_unlink, overlapping_chunks, glibc_checks]


def main(argv):
    wanted = [t for t in TECHNIQUES if not argv[1:] or any(a in t.__name__ for a in argv[1:])]
    results = {}
    for technique in wanted:
        print(f"\n{'=' * 72}\n{technique.__name__}: {technique.__doc__}\n{'=' * 72}")
        results[technique.__name__] = technique()
    print(f"\n{len(results)} techniques on Heap() (profile {Heap().profile}):")
    for name, ok in results.items():
        print(f"  {name:20s} {'ok' if ok else 'FAILED'}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
