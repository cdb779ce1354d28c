"""Pictures of a heap: pwndbg-style text, HTML/SVG figures, a trace timeline, PNG.

Text, in the layout pwndbg users read:

* :func:`bins_text` is pwndbg's ``bins``: ``tcachebins`` (user pointers, with
  the allocator's count), ``fastbins``, ``unsortedbin``, ``smallbins``,
  ``largebins`` (chunk addresses), each chain ending like pwndbg's
  (``◂— 0`` for a NULL end, the bin header as ``(main_arena+96)`` for the
  doubly linked bins). Every chain is walked in full; a walk that stopped on
  corruption says why.
* :func:`vis` is pwndbg's ``vis_heap_chunks``: the heap as rows of two 8-byte
  words with their address and ASCII, chunk after chunk, bin membership and the
  top chunk marked with ``<--``.

Figures (the same drawing goes to SVG and, with Pillow, to PNG):

* :func:`to_svg` / :func:`to_html`: each mapped stretch of the heap as a vertical
  bar whose heights are proportional to addresses, chunks coloured by state
  (see :data:`STATE_COLOURS`), the bins beside it. ``Heap._repr_html_`` is
  :func:`to_html`, so a heap shows itself in Jupyter. The top chunk is drawn
  clipped (it is usually far larger than everything else) and labelled with
  its real size. Chunks thinner than a pixel are drawn together, coloured by
  the state holding most of their bytes, so a heap of any size draws fast.
* :func:`timeline`: one row per operation of a trace (villoc's picture), each
  row the heap's real chunks after that operation, the chunk the operation
  touched outlined.
* :func:`to_png`: the heap figure as a PNG file (extra ``png``: Pillow).
"""

from __future__ import annotations

import bisect
import html
import math
import struct
from typing import Any, Iterable, NamedTuple, Optional

from ._native import HeapError

__all__ = [
    "STATE_COLOURS",
    "bins_text",
    "vis",
    "to_svg",
    "to_html",
    "to_png",
    "timeline",
]

#: Fill colour of a chunk in each state (also used for the bins of that kind).
STATE_COLOURS = {
    "allocated": "#4e79a7",
    "tcache": "#f28e2b",
    "fastbin": "#e15759",
    "unsorted": "#b07aa1",
    "small": "#59a14f",
    "large": "#76b7b2",
    "top": "#bab0ac",
    "mmapped": "#edc948",
    "deferred": "#ff9da7",
}
_UNKNOWN_COLOUR = "#333333"

# Size of glibc 2.36's struct malloc_state on x86_64: addresses inside it are
# shown as main_arena+offset, as pwndbg does.
_MALLOC_STATE_SIZE = 0x898
_TOP_CLIP = 0x100  # bytes of the top chunk drawn at least, when it is clipped


# --- bins as text -------------------------------------------------------------


class _BinLine(NamedTuple):
    """One non-empty bin ready to print: its pwndbg key, chain and ending."""

    kind: str
    key: str
    count: int
    entries: list  # addresses as pwndbg shows them (user pointers for tcache)
    tail: str
    corruption: Optional[str]
    chunks: list


def _bin_key(b) -> str:
    if b.kind == "unsorted":
        return "all"
    if b.kind == "large":
        top = "∞" if b.max_size is None or b.max_size >= 1 << 62 else f"{b.max_size:#x}"
        return f"{b.min_size:#x}-{top}"
    return f"{b.min_size:#x}"


def _arena_name(addr: int, arena) -> str:
    if arena is not None and arena.address <= addr < arena.address + _MALLOC_STATE_SIZE:
        base = "main_arena" if arena.is_main else f"arena[{arena.index}]"
        return f"{addr:#x} ({base}+{addr - arena.address})"
    return f"{addr:#x}"


def _bin_line(b, arena) -> Optional[_BinLine]:
    chunks = list(b.chunks)
    if not chunks and not b.count and not b.corruption:
        return None
    single = b.kind in ("tcache", "fastbin")
    entries = [c.mem if b.kind == "tcache" else c.address for c in chunks]
    if not chunks:
        tail = "0"
    elif single or b.corruption:
        # Where the list ends, or where the walk stopped (a loop, a bad pointer).
        end = chunks[-1].fd
        tail = f"{end:#x}" if end else "0"
    else:
        # The last chunk's fd is the bin header; the header's fd is the first chunk.
        header = chunks[-1].fd
        entries.append(_arena_name(header, arena))
        tail = f"{chunks[0].address:#x}"
    return _BinLine(b.kind, _bin_key(b), b.count, entries, tail, b.corruption, chunks)


def _chain(line: _BinLine, limit: Optional[int] = None) -> str:
    entries = [e if isinstance(e, str) else f"{e:#x}" for e in line.entries]
    if limit is not None and len(entries) > limit:
        entries = entries[:limit] + [f"… (+{len(line.entries) - limit})"]
    text = " —▸ ".join(entries) + " ◂— " + line.tail if entries else line.tail
    if line.corruption:
        text += f" [corrupted: {line.corruption}]"
    return text


_SECTIONS = (
    ("tcachebins", "tcache"),
    ("fastbins", "fastbin"),
    ("unsortedbin", "unsorted"),
    ("smallbins", "small"),
    ("largebins", "large"),
)


def _bin_sections(heap, arena: int = 0, tid: int = 0) -> list[tuple[str, list[_BinLine]]]:
    arenas = heap.arenas()
    arena_obj = arenas[arena] if arena < len(arenas) else None
    all_bins = list(heap.tcache(tid)) + list(heap.bins(arena))
    sections = []
    for title, kind in _SECTIONS:
        lines = [line for b in all_bins if b.kind == kind and (line := _bin_line(b, arena_obj)) is not None]
        sections.append((title, lines))
    return sections


def bins_text(heap, arena: int = 0, tid: int = 0) -> str:
    """pwndbg's ``bins`` for one arena and one thread's tcache, every chain in full::

    tcachebins
    0x20 [  2]: 0x5555555592c0 —▸ 0x5555555592a0 ◂— 0
    fastbins
    empty
    unsortedbin
    all: 0x555555559300 —▸ 0x7ffff7e19ce0 (main_arena+96) ◂— 0x555555559300
    ...
    """
    out = []
    for title, lines in _bin_sections(heap, arena, tid):
        out.append(title)
        if not lines:
            out.append("empty")
        for line in lines:
            count = f" [{line.count:3d}]" if line.kind == "tcache" else ""
            out.append(f"{line.key}{count}: {_chain(line)}")
    return "\n".join(out) + "\n"


# --- vis_heap_chunks ------------------------------------------------------------

_ANSI = ("\x1b[32m", "\x1b[34m", "\x1b[33m", "\x1b[36m", "\x1b[35m", "\x1b[31m")
_ANSI_RESET = "\x1b[0m"
_PRINTABLE = bytes(c if 0x20 <= c < 0x7F else ord(".") for c in range(256))


def _annotations(heap, arena: int) -> dict[int, list[str]]:
    """Address -> pwndbg's ``<--`` marks (tcache entries point at user memory)."""
    marks: dict[int, list[str]] = {}
    tids = {0}
    arenas = heap.arenas()
    if arena < len(arenas):
        tids.update(getattr(arenas[arena], "threads", ()) or ())
    for tid in sorted(tids):
        for b in heap.tcache(tid):
            key = _bin_key(b)
            suffix = f" (t{tid})" if tid else ""
            for i, c in enumerate(b.chunks):
                marks.setdefault(c.mem, []).append(f"tcachebins[{key}][{i}/{b.count}]{suffix}")
    names = {"fastbin": "fastbins", "unsorted": "unsortedbin", "small": "smallbins", "large": "largebins"}
    for b in heap.bins(arena):
        key = _bin_key(b)
        for i, c in enumerate(b.chunks):
            marks.setdefault(c.address, []).append(f"{names[b.kind]}[{key}][{i}]")
    return marks


def _read_runs(heap, chunks: list) -> dict[int, bytes]:
    """Each chunk's bytes, read one contiguous stretch at a time (the top: its header)."""
    data: dict[int, bytes] = {}
    i = 0
    while i < len(chunks):
        j = i
        end = chunks[i].address + _shown_size(chunks[i])
        while j + 1 < len(chunks) and chunks[j + 1].address == end:
            j += 1
            end = chunks[j].address + _shown_size(chunks[j])
        start = chunks[i].address
        try:
            blob = heap.read(start, end - start)
        except HeapError:  # a stretch with an unmapped page (corrupted sizes): read chunk by chunk
            blob = None
        for c in chunks[i : j + 1]:
            n = _shown_size(c)
            if blob is not None:
                data[c.address] = blob[c.address - start : c.address - start + n]
            else:
                try:
                    data[c.address] = heap.read(c.address, n)
                except HeapError:
                    data[c.address] = b""
        i = j + 1
    return data


def _shown_size(chunk) -> int:
    return 16 if chunk.state == "top" else max(16, chunk.size)


def vis(
    heap,
    start: Optional[int] = None,
    count: Optional[int] = None,
    *,
    arena: Optional[int] = None,
    color: bool = False,
    collapse: bool = True,
) -> str:
    """pwndbg's ``vis_heap_chunks``: ``count`` chunks (all by default) from ``start``.

    ``start`` is any address inside a chunk (default: the arena's first chunk).
    Each row is ``address  word0  word1  ascii``; marks like
    ``<-- tcachebins[0x20][0/2]`` and ``<-- Top chunk`` end the row the bin
    points to. Chunks are told apart by a blank line (``color=True``: by ANSI
    colours, as pwndbg does). ``collapse`` replaces three or more identical rows
    inside a chunk by the first, ``...`` and the last.
    """
    if arena is None:
        holder = heap.locate(start) if start is not None else None
        arena = holder.arena if holder is not None else 0
    chunks = list(heap.chunks(arena))
    if start is not None:
        first = next((i for i, c in enumerate(chunks) if c.address + max(c.size, 16) > start), len(chunks))
        chunks = chunks[first:]
    if count is not None:
        chunks = chunks[:count]
    marks = _annotations(heap, arena)
    data = _read_runs(heap, chunks)
    out: list[str] = []
    for n, chunk in enumerate(chunks):
        if chunk.state == "top":
            marks.setdefault(chunk.address, []).append("Top chunk")
        rows = _chunk_rows(chunk, data.get(chunk.address, b""), marks, collapse)
        if color:
            out.extend(_ANSI[n % len(_ANSI)] + row + _ANSI_RESET for row in rows)
        else:
            if n:
                out.append("")
            out.extend(rows)
    if count is None and chunks and chunks[-1].state != "top":
        # The walk ended before the top chunk: a size was corrupted. Say where and why.
        last = chunks[-1]
        bad = last.address + max(last.size, 16)
        try:
            out.extend(["", _raw_row(bad, heap.read(bad, 16), {bad: ["the walk stops here"]})])
        except HeapError:
            pass
        problems = heap.check() if hasattr(heap, "check") else []
        why = f": {problems[0]}" if problems else ""
        out.append(f"[the chunk walk stopped after {last.address:#x} (size {last.raw_size:#x}){why}]")
    return "\n".join(out) + "\n"


def _chunk_rows(chunk, blob: bytes, marks: dict, collapse: bool) -> list[str]:
    base = chunk.address
    n = len(blob) // 16
    if n == 0:
        return [f"{base:#x}\t<unreadable>"]
    blob = blob[: n * 16]
    ascii_text = blob.translate(_PRINTABLE).decode("ascii")  # once per chunk, sliced per row
    words = list(struct.iter_unpack("<QQ", blob))
    rows = []
    i = 0
    while i < n:
        run = i + 1
        if collapse and base + 16 * i not in marks:
            while run < n and words[run] == words[i] and base + 16 * run not in marks:
                run += 1
        rows.append(_row(base + 16 * i, words[i], ascii_text[16 * i : 16 * i + 16], marks))
        if run - i >= 3:
            last = run - 1
            rows.append("...")
            rows.append(_row(base + 16 * last, words[last], ascii_text[16 * last : 16 * last + 16], marks))
            i = run
        else:
            i += 1
    return rows


def _row(addr: int, words: tuple[int, int], ascii_text: str, marks: dict) -> str:
    text = f"{addr:#x}\t{words[0]:#018x}\t{words[1]:#018x}\t{ascii_text}"
    if addr in marks:
        text += "\t <-- " + ", ".join(marks[addr])
    return text


def _raw_row(addr: int, raw: bytes, marks: dict) -> str:
    return _row(addr, struct.unpack("<QQ", raw), raw.translate(_PRINTABLE).decode("ascii"), marks)


# --- a tiny drawing: the same scene goes to SVG and to PNG -------------------------


class _Scene:
    """Rectangles, texts and lines in pixels, drawn by :meth:`svg` or :meth:`png`."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.width = 0.0
        self.height = 0.0

    def _grow(self, x: float, y: float) -> None:
        self.width = max(self.width, x)
        self.height = max(self.height, y)

    def rect(self, x, y, w, h, fill, title=None, stroke=None, stroke_width=1.0) -> None:
        self.items.append(("rect", x, y, w, h, fill, title, stroke, stroke_width))
        self._grow(x + w, y + h)

    def text(self, x, y, text, size=11, fill="#222222", anchor="start", bold=False) -> None:
        self.items.append(("text", x, y, text, size, fill, anchor, bold))
        width = len(text) * size * 0.62
        self._grow(x + (width if anchor == "start" else width / 2 if anchor == "middle" else 0), y + 4)

    def line(self, x1, y1, x2, y2, stroke="#888888", width=1.0) -> None:
        self.items.append(("line", x1, y1, x2, y2, stroke, width))
        self._grow(max(x1, x2), max(y1, y2))

    def svg(self, margin: float = 8) -> str:
        w, h = int(self.width + margin), int(self.height + margin)
        out = [
            (
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
                'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">'
            ),
            f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>',
        ]
        esc = html.escape
        for item in self.items:
            if item[0] == "rect":
                _, x, y, rw, rh, fill, title, stroke, sw = item
                stroke_attr = f' stroke="{stroke}" stroke-width="{sw:g}"' if stroke else ""
                head = f'<rect x="{x:.1f}" y="{y:.1f}" width="{rw:.1f}" height="{rh:.1f}" fill="{fill}"{stroke_attr}'
                out.append(f"{head}><title>{esc(title)}</title></rect>" if title else head + "/>")
            elif item[0] == "text":
                _, x, y, text, size, fill, anchor, bold = item
                weight = ' font-weight="bold"' if bold else ""
                out.append(
                    f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" '
                    f'text-anchor="{anchor}"{weight} xml:space="preserve">{esc(text)}</text>'
                )
            else:
                _, x1, y1, x2, y2, stroke, width = item
                out.append(
                    f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                    f'stroke="{stroke}" stroke-width="{width:g}"/>'
                )
        out.append("</svg>")
        return "\n".join(out)

    def png(self, path, margin: float = 8, scale: float = 1.0) -> None:
        try:
            from PIL import Image, ImageDraw, ImageFont
        except ImportError as exc:
            raise ImportError("to_png needs Pillow: pip install 'ptmalloc_rs[png]'") from exc
        w, h = int((self.width + margin) * scale), int((self.height + margin) * scale)
        image = Image.new("RGB", (max(w, 1), max(h, 1)), "white")
        draw = ImageDraw.Draw(image)
        fonts: dict[tuple[int, bool], Any] = {}

        def font(size: int, bold: bool):
            key = (size, bold)
            if key not in fonts:
                name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
                try:
                    fonts[key] = ImageFont.truetype(name, int(size * scale))
                except OSError:
                    try:
                        fonts[key] = ImageFont.load_default(size=int(size * scale))
                    except TypeError:  # Pillow < 10.1: one bitmap size
                        fonts[key] = ImageFont.load_default()
            return fonts[key]

        anchors = {"start": "ls", "middle": "ms", "end": "rs"}
        for item in self.items:
            if item[0] == "rect":
                _, x, y, rw, rh, fill, _title, stroke, sw = item
                box = [x * scale, y * scale, max(x * scale, (x + rw) * scale - 1), max(y * scale, (y + rh) * scale - 1)]
                draw.rectangle(box, fill=fill, outline=stroke, width=max(1, int(sw * scale)) if stroke else 0)
            elif item[0] == "text":
                _, x, y, text, size, fill, anchor, bold = item
                try:
                    draw.text((x * scale, y * scale), text, fill=fill, font=font(size, bold), anchor=anchors[anchor])
                except (ValueError, TypeError):  # a bitmap font takes no anchor
                    draw.text((x * scale, (y - size) * scale), text, fill=fill, font=font(size, bold))
            else:
                _, x1, y1, x2, y2, stroke, width = item
                draw.line([x1 * scale, y1 * scale, x2 * scale, y2 * scale], fill=stroke, width=max(1, int(width)))
        image.save(path, format="PNG")


def _colour(state: str) -> str:
    return STATE_COLOURS.get(state, _UNKNOWN_COLOUR)


def _spans(extents: list[tuple[int, int, str, Any]], p0: float, length: float, a0: int, a1: int):
    """Map chunk extents (start, end, state, tag) in [a0, a1) onto pixels [p0, p0+length).

    Yields ``(pixel start, pixel end, state, title, tag)``; runs of chunks
    thinner than a pixel come out as one span coloured by the state holding
    most of their bytes (tag None), so the output is bounded by the pixels.
    """
    scale = length / max(1, a1 - a0)
    bucket_start = None
    bucket_end = 0.0
    bucket_bytes: dict[str, int] = {}
    bucket_first = bucket_last = 0
    bucket_n = 0

    def flush():
        state = max(bucket_bytes, key=bucket_bytes.get)
        title = f"{bucket_n} chunks {bucket_first:#x}-{bucket_last:#x}"
        return (bucket_start, max(bucket_end, bucket_start + 1.0), state, title, None)

    for start, end, state, tag in extents:
        s = p0 + (start - a0) * scale
        e = p0 + (end - a0) * scale
        if e - s >= 1.0:
            if bucket_start is not None:
                yield flush()
                bucket_start = None
            yield (s, e, state, None, tag)
            continue
        if bucket_start is None:
            bucket_start, bucket_bytes, bucket_first, bucket_n = s, {}, start, 0
        bucket_bytes[state] = bucket_bytes.get(state, 0) + (end - start)
        bucket_end, bucket_last = e, end
        bucket_n += 1
        if bucket_end - bucket_start >= 1.0:
            yield flush()
            bucket_start = None
    if bucket_start is not None:
        yield flush()


def _legend(scene: _Scene, x: float, y: float, states: Iterable[str]) -> float:
    for state in states:
        scene.rect(x, y - 9, 10, 10, _colour(state))
        scene.text(x + 14, y, state, size=11)
        x += 24 + len(state) * 7
    return x


# --- the heap figure ------------------------------------------------------------


class _Region(NamedTuple):
    name: str
    start: int
    end: int  # drawn end (top clipped)
    chunks: list


def _regions(heap) -> list[_Region]:
    """Contiguous stretches of chunks (arena heaps, mmapped chunks), in address order."""
    chunks = sorted(list(heap.chunks()) + list(heap.mmapped()), key=lambda c: c.address)
    regions: list[_Region] = []
    group: list = []

    def close():
        if not group:
            return
        ends = [c.address + c.size for c in group if c.state != "top"]
        rest_end = max(ends, default=group[0].address)
        end = max(c.address + c.size for c in group)
        tops = [c for c in group if c.state == "top"]
        if tops:
            top = tops[0]
            span = max(rest_end - group[0].address, 1)
            end = max(rest_end, top.address + min(top.size, max(_TOP_CLIP, span // 4)))
        first = group[0]
        if first.state == "mmapped":
            name = "mmapped chunks"
        else:
            name = "main arena heap" if first.arena == 0 else f"arena {first.arena} heap"
        regions.append(_Region(name, first.address, end, list(group)))
        group.clear()

    for c in chunks:
        if group:
            prev = group[-1]
            gap = c.address - (prev.address + prev.size)
            same_kind = (prev.state == "mmapped") == (c.state == "mmapped") and prev.arena == c.arena
            if gap > 0x10000 or not same_kind:
                close()
        group.append(c)
    close()
    return regions


def _chunk_extents(region: _Region) -> list[tuple[int, int, str, Any]]:
    return [(c.address, min(c.address + max(c.size, 16), region.end), c.state, c) for c in region.chunks]


def _chunk_title(c) -> str:
    parts = [f"chunk {c.address:#x} mem {c.mem:#x} size {c.size:#x} {c.state}"]
    if c.bin:
        parts.append(f"in {c.bin}")
    if c.request is not None:
        parts.append(f"request {c.request}")
    return ", ".join(parts)


def _region_height(region: _Region, row: float = 14.0, lo: float = 48.0, hi: float = 900.0) -> float:
    """Tall enough that the smallest chunk gets a labelled row, within [lo, hi] pixels."""
    smallest = min((max(c.size, 16) for c in region.chunks if c.state != "top"), default=region.end - region.start)
    return min(hi, max(lo, (region.end - region.start) * row / max(smallest, 1)))


def _heap_scene(heap, with_bins: bool = True, arena: int = 0, tid: int = 0) -> _Scene:
    scene = _Scene()
    regions = _regions(heap)
    chunks = [c for r in regions for c in r.chunks]
    used = sum(1 for c in chunks if c.state in ("allocated", "mmapped"))
    scene.text(8, 18, f"{len(chunks)} chunks: {used} in use, {len(chunks) - used} free", size=13, bold=True)
    _legend(scene, 8, 38, STATE_COLOURS)
    label_x, bar_x, bar_w = 150.0, 156.0, 64.0
    y = 60.0
    for region in regions:
        height = _region_height(region)
        real_end = max(c.address + c.size for c in region.chunks)
        scene.text(8, y + 10, f"{region.name} {region.start:#x}-{real_end:#x}", size=11, bold=True)
        y += 18
        last_label = -1e9
        for s, e, state, title, chunk in _spans(_chunk_extents(region), y, height, region.start, region.end):
            tall = e - s >= 3
            scene.rect(
                bar_x,
                s,
                bar_w,
                e - s,
                _colour(state),
                title=title or _chunk_title(chunk),
                stroke="#ffffff" if tall else None,
                stroke_width=0.5,
            )
            if chunk is not None and e - s >= 11 and s - last_label >= 11:
                scene.text(label_x, s + 10, f"{chunk.address:#x}", size=10, anchor="end")
                clipped = " (clipped)" if chunk.state == "top" and chunk.address + chunk.size > region.end else ""
                where = chunk.bin or chunk.state
                scene.text(bar_x + bar_w + 6, s + 10, f"{chunk.size:#x} {where}{clipped}", size=10)
                last_label = s
        y += height + 14
    if with_bins:
        _bins_column(scene, heap, 420.0, 60.0, arena=arena, tid=tid)
    return scene


def _bins_column(scene: _Scene, heap, x: float, y: float, limit: int = 6, arena: int = 0, tid: int = 0) -> float:
    for title, lines in _bin_sections(heap, arena, tid):
        scene.text(x, y, title, size=11, bold=True)
        y += 15
        if not lines:
            scene.text(x + 10, y, "empty", size=10, fill="#777777")
            y += 14
        for line in lines:
            count = f" [{line.count:3d}]" if line.kind == "tcache" else ""
            scene.rect(x, y - 9, 8, 10, _colour(line.kind))
            scene.text(x + 12, y, f"{line.key}{count}: {_chain(line, limit)}", size=10)
            y += 14
        y += 4
    return y


def to_svg(heap, arena: int = 0, tid: int = 0) -> str:
    """The heap as an SVG figure: address-proportional bars of chunks, bins beside them.

    Every arena's heaps and the mmapped chunks get a bar; the bins listed are
    arena ``arena``'s and thread ``tid``'s tcache.
    """
    return _heap_scene(heap, arena=arena, tid=tid).svg()


def _bins_html(heap, arena: int = 0, tid: int = 0) -> str:
    out = []
    for title, lines in _bin_sections(heap, arena, tid):
        out.append(f"<b>{title}</b>")
        if not lines:
            out.append('<span style="color:#777">empty</span>')
        for line in lines:
            count = f" [{line.count:3d}]" if line.kind == "tcache" else ""
            swatch = f'<span style="color:{_colour(line.kind)}">■</span>'
            out.append(f"{swatch} {html.escape(line.key + count)}: {html.escape(_chain(line))}")
    return "\n".join(out)


def to_html(heap, arena: int = 0, tid: int = 0) -> str:
    """HTML for Jupyter (``Heap._repr_html_``): the bars as SVG, the bins (``arena``, ``tid``) beside them."""
    svg = _heap_scene(heap, with_bins=False).svg()
    return (
        '<div class="ptmalloc-rs-heap" style="display:flex;gap:16px;align-items:flex-start">'
        f"<div>{svg}</div>"
        '<pre style="font-size:11px;line-height:1.35;max-height:640px;overflow:auto;margin:0">'
        f"{_bins_html(heap, arena, tid)}</pre></div>"
    )


def to_png(heap, path, scale: float = 1.0, arena: int = 0, tid: int = 0) -> None:
    """Write the :func:`to_svg` figure as a PNG at ``path`` (needs Pillow: extra ``png``)."""
    _heap_scene(heap, arena=arena, tid=tid).png(path, scale=scale)


# --- timeline ---------------------------------------------------------------------


def _as_trace(source):
    from .trace import Op, Trace

    if isinstance(source, Trace):
        return source
    items = list(source)
    if items and not isinstance(items[0], Op) and hasattr(items[0], "op"):
        return Trace.from_history(items)
    return Trace(items)


def _axis(rows: list, gap: int = 0x1000) -> list[tuple[int, int]]:
    """Address segments covering every drawn chunk; far-apart stretches get their own."""
    extents = sorted({(s, e) for _, _, row in rows for s, e, _, _ in row})
    segments: list[list[int]] = []
    for s, e in extents:
        if segments and s <= segments[-1][1] + gap:
            segments[-1][1] = max(segments[-1][1], e)
        else:
            segments.append([s, e])
    return [(s, e) for s, e in segments]


def _row_extents(heap) -> list[tuple[int, int, str, Any]]:
    out = []
    for c in list(heap.chunks()) + list(heap.mmapped()):
        size = max(c.size, 16)
        if c.state == "top":
            size = min(size, _TOP_CLIP)
        out.append((c.address, c.address + size, c.state, c))
    out.sort(key=lambda e: e[0])
    return out


def timeline(
    source,
    *,
    format: str = "svg",
    path=None,
    max_ops: int = 500,
    width: float = 900.0,
    profile: str = "glibc-2.36",
    heap=None,
    **tunables,
):
    """One row per operation of a trace (or a ``Heap.history``), villoc-style.

    The trace is replayed in a fresh ``Heap(profile, **tunables)`` (or in
    ``heap``); each row shows every chunk after that operation at its real
    address and size, coloured by state, the chunk the operation returned or
    freed outlined in black. Far-apart address ranges (the heap, mmapped
    chunks, other arenas) get their own stretch of the axis; the top chunk is
    drawn as its first 256 bytes. ``format``: ``"svg"`` or ``"html"`` (returns
    the text) or ``"png"`` (writes ``path``, needs Pillow). At most ``max_ops``
    rows are drawn.
    """
    from .trace import _new_heap, play

    trace = _as_trace(source)
    ops = trace.ops[:max_ops]
    if heap is None:
        heap = _new_heap(profile, tunables)
    rows = []
    for _, op, ptr in play(ops, heap):
        rows.append((op, ptr, _row_extents(heap)))
    scene = _timeline_scene(rows, width, truncated=len(trace) - len(ops))
    if format == "svg":
        return scene.svg()
    if format == "html":
        return '<div class="ptmalloc-rs-timeline" style="max-height:720px;overflow:auto">' + scene.svg() + "</div>"
    if format == "png":
        if path is None:
            raise ValueError("timeline(format='png') needs path=")
        scene.png(path)
        return path
    raise ValueError(f"unknown format {format!r}: use 'svg', 'html' or 'png'")


def _timeline_scene(rows: list, width: float, truncated: int) -> _Scene:
    scene = _Scene()
    label_w, row_h, brk = 290.0, 15.0, 14.0
    segments = _axis(rows)
    # Within a stretch the scale is linear; between stretches widths go by the
    # fourth root of their bytes, so a big mmapped chunk does not squeeze the heap.
    weights = [math.sqrt(math.sqrt(max(e - s, 1))) for s, e in segments]
    usable = width - brk * max(0, len(segments) - 1)
    min_w = min(60.0, usable / max(1, len(segments)))
    raw = [max(min_w, usable * w / sum(weights)) for w in weights]
    seg_w = [w * usable / sum(raw) for w in raw] if raw else []
    seg_x, x = [], label_w
    for w in seg_w:
        seg_x.append(x)
        x += w + brk
    scene.text(
        8,
        16,
        f"timeline: {len(rows)} operations"
        + (f" (first {len(rows)}, {truncated} more not drawn)" if truncated else ""),
        size=12,
        bold=True,
    )
    _legend(scene, 8, 34, STATE_COLOURS)
    axis_y = 62.0
    for (s, e), sx, w in zip(segments, seg_x, seg_w):
        scene.text(sx, axis_y - 11, f"{s:#x}", size=9, fill="#555555")
        scene.text(sx + w, axis_y, f"{e:#x}", size=9, fill="#555555", anchor="end")
    y = axis_y + 8
    for index, (op, ptr, extents) in enumerate(rows):
        result = f" = {ptr:#x}" if op.kind != "f" else (f"  ({ptr:#x})" if ptr else "")
        scene.text(8, y + 11, f"{index:4d}  {op}{result}", size=10)
        touched = ptr - 16 if ptr else None
        row_starts = [item[0] for item in extents]
        for k, (s, e) in enumerate(segments):
            lo = bisect.bisect_left(row_starts, s)
            part = []
            for item in extents[lo:]:
                if item[0] >= e:
                    break
                part.append(item)
            for p0, p1, state, title, chunk in _spans(part, seg_x[k], seg_w[k], s, e):
                hit = chunk is not None and chunk.address == touched
                scene.rect(
                    p0,
                    y + 1,
                    p1 - p0,
                    row_h - 2,
                    _colour(state),
                    title=title or _chunk_title(chunk),
                    stroke="#000000" if hit else None,
                    stroke_width=1.5,
                )
        y += row_h
    for sx in seg_x[1:]:
        scene.line(sx - brk / 2, axis_y + 8, sx - brk / 2, y, stroke="#bbbbbb")
    return scene
