"""Introspection: Chunk, Bin, Arena snapshots, full bin walks, corruption
reports, locate, check."""

import time

import pytest
from ptmalloc_rs import HEAP_BASE, Heap, HeapAbort, SegFault, protect_ptr


def test_chunk_fields():
    h = Heap()
    p = h.malloc(100)
    c = h.locate(p)
    assert (c.address, c.mem) == (p - 16, p)
    assert (c.size, c.raw_size, c.flags) == (0x70, 0x71, 1)
    assert c.prev_inuse and not c.is_mmapped and not c.non_main_arena
    assert (c.state, c.bin, c.request, c.usable_size, c.arena) == ("allocated", None, 100, 0x68, 0)
    assert c.end == c.address + 0x70
    assert h.locate(p + 50) == c
    assert h.locate(0x1000) is None
    m = h.locate(h.malloc(300000))
    assert (m.state, m.is_mmapped, m.arena, m.request) == ("mmapped", True, None, 300000)
    assert m.usable_size == m.size - 16
    assert h.mmapped() == [m]


def test_chunks_stay_valid_after_later_calls():
    h = Heap()
    p = h.malloc(24)
    before = h.chunks()
    h.free(p)
    h.write(p, b"\xff" * 16)
    assert [c.state for c in before] == ["allocated", "allocated", "top"]
    assert [c.state for c in h.chunks()] == ["allocated", "tcache", "top"]


def test_chunks_cover_the_heap_in_address_order():
    h = Heap()
    for i in range(50):
        p = h.malloc(16 + 37 * i)
        if i % 3 == 0:
            h.free(p)
    cs = h.chunks()
    assert cs[0].address == HEAP_BASE
    for a, b in zip(cs, cs[1:]):
        assert a.address + a.size == b.address
    assert cs[-1].state == "top" and cs[-1] == h.top()
    assert cs[-1].end == h.regions()[0][1]


def test_bins_are_walked_in_full():
    h = Heap(tcache_count=100)
    ps = [h.malloc(24) for _ in range(40)]
    for p in ps:
        h.free(p)
    t = h.tcache()[0]
    assert (t.kind, t.index, t.name, t.count, len(t)) == ("tcache", 0, "tcache[0]", 40, 40)
    assert (t.min_size, t.max_size) == (32, 32)
    assert [c.mem for c in t] == ps[::-1]
    assert all(c.state == "tcache" and c.bin == "tcache[0]" for c in t.chunks)
    assert t.corruption is None
    # Fastbins beyond any display limit.
    h = Heap(tcache_count=0)
    ps = [h.malloc(24) for _ in range(30)]
    for p in ps:
        h.free(p)
    f = h.bins()[0]
    assert (f.name, f.count, f.corruption) == ("fastbin[0]", 30, None)
    assert [c.mem for c in f.chunks] == ps[::-1]


def test_bin_list_shape_and_ranges():
    h = Heap()
    bins = h.bins()
    assert len(bins) == 10 + 127
    assert [b.name for b in bins[:11]] == [f"fastbin[{i}]" for i in range(10)] + ["unsorted"]
    assert bins[11].name == "small[2]" and (bins[11].min_size, bins[11].max_size) == (32, 32)
    large = [b for b in bins if b.kind == "large"]
    assert large[0].min_size == 0x400
    for a, b in zip(large, large[1:]):
        assert a.max_size + 16 == b.min_size
    assert h.tcache() == []  # no tcache before the first malloc
    h.malloc(1)
    assert len(h.tcache()) == 64


def test_small_and_large_bins():
    h = Heap()
    ps = [h.malloc(n) for n in (0x500, 0x20, 0x600, 0x20, 0x200 - 8, 0x20, 0x200 - 8, 0x20)]
    for p in (ps[0], ps[2], ps[4], ps[6]):
        h.free(p)
    h.malloc(0x1000)  # sorts the unsorted bin
    by_name = {b.name: b for b in h.bins() if b.chunks}
    assert "unsorted" not in by_name
    large = [b for b in by_name.values() if b.kind == "large"]
    assert sorted(c.size for b in large for c in b.chunks) == [0x510, 0x610]
    lb = large[0]
    c = lb.chunks[0]
    assert c.state == "large" and c.fd_nextsize != 0 and c.bk_nextsize != 0
    assert h.check() == []


def test_arenas():
    h = Heap()
    h.malloc(10)
    h.malloc(10, tid=1)
    h.malloc(10, tid=2)
    a = h.arenas()
    assert [x.index for x in a] == [0, 1, 2]
    assert a[0].is_main and not a[1].is_main
    assert a[0].heaps == [(HEAP_BASE, h.regions()[0][1])]
    assert a[1].heaps[0][0] % (64 << 20) == 0
    assert a[1].top.arena == 1 and a[1].system_mem > 0
    assert [len(x.threads) for x in a] == [1, 1, 1]
    assert [c.arena for c in h.chunks(1)] == [1] * len(h.chunks(1))
    assert h.chunks() == sorted(h.chunks(0) + h.chunks(1) + h.chunks(2), key=lambda c: c.address)


def test_corruption_is_reported_not_followed_forever():
    h = Heap(tcache_count=0)
    a, b = h.malloc(24), h.malloc(24)
    h.free(a)
    h.free(b)
    # b -> b: a cycle in the fastbin.
    h.write_word(b, protect_ptr(b, b - 16))
    f = h.bins()[0]
    assert [c.mem for c in f.chunks] == [b]
    assert f.corruption == f"cycle: {b - 16:#x} is on the list twice"
    assert any("cycle" in v for v in h.check())
    # The allocator's own walks over the cycle end too (mallinfo2 counts fastbins).
    t = time.monotonic()
    with pytest.raises(HeapAbort) as e:
        h.mallinfo2()
    assert e.value.message.startswith("ptmalloc_rs: call stopped after")
    assert time.monotonic() - t < 30


def test_check_finds_a_broken_header():
    h = Heap()
    a = h.malloc(0x100)
    b = h.malloc(0x100)
    h.malloc(0x10)
    h.free(b)
    assert h.check() == []
    h.write_word(a + 0x100, 0)  # b's prev_size ...
    h.write_word(a + 0x108, 0x50)  # ... and size: now the walk lands mid-chunk
    problems = h.check()
    assert problems and all(isinstance(p, str) for p in problems)


def test_unsorted_bin_links_checked():
    h = Heap()
    a = h.malloc(0x500)
    h.malloc(0x10)
    h.free(a)
    h.write_word(a + 8, 0x4141414141414140)  # bk of the unsorted chunk
    u = h.bins()[10]
    assert u.name == "unsorted" and u.corruption is not None
    with pytest.raises(SegFault) as e:
        h.malloc(0x100)  # glibc follows bk to bk->fd: outside the mapped memory
    assert e.value.address == 0x4141414141414140 + 16
    unsorted_head = h.arenas()[0].address + 0x60  # bin_at(1), as glibc lays out malloc_state
    assert h.check() == [
        f"arena 0: bin links are not mutual at {a - 16:#x}",
        f"arena 0 unsorted: chunk {a - 16:#x}: bk is 0x4141414141414140, "
        f"the chunk before it is {unsorted_head:#x}",
    ]
