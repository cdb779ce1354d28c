"""Classic heap techniques reproduce as on glibc 2.36 in the default profile:
they succeed where glibc lets them and abort with glibc's message where
glibc catches them. Each technique is run twice, step for step: in Heap()
here, and against the system's glibc by tests/techniques_glibc.c; both
outcomes must be the expected one."""

import os
import shutil
import signal
import subprocess

import pytest
from ptmalloc_rs import MAIN_ARENA, Heap, HeapAbort, SegFault, protect_ptr

HERE = os.path.dirname(os.path.abspath(__file__))
# The "stack" and "globals" of the techniques: static data below main_arena
# in the simulated libc pages, as the C program uses its own static data.
STACK = MAIN_ARENA - 0x800
CHUNK0_PTR = STACK + 0x400


def tcache_poisoning(h, offset=0):
    a, b = h.malloc(0x20), h.malloc(0x20)
    target = STACK + 0x20 + offset * 8
    h.free(a)
    h.free(b)
    h.write_word(b, protect_ptr(b, target))
    h.malloc(0x20)
    return h.malloc(0x20) == target


def tcache_double_free(h):
    a = h.malloc(0x20)
    h.free(a)
    h.free(a)
    return False


def fill_tcache(h, n):
    ps = [h.malloc(n) for _ in range(7)]
    for p in ps:
        h.free(p)


def fastbin_dup(h, twice_in_a_row=False):
    fill_tcache(h, 8)
    a, b, _ = h.calloc(1, 8), h.calloc(1, 8), h.calloc(1, 8)
    h.free(a)
    if not twice_in_a_row:
        h.free(b)
    h.free(a)
    a, b, c = h.calloc(1, 8), h.calloc(1, 8), h.calloc(1, 8)
    return a == c and a != b


def house_of_spirit(h, misaligned=0):
    fake = STACK + 0x40 + misaligned * 8
    h.free(h.malloc(1))
    h.write_word(fake + 8, 0x40)
    h.free(fake + 16)
    return h.malloc(0x30) == fake + 16


def house_of_spirit_fastbin(h, next_size=0x1234):
    fake = STACK + 0x40
    fill_tcache(h, 0x30)
    h.write_word(fake + 8, 0x40)
    h.write_word(fake + 0x48, next_size)
    h.free(fake + 16)
    return h.calloc(1, 0x30) == fake + 16


def unsafe_unlink(h, links=True, prev_size=0x420):
    chunk0 = h.malloc(0x420)
    h.write_word(CHUNK0_PTR, chunk0)
    chunk1 = h.malloc(0x420)
    h.write_word(chunk0 + 8, h.read_word(chunk0 - 8) - 0x10)
    if links:
        h.write_word(chunk0 + 16, CHUNK0_PTR - 24)
        h.write_word(chunk0 + 24, CHUNK0_PTR - 16)
    hdr = chunk1 - 16
    h.write_word(hdr, prev_size)
    h.write_word(hdr + 8, h.read_word(hdr + 8) & ~1)
    h.free(chunk1)
    return h.read_word(CHUNK0_PTR) == CHUNK0_PTR - 24


def overlapping_chunks(h, evil_size=0x581):
    h.malloc(0x80 - 8)
    p2, p3 = h.malloc(0x500 - 8), h.malloc(0x80 - 8)
    h.write_word(p2 - 8, evil_size)
    h.free(p2)
    p4 = h.malloc(0x580 - 8)
    return p4 == p2 and p4 < p3 < p4 + 0x580


# name -> (steps in Heap(), the outcome on glibc 2.36)
TECHNIQUES = {
    "tcache_poisoning": (tcache_poisoning, "ok"),
    "tcache_poisoning_misaligned": (
        lambda h: tcache_poisoning(h, 1),
        "malloc(): unaligned tcache chunk detected",
    ),
    "tcache_double_free": (tcache_double_free, "free(): double free detected in tcache 2"),
    "fastbin_dup": (fastbin_dup, "ok"),
    "fastbin_double_free_top": (
        lambda h: fastbin_dup(h, True),
        "double free or corruption (fasttop)",
    ),
    "house_of_spirit": (house_of_spirit, "ok"),
    "house_of_spirit_misaligned": (lambda h: house_of_spirit(h, 1), "free(): invalid pointer"),
    "house_of_spirit_fastbin": (house_of_spirit_fastbin, "ok"),
    "house_of_spirit_fastbin_bad_next": (
        lambda h: house_of_spirit_fastbin(h, 8),
        "free(): invalid next size (fast)",
    ),
    "unsafe_unlink": (unsafe_unlink, "ok"),
    # fd and bk left at 0: glibc follows them into unmapped memory.
    "unsafe_unlink_no_links": (lambda h: unsafe_unlink(h, links=False), "SIGSEGV"),
    "unsafe_unlink_bad_prev_size": (
        lambda h: unsafe_unlink(h, prev_size=0x410),
        "corrupted size vs. prev_size while consolidating",
    ),
    "overlapping_chunks": (overlapping_chunks, "ok"),
    "overlapping_chunks_bad_next": (
        lambda h: overlapping_chunks(h, 0x5A1),
        "double free or corruption (!prev)",
    ),
}


def outcome_in_heap(steps, profile="glibc-2.36"):
    h = Heap(profile=profile)
    try:
        return "ok" if steps(h) else "failed"
    except HeapAbort as e:
        return e.message
    except SegFault:
        return "SIGSEGV"


@pytest.fixture(scope="session")
def glibc_runner(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("techniques") / "techniques_glibc"
    subprocess.run(
        [cc, "-O0", "-w", "-o", str(exe), os.path.join(HERE, "techniques_glibc.c")],
        check=True,
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "LD_PRELOAD" and not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))
    }

    def run(name):
        r = subprocess.run([str(exe), name], capture_output=True, text=True, env=env)
        if r.returncode == -signal.SIGSEGV:
            return "SIGSEGV"
        if r.returncode == -signal.SIGABRT:
            return r.stderr.strip().splitlines()[-1]
        assert r.returncode == 0, r
        return r.stdout.strip()

    return run


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_technique_as_in_glibc(name, glibc_runner):
    steps, expected = TECHNIQUES[name]
    assert glibc_runner(name) == expected
    assert outcome_in_heap(steps) == expected


def test_abort_carries_the_state_before_the_call():
    h = Heap()
    a = h.malloc(0x20)
    h.free(a)
    before = h.snapshot()
    with pytest.raises(HeapAbort) as e:
        h.free(a)
    assert e.value.message == "free(): double free detected in tcache 2"
    assert str(e.value) == e.value.message
    snap = e.value.snapshot
    assert not h.diff(before, snap)
    # The heap itself was put back and goes on working.
    assert [c.mem for c in h.tcache()[1].chunks] == [a]
    assert h.malloc(0x20) == a
    assert h.history[-2].abort == "free(): double free detected in tcache 2"


def test_poisoned_chunk_is_visible_before_it_is_used():
    h = Heap()
    a, b = h.malloc(0x20), h.malloc(0x20)
    h.free(a)
    h.free(b)
    h.write_word(b, protect_ptr(b, STACK + 0x20))
    walk = h.tcache()[1]
    assert walk.count == 2
    assert [c.mem for c in walk.chunks] == [b, STACK + 0x20]
    # The fake entry holds 0, which reveals to its own address >> 12: misaligned.
    assert walk.corruption == f"misaligned entry {(STACK + 0x20) >> 12:#x}"
    assert f"thread 0 tcache[1]: chunk {STACK + 0x10:#x} has size 0x0, not that of the bin" in h.check()
    # A dry run shows where the second malloc would land, and changes nothing.
    h.malloc(0x20)
    tried = h.try_malloc(0x20)
    assert (tried.ok, tried.result, tried.path) == (True, STACK + 0x20, "tcache_hit")
    assert [c.mem for c in h.tcache()[1].chunks] == [STACK + 0x20]


def hardening_in_core():
    """Whether the core keys chunk headers (the hardened profile's checks)."""
    h = Heap(profile="hardened")
    p = h.malloc(0x20)
    return h.locate(p).raw_size >> 48 != 0


@pytest.mark.skipif(not hardening_in_core(), reason="the core's hardening has not landed on this branch")
@pytest.mark.parametrize(
    "name",
    ["tcache_poisoning", "fastbin_dup", "house_of_spirit", "house_of_spirit_fastbin", "overlapping_chunks"],
)
def test_hardened_profile_stops_what_glibc_lets_through(name):
    steps, _ = TECHNIQUES[name]
    assert outcome_in_heap(steps, profile="hardened") not in ("ok", "SIGSEGV")
