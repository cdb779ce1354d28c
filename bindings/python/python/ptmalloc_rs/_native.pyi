"""Type stubs of ptmalloc_rs._native, the extension: private ptmalloc heaps
over a simulated, bounds-checked address space."""

from typing import Dict, Iterator, List, Optional, Tuple, Union

HEAP_BASE: int
"""Where the simulated program break starts: the main heap's first chunk (0x555555559000)."""
MAIN_ARENA: int
"""Address of the main arena's malloc_state (where libc's main_arena would be)."""
M_MXFAST: int
"""mallopt parameter: largest request served by fastbins."""
M_TRIM_THRESHOLD: int
"""mallopt parameter: top size above which free trims."""
M_TOP_PAD: int
"""mallopt parameter: extra bytes obtained with each sbrk."""
M_MMAP_THRESHOLD: int
"""mallopt parameter: requests at least this large are mapped on their own."""
M_MMAP_MAX: int
"""mallopt parameter: most chunks mapped at once."""
M_CHECK_ACTION: int
"""mallopt parameter: what to do on detected corruption (kept for reporting)."""
M_PERTURB: int
"""mallopt parameter: fill byte for allocated (inverted) and freed memory."""
M_ARENA_TEST: int
"""mallopt parameter: arenas created before the arena limit is computed."""
M_ARENA_MAX: int
"""mallopt parameter: most arenas."""
COUNTERS: List[str]
"""The names of Heap.counters(), in order."""

def protect_ptr(pos: int, ptr: int) -> int:
    """Safe-linking: the value glibc stores for `ptr` at address `pos` ((pos >> 12) ^ ptr)."""

def reveal_ptr(pos: int, value: int) -> int:
    """Safe-linking undone: the pointer that `value`, stored at `pos`, stands for."""

class HeapError(Exception):
    """Base class of the errors a simulated heap raises."""

class HeapAbort(HeapError):
    """An integrity check failed where glibc would print `message` and abort.
    The heap is put back to the state before the failing call."""

    message: str
    """glibc's exact message."""
    snapshot: "Snapshot"
    """The heap just before the failing call."""

class SegFault(HeapError):
    """An access outside every mapped region of the simulated address space."""

    address: int
    """The address accessed."""
    snapshot: Optional["Snapshot"]
    """For a failing allocator call, the heap just before it; None for read/write."""

class Chunk:
    """A chunk as memory described it when the object was made (it stays valid after later calls)."""

    address: int
    """Address of the chunk header (the prev_size field)."""
    mem: int
    """The user pointer (address + 16)."""
    size: int
    """Size without the flag bits."""
    raw_size: int
    """The size field as stored, flag bits included."""
    prev_inuse: bool
    """P: the previous chunk is in use."""
    is_mmapped: bool
    """M: the chunk was mapped on its own."""
    non_main_arena: bool
    """A: the chunk belongs to a non-main arena."""
    prev_size: int
    """The prev_size field."""
    fd: int
    """Forward link, safe-linking undone for tcache and fastbin chunks."""
    bk: int
    """Backward link (the tcache key for a cached chunk)."""
    fd_raw: int
    """Forward link as stored."""
    fd_nextsize: int
    """Large bins: next chunk of a smaller size."""
    bk_nextsize: int
    """Large bins: previous chunk of a larger size."""
    usable_size: int
    """What malloc_usable_size reports (0 when free)."""
    request: Optional[int]
    """The size requested for the block in it, when allocated."""
    state: str
    """"allocated", "tcache", "fastbin", "unsorted", "small", "large", "top",
    "mmapped", or "free" (free by its boundary tags but on no list)."""
    bin: Optional[str]
    """The bin holding it: "tcache[3]", "fastbin[0]", "unsorted", "small[5]", "large[70]"."""
    arena: Optional[int]
    """Index of its arena in Heap.arenas() (None for a mapped chunk)."""
    @property
    def end(self) -> int:
        """The address just past the chunk."""
    @property
    def flags(self) -> int:
        """The A|M|P bits of the size field."""

class Bin:
    """A bin, walked in full from its head (no limit; a cycle ends the walk with a report)."""

    kind: str
    """"tcache", "fastbin", "unsorted", "small" or "large"."""
    index: int
    """tcache 0..63, fastbin 0..9, unsorted 1, small 2..63, large 64..127."""
    name: str
    """"tcache[3]", "fastbin[0]", "unsorted", "small[5]", "large[70]"."""
    min_size: int
    """Smallest chunk size the bin is for."""
    max_size: int
    """Largest chunk size the bin is for."""
    chunks: List[Chunk]
    """Every chunk from the head on."""
    count: int
    """The allocator's own count: the tcache's counts[], else the chunks walked."""
    corruption: Optional[str]
    """The first corruption met on the walk (and why it stopped, if it did)."""
    def __len__(self) -> int:
        """The chunks walked."""
    def __iter__(self) -> Iterator[Chunk]:
        """The chunks walked, from the head."""

class Arena:
    """An arena."""

    index: int
    """Position in Heap.arenas() (0: the main arena)."""
    address: int
    """Address of its malloc_state."""
    is_main: bool
    """Whether it is the main arena."""
    top: Chunk
    """Its top chunk."""
    system_mem: int
    """Bytes it obtained from the system."""
    heaps: List[Tuple[int, int]]
    """Its heaps as (start, end)."""
    threads: List[int]
    """The simulated threads bound to it."""

class FreeResult:
    """Where free() put a chunk."""

    where: str
    """"tcache", "fastbin", "unsorted", "small", "large", "top", "munmapped";
    "none" for free(NULL), "unknown" when it is on no list."""
    bin: Optional[str]
    """The bin ("tcache[3]", "fastbin[0]", "unsorted", ...), or None."""
    position: Optional[int]
    """Index in that bin from its head (0: first out), or None."""
    merged: bool
    """Whether it was merged with a free neighbour or the top."""

class TryResult:
    """The outcome of a dry run; the heap is unchanged."""

    ok: bool
    """Whether the call would complete."""
    result: Union[int, FreeResult, None]
    """What it would return (None if it aborts)."""
    abort: Optional[str]
    """glibc's message if it would abort ("segmentation fault at 0x..." for a bad access)."""
    path: str
    """The paths it would take, counter names joined with "+" (a free: where the chunk goes first)."""

class Event:
    """One recorded call of a heap."""

    index: int
    """Position in the history."""
    op: str
    """"malloc", "calloc", "realloc", "free", "memalign", ..., "write", "restore"."""
    args: Tuple[int, ...]
    """Its arguments, tid left out (write: address and length)."""
    result: Union[int, FreeResult, bool, Tuple[int, int], None]
    """What it returned."""
    tid: int
    """The simulated thread that made it."""
    label: Optional[str]
    """The label given by Heap.label() just before it."""
    abort: Optional[str]
    """glibc's message if the call aborted (the heap was put back)."""

class Snapshot:
    """A copy of a heap's whole state (memory, threads, counters)."""

    index: int
    """The history length when it was taken."""
    def heap(self) -> "Heap":
        """A new, independent Heap in this state (empty history)."""
    def chunks(self, arena: Optional[int] = None) -> List[Chunk]:
        """The heap chunks of one arena (None: all), in address order."""
    def bins(self, arena: int = 0) -> List[Bin]:
        """The bins of an arena."""
    def tcache(self, tid: int = 0) -> List[Bin]:
        """The tcache bins of a thread."""
    def read(self, addr: int, n: int) -> bytes:
        """Memory as it was."""
    def check(self) -> List[str]:
        """The consistency check of the state."""

class Diff:
    """What changed between two states."""

    new: List[Chunk]
    """Chunks only in the later state."""
    gone: List[Chunk]
    """Chunks only in the earlier state."""
    changed: List[Tuple[Chunk, Chunk]]
    """Same address, header/links/state/bin differ: (before, after)."""
    moved: List[Tuple[int, Optional[str], Optional[str]]]
    """(address, bin before, bin after); None is no bin."""
    @property
    def bytes(self) -> List[Tuple[int, bytes, bytes]]:
        """Changed bytes as runs: (address, before, after)."""
    def __bool__(self) -> bool:
        """Whether anything changed."""

class Heap:
    """A private ptmalloc heap in a simulated, bounds-checked address space.

    profile "glibc-2.36" (default) behaves as glibc 2.36; "hardened" adds the
    process allocator's checks. Tunables by glibc name: tcache_count,
    tcache_max, tcache_unsorted_limit, mxfast, mmap_threshold,
    trim_threshold, top_pad, mmap_max, arena_test, arena_max, perturb, check
    (unknown name: ValueError)."""

    errno: int
    """errno of the last call that failed (12 ENOMEM, 22 EINVAL), 0 if none did."""
    def __init__(self, profile: str = "glibc-2.36", **tunables: int) -> None: ...
    @property
    def profile(self) -> str:
        """ "glibc-2.36" or "hardened"."""
    @property
    def tunables(self) -> Dict[str, int]:
        """The current tunables by glibc name."""
    @property
    def heap_base(self) -> int:
        """HEAP_BASE: pointers minus this are offsets from the heap start."""
    @property
    def history(self) -> List[Event]:
        """Every call so far."""
    def malloc(self, size: int, tid: int = 0) -> int:
        """malloc: the user pointer, 0 on failure (errno set)."""
    def calloc(self, n: int, size: int, tid: int = 0) -> int:
        """calloc: zeroed memory, 0 on failure."""
    def realloc(self, ptr: int, size: int, tid: int = 0) -> int:
        """realloc, glibc's way (realloc(p, 0) frees and returns 0)."""
    def free(self, ptr: int, tid: int = 0) -> FreeResult:
        """free: where the chunk went."""
    def memalign(self, alignment: int, size: int, tid: int = 0) -> int:
        """memalign."""
    def aligned_alloc(self, alignment: int, size: int, tid: int = 0) -> int:
        """aligned_alloc (EINVAL unless the alignment is a power of two)."""
    def posix_memalign(self, alignment: int, size: int, tid: int = 0) -> Tuple[int, int]:
        """posix_memalign: (error, pointer)."""
    def valloc(self, size: int, tid: int = 0) -> int:
        """valloc: page-aligned."""
    def pvalloc(self, size: int, tid: int = 0) -> int:
        """pvalloc: page-aligned, size rounded up to pages."""
    def malloc_usable_size(self, ptr: int) -> int:
        """malloc_usable_size."""
    def malloc_trim(self, pad: int = 0) -> bool:
        """malloc_trim: whether memory was given back."""
    def mallopt(self, param: Union[int, str], value: int) -> bool:
        """mallopt by number (M_MXFAST, ...) or name ("M_MXFAST", "mmap_threshold")."""
    def thread_exit(self, tid: int) -> None:
        """End a simulated thread: flush its tcache, leave its arena."""
    def read(self, addr: int, n: int) -> bytes:
        """n bytes at addr (SegFault outside the mapped regions)."""
    def write(self, addr: int, data: bytes) -> None:
        """Write bytes at addr (SegFault outside the mapped regions)."""
    def read_word(self, addr: int) -> int:
        """The 64-bit little-endian word at addr."""
    def write_word(self, addr: int, value: int) -> None:
        """Write a 64-bit word (negative values wrap)."""
    def regions(self) -> List[Tuple[int, int, str]]:
        """(start, end, kind), kind "heap", "arena", "mmap" or "libc"."""
    def chunks(self, arena: Optional[int] = None) -> List[Chunk]:
        """Heap chunks of one arena (None: all), address order, top included."""
    def mmapped(self) -> List[Chunk]:
        """Chunks mapped on their own."""
    def top(self, arena: int = 0) -> Chunk:
        """An arena's top chunk."""
    def bins(self, arena: int = 0) -> List[Bin]:
        """Fastbins, unsorted, small and large bins of an arena, empty ones included."""
    def tcache(self, tid: int = 0) -> List[Bin]:
        """A thread's 64 tcache bins ([] before its first allocation)."""
    def arenas(self) -> List[Arena]:
        """Every arena, main first."""
    def locate(self, addr: int) -> Optional[Chunk]:
        """The chunk holding addr."""
    def check(self) -> List[str]:
        """Every broken invariant found; [] when consistent."""
    def try_free(self, ptr: int, tid: int = 0) -> TryResult:
        """What free(ptr) would do; the heap is unchanged."""
    def try_malloc(self, size: int, tid: int = 0) -> TryResult:
        """What malloc(size) would return; the heap is unchanged."""
    def snapshot(self) -> Snapshot:
        """A copy of the whole state."""
    def restore(self, snapshot: Snapshot) -> None:
        """Go back to a snapshot (the history records the restore)."""
    def diff(self, a: Snapshot, b: Optional[Snapshot] = None) -> Diff:
        """What changed from a to b (None: the heap now)."""
    def label(self, text: str) -> None:
        """Label the next call in the history."""
    def clear_history(self) -> None:
        """Forget the history."""
    def mallinfo2(self) -> Dict[str, int]:
        """mallinfo2() as a dict of its fields."""
    def malloc_stats(self) -> str:
        """What malloc_stats() prints, as glibc prints it."""
    def malloc_info(self) -> str:
        """What malloc_info() writes: glibc's XML."""
    def counters(self) -> Dict[str, int]:
        """How often each path served a call (see COUNTERS)."""
    def reset_counters(self) -> None:
        """Set every counter back to 0."""
