"""Fidelity against the real glibc: the same trace replayed by the system's
malloc (a small C program, tests/fidelity_replay.c) and by Heap() must give
the same pointers, as offsets from the start of the heap.

Traces are single-threaded and stay below the mmap threshold, where glibc's
placement is fully determined by the calls."""

import os
import random
import shutil
import subprocess

import pytest
from ptmalloc_rs import HEAP_BASE, Heap

HERE = os.path.dirname(os.path.abspath(__file__))
MMAP_THRESHOLD = 128 * 1024


@pytest.fixture(scope="session")
def replayer(tmp_path_factory):
    """The C replayer, compiled against the system's glibc."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("fidelity") / "fidelity_replay"
    subprocess.run(
        [cc, "-O1", "-o", str(exe), os.path.join(HERE, "fidelity_replay.c")],
        check=True,
    )
    return str(exe)


def glibc_offsets(replayer, trace, tmp_path, tunables=None):
    path = tmp_path / "trace.txt"
    path.write_text("".join(line + "\n" for line in trace))
    # The system's own malloc: no preloaded allocator, only the tunables given.
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "LD_PRELOAD" and not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))
    }
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(f"glibc.malloc.{k}={v}" for k, v in tunables.items())
    out = subprocess.run(
        [replayer, str(path)], check=True, capture_output=True, text=True, env=env
    ).stdout
    return out.split()


def heap_offsets(trace, tunables=None):
    """The same trace through Heap(): offsets from HEAP_BASE, as the C program prints them."""
    h = Heap(**(tunables or {}))
    slots = {}
    out = []

    def show(p):
        out.append("NULL" if p == 0 else str(p - HEAP_BASE))

    for line in trace:
        f = line.split()
        op, slot, args = f[0], int(f[1]), [int(x) for x in f[2:]]
        if op == "m":
            slots[slot] = h.malloc(args[0])
            show(slots[slot])
        elif op == "c":
            slots[slot] = h.calloc(args[0], args[1])
            show(slots[slot])
        elif op == "r":
            slots[slot] = h.realloc(slots.get(slot, 0), args[0])
            show(slots[slot])
        elif op == "a":
            slots[slot] = h.memalign(args[0], args[1])
            show(slots[slot])
        elif op == "f":
            h.free(slots.pop(slot, 0))
    assert h.check() == []
    return out


def random_trace(seed, n, sizes, ops=("m", "f"), slots=256, aligns=(32, 64, 256, 4096)):
    """A random trace: calls on random slots, frees in random order."""
    rng = random.Random(seed)
    live = set()
    trace = []
    for _ in range(n):
        op = rng.choice(ops)
        slot = rng.randrange(slots)
        if op == "f":
            if not live:
                continue
            slot = rng.choice(sorted(live))
            live.discard(slot)
            trace.append(f"f {slot}")
            continue
        if slot in live and op != "r":
            trace.append(f"f {slot}")
            live.discard(slot)
        size = sizes(rng)
        if op == "m":
            trace.append(f"m {slot} {size}")
        elif op == "c":
            n_el = rng.randint(1, 8)
            trace.append(f"c {slot} {n_el} {max(1, size // n_el)}")
        elif op == "r":
            trace.append(f"r {slot} {size}")
        elif op == "a":
            trace.append(f"a {slot} {rng.choice(aligns)} {size}")
        live.add(slot)
    return trace


def small(rng):
    return rng.randint(1, 1024)


def large(rng):
    return rng.randint(1024, MMAP_THRESHOLD - 8192)


def mixed(rng):
    return small(rng) if rng.random() < 0.8 else large(rng)


TRACES = {
    "small": lambda: random_trace(1, 20000, small),
    "tcache_and_fastbin_sizes": lambda: random_trace(2, 20000, lambda r: r.randint(1, 160)),
    "large": lambda: random_trace(3, 6000, large, slots=64),
    "mixed_random_frees": lambda: random_trace(4, 30000, mixed),
    "reallocs": lambda: random_trace(5, 20000, mixed, ops=("m", "r", "r", "f")),
    "memalign": lambda: random_trace(6, 15000, mixed, ops=("m", "a", "f")),
    "calloc": lambda: random_trace(7, 15000, mixed, ops=("m", "c", "f")),
    "everything": lambda: random_trace(8, 40000, mixed, ops=("m", "c", "r", "a", "f", "f")),
    # The first call decides when the thread's tcache is made (memalign makes none).
    "memalign_first": lambda: ["a 0 64 100", "a 1 4096 5000"] + random_trace(9, 3000, mixed, ops=("m", "a", "f")),
    "calloc_first": lambda: ["c 0 3 40"] + random_trace(10, 3000, mixed, ops=("m", "c", "f")),
    "realloc_first": lambda: ["r 0 200", "r 0 20"] + random_trace(11, 3000, mixed, ops=("m", "r", "f")),
}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_same_offsets_as_glibc(name, replayer, tmp_path):
    trace = TRACES[name]()
    want = glibc_offsets(replayer, trace, tmp_path)
    got = heap_offsets(trace)
    assert len(got) == len(want)
    first_difference = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    assert first_difference is None, (
        f"call {first_difference}: Heap() gave offset {got[first_difference]}, "
        f"glibc {want[first_difference]}"
    )


@pytest.mark.parametrize(
    "tunables",
    [
        {"tcache_count": 0},
        {"mxfast": 0},
        {"tcache_count": 2, "mxfast": 128, "tcache_max": 256},
        {"top_pad": 0, "trim_threshold": 4096},
        {"perturb": 0x5A},
    ],
    ids=lambda t: ",".join(f"{k}={v}" for k, v in t.items()),
)
def test_same_offsets_as_glibc_under_the_same_tunables(tunables, replayer, tmp_path):
    trace = random_trace(12, 15000, mixed, ops=("m", "c", "r", "a", "f", "f"))
    want = glibc_offsets(replayer, trace, tmp_path, tunables)
    assert heap_offsets(trace, tunables) == want


def test_first_block_follows_the_tcache(replayer, tmp_path):
    # The first malloc makes the thread's tcache (0x290 bytes), then the block.
    trace = ["m 0 24", "m 1 24", "f 0", "m 2 24"]
    assert glibc_offsets(replayer, trace, tmp_path) == heap_offsets(trace) == [
        str(0x2A0),
        str(0x2C0),
        str(0x2A0),
    ]
