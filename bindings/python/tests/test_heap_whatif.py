"""What-if and history: try_free/try_malloc, snapshot/restore/diff, the event
history with labels; statistics and path counters."""

import pytest
from ptmalloc_rs import COUNTERS, FreeResult, Heap, HeapAbort


def test_try_free_and_try_malloc_leave_the_heap_unchanged():
    h = Heap()
    a = h.malloc(0x40)
    h.malloc(0x40)
    before = h.snapshot()
    r = h.try_free(a)
    assert (r.ok, r.abort, r.path) == (True, None, "tcache")
    assert isinstance(r.result, FreeResult) and r.result.bin == "tcache[3]"
    assert not h.diff(before)
    assert h.locate(a).state == "allocated"
    h.free(a)
    r = h.try_free(a)
    assert (r.ok, r.result, r.abort) == (False, None, "free(): double free detected in tcache 2")
    r = h.try_malloc(0x40)
    assert (r.ok, r.result, r.path) == (True, a, "tcache_hit")
    r = h.try_malloc(0x1000)
    assert r.ok and r.path == "top"
    assert [c.mem for c in h.tcache()[3].chunks] == [a]
    assert len(h.history) == 3  # dry runs are not recorded


def test_snapshot_restore_diff():
    h = Heap()
    a, b = h.malloc(0x100), h.malloc(0x100)
    s0 = h.snapshot()
    h.write(a, b"changed!")
    h.free(b)
    c = h.malloc(0x2000)
    d = h.diff(s0)
    # c was carved from the top: its chunk was the top, the new top is new.
    assert [x.state for x in d.new] == ["top"] and d.new[0].address == c - 16 + 0x2010
    assert d.gone == []
    assert [(m[0], m[1], m[2]) for m in d.moved] == [(b - 16, None, "tcache[15]")]
    changed = {before.address: (before.state, after.state) for before, after in d.changed}
    assert changed[b - 16] == ("allocated", "tcache")
    assert changed[c - 16] == ("top", "allocated")
    runs = d.bytes
    assert (a, bytes(8), b"changed!") in runs
    s1 = h.snapshot()
    h.restore(s0)
    assert not h.diff(s0)
    assert h.read(a, 8) == bytes(8)
    assert h.diff(s0, s1)
    assert h.history[-1].op == "restore"
    # A snapshot can be looked at, and turned into a heap of its own.
    assert [x.state for x in s1.chunks()][:4] == ["allocated", "allocated", "tcache", "allocated"]
    assert s1.read(a, 8) == b"changed!"
    other = s1.heap()
    assert other.locate(c).request == 0x2000 and other.history == []
    assert other.malloc(0x100) == b  # from its tcache, as the original would
    assert s1.check() == []


def test_history_and_labels():
    h = Heap()
    h.label("first block")
    a = h.malloc(24)
    h.write(a, b"xy")
    h.free(a, tid=0)
    b = h.malloc(24, tid=3)
    ev = h.history
    assert [(e.index, e.op, e.args, e.tid) for e in ev] == [
        (0, "malloc", (24,), 0),
        (1, "write", (a, 2), 0),
        (2, "free", (a,), 0),
        (3, "malloc", (24,), 3),
    ]
    assert [e.label for e in ev] == ["first block", None, None, None]
    assert ev[0].result == a and ev[3].result == b
    assert isinstance(ev[2].result, FreeResult) and ev[2].result.where == "tcache"
    with pytest.raises(HeapAbort):
        h.free(a + 8)
    assert h.history[-1].abort == "free(): invalid pointer" and h.history[-1].result is None
    h.clear_history()
    assert h.history == []


def test_statistics_as_glibc_prints_them():
    h = Heap()
    ps = [h.malloc(1000) for _ in range(10)]
    for p in ps[:5]:
        h.free(p)
    mi = h.mallinfo2()
    assert set(mi) == {"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"}
    assert mi["arena"] == 0x21000 and mi["uordblks"] + mi["fordblks"] == mi["arena"]
    text = h.malloc_stats()
    assert text.splitlines()[0] == "Arena 0:"
    assert f"system bytes     = {mi['arena']:>10}" in text
    assert text.splitlines()[-1].startswith("max mmap bytes   =")
    xml = h.malloc_info()
    assert xml.startswith('<malloc version="1">\n<heap nr="0">') and xml.endswith("</malloc>\n")


def test_counters_follow_the_paths():
    h = Heap(tcache_count=0)
    assert list(h.counters()) == COUNTERS
    assert all(v == 0 for v in h.counters().values())

    def delta(f):
        before = h.counters()
        f()
        after = h.counters()
        return {k for k in COUNTERS if after[k] != before[k]}

    a = h.malloc(24)
    h.malloc(24)
    assert delta(lambda: h.free(a)) == {"free_fastbin"}
    assert delta(lambda: h.malloc(24)) == {"fastbin"}
    big = h.malloc(0x500)
    h.malloc(24)
    assert delta(lambda: h.free(big)) == {"free_bins"}
    assert delta(lambda: h.malloc(0x100)) >= {"unsorted_scan", "binmap_search", "split"}
    assert "sbrk" in delta(lambda: [h.malloc(0x10000) for _ in range(3)])
    m = h.malloc(1 << 20)
    assert h.counters()["mmap"] == 1
    assert delta(lambda: h.free(m)) == {"munmap", "free_munmap"}
    x = h.malloc(0x20)
    h.malloc(0x20)
    h.free(x)
    assert "consolidate" in delta(lambda: h.malloc(0x600))
    h2 = Heap()
    p = h2.malloc(0x30)
    h2.free(p)
    assert h2.malloc(0x30) == p and h2.counters()["tcache_hit"] == 1
    h2.reset_counters()
    assert sum(h2.counters().values()) == 0


def test_a_failed_call_is_undone_with_its_system_calls():
    """malloc_trim shrinks the main heap (sbrk), then aborts in arena 1: the
    break, the bytes and the counters are all put back, and the heap goes on
    exactly as a heap that never made the call."""

    def setup():
        h = Heap(tcache_count=0, trim_threshold=1 << 30)
        for p in [h.malloc(0x10000) for _ in range(6)]:
            h.free(p)
        a = h.malloc(0x20, tid=1)
        h.malloc(0x20, tid=1)
        h.free(a, tid=1)
        return h, a

    h, a = setup()
    twin, _ = setup()
    assert twin.malloc_trim(0) and twin.regions()[0] != h.regions()[0]  # the trim does shrink
    twin, _ = setup()
    h.write_word(a - 8, 0x81)  # the fastbin chunk's size no longer fits its bin
    before, regions, counters = h.snapshot(), h.regions(), h.counters()
    with pytest.raises(HeapAbort) as e:
        h.malloc_trim(0)
    assert e.value.message == "malloc_consolidate(): invalid chunk size"
    assert (h.regions(), h.counters()) == (regions, counters)
    assert not h.diff(before)
    h.write_word(a - 8, 0x31)
    sizes = [0x30000 if i % 2 else 100 for i in range(6)]
    assert [h.malloc(n) for n in sizes] == [twin.malloc(n) for n in sizes]
    assert h.malloc_trim(0) is twin.malloc_trim(0) is True
    assert h.regions() == twin.regions()
