"""Traces: the slot format, recording, mtrace/ltrace loaders, replay series."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import ptmalloc_rs
import pytest
from ptmalloc_rs.trace import FREE_KINDS, Op, Trace, load_ltrace, load_mtrace, play, record, replay

# --- the text format -------------------------------------------------------------


def test_format_round_trip_and_fields():
    text = textwrap.dedent(
        """\
        # a comment line
        m 0 24
        m 1 24      # neighbour
        t1 f 0
        r 1 200
        c 2 4 16
        a 3 64 100

        f 2
        """
    )
    trace = Trace.parse(text)
    assert trace.ops == [
        Op("m", 0, 24),
        Op("m", 1, 24, label="neighbour"),
        Op("f", 0, tid=1),
        Op("r", 1, 200),
        Op("c", 2, 16, 4),
        Op("a", 3, 100, 64),
        Op("f", 2),
    ]
    assert trace.dumps() == "m 0 24\nm 1 24 # neighbour\nt1 f 0\nr 1 200\nc 2 4 16\na 3 64 100\nf 2\n"
    assert Trace.parse(trace.dumps()) == trace
    assert trace.slots == 4 and trace.tids == [0, 1]
    assert [op.request for op in trace] == [24, 24, 0, 200, 64, 100, 0]


@pytest.mark.parametrize("bad", ["x 1 2", "m 1", "f 1 2", "c 1 2", "m one 2"])
def test_format_rejects_bad_lines_naming_them(bad):
    with pytest.raises(ValueError, match="trace line 2"):
        Trace.parse("m 0 1\n" + bad + "\n")


def test_builder_reuses_freed_slots(tmp_path):
    trace = Trace()
    a = trace.malloc(24)
    b = trace.calloc(2, 8)
    trace.free(a)
    c = trace.memalign(32, 40, tid=2)
    trace.realloc(c, 80, label="grow")
    assert (a, b, c) == (0, 1, 0)
    assert trace.dumps() == "m 0 24\nc 1 2 8\nf 0\nt2 a 0 32 40\nr 0 80 # grow\n"
    path = tmp_path / "t.trace"
    trace.save(path)
    assert Trace.load(path) == trace


def test_builder_given_slot_is_not_handed_out_again():
    trace = Trace()
    a, b = trace.malloc(8), trace.malloc(8)
    trace.free(b)
    assert trace.malloc(16, slot=b) == b
    assert trace.malloc(8) == 2  # b is live again, so a fresh slot
    assert trace.dumps() == "m 0 8\nm 1 8\nf 1\nm 1 16\nm 2 8\n" and a == 0


# --- recording and replay on the real heap -------------------------------------------


def test_record_turns_history_into_slots():
    heap = ptmalloc_rs.Heap()
    heap.malloc(500)  # before the recording: not in it
    with record(heap) as trace:
        p = heap.malloc(24)
        q = heap.calloc(3, 16)
        heap.free(p)
        q = heap.realloc(q, 300)
        r = heap.memalign(64, 72, tid=1)
        heap.free(q)
        heap.free(r, tid=1)
    assert trace.dumps() == "m 0 24\nc 1 3 16\nf 0\nr 1 300\nt1 a 0 64 72\nf 1\nt1 f 0\n"
    assert trace.skipped == []
    with heap.record() as again:  # the same, as a method
        heap.free(heap.malloc(8))
        p = heap.malloc(8)
        heap.write(p, b"x")
    assert again.dumps() == "m 0 8\nf 0\nm 0 8\n"
    assert [why for _, why in again.skipped] == [f"write({p}, 1) has no trace form"]


def test_replay_reproduces_the_recorded_pointers():
    heap = ptmalloc_rs.Heap()
    with record(heap) as trace:
        ptrs = [heap.malloc(n) for n in (24, 100, 1000, 24, 5000)]
        heap.free(ptrs[1])
        heap.free(ptrs[3])
        ptrs.append(heap.malloc(90))
        ptrs.append(heap.realloc(ptrs[2], 2000))
    again = [ptr for _, op, ptr in play(trace, ptmalloc_rs.Heap()) if op.kind != "f"]
    assert again == ptrs
    assert ptrs[6] != ptrs[2]  # the realloc moved the block


def test_replay_series_known_numbers():
    trace = Trace.parse("m 0 24\nm 1 100\nf 0\nr 1 200\nm 2 300000\nf 2\n")
    rep = replay(trace, every=1)
    assert list(rep.live_bytes) == [24, 124, 100, 200, 300200, 200]
    # glibc's first sbrk: the request + top_pad (128 KiB) + MINSIZE, rounded to pages = 0x21000.
    assert rep.footprint[0] == 0x21000
    # 300000 bytes is above the mmap threshold: a mmapped chunk of 300000 + 8 rounded to pages.
    assert rep.footprint[4] - rep.footprint[3] == 0x4A000
    assert rep.footprint[5] == rep.footprint[3]
    assert list(rep.samples) == [0, 1, 2, 3, 4, 5]
    # After "f 0": the 0x20 chunk sits in the tcache; top = 0x21000 - tcache struct 0x290 - 0x20 - 0x70.
    assert rep.free_bytes["tcache"][2] == 0x20
    assert rep.free_bytes["top"][2] == 0x21000 - 0x290 - 0x20 - 0x70
    for kind in ("fastbin", "unsorted", "small", "large"):
        assert rep.free_bytes[kind][2] == 0
    total = 0x20 + rep.free_bytes["top"][2]
    assert rep.fragmentation[2] == pytest.approx(1 - rep.free_bytes["top"][2] / total)
    assert rep.failed == 0 and rep.abort is None
    assert rep.peak_live == 300200
    assert "6 ops" in rep.summary()


def test_replay_footprint_is_mallinfo2_arena_plus_hblkhd():
    trace = Trace()
    slots = [trace.malloc(100 + 4000 * (i % 7) + (200000 if i % 11 == 0 else 0), tid=i % 3) for i in range(60)]
    for s in slots[::3]:
        trace.free(s, tid=s % 3)
    heap = ptmalloc_rs.Heap()
    rep = replay(trace, heap=heap)
    info = heap.mallinfo2()
    assert len(heap.arenas()) == 3 and info["hblkhd"] > 0
    assert rep.footprint[-1] == info["arena"] + info["hblkhd"]


def test_replay_fragmentation_of_holes_and_tunables():
    # 8 chunks of 0x90 freed every other one with the tcache off: 4 holes that cannot merge.
    trace = Trace()
    slots = [trace.malloc(0x88) for _ in range(8)]
    guard = trace.malloc(16)
    for s in slots[::2]:
        trace.free(s)
    assert guard == 8
    rep = replay(trace, every=0, tcache_count=0, mxfast=0)
    assert list(rep.samples) == [len(trace) - 1]
    holes = rep.free_bytes["unsorted"][-1] + rep.free_bytes["small"][-1]
    assert holes == 4 * 0x90
    assert rep.free_bytes["tcache"][-1] == 0 and rep.free_bytes["fastbin"][-1] == 0
    top = rep.free_bytes["top"][-1]
    assert rep.fragmentation[-1] == pytest.approx(1 - top / (top + holes))
    # The same trace with the tcache on: the holes go to the tcache instead.
    rep = replay(trace, every=0)
    assert rep.free_bytes["tcache"][-1] == 4 * 0x90


def test_replay_records_an_abort_and_stops():
    # The slot format cannot double free; a heap corrupted beforehand can still abort.
    heap = ptmalloc_rs.Heap()
    p, q = heap.malloc(24), heap.malloc(24)
    heap.free(q)
    heap.free(p)
    heap.write_word(p, 0x41)  # p's tcache next pointer, revealed to a misaligned address
    rep = replay(Trace.parse("m 0 24\nm 1 24\nm 2 24\n"), heap=heap)
    assert rep.abort == (1, "malloc(): unaligned tcache chunk detected")
    assert len(rep) == 1 and list(rep.live_bytes) == [24]


def test_replay_counts_failed_calls():
    rep = replay(Trace.parse("m 0 24\nm 1 18446744073709551000\nf 1\n"))
    assert rep.failed == 1
    assert list(rep.live_bytes) == [24, 24, 24]


def test_replay_plot(tmp_path):
    pytest.importorskip("matplotlib")
    trace = Trace()
    for i in range(200):
        trace.malloc(16 + 8 * (i % 40))
        if i % 3 == 0:
            trace.free(i // 2)
    path = tmp_path / "replay.png"
    replay(trace, every=10).plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    rep = replay(Trace.parse("m 0 24\n"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'ptmalloc_rs\[plot\]'"):
        rep.plot(tmp_path / "x.png")


def test_free_kinds_are_the_chunk_states():
    assert set(FREE_KINDS) == {"tcache", "fastbin", "unsorted", "small", "large", "top"}


# --- mtrace: a real log from glibc --------------------------------------------------

MTRACE_PROGRAM = r"""
#include <mcheck.h>
#include <stdlib.h>
#include <malloc.h>
int main(void) {
  void *before = malloc(10);         /* allocated before mtrace(): its free is skipped */
  mtrace();
  void *a = malloc(24);
  void *b = calloc(4, 16);
  void *c = malloc(1000);
  a = realloc(a, 200);
  void *d = memalign(64, 100);
  free(b);
  void *e = realloc(NULL, 40);
  free(c);
  free(a); free(d); free(e);
  void *big = malloc(200000);
  free(big);
  free(before);
  muntrace();
  return 0;
}
"""


def _malloc_debug_lib():
    """glibc >= 2.34 keeps mtrace in libc_malloc_debug.so.0, preloaded; None before that."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if os.path.exists(ldconfig):
        out = subprocess.run([ldconfig, "-p"], check=False, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "libc_malloc_debug.so.0" in line and "=>" in line:
                return line.split("=>")[1].strip()
    return None


def _compile(tmp_path, source, name, extra=()):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    exe = tmp_path / name
    subprocess.run([cc, "-O0", "-o", str(exe), str(src), *extra], check=True)
    return exe


def test_load_mtrace_of_a_real_program(tmp_path):
    exe = _compile(tmp_path, MTRACE_PROGRAM, "mt")
    log = tmp_path / "mtrace.log"
    env = dict(os.environ, MALLOC_TRACE=str(log))
    lib = _malloc_debug_lib()
    if lib:  # glibc >= 2.34 keeps mtrace in libc_malloc_debug
        env["LD_PRELOAD"] = lib
    subprocess.run([str(exe)], check=True, env=env)
    text = log.read_text()
    assert text.startswith("= Start") and " + 0x" in text
    trace = load_mtrace(log)
    assert trace.dumps() == (
        "m 0 24\n"
        "m 1 64\n"  # calloc(4, 16): mtrace logs it as '+' of 0x40
        "m 2 1000\n"
        "r 0 200\n"
        "m 3 100\n"  # memalign: '+' too
        "f 1\n"
        "m 1 40\n"  # realloc(NULL, 40) is logged as a malloc
        "f 2\n"
        "f 0\n"
        "f 3\n"
        "f 1\n"
        "m 1 200000\n"
        "f 1\n"
    )
    assert len(trace.skipped) == 1 and "never returned" in trace.skipped[0][1]
    rep = replay(trace)
    assert rep.abort is None and list(rep.live_bytes)[-1] == 0


def test_load_mtrace_handles_realloc_failure_and_callers(tmp_path):
    log = tmp_path / "m.log"
    log.write_text(
        "= Start\n"
        "@ ./prog:(main+0x1e)[0x401136] + 0x4052a0 0x18\n"
        "@ /lib/x86_64-linux-gnu/libc.so.6:[0x7f00] + 0x4052c0 0x30\n"
        "@ ./prog:[0x401146] ! 0x4052a0 0xffffffffffff\n"
        "@ ./prog:[0x40115a] < 0x4052c0\n"
        "@ ./prog:[0x40115a] > 0x4052c0 0x40\n"
        "@ ./prog:[0x40116a] - 0x4052a0\n"
        "@ ./prog:[0x40117a] - 0x4052c0\n"
        "= End\n"
    )
    assert load_mtrace(log).dumps() == "m 0 24\nm 1 48\nr 0 281474976710655\nr 1 64\nf 0\nf 1\n"


# --- ltrace ---------------------------------------------------------------------------

LTRACE_SAMPLE = """\
[pid 4242] malloc(24)                                    = 0x55c7a86982a0
[pid 4242] calloc(4, 16)                                 = 0x55c7a86982c0
[pid 4242] prog->realloc(0x55c7a86982a0, 200)            = 0x55c7a8698310
[pid 4242] memalign(64, 100, 0x7f0c99be6c60, 0)          = 0x55c7a8698400
[pid 4242] posix_memalign(0x7fffef293ff0, 32, 10, 3)     = 0
[pid 4243] malloc(48 <unfinished ...>
[pid 4242] free(0x55c7a86982c0)                          = <void>
[pid 4243] <... malloc resumed> )                        = 0x7f3e5c000b70
[pid 4242] free(0x55c7a8698310)                          = <void>
[pid 4243] free(0x7f3e5c000b70)                          = <void>
[pid 4242] free(0x55c7a86984c0)                          = <void>
[pid 4242] free(0x55c7a8698400)                          = <void>
[pid 4242] free(0)                                       = <void>
[pid 4242] malloc(99999999999999)                        = 0
[pid 4242] free(0xdeadbeef0)                             = <void>
[pid 4242] +++ exited (status 0) +++
"""


def test_load_ltrace_sample_with_pids(tmp_path):
    log = tmp_path / "lt.log"
    log.write_text(LTRACE_SAMPLE)
    trace = load_ltrace(log)
    assert trace.dumps() == (
        "m 0 24\n"
        "c 1 4 16\n"
        "r 0 200\n"
        "a 2 64 100\n"
        "a 3 32 10\n"  # posix_memalign: bound to 0x...84c0 at its free below
        "f 1\n"
        "t1 m 1 48\n"
        "f 0\n"
        "t1 f 1\n"
        "f 3\n"
        "f 2\n"
        "m 2 99999999999999\n"  # failed (NULL): kept, so the replay fails it too
    )
    assert trace.skipped == [(15, "free of 0xdeadbeef0, never returned")]
    rep = replay(trace)
    assert rep.failed == 1 and rep.abort is None


def test_load_ltrace_plain_and_timestamped(tmp_path):
    log = tmp_path / "lt.log"
    log.write_text(
        "19:33:46.011260 malloc(24)                       = 0x55ad6e7a52a0\n"
        "1733340000.123456 libc.so.6->malloc(32) = 0x55ad6e7a52c0\n"
        "4242 realloc(nil, 16) = 0x55ad6e7a52f0\n"
        "free(nil) = <void>\n"
        "free(0x55ad6e7a52a0) = <void>\n"
        "--- SIGCHLD (Child exited) ---\n"
    )
    # A bare pid prefix makes a second thread; unprefixed lines are thread 0.
    assert load_ltrace(log).dumps() == "m 0 24\nm 1 32\nt1 m 2 16\nf 0\n"


LTRACE_PROGRAM = r"""
#include <stdlib.h>
int main(void) {
  void *a = malloc(24);
  void *b = calloc(4, 16);
  a = realloc(a, 200);
  free(b); free(a);
  return 0;
}
"""


def test_load_ltrace_of_a_real_program(tmp_path):
    if shutil.which("ltrace") is None:
        pytest.skip("ltrace is not installed")
    exe = _compile(tmp_path, LTRACE_PROGRAM, "lt")
    log = tmp_path / "lt.log"
    subprocess.run(["ltrace", "-o", str(log), "-e", "malloc+free+calloc+realloc", str(exe)], check=True)
    assert load_ltrace(log).dumps() == "m 0 24\nc 1 4 16\nr 0 200\nf 1\nf 0\n"


def test_replay_example_runs(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "replay_trace.py"
    trace = tmp_path / "small.trace"
    trace.write_text("m 0 24\nm 1 5000\nf 0\nr 1 9000\nc 2 10 10\nf 1\nf 2\n")
    run = subprocess.run(
        [sys.executable, str(script), str(trace), "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "<Trace 7 ops, 3 slots, threads [0]>" in run.stdout
    assert "[no tcache, no fastbins] {'tcache_count': 0, 'mxfast': 0}\n  7 ops in" in run.stdout
    assert (tmp_path / "timeline.svg").read_text().startswith("<svg")
