"""ptmalloc_rs: a laboratory for ptmalloc (glibc malloc) heaps.

A :class:`Heap` is a private ptmalloc2 instance over a simulated,
bounds-checked address space at glibc-like addresses (the main heap at
``HEAP_BASE`` = 0x555555559000). It is deterministic: the same tunables and
calls give the same addresses and bytes. Nothing a script writes into it can
crash the interpreter: a failed integrity check raises :class:`HeapAbort`
with glibc's message, an access outside the mapped regions :class:`SegFault`.

Quick start::

    >>> from ptmalloc_rs import Heap
    >>> h = Heap()
    >>> a = h.malloc(24); b = h.malloc(24)
    >>> h.free(a)
    FreeResult(where='tcache', bin='tcache[0]', position=0)
    >>> h.tcache()[0].chunks[0].mem == a
    True
"""

from ._native import (
    COUNTERS,
    HEAP_BASE,
    M_ARENA_MAX,
    M_ARENA_TEST,
    M_CHECK_ACTION,
    M_MMAP_MAX,
    M_MMAP_THRESHOLD,
    M_MXFAST,
    M_PERTURB,
    M_TOP_PAD,
    M_TRIM_THRESHOLD,
    MAIN_ARENA,
    Arena,
    Bin,
    Chunk,
    Diff,
    Event,
    FreeResult,
    Heap,
    HeapAbort,
    HeapError,
    SegFault,
    Snapshot,
    TryResult,
    protect_ptr,
    reveal_ptr,
)

__all__ = [
    "COUNTERS",
    "HEAP_BASE",
    "MAIN_ARENA",
    "M_ARENA_MAX",
    "M_ARENA_TEST",
    "M_CHECK_ACTION",
    "M_MMAP_MAX",
    "M_MMAP_THRESHOLD",
    "M_MXFAST",
    "M_PERTURB",
    "M_TOP_PAD",
    "M_TRIM_THRESHOLD",
    "Arena",
    "Bin",
    "Chunk",
    "Diff",
    "Event",
    "FreeResult",
    "Heap",
    "HeapAbort",
    "HeapError",
    "SegFault",
    "Snapshot",
    "TryResult",
    "protect_ptr",
    "reveal_ptr",
]

# The pure-Python parts (pictures, traces) register themselves below when present.

# --- pictures and traces (render.py, trace.py) ---
from .render import bins_text, timeline, to_html, to_png, to_svg, vis  # noqa: E402
from .trace import Op, Replay, Trace, load_ltrace, load_mtrace, record, replay  # noqa: E402

Heap._repr_html_ = to_html  # Jupyter shows a heap as its figure
Heap.record = record  # `with heap.record() as trace:`
__all__ += ["bins_text", "vis", "to_html", "to_svg", "to_png", "timeline"]
__all__ += ["Op", "Trace", "Replay", "record", "load_mtrace", "load_ltrace", "replay"]
