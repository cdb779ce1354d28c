"""The Heap API: the malloc family, threads, memory, tunables, profiles,
errno, FreeResult, safe-linking helpers."""

import ptmalloc_rs
import pytest
from ptmalloc_rs import (
    HEAP_BASE,
    M_MXFAST,
    Heap,
    HeapAbort,
    HeapError,
    SegFault,
    protect_ptr,
    reveal_ptr,
)

ENOMEM, EINVAL = 12, 22


def run_script(h):
    ps = [h.malloc(n) for n in (24, 100, 1000, 5000, 40, 200000)]
    h.write(ps[0], b"hello")
    h.free(ps[1])
    h.free(ps[3])
    ps.append(h.realloc(ps[2], 3000))
    ps.append(h.memalign(256, 77))
    h.free(ps[5])
    return ps


def test_deterministic_addresses_and_bytes():
    a, b = Heap(), Heap()
    assert run_script(a) == run_script(b)
    assert a.regions() == b.regions()
    for start, end, _ in a.regions():
        assert a.read(start, end - start) == b.read(start, end - start)


def test_glibc_like_addresses():
    h = Heap()
    p = h.malloc(24)
    assert p == HEAP_BASE + 0x2A0 == h.heap_base + 0x2A0
    big = h.malloc(1 << 20)
    assert 0x7FF000000000 < big < 0x7FFFF7E00000
    assert h.locate(big).is_mmapped
    assert h.malloc(30, tid=1) & ~((64 << 20) - 1) == h.arenas()[1].heaps[0][0]


def test_profiles_and_tunables():
    assert Heap().profile == "glibc-2.36"
    assert Heap(profile="hardened").profile == "hardened"
    with pytest.raises(ValueError):
        Heap(profile="musl")
    with pytest.raises(ValueError):
        Heap(no_such_tunable=1)
    with pytest.raises(ValueError):
        Heap(mxfast=161)
    with pytest.raises(ValueError):
        Heap(tcache_max=2000)
    h = Heap(tcache_count=0, mxfast=0, mmap_threshold=4096, top_pad=0)
    t = h.tunables
    assert (t["tcache_count"], t["mxfast"], t["mmap_threshold"], t["top_pad"]) == (0, 16, 4096, 0)
    # No tcache, no fastbins: a small free goes to the unsorted bin.
    a, _ = h.malloc(24), h.malloc(24)
    assert h.free(a).where == "unsorted"
    # Above the mmap threshold: mapped on its own.
    assert h.locate(h.malloc(5000)).is_mmapped


def test_malloc_family():
    h = Heap()
    p = h.malloc(2000)
    h.malloc(10)
    h.write(p, b"\xaa" * 2000)
    h.free(p)
    # calloc takes no chunk from the tcache (glibc 2.36); this one came back through the unsorted bin.
    c = h.calloc(20, 100)
    assert c == p and h.read(c, 2000) == bytes(2000)
    r = h.realloc(c, 50)
    assert r == c
    h.write(r, b"keep")
    r2 = h.realloc(r, 4000)
    assert r2 != r and h.read(r2, 4) == b"keep"
    assert h.realloc(r2, 0) == 0
    assert h.memalign(4096, 10) % 4096 == 0
    assert h.aligned_alloc(64, 10) % 64 == 0
    assert h.valloc(10) % 4096 == 0
    pv = h.pvalloc(10)
    assert pv % 4096 == 0 and h.malloc_usable_size(pv) >= 4096
    err, q = h.posix_memalign(128, 33)
    assert err == 0 and q % 128 == 0
    assert h.posix_memalign(3, 10) == (EINVAL, 0)
    assert h.malloc_usable_size(h.malloc(24)) == 24
    assert h.malloc_usable_size(0) == 0


def test_errno_is_set_by_failed_calls_only():
    h = Heap()
    assert h.errno == 0
    assert h.malloc(-1) == 0 and h.errno == ENOMEM
    h.errno = 0
    assert h.aligned_alloc(3, 10) == 0 and h.errno == EINVAL
    assert h.malloc(10) != 0 and h.errno == EINVAL
    assert h.calloc(1 << 62, 16) == 0 and h.errno == ENOMEM


def test_mallopt_and_trim():
    h = Heap()
    assert h.mallopt(M_MXFAST, 0)
    assert h.tunables["mxfast"] == 16
    assert h.mallopt("M_MMAP_THRESHOLD", 1 << 20)
    assert h.mallopt("trim_threshold", 1 << 20)
    assert not h.mallopt(M_MXFAST, 1000)
    with pytest.raises(ValueError):
        h.mallopt("M_NOPE", 1)
    ps = [h.malloc(60000) for _ in range(10)]
    for p in ps:
        h.free(p)
    assert h.malloc_trim(0) is True
    assert h.counters()["trim"] >= 1


def test_free_result_says_where_the_chunk_went():
    h = Heap()
    small = [h.malloc(0x28) for _ in range(10)]
    big = [h.malloc(0x500) for _ in range(3)]
    results = [h.free(p) for p in small[:8]]
    assert [(r.where, r.bin, r.position) for r in results[:7]] == [("tcache", "tcache[1]", 0)] * 7
    assert (results[7].where, results[7].bin, results[7].position) == ("fastbin", "fastbin[1]", 0)
    assert [c.mem for c in h.tcache()[1].chunks] == small[6::-1]
    r = h.free(big[0])
    assert (r.where, r.bin, r.merged) == ("unsorted", "unsorted", False)
    r = h.free(big[1])
    assert (r.where, r.merged) == ("unsorted", True)
    r = h.free(big[2])
    assert (r.where, r.merged) == ("top", True)
    assert h.free(0).where == "none"
    m = h.malloc(1 << 20)
    assert h.free(m).where == "munmapped"
    assert repr(r) == "FreeResult(where='top', merged=True)"


def test_threads_have_their_own_tcache_and_arena():
    h = Heap()
    a = h.malloc(40, tid=0)
    b = h.malloc(40, tid=7)
    arenas = h.arenas()
    assert len(arenas) == 2
    assert arenas[0].threads == [0] and arenas[1].threads == [7]
    assert h.locate(b).non_main_arena and not h.locate(a).non_main_arena
    assert h.locate(b).arena == 1
    h.free(b, tid=0)  # a foreign chunk goes to the freeing thread's tcache
    assert [c.mem for c in h.tcache(0)[1].chunks] == [b]
    assert h.tcache(7)[1].chunks == []
    h.free(a, tid=7)
    assert [c.mem for c in h.tcache(7)[1].chunks] == [a]
    h.thread_exit(7)
    assert h.tcache(7) == [] and h.check() == []
    assert h.arenas()[1].threads == []


def test_memory_access_and_segfault():
    h = Heap()
    p = h.malloc(64)
    h.write(p, b"abc")
    assert h.read(p, 3) == b"abc"
    h.write_word(p + 8, -1)
    assert h.read_word(p + 8) == (1 << 64) - 1
    with pytest.raises(SegFault) as e:
        h.write(0x1000, b"x")
    assert e.value.address == 0x1000 and isinstance(e.value, HeapError)
    with pytest.raises(SegFault):
        h.read(h.top().address + h.top().size, 1)
    with pytest.raises(SegFault):
        h.read_word(0xDEAD0000)
    kinds = [k for _, _, k in h.regions()]
    assert kinds == ["heap", "libc"]
    h.malloc(1, tid=1)
    h.malloc(1 << 20)
    assert sorted(k for _, _, k in h.regions()) == ["arena", "heap", "libc", "mmap"]


def test_safe_linking_helpers():
    pos, ptr = 0x55555555A2C0, 0x55555555A2A0
    v = protect_ptr(pos, ptr)
    assert v == (pos >> 12) ^ ptr and reveal_ptr(pos, v) == ptr
    h = Heap()
    a, b = h.malloc(24), h.malloc(24)
    h.free(a)
    h.free(b)
    assert h.read_word(b) == protect_ptr(b, a)
    c = h.locate(b)
    assert (c.fd, c.fd_raw) == (a, protect_ptr(b, a))


def test_exceptions_are_exported():
    assert issubclass(HeapAbort, HeapError) and issubclass(SegFault, HeapError)
    assert issubclass(HeapError, Exception)
    for name in ptmalloc_rs._native.__dict__:
        if not name.startswith("_"):
            assert hasattr(ptmalloc_rs, name), name


def test_every_public_name_has_a_docstring():
    import inspect

    for name in dir(ptmalloc_rs._native):
        obj = getattr(ptmalloc_rs._native, name)
        if name.startswith("_") or not (inspect.isclass(obj) or callable(obj)):
            continue
        assert obj.__doc__, name
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_"):
                    assert member.__doc__, f"{name}.{attr}"


def test_the_extension_exports_no_allocator():
    """Importing ptmalloc_rs changes nothing in the interpreter's own allocation:
    the extension defines none of the malloc family (it links the core only)."""
    import shutil
    import subprocess

    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm")
    out = subprocess.run(
        [nm, "-D", "--defined-only", ptmalloc_rs._native.__file__], check=True, capture_output=True, text=True
    ).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert "PyInit__native" in defined
    assert not defined & {"malloc", "free", "calloc", "realloc", "memalign", "posix_memalign", "aligned_alloc"}
