"""Pictures: pwndbg-style bins and vis text, SVG/HTML/PNG figures, the timeline."""

import html
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import ptmalloc_rs
import pytest
from ptmalloc_rs import Heap, protect_ptr
from ptmalloc_rs.render import STATE_COLOURS, bins_text, timeline, to_html, to_png, to_svg, vis
from ptmalloc_rs.trace import Trace

BASE = 0x555555559000
FIRST = BASE + 0x290  # the first chunk after the tcache_perthread_struct chunk (0x290)
MAIN_ARENA = 0x7FFFF7E19C80
SVG = "{http://www.w3.org/2000/svg}"


def known_heap():
    """tcache 0x20: b -> a; fastbin 0x30: one chunk; unsorted: a 0x430 chunk."""
    heap = Heap()
    a = heap.malloc(0x18)
    b = heap.malloc(0x18)
    fill = [heap.malloc(0x28) for _ in range(8)]
    big = heap.malloc(0x420)
    guard = heap.malloc(0x18)
    heap.free(a)
    heap.free(b)
    for p in fill:
        heap.free(p)  # 7 to the tcache, the 8th to the fastbin
    heap.free(big)
    return heap, a, b, fill, big, guard


def test_known_heap_addresses():
    heap, a, b, fill, big, guard = known_heap()
    assert (a, b) == (FIRST + 0x10, FIRST + 0x30)
    assert fill[0] == FIRST + 0x50 and fill[7] == FIRST + 0x40 + 7 * 0x30 + 0x10
    assert big == FIRST + 0x40 + 8 * 0x30 + 0x10


def test_bins_text_pwndbg_layout():
    heap, a, b, fill, big, guard = known_heap()
    tcache_30 = " —▸ ".join(f"{p:#x}" for p in reversed(fill[:7]))
    assert bins_text(heap) == (
        "tcachebins\n"
        f"0x20 [  2]: {b:#x} —▸ {a:#x} ◂— 0\n"
        f"0x30 [  7]: {tcache_30} ◂— 0\n"
        "fastbins\n"
        f"0x30: {fill[7] - 0x10:#x} ◂— 0\n"
        "unsortedbin\n"
        f"all: {big - 0x10:#x} —▸ {MAIN_ARENA + 96:#x} (main_arena+96) ◂— {big - 0x10:#x}\n"
        "smallbins\n"
        "empty\n"
        "largebins\n"
        "empty\n"
    )


def test_bins_text_small_and_large_bins():
    heap = Heap()
    small = heap.malloc(0x418)  # 0x420: above the tcache's 0x410
    heap.malloc(0x18)
    large = heap.malloc(0x428)  # 0x430: the first large bin range
    heap.malloc(0x18)
    heap.free(small)
    heap.free(large)
    heap.malloc(0x500)  # the unsorted scan sorts both into their bins
    text = bins_text(heap)
    # bin_at(i) = &main_arena.bins[2(i-1)] - 16: small bin 66 (0x420) at +1088? no: 0x420 is large too.
    small_chunk, large_chunk = small - 0x10, large - 0x10
    assert "unsortedbin\nempty\nsmallbins\nempty\nlargebins\n" in text
    # 0x420 and 0x430 share large bin 64 (0x400-0x430), the bigger first, header at main_arena+1104.
    assert (
        f"0x400-0x430: {large_chunk:#x} —▸ {small_chunk:#x} —▸ {MAIN_ARENA + 1104:#x} (main_arena+1104)"
        f" ◂— {large_chunk:#x}\n" in text
    )
    heap = Heap(tcache_count=0)
    p = heap.malloc(0x88)
    heap.malloc(0x18)
    heap.free(p)
    heap.malloc(0x500)
    # small bin 9 holds 0x90 chunks; its header is bin_at(9) = main_arena + 0x60 + 8 * 16.
    assert f"smallbins\n0x90: {p - 0x10:#x} —▸ {MAIN_ARENA + 0xE0:#x} (main_arena+224) ◂— {p - 0x10:#x}\n" in bins_text(
        heap
    )


def test_bins_text_shows_a_poisoned_list_and_why_the_walk_stopped():
    heap = Heap()
    a, b = heap.malloc(0x18), heap.malloc(0x18)
    heap.free(a)
    heap.free(b)
    heap.write_word(b, protect_ptr(b, 0x4141414141414140 + 8))
    line = bins_text(heap).splitlines()[1]
    assert line.startswith(f"0x20 [  2]: {b:#x} ◂— 0x4141414141414148 [corrupted: ")


def test_vis_rows_of_a_known_heap():
    heap = Heap()
    a = heap.malloc(0x18)
    b = heap.malloc(0x28)
    heap.write(a, b"A" * 0x18)
    heap.write(b, b"hello, heap!\0")
    heap.free(a)
    key = heap.read_word(a + 8)  # the tcache key glibc stores in a freed entry
    top = heap.top()
    assert top.address == FIRST + 0x50
    hello = int.from_bytes(b"hello, h", "little")
    eap = int.from_bytes(b"eap!\0\0\0\0", "little")
    assert vis(heap) == vis(heap, BASE) and vis(heap, FIRST, 3) == vis(heap, FIRST + 5, 3)
    assert vis(heap, FIRST) == (
        f"{FIRST:#x}\t0x0000000000000000\t0x0000000000000021\t........!.......\n"
        f"{a:#x}\t{a >> 12:#018x}\t{key:#018x}\t"
        + _ascii((a >> 12).to_bytes(8, "little") + key.to_bytes(8, "little"))
        + "\t <-- tcachebins[0x20][0/1]\n"
        "\n"
        f"{FIRST + 0x20:#x}\t0x4141414141414141\t0x0000000000000031\tAAAAAAAA1.......\n"
        f"{b:#x}\t{hello:#018x}\t{eap:#018x}\thello, heap!....\n"
        f"{b + 0x10:#x}\t0x0000000000000000\t0x0000000000000000\t................\n"
        "\n"
        f"{top.address:#x}\t0x0000000000000000\t{top.raw_size:#018x}\t"
        + _ascii(bytes(8) + top.raw_size.to_bytes(8, "little"))
        + "\t <-- Top chunk\n"
    )


def _ascii(raw):
    return "".join(chr(c) if 0x20 <= c < 0x7F else "." for c in raw)


def test_vis_collapses_repeated_rows_and_colours_on_request():
    heap = Heap()
    p = heap.malloc(0x200)
    text = vis(heap, p, 1)
    rows = text.splitlines()
    # header, first zero row, "...", last zero row of the 0x210 chunk
    assert rows == [
        f"{p - 0x10:#x}\t0x0000000000000000\t0x0000000000000211\t................",
        f"{p:#x}\t0x0000000000000000\t0x0000000000000000\t................",
        "...",
        f"{p + 0x1F0:#x}\t0x0000000000000000\t0x0000000000000000\t................",
    ]
    assert len(vis(heap, p, 1, collapse=False).splitlines()) == 0x210 // 16
    coloured = vis(heap, FIRST, 2, color=True)
    assert "\x1b[" in coloured and "\n\n" not in coloured


def big_heap(n=10_000):
    heap = Heap()
    ptrs = [heap.malloc(0x18 + 0x10 * (i % 6)) for i in range(n)]
    for p in ptrs[::3]:
        heap.free(p)
    return heap, ptrs


def test_big_heap_renders_fast(capsys):
    heap, ptrs = big_heap()
    timings = {}
    started = time.perf_counter()
    chunks = heap.chunks()
    timings["chunks()"] = time.perf_counter() - started
    outputs = {}
    for name, fn in (("bins_text", bins_text), ("vis", vis), ("to_svg", to_svg), ("to_html", to_html)):
        started = time.perf_counter()
        outputs[name] = fn(heap)
        timings[name] = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n[figure] {len(chunks)} chunks: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
            + f"; svg {len(outputs['to_svg']) // 1024} KiB, vis {len(outputs['vis']) // 1024} KiB"
        )
    assert len(chunks) > 10_000
    lines = set(outputs["vis"].splitlines())
    for p in ptrs[::997]:
        assert any(line.startswith(f"{p - 0x10:#x}\t") for line in lines)
    svg = ET.fromstring(outputs["to_svg"])
    rects = svg.findall(f".//{SVG}rect")
    assert len(rects) < 2000  # chunks thinner than a pixel are drawn together
    # Every freed chunk sits in a bin walked in full: the fastbin chains are as long as their counts.
    fast = heap.bins()
    for b in fast:
        if b.kind == "fastbin" and b.chunks:
            line = next(x for x in outputs["bins_text"].splitlines() if x.startswith(f"{b.min_size:#x}: "))
            assert line.count("—▸") == len(b.chunks) - 1


def test_svg_colours_each_chunk_by_state_with_its_address():
    heap, a, b, fill, big, guard = known_heap()
    svg = ET.fromstring(to_svg(heap))
    titled = {
        r.find(f"{SVG}title").text: r.get("fill") for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None
    }
    assert titled[f"chunk {a - 0x10:#x} mem {a:#x} size 0x20 tcache, in tcache[0]"] == STATE_COLOURS["tcache"]
    assert (
        titled[f"chunk {fill[7] - 0x10:#x} mem {fill[7]:#x} size 0x30 fastbin, in fastbin[1]"]
        == STATE_COLOURS["fastbin"]
    )
    assert titled[f"chunk {big - 0x10:#x} mem {big:#x} size 0x430 unsorted, in unsorted"] == STATE_COLOURS["unsorted"]
    assert (
        titled[f"chunk {guard - 0x10:#x} mem {guard:#x} size 0x20 allocated, request 24"] == STATE_COLOURS["allocated"]
    )
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "tcachebins" in texts and "main arena heap 0x555555559000-0x55555557a000" in texts
    # Proportional: the 0x430 chunk is 0x430/0x20 times as tall as a 0x20 one.
    heights = {
        r.find(f"{SVG}title").text.split(" mem")[0]: float(r.get("height"))
        for r in svg.iter(f"{SVG}rect")
        if r.find(f"{SVG}title") is not None
    }
    assert heights[f"chunk {big - 0x10:#x}"] / heights[f"chunk {a - 0x10:#x}"] == pytest.approx(0x430 / 0x20, rel=0.02)


def test_html_is_the_jupyter_repr():
    heap, *_ = known_heap()
    page = to_html(heap)
    assert page.startswith('<div class="ptmalloc-rs-heap"') and "<svg" in page
    assert "tcachebins" in page and "main_arena+96" in page
    assert heap._repr_html_() == page


def test_mmapped_chunks_get_their_own_bar():
    heap = Heap()
    p = heap.malloc(0x30000)
    svg = to_svg(heap)
    assert f"mmapped chunks {p - 0x10:#x}-" in svg


def test_png(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    heap, *_ = known_heap()
    path = tmp_path / "heap.png"
    to_png(heap, path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 200
        colours = {c for _, c in image.getcolors(1 << 20)}
    assert (0xF2, 0x8E, 0x2B) in colours  # tcache orange is painted


def test_png_without_pillow_says_what_to_install(monkeypatch, tmp_path):
    heap, *_ = known_heap()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'ptmalloc_rs\[png\]'"):
        to_png(heap, tmp_path / "x.png")


def test_timeline_rows_show_real_chunk_extents():
    trace = Trace.parse("m 0 24\nm 1 100\nf 0\nm 2 200000\nr 1 500\n")
    svg = ET.fromstring(timeline(trace))
    labels = [t.text for t in svg.iter(f"{SVG}text") if t.text and re.match(r"^ *\d+  ", t.text)]
    assert labels[:5] == [
        f"   0  m 0 24 = {FIRST + 0x10:#x}",
        f"   1  m 1 100 = {FIRST + 0x30:#x}",
        f"   2  f 0  ({FIRST + 0x10:#x})",
        labels[3],
        labels[4],
    ]
    assert labels[3].startswith("   3  m 2 200000 = 0x7ffff7")
    outlined = [r.find(f"{SVG}title").text for r in svg.iter(f"{SVG}rect") if r.get("stroke") == "#000000"]
    assert outlined[0] == f"chunk {FIRST:#x} mem {FIRST + 0x10:#x} size 0x20 allocated, request 24"
    assert outlined[1] == f"chunk {FIRST + 0x20:#x} mem {FIRST + 0x30:#x} size 0x70 allocated, request 100"
    assert outlined[2] == f"chunk {FIRST:#x} mem {FIRST + 0x10:#x} size 0x20 tcache, in tcache[0]"
    assert " size 0x31000 mmapped" in outlined[3]
    # realloc of the chunk just below the top grows it in place (glibc's _int_realloc takes from the top).
    assert outlined[4] == f"chunk {FIRST + 0x20:#x} mem {FIRST + 0x30:#x} size 0x200 allocated, request 500"
    # The heap and the mmapped chunk are far apart: two stretches of the axis with their own labels.
    axis = [t.text for t in svg.iter(f"{SVG}text") if t.text and t.text.startswith("0x")]
    assert f"{BASE:#x}" in axis and any(x.startswith("0x7ffff7") for x in axis)


def test_timeline_of_a_history_and_formats(tmp_path):
    heap = Heap()
    p = heap.malloc(40)
    heap.free(p)
    page = timeline(heap.history, format="html")
    assert page.startswith('<div class="ptmalloc-rs-timeline"') and "m 0 40" in page and "f 0" in page
    with pytest.raises(ValueError):
        timeline(heap.history, format="gif")
    if pytest.importorskip("PIL"):
        out = tmp_path / "t.png"
        assert timeline(heap.history, format="png", path=out) == out
        assert out.read_bytes()[:4] == b"\x89PNG"


def test_techniques_example_succeeds():
    script = Path(__file__).resolve().parents[1] / "examples" / "techniques.py"
    run = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for name in (
        "tcache_poisoning",
        "fastbin_dup",
        "house_of_spirit",
        "unsafe_unlink",
        "overlapping_chunks",
        "glibc_checks",
    ):
        assert f"  {name:20s} ok" in run.stdout
    assert "FAILED" not in run.stdout
    assert "tcachebins\n0x20 [  2]:" in run.stdout  # the pictures are printed between the steps


def test_quick_tour_example_writes_its_pictures(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "quick_tour.py"
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], check=False, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"all: {FIRST + 0xB0:#x} —▸ {MAIN_ARENA + 96:#x} (main_arena+96) ◂— {FIRST + 0xB0:#x}" in run.stdout
    assert "m 0 24\nm 1 136\nm 2 1048\nm 3 24\nf 0\nf 2\n" in run.stdout
    for name in ("heap.svg", "heap.html", "timeline.svg"):
        assert (tmp_path / name).stat().st_size > 1000


def test_vis_says_where_a_corrupted_size_stops_the_walk():
    heap = Heap()
    heap.malloc(0x18)
    b = heap.malloc(0x18)
    heap.write_word(b - 8, 0x4141414141414141)
    rows = vis(heap, FIRST).splitlines()
    assert (
        rows[-2] == f"{b - 0x10:#x}\t0x0000000000000000\t0x4141414141414141\t........AAAAAAAA\t <-- the walk stops here"
    )
    assert rows[-1].startswith(f"[the chunk walk stopped after {FIRST:#x} (size 0x21): ")
    assert f"{b - 0x10:#x}" in rows[-1]  # the check names the chunk whose size is out of bounds
    assert "<svg" in to_svg(heap) and bins_text(heap).startswith("tcachebins\n")


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    given = None

if given is not None:
    _ops = st.lists(
        st.one_of(
            st.tuples(st.just("malloc"), st.integers(0, 0x600)),
            st.tuples(st.just("free"), st.integers(0, 40)),
            st.tuples(st.just("write"), st.integers(0, 0x800), st.integers(0, (1 << 64) - 1)),
        ),
        max_size=40,
    )

    @settings(max_examples=60, deadline=None)
    @given(_ops)
    def test_pictures_of_any_corrupted_heap_are_drawn(ops):
        """Whatever a script wrote into the heap, the pictures come out (the walks report, never raise)."""
        heap = Heap()
        live = []
        for op in ops:
            try:
                if op[0] == "malloc":
                    p = heap.malloc(op[1])
                    if p:
                        live.append(p)
                elif op[0] == "free" and live:
                    heap.free(live.pop(op[1] % len(live)))
                elif op[0] == "write":
                    heap.write_word(BASE + op[1] * 8, op[2])
            except ptmalloc_rs.HeapError:
                pass
        assert bins_text(heap).startswith("tcachebins\n")
        assert vis(heap).endswith("\n")
        assert ET.fromstring(to_svg(heap)).tag == f"{SVG}svg"
        assert to_html(heap).startswith("<div")


def test_figure_of_a_thread_arena():
    heap = Heap()
    heap.malloc(24)
    p = heap.malloc(0x418, tid=1)
    heap.malloc(24, tid=1)
    heap.free(p, tid=1)
    arena = heap.arenas()[1]
    assert not arena.is_main
    svg = to_svg(heap, arena=1, tid=1)
    assert "main arena heap 0x555555559000-" in svg and "arena 1 heap " in svg
    unsorted = f"all: {p - 0x10:#x} —▸ {arena.address + 96:#x} (arena[1]+96) ◂— {p - 0x10:#x}"
    assert unsorted in svg and unsorted in bins_text(heap, arena=1, tid=1)
    assert unsorted not in to_svg(heap)  # by default: the main arena's bins
    assert html.escape(unsorted) in to_html(heap, arena=1, tid=1)


def test_bins_text_of_a_broken_unsorted_list():
    heap = Heap()
    p = heap.malloc(0x418)
    heap.malloc(0x18)
    heap.free(p)
    heap.write_word(p, 0x4141414141414140)  # fd of the only unsorted chunk
    line = bins_text(heap).splitlines()[5]
    assert line.startswith(f"all: {p - 0x10:#x} ◂— 0x4141414141414140 [corrupted: ")
