"""Property: random calls and random writes into the heap (headers, links,
anything) give a value or a HeapAbort/SegFault, never a crash of the
interpreter nor any other exception; introspection keeps working on
whatever the heap has become; a failed call leaves the heap as it was."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ptmalloc_rs import HEAP_BASE, Heap, HeapAbort, SegFault

sizes = st.one_of(
    st.integers(0, 0x420),
    st.integers(0x420, 0x4000),
    st.sampled_from([0x20000, 0x30000, -1, 1 << 62]),
)
slot = st.integers(0, 15)
# Words a script would write: sizes with flag bits, pointers into the heap, anything.
words = st.one_of(
    st.integers(0, 0x1000).map(lambda n: n * 16 + (n % 8)),
    st.integers(0, 0x800).map(lambda k: HEAP_BASE + 16 * k),
    st.integers(0, (1 << 64) - 1),
)
op = st.one_of(
    st.tuples(st.just("malloc"), slot, sizes),
    st.tuples(st.just("malloc"), slot, st.integers(0, 0x100)),
    st.tuples(st.just("free"), slot),
    st.tuples(st.just("calloc"), slot, st.integers(0, 8), sizes),
    st.tuples(st.just("realloc"), slot, sizes),
    st.tuples(st.just("memalign"), slot, st.sampled_from([8, 16, 64, 4096, 3, 1 << 20]), sizes),
    st.tuples(st.just("free"), slot),
    st.tuples(st.just("free_again"), slot),
    st.tuples(st.just("free_wild"), slot, st.one_of(st.integers(-4, 4).map(lambda k: 16 * k), st.integers(-64, 64))),
    # A write near a block: into its header, its links, its neighbour.
    st.tuples(st.just("poke"), slot, st.integers(-16, 48), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("poke_word"), slot, st.integers(-4, 8), words),
    st.tuples(st.just("poke_heap"), st.integers(0, 0x800), words),
    st.tuples(st.just("thread"), st.integers(1, 3), sizes),
    st.tuples(st.just("try_free"), slot),
    st.tuples(st.just("try_malloc"), sizes),
    st.tuples(st.just("look")),
)


def step(h, slots, o):
    name = o[0]
    ptr = slots.get(o[1], 0) if len(o) > 1 and isinstance(o[1], int) else 0
    if name == "malloc":
        slots[o[1]] = h.malloc(o[2])
    elif name == "calloc":
        slots[o[1]] = h.calloc(o[2], o[3])
    elif name == "realloc":
        slots[o[1]] = h.realloc(ptr, o[2])
    elif name == "memalign":
        slots[o[1]] = h.memalign(o[2], o[3])
    elif name == "free":
        h.free(ptr)
        slots.pop(o[1], None)
    elif name == "free_again":
        h.free(ptr)  # the slot keeps its pointer: a double free next time
    elif name == "free_wild":
        h.free((ptr or HEAP_BASE + 0x2A0) + o[2])
    elif name == "poke":
        h.write((ptr or HEAP_BASE) + o[2], o[3])
    elif name == "poke_word":
        h.write_word((ptr or HEAP_BASE) + 8 * o[2], o[3])
    elif name == "poke_heap":
        h.write_word(HEAP_BASE + 8 * o[1], o[2])
    elif name == "thread":
        h.free(h.malloc(o[2], tid=o[1]), tid=o[1])
    elif name == "try_free":
        before = h.snapshot()
        r = h.try_free(ptr)
        assert isinstance(r.ok, bool) and (r.ok or r.abort)
        assert not h.diff(before)
    elif name == "try_malloc":
        h.try_malloc(o[1])
    elif name == "look":
        h.chunks()
        h.bins()
        h.tcache()
        h.arenas()
        h.mmapped()
        h.check()
        h.locate(ptr)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(op, max_size=60), st.sampled_from(["glibc-2.36", "hardened"]))
def test_random_calls_and_writes_never_crash(ops, profile):
    h = Heap(profile=profile)
    slots = {}
    for o in ops:
        before = h.snapshot()
        try:
            step(h, slots, o)
        except HeapAbort as e:
            assert isinstance(e.message, str) and e.message
            # The failing call was undone: the heap is the state before it.
            assert not h.diff(before, e.snapshot) and not h.diff(e.snapshot)
        except SegFault as e:
            assert isinstance(e.address, int)
    # Whatever the heap became, it can still be looked at and reported on.
    h.chunks()
    h.bins()
    h.check()
    assert isinstance(h.history, list)
    for f in (h.mallinfo2, h.malloc_stats, h.malloc_info):
        try:
            f()
        except (HeapAbort, SegFault):
            pass


def random_op(rng):
    """One op like the strategy's, drawn with a plain seeded generator."""
    s = rng.randrange(16)
    size = rng.choice([rng.randrange(0x420), rng.randrange(0x420, 0x4000), 0x30000])
    word = rng.choice(
        [rng.randrange(0x1000) * 16 + rng.randrange(8), HEAP_BASE + 16 * rng.randrange(0x800), rng.getrandbits(64)]
    )
    return rng.choice(
        [
            ("malloc", s, size),
            ("malloc", s, rng.randrange(0x100)),
            ("calloc", s, rng.randrange(8), size),
            ("realloc", s, size),
            ("memalign", s, rng.choice([16, 64, 4096]), size),
            ("free", s),
            ("free", s),
            ("free_again", s),
            ("free_wild", s, 16 * rng.randrange(-4, 5)),
            ("poke_word", s, rng.randrange(-4, 8), word),
            ("poke_heap", rng.randrange(0x800), word),
            ("thread", rng.randrange(1, 4), size),
            ("try_free", s),
        ]
    )


def test_seeded_corruption_runs_never_crash():
    messages = set()
    for seed in range(20):
        rng = random.Random(seed)
        h = Heap(profile="hardened" if seed % 2 else "glibc-2.36")
        slots = {}
        for _ in range(300):
            try:
                step(h, slots, random_op(rng))
            except HeapAbort as e:
                messages.add(e.message)
            except SegFault:
                pass
        h.check()
        h.bins()
    # The runs reach several of glibc's checks, not just one.
    assert len(messages) >= 8, messages
