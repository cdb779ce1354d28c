"""Allocation traces: a plain text format, loaders for glibc ``mtrace`` and
ltrace logs, and replay of a trace in a fresh :class:`Heap` with time series.

The trace format
----------------

One operation a line. Operations name *slots* (small integers standing for
"the pointer the program holds in that variable"), never addresses, so a trace
replays the same under any tunables, profile or allocator::

    m <slot> <size>            slot = malloc(size)
    f <slot>                   free(slot); slot becomes empty (an empty slot frees NULL)
    r <slot> <size>            slot = realloc(slot, size) (an empty slot: realloc(NULL, size))
    c <slot> <n> <size>        slot = calloc(n, size)
    a <slot> <align> <size>    slot = memalign(align, size)

A line may start with ``t<tid>`` (the simulated thread making the call, 0 when
absent) and end with ``# label`` (a note kept with the operation and passed to
``Heap.label`` before it during replay). Lines that are blank or start with
``#`` are comments. Example::

    # two chunks, one freed into the tcache
    m 0 24
    m 1 24      # neighbour
    t1 f 0
    r 1 200

``valloc``/``pvalloc``/``aligned_alloc``/``posix_memalign`` calls are written
as ``a`` (memalign) with the page size or the alignment they asked for.

Replay
------

:func:`replay` runs a trace in a fresh heap and returns a :class:`Replay` with,
for every operation, the live bytes (the sum of the sizes the program asked for
and still holds) and the footprint (bytes the heap took from the system: every
arena's ``system_mem`` plus the mmapped chunks). Every ``every`` operations (and
after the last one) it also walks the heap once and records the free bytes per
kind (``tcache``, ``fastbin``, ``unsorted``, ``small``, ``large``, ``top``) and the
fragmentation::

    fragmentation = 1 - largest free chunk / total free bytes

over every free chunk, the top chunk included (0 when nothing is free): 0 means
all free memory is one block (what a large request can use without growing the
heap); close to 1 means it is scattered in many small holes.
"""

from __future__ import annotations

import array
import re
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

__all__ = [
    "Op",
    "Trace",
    "record",
    "load_mtrace",
    "load_ltrace",
    "play",
    "replay",
    "Replay",
    "FREE_KINDS",
]

#: The kinds of free memory a :class:`Replay` keeps a series for.
FREE_KINDS = ("tcache", "fastbin", "unsorted", "small", "large", "top")

_PAGE = 4096


class Op(NamedTuple):
    """One operation of a trace: ``kind`` is ``m``, ``f``, ``r``, ``c`` or ``a``.

    ``size`` is the request (the element size for ``c``), ``arg`` the element
    count for ``c`` and the alignment for ``a`` (0 otherwise).
    """

    kind: str
    slot: int
    size: int = 0
    arg: int = 0
    tid: int = 0
    label: Optional[str] = None

    def __str__(self) -> str:
        head = f"t{self.tid} " if self.tid else ""
        if self.kind == "f":
            body = f"f {self.slot}"
        elif self.kind in "mr":
            body = f"{self.kind} {self.slot} {self.size}"
        else:
            body = f"{self.kind} {self.slot} {self.arg} {self.size}"
        tail = f" # {self.label}" if self.label else ""
        return head + body + tail

    @property
    def request(self) -> int:
        """Bytes the program asks for (``n * size`` for calloc, 0 for free)."""
        if self.kind == "c":
            return self.arg * self.size
        return 0 if self.kind == "f" else self.size


_OP_LINE = re.compile(r"^(?:t(\d+)\s+)?([mfrca])\s+(\d+)((?:\s+\d+)*)\s*$")
_ARITY = {"m": 1, "f": 0, "r": 1, "c": 2, "a": 2}


def _parse_line(line: str, lineno: int) -> Optional[Op]:
    body, sep, label = line.partition("#")
    body = body.strip()
    if not body:
        return None
    match = _OP_LINE.match(body)
    if not match:
        raise ValueError(f"trace line {lineno}: cannot read {line.strip()!r}")
    tid, kind, slot, rest = match.groups()
    nums = [int(x) for x in rest.split()]
    if len(nums) != _ARITY[kind]:
        raise ValueError(f"trace line {lineno}: '{kind}' takes {_ARITY[kind]} numbers after the slot, got {len(nums)}")
    size, arg = 0, 0
    if kind in "mr":
        size = nums[0]
    elif kind in "ca":
        arg, size = nums
    note = (label.strip() or None) if sep else None
    return Op(kind, int(slot), size, arg, int(tid or 0), note)


class Trace:
    """A list of :class:`Op` in the slot format (see the module docstring).

    Build one with the methods below (each returns the slot it used), parse one
    with :meth:`parse`/:meth:`load`, record one from a heap with :func:`record`
    or :meth:`from_history`, or load a glibc ``mtrace``/ltrace log.
    ``skipped`` lists what a loader could not express in slots (line number and
    reason), e.g. a free of a pointer the log never returned.
    """

    def __init__(self, ops: Iterable[Op] = (), skipped: Iterable[tuple[int, str]] = ()):
        self.ops: list[Op] = list(ops)
        self.skipped: list[tuple[int, str]] = list(skipped)
        # Builder state: slots that a later malloc may reuse, the next fresh one.
        self._free_slots: list[int] = []
        self._live: set[int] = set()
        for op in self.ops:
            (self._live.discard if op.kind == "f" else self._live.add)(op.slot)
        self._next_slot = self.slots

    # --- building -------------------------------------------------------
    def _take_slot(self, slot: Optional[int]) -> int:
        if slot is None:
            slot = self._free_slots.pop() if self._free_slots else self._next_slot
        elif slot in self._free_slots:
            self._free_slots.remove(slot)
        self._next_slot = max(self._next_slot, slot + 1)
        self._live.add(slot)
        return slot

    def malloc(self, size: int, slot: Optional[int] = None, tid: int = 0, label: Optional[str] = None) -> int:
        """Append ``slot = malloc(size)``; returns the slot (a fresh one unless given)."""
        slot = self._take_slot(slot)
        self.ops.append(Op("m", slot, size, 0, tid, label))
        return slot

    def calloc(self, n: int, size: int, slot: Optional[int] = None, tid: int = 0, label: Optional[str] = None) -> int:
        """Append ``slot = calloc(n, size)``; returns the slot."""
        slot = self._take_slot(slot)
        self.ops.append(Op("c", slot, size, n, tid, label))
        return slot

    def memalign(
        self, align: int, size: int, slot: Optional[int] = None, tid: int = 0, label: Optional[str] = None
    ) -> int:
        """Append ``slot = memalign(align, size)``; returns the slot."""
        slot = self._take_slot(slot)
        self.ops.append(Op("a", slot, size, align, tid, label))
        return slot

    def realloc(self, slot: int, size: int, tid: int = 0, label: Optional[str] = None) -> int:
        """Append ``slot = realloc(slot, size)``; returns the slot."""
        self._live.add(slot)
        self._next_slot = max(self._next_slot, slot + 1)
        self.ops.append(Op("r", slot, size, 0, tid, label))
        return slot

    def free(self, slot: int, tid: int = 0, label: Optional[str] = None) -> None:
        """Append ``free(slot)``; the slot may be reused by a later malloc."""
        self.ops.append(Op("f", slot, 0, 0, tid, label))
        if slot in self._live:
            self._live.discard(slot)
            self._free_slots.append(slot)

    # --- container ------------------------------------------------------
    @property
    def slots(self) -> int:
        """One more than the highest slot number used (the replay's slot table size)."""
        return 1 + max((op.slot for op in self.ops), default=-1)

    @property
    def tids(self) -> list[int]:
        """The simulated threads the trace uses, in increasing order."""
        return sorted({op.tid for op in self.ops})

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Trace(self.ops[index])
        return self.ops[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and self.ops == other.ops

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"<Trace {len(self.ops)} ops, {self.slots} slots, threads {self.tids}>"

    # --- text -----------------------------------------------------------
    def dumps(self) -> str:
        """The trace as text, one operation a line."""
        return "".join(f"{op}\n" for op in self.ops)

    def save(self, path) -> None:
        """Write the trace text to ``path``."""
        with open(path, "w", encoding="utf-8") as out:
            out.write(self.dumps())

    @classmethod
    def parse(cls, text: str) -> "Trace":
        """Read the trace text format (raises ValueError naming the bad line)."""
        ops = []
        for lineno, line in enumerate(text.splitlines(), 1):
            op = _parse_line(line, lineno)
            if op is not None:
                ops.append(op)
        return cls(ops)

    @classmethod
    def load(cls, path) -> "Trace":
        """Read a trace file."""
        with open(path, encoding="utf-8") as src:
            return cls.parse(src.read())

    # --- from a heap ----------------------------------------------------
    @classmethod
    def from_history(cls, history: Iterable[Any]) -> "Trace":
        """Turn ``Heap.history`` events into a trace (pointers become slots).

        Calls the slot format cannot express (frees of pointers no event
        returned, mallopt, trim, ...) are listed in ``skipped`` by event index.
        """
        mapper = _SlotMapper()
        for event in history:
            mapper.event(event)
        return mapper.trace()


class _SlotMapper:
    """Turns a stream of pointer-level calls into slot operations."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.skipped: list[tuple[int, str]] = []
        self.slot_of: dict[int, int] = {}
        self.free_slots: list[int] = []
        self.next_slot = 0
        self.pending: list[int] = []  # slots of posix_memalign calls whose pointer is not known yet
        self.label: Optional[str] = None

    def _fresh(self) -> int:
        if self.free_slots:
            return self.free_slots.pop()
        self.next_slot += 1
        return self.next_slot - 1

    def _release(self, ptr: int) -> None:
        slot = self.slot_of.pop(ptr)
        self.free_slots.append(slot)

    def _known(self, ptr: int) -> Optional[int]:
        slot = self.slot_of.get(ptr)
        if slot is None and self.pending:
            # A posix_memalign result shows up first as the argument of a later call.
            slot = self.pending.pop(0)
            self.slot_of[ptr] = slot
        return slot

    def _emit(self, kind: str, slot: int, size: int = 0, arg: int = 0, tid: int = 0) -> None:
        self.ops.append(Op(kind, slot, size, arg, tid, self.label))
        self.label = None

    def alloc(self, kind: str, ptr: int, size: int, arg: int = 0, tid: int = 0, where: int = 0) -> None:
        """A call that returned ``ptr`` (0: failed; it still goes in the trace)."""
        if ptr and ptr in self.slot_of:
            self.skipped.append((where, f"{kind} returned 0x{ptr:x}, which is still live"))
            self._release(ptr)
        slot = self._fresh()
        self._emit(kind, slot, size, arg, tid)
        if ptr:
            self.slot_of[ptr] = slot
        else:
            self.free_slots.append(slot)

    def posix_memalign(self, align: int, size: int, tid: int = 0) -> None:
        """A call whose pointer the log does not show: bound at its first use."""
        slot = self._fresh()
        self._emit("a", slot, size, align, tid)
        self.pending.append(slot)

    def free(self, ptr: int, tid: int = 0, where: int = 0) -> None:
        if not ptr:
            return
        slot = self._known(ptr)
        if slot is None:
            self.skipped.append((where, f"free of 0x{ptr:x}, never returned"))
            return
        self._emit("f", slot, tid=tid)
        self._release(ptr)

    def realloc(self, old: int, size: int, new: int, tid: int = 0, where: int = 0) -> None:
        if not old:
            self.alloc("m", new, size, tid=tid, where=where)
            return
        slot = self._known(old)
        if slot is None:
            self.skipped.append((where, f"realloc of 0x{old:x}, never returned"))
            if new:
                self.alloc("m", new, size, tid=tid, where=where)
            return
        self._emit("r", slot, size, tid=tid)
        if new:
            del self.slot_of[old]
            self.slot_of[new] = slot
        elif size == 0:
            self._release(old)

    def event(self, event: Any) -> None:
        """One ``Heap.history`` event (index, op, args, result, tid, label)."""
        op, args, result, tid = event.op, tuple(event.args), event.result, event.tid
        where = getattr(event, "index", len(self.ops))
        if getattr(event, "abort", None):
            self.skipped.append((where, f"{op}{args} aborted: {event.abort}"))
            return
        if getattr(event, "label", None):
            self.label = event.label
        if op == "malloc":
            self.alloc("m", result, args[0], tid=tid, where=where)
        elif op == "calloc":
            self.alloc("c", result, args[1], args[0], tid=tid, where=where)
        elif op in ("memalign", "aligned_alloc"):
            self.alloc("a", result, args[1], args[0], tid=tid, where=where)
        elif op == "posix_memalign":
            ptr = result[1] if isinstance(result, tuple) else result
            self.alloc("a", ptr, args[1], args[0], tid=tid, where=where)
        elif op == "valloc":
            self.alloc("a", result, args[0], _PAGE, tid=tid, where=where)
        elif op == "pvalloc":
            self.alloc("a", result, -(-max(args[0], 1) // _PAGE) * _PAGE, _PAGE, tid=tid, where=where)
        elif op == "realloc":
            self.realloc(args[0], args[1], result, tid=tid, where=where)
        elif op == "free":
            self.free(args[0], tid=tid, where=where)
        else:
            self.skipped.append((where, f"{op}{args} has no trace form"))

    def trace(self) -> Trace:
        return Trace(self.ops, self.skipped)


@contextmanager
def record(heap) -> Iterator[Trace]:
    """Record the calls made on ``heap`` inside the ``with`` block as a trace::

    with record(heap) as trace:
        p = heap.malloc(24); heap.free(p)
    print(trace.dumps())   # m 0 24 / f 0
    """
    start = len(heap.history)
    trace = Trace()
    try:
        yield trace
    finally:
        recorded = Trace.from_history(heap.history[start:])
        trace.ops[:] = recorded.ops
        trace.skipped[:] = recorded.skipped


# --- loaders ----------------------------------------------------------------

_MTRACE_LINE = re.compile(r"^@ .*?\s([-+<>!])\s+(0x[0-9a-fA-F]+|\(nil\))(?:\s+(0x[0-9a-fA-F]+))?\s*$")


def _num(text: Optional[str]) -> int:
    """A number as mtrace/ltrace print it; NULL (``nil``, ``(nil)``, ``NULL``) is 0."""
    if not text or text in ("nil", "(nil)", "NULL"):
        return 0
    try:
        return int(text, 0)
    except ValueError:  # ltrace prints unknown arguments in other shapes; they are not sizes or pointers
        return 0


def load_mtrace(path) -> Trace:
    """Load a glibc ``mtrace`` log (``MALLOC_TRACE=file`` with ``mtrace()``).

    ``+ ptr size`` (malloc, calloc, memalign: mtrace does not tell them
    apart, so all become ``m``), ``- ptr`` (free), ``< old`` followed by
    ``> new size`` (realloc) and ``! old size`` (a failed realloc). Frees of
    pointers the log never returned (allocated before ``mtrace()``) go to
    ``skipped``.
    """
    mapper = _SlotMapper()
    realloc_from: Optional[int] = None
    with open(path, encoding="utf-8", errors="replace") as src:
        for lineno, line in enumerate(src, 1):
            match = _MTRACE_LINE.match(line)
            if not match:
                continue
            sign, ptr_text, size_text = match.groups()
            ptr, size = _num(ptr_text), _num(size_text)
            if sign == "+":
                mapper.alloc("m", ptr, size, where=lineno)
            elif sign == "-":
                mapper.free(ptr, where=lineno)
            elif sign == "<":
                realloc_from = ptr
            elif sign == ">":
                mapper.realloc(realloc_from or 0, size, ptr, where=lineno)
                realloc_from = None
            elif sign == "!":
                mapper.realloc(ptr, size, 0, where=lineno)
    return mapper.trace()


_LTRACE_PREFIX = re.compile(
    r"^(?:\[pid (?P<pid1>\d+)\]\s+|(?P<pid2>\d+)\s+)?"  # -f: "[pid N] " or "N "
    r"(?:\d+:\d+:\d+(?:\.\d+)?\s+|\d+\.\d+\s+)?"  # -t/-tt/-ttt/-r timestamps
    r"(?:\S+->)?"  # "prog->" / "libc.so.6->" library prefix
)
_LTRACE_CALL = re.compile(
    r"(?P<fn>malloc|calloc|realloc|free|memalign|aligned_alloc|posix_memalign|valloc|pvalloc)"
    r"\((?P<args>[^)<]*)(?:\)\s*=\s*(?P<ret>\S+)|\s*<unfinished \.\.\.>)"
)
_LTRACE_RESUMED = re.compile(r"<\.\.\. (?P<fn>\w+) resumed>\s*(?P<args>[^)]*)\)\s*=\s*(?P<ret>\S+)")


def load_ltrace(path) -> Trace:
    """Load an ltrace log of the malloc family (``ltrace -e malloc+free+...``).

    Reads lines like ``malloc(24) = 0x55...``, ``free(0x55...) = <void>``,
    ``realloc(0x55..., 200) = 0x55...``, ``calloc(4, 16) = 0x...``,
    ``memalign(64, 100) = 0x...``, with or without a pid prefix (``-f``: each
    pid becomes a simulated thread, numbered in order of appearance), a
    timestamp or a ``prog->`` library prefix, and ``<unfinished ...>`` /
    ``<... malloc resumed>`` pairs. ``posix_memalign`` does not show its
    pointer: it is bound to the first unknown pointer used later.
    """
    mapper = _SlotMapper()
    tids: dict[str, int] = {}
    unfinished: dict[tuple[str, str], str] = {}
    with open(path, encoding="utf-8", errors="replace") as src:
        for lineno, line in enumerate(src, 1):
            prefix = _LTRACE_PREFIX.match(line)
            pid = (prefix.group("pid1") or prefix.group("pid2") or "") if prefix else ""
            rest = line[prefix.end() :] if prefix else line
            tid = tids.setdefault(pid, len(tids))
            call = _LTRACE_CALL.match(rest)
            if call:
                fn, args, ret = call.group("fn"), call.group("args"), call.group("ret")
                if ret is None:
                    unfinished[(pid, fn)] = args
                    continue
            else:
                resumed = _LTRACE_RESUMED.search(rest)
                if not resumed:
                    continue
                fn = resumed.group("fn")
                args = unfinished.pop((pid, fn), "") + resumed.group("args")
                ret = resumed.group("ret")
            _ltrace_call(mapper, fn, [a.strip() for a in args.split(",") if a.strip()], ret, tid, lineno)
    return mapper.trace()


def _ltrace_call(mapper: _SlotMapper, fn: str, args: list[str], ret: str, tid: int, lineno: int) -> None:
    value = 0 if ret in ("<void>", "nil", "(nil)") else _num(ret)
    nums = [_num(a) for a in args]
    if fn == "malloc":
        mapper.alloc("m", value, nums[0], tid=tid, where=lineno)
    elif fn == "calloc":
        mapper.alloc("c", value, nums[1], nums[0], tid=tid, where=lineno)
    elif fn in ("memalign", "aligned_alloc"):
        mapper.alloc("a", value, nums[1], nums[0], tid=tid, where=lineno)
    elif fn == "valloc":
        mapper.alloc("a", value, nums[0], _PAGE, tid=tid, where=lineno)
    elif fn == "pvalloc":
        mapper.alloc("a", value, -(-max(nums[0], 1) // _PAGE) * _PAGE, _PAGE, tid=tid, where=lineno)
    elif fn == "posix_memalign":
        if value == 0:  # returned 0: success
            mapper.posix_memalign(nums[1], nums[2], tid=tid)
    elif fn == "realloc":
        mapper.realloc(nums[0], nums[1], value, tid=tid, where=lineno)
    elif fn == "free":
        mapper.free(nums[0], tid=tid, where=lineno)


# --- replay -----------------------------------------------------------------


def _new_heap(profile: str, tunables: dict) -> Any:
    from . import Heap  # the native class, imported late so this module loads without it

    return Heap(profile=profile, **tunables)


def play(trace: Iterable[Op], heap) -> Iterator[tuple[int, Op, int]]:
    """Run the operations on ``heap`` one by one, yielding ``(index, op, pointer)``.

    ``pointer`` is what the call returned (0 for free, NULL or a failed call);
    for a free it is the pointer freed. A ``HeapAbort`` propagates.
    """
    ptrs: dict[int, int] = {}
    malloc, calloc, realloc, free, memalign = heap.malloc, heap.calloc, heap.realloc, heap.free, heap.memalign
    label = getattr(heap, "label", None)
    for index, op in enumerate(trace):
        kind, slot, size, arg, tid, note = op  # unpacked once: cheaper than six attribute reads
        if note and label is not None:
            label(note)
        if kind == "m":
            ptr = ptrs[slot] = malloc(size, tid=tid)
        elif kind == "f":
            ptr = ptrs.pop(slot, 0)
            free(ptr, tid=tid)
        elif kind == "r":
            ptr = realloc(ptrs.get(slot, 0), size, tid=tid)
            if ptr or size == 0:
                ptrs[slot] = ptr
        elif kind == "c":
            ptr = ptrs[slot] = calloc(arg, size, tid=tid)
        else:
            ptr = ptrs[slot] = memalign(arg, size, tid=tid)
        yield index, op, ptr


class Replay:
    """Time series of one :func:`replay` (see the module docstring for the measures).

    Per operation (arrays of length ``len(trace)``): ``live_bytes``, ``footprint``.
    Per sample (every ``every`` operations and after the last; ``samples`` holds
    the operation indexes): ``free_bytes[kind]`` for kind in :data:`FREE_KINDS`
    and ``fragmentation``. ``failed`` counts calls that returned NULL;
    ``abort`` is ``(index, message)`` when a call hit a glibc check (the series
    stop there); ``counters`` is ``Heap.counters()`` at the end.
    """

    def __init__(self, trace: Trace, every: int):
        self.trace = trace
        self.every = every
        self.live_bytes = array.array("q")
        self.footprint = array.array("q")
        self.samples = array.array("q")
        self.free_bytes: dict[str, array.array] = {kind: array.array("q") for kind in FREE_KINDS}
        self.fragmentation = array.array("d")
        self.failed = 0
        self.abort: Optional[tuple[int, str]] = None
        self.counters: dict[str, int] = {}
        self.seconds = 0.0  # wall-clock time of the replay loop
        self.cpu_seconds = 0.0  # this process's CPU time in it (steadier on a busy machine)

    def __len__(self) -> int:
        return len(self.live_bytes)

    @property
    def peak_live(self) -> int:
        """The highest live-bytes value."""
        return max(self.live_bytes, default=0)

    @property
    def peak_footprint(self) -> int:
        """The highest footprint."""
        return max(self.footprint, default=0)

    def summary(self) -> str:
        """A few lines: operations, peaks, the final free bytes and fragmentation."""
        lines = [
            f"{len(self)} ops in {self.seconds:.2f} s ({self.cpu_seconds:.2f} s CPU), {self.failed} failed"
            + (f", aborted at op {self.abort[0]}: {self.abort[1]}" if self.abort else ""),
            f"peak live {self.peak_live} B, peak footprint {self.peak_footprint} B",
        ]
        if self.samples:
            last = {kind: self.free_bytes[kind][-1] for kind in FREE_KINDS}
            lines.append("final free: " + ", ".join(f"{k} {v}" for k, v in last.items()))
            lines.append(f"final fragmentation {self.fragmentation[-1]:.3f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Replay {len(self)} ops, peak live {self.peak_live}, peak footprint {self.peak_footprint}>"

    def plot(self, path=None, title: Optional[str] = None):
        """Plot the series with matplotlib (extra ``plot``); saves to ``path`` when given.

        Top panel: live bytes and footprint per operation. Bottom panel: free
        bytes per kind (stacked) at the samples, fragmentation on the right axis.
        Returns the matplotlib Figure.
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("Replay.plot needs matplotlib: pip install 'ptmalloc_rs[plot]'") from exc
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
        xs = range(len(self))
        top.plot(xs, self.live_bytes, label="live bytes", lw=1)
        top.plot(xs, self.footprint, label="footprint (heap + mmapped)", lw=1)
        top.set_ylabel("bytes")
        top.legend(loc="upper left")
        top.set_title(title or f"replay of {len(self)} operations")
        samples = list(self.samples)
        if samples:
            from .render import STATE_COLOURS

            colours = [STATE_COLOURS[k] for k in FREE_KINDS]
            series = [list(self.free_bytes[k]) for k in FREE_KINDS]
            bottom.stackplot(samples, *series, labels=FREE_KINDS, colors=colours, alpha=0.9)
            bottom.set_ylabel("free bytes")
            bottom.legend(loc="upper left", fontsize="small", ncol=3)
            frag = bottom.twinx()
            frag.plot(samples, list(self.fragmentation), color="black", lw=1, label="fragmentation")
            frag.set_ylim(0, 1)
            frag.set_ylabel("fragmentation")
            frag.legend(loc="upper right", fontsize="small")
        bottom.set_xlabel("operation")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
            plt.close(fig)
        return fig


def _footprint_reader(heap) -> Callable[[], int]:
    """Bytes taken from the system: the brk heap, the mmapped chunks, other arenas' heaps.

    Reads ``Heap.regions()`` (a handful of entries, cheap on every operation);
    the non-main arenas' share is their ``system_mem`` (their heaps are
    reserved larger than they are used), looked up only when there are some.
    """
    regions, arenas = heap.regions, heap.arenas

    def footprint() -> int:
        total = 0
        other_arenas = False
        for start, end, kind in regions():
            if kind in ("heap", "mmap"):
                total += end - start
            elif kind == "arena":
                other_arenas = True
        if other_arenas:
            total += sum(a.system_mem for a in arenas() if not a.is_main)
        return total

    return footprint


def _sample_free(heap, replay: Replay, index: int) -> None:
    sums = dict.fromkeys(FREE_KINDS, 0)
    largest = 0
    for chunk in heap.chunks():
        state = chunk.state
        if state in sums:
            sums[state] += chunk.size
            largest = max(largest, chunk.size)
    total = sum(sums.values())
    replay.samples.append(index)
    for kind in FREE_KINDS:
        replay.free_bytes[kind].append(sums[kind])
    replay.fragmentation.append(1.0 - largest / total if total else 0.0)


def replay(
    trace: Trace | Iterable[Op],
    *,
    every: Optional[int] = None,
    footprint_every: int = 1,
    profile: str = "glibc-2.36",
    heap=None,
    keep_history: Optional[bool] = None,
    **tunables,
) -> Replay:
    """Replay ``trace`` in a fresh ``Heap(profile, **tunables)`` (or in ``heap``).

    ``every``: walk the heap for free bytes and fragmentation every that many
    operations (default: about 200 samples over the trace; 0 never, only
    after the last op). ``footprint_every``: query the footprint every that
    many operations (the value is carried between queries). Live bytes are
    kept for every operation. A call that hits a glibc check stops the replay
    and is kept in ``abort``. ``keep_history``: keep every call in
    ``heap.history`` (default: only when ``heap`` is yours; a heap made here
    forgets its history as it goes, so long replays stay small).
    """
    from . import HeapAbort

    if not isinstance(trace, Trace):
        trace = Trace(trace)
    n = len(trace)
    if every is None:
        every = max(1, n // 200)
    if keep_history is None:
        keep_history = heap is not None
    if heap is None:
        heap = _new_heap(profile, tunables)
    forget = None if keep_history else heap.clear_history
    result = Replay(trace, every)
    footprint = _footprint_reader(heap)
    live_add = result.live_bytes.append
    foot_add = result.footprint.append
    sizes: dict[int, int] = {}
    live = 0
    foot = footprint()
    index = -1
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        for index, op, ptr in play(trace, heap):
            kind, slot, size = op[0], op[1], op[2]
            if kind == "f":
                live -= sizes.pop(slot, 0)
            elif ptr:
                request = size * op[3] if kind == "c" else size
                live += request - sizes.get(slot, 0) if kind == "r" else request
                sizes[slot] = request
            elif kind == "r" and size == 0:
                live -= sizes.pop(slot, 0)
            else:
                result.failed += 1
            if index % footprint_every == 0:
                foot = footprint()
            live_add(live)
            foot_add(foot)
            if every and index % every == every - 1:
                _sample_free(heap, result, index)
            if forget is not None and index & 0xFFFF == 0xFFFF:
                forget()
    except HeapAbort as abort:
        result.abort = (index + 1, getattr(abort, "message", str(abort)))
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    if len(result) and (not result.samples or result.samples[-1] != len(result) - 1):
        _sample_free(heap, result, len(result) - 1)
    if hasattr(heap, "counters"):
        result.counters = dict(heap.counters())
    return result
