#!/usr/bin/env python3
"""A short tour of ptmalloc_rs, notebook-style: each step prints what a cell would show.

    python examples/quick_tour.py [output-directory]

Writes heap.svg, heap.html, heap.png (with Pillow), timeline.svg and
replay.png (with matplotlib) into the output directory (default: current).
"""

import os
import sys

from ptmalloc_rs import Heap, Trace, bins_text, record, replay, timeline, to_png, to_svg, vis


def cell(title):
    print(f"\n>>> {title}")


def main(out):
    os.makedirs(out, exist_ok=True)
    heap = Heap()
    cell("a = heap.malloc(24); b = heap.malloc(0x88); c = heap.malloc(0x418); guard = heap.malloc(24)")
    with record(heap) as trace:
        a = heap.malloc(24)
        b = heap.malloc(0x88)
        c = heap.malloc(0x418)
        guard = heap.malloc(24)
        print(f"a={a:#x} b={b:#x} c={c:#x} guard={guard:#x}")
        cell("heap.free(a), heap.free(c)")
        print(heap.free(a))
        print(heap.free(c))
    cell("bins_text(heap)")
    print(bins_text(heap), end="")
    cell("vis(heap, a - 0x10, 3)")
    print(vis(heap, a - 0x10, 3), end="")
    cell("heap.try_malloc(0x100)  # what would happen, the heap unchanged")
    print(heap.try_malloc(0x100))
    cell("the calls as a trace (slots, not addresses)")
    print(trace.dumps(), end="")
    cell("replay(trace, tcache_count=0).summary()")
    print(replay(trace, tcache_count=0, every=1).summary())

    with open(os.path.join(out, "heap.svg"), "w", encoding="utf-8") as f:
        f.write(to_svg(heap))
    with open(os.path.join(out, "heap.html"), "w", encoding="utf-8") as f:
        f.write(heap._repr_html_())
    with open(os.path.join(out, "timeline.svg"), "w", encoding="utf-8") as f:
        f.write(timeline(trace))
    written = ["heap.svg", "heap.html", "timeline.svg"]
    try:
        to_png(heap, os.path.join(out, "heap.png"))
        written.append("heap.png")
    except ImportError as exc:
        print(exc)
    try:
        busy = Trace()
        slots = [busy.malloc(16 + 48 * (i % 20)) for i in range(300)]
        for s in slots[::2]:
            busy.free(s)
        replay(busy, every=5).plot(os.path.join(out, "replay.png"))
        written.append("replay.png")
    except ImportError as exc:
        print(exc)
    cell("files")
    print(", ".join(os.path.join(out, name) for name in written))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
