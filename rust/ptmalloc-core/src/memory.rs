//! The memory source: how an allocator instance reads and writes words and
//! asks the operating system (or a simulation of it) for memory.
//!
//! Every byte the allocator touches goes through this trait, so the same
//! allocator logic runs monomorphised over raw process memory (where each
//! accessor compiles to one load or store) and over a simulated, bounds-checked
//! address space (where a bad address becomes an error value, never a crash).

/// A step of the allocator that a memory source may count
/// ([`Memory::count`]): which paths served a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// A chunk taken from a tcache bin.
    TcacheHit,
    /// A chunk taken from a fastbin.
    Fastbin,
    /// A chunk taken from a small bin of the exact size.
    Smallbin,
    /// A chunk examined by the unsorted-bin scan.
    UnsortedScan,
    /// A free chunk split, the remainder kept free.
    Split,
    /// A request served by the best fit of its own large bin.
    LargeBin,
    /// A request served by a larger bin found through the binmap.
    BinmapSearch,
    /// A request carved from the top chunk.
    Top,
    /// The fastbins consolidated (`malloc_consolidate`).
    Consolidate,
}

/// A source of memory for one allocator instance.
///
/// # Safety
///
/// Implementations hand out the address ranges returned by [`Memory::sbrk`],
/// [`Memory::mmap`] and [`Memory::mremap`], and must keep them readable and
/// writable until they are released. The raw process source cannot check the
/// addresses the allocator passes to the accessors; its constructor carries the
/// obligation that the heap metadata it is used with is only ever written by
/// the allocator (see `RawMemory` in the C ABI crate).
pub unsafe trait Memory {
    /// What an access to memory or a detected inconsistency turns into.
    /// `core::convert::Infallible` for the process allocator, whose
    /// [`Memory::corruption`] never returns.
    type Error;

    /// Report heap corruption with glibc's message. The process source prints
    /// the message and aborts; a simulated source returns an error value that
    /// unwinds the operation through `?`.
    fn corruption(&mut self, message: &'static str) -> Self::Error;

    /// Read the machine word at `addr` (8-byte aligned in all allocator uses).
    fn read(&self, addr: usize) -> Result<usize, Self::Error>;
    /// Write the machine word at `addr`.
    fn write(&mut self, addr: usize, value: usize) -> Result<(), Self::Error>;
    /// Read a 16-bit value (tcache counts).
    fn read_u16(&self, addr: usize) -> Result<u16, Self::Error>;
    /// Write a 16-bit value (tcache counts).
    fn write_u16(&mut self, addr: usize, value: u16) -> Result<(), Self::Error>;
    /// Read a 32-bit value (binmap words, arena flags).
    fn read_u32(&self, addr: usize) -> Result<u32, Self::Error>;
    /// Write a 32-bit value (binmap words, arena flags).
    fn write_u32(&mut self, addr: usize, value: u32) -> Result<(), Self::Error>;
    /// Copy `len` bytes between non-overlapping ranges (realloc's move).
    fn copy(&mut self, dst: usize, src: usize, len: usize) -> Result<(), Self::Error>;
    /// Fill `len` bytes with `byte` (calloc, perturb, tcache initialisation).
    fn fill(&mut self, dst: usize, byte: u8, len: usize) -> Result<(), Self::Error>;

    /// Move the program break by `increment` bytes and return the previous
    /// break (`sbrk(2)` semantics); `None` when the break cannot move.
    fn sbrk(&mut self, increment: isize) -> Option<usize>;
    /// Map `len` bytes (a multiple of the page size) of zeroed, private,
    /// read-write memory anywhere; `None` on failure.
    fn mmap(&mut self, len: usize) -> Option<usize>;
    /// Release a range obtained from [`Memory::mmap`] or [`Memory::mremap`].
    fn munmap(&mut self, addr: usize, len: usize) -> bool;
    /// Resize a mapping, possibly moving it; `None` when that is not possible.
    fn mremap(&mut self, addr: usize, old_len: usize, new_len: usize) -> Option<usize>;
    /// Give the pages of a range back to the system; later reads see zeroes.
    fn discard(&mut self, addr: usize, len: usize);
    /// The system page size.
    fn page_size(&self) -> usize;

    /// The secret keying chunk headers (see `chunk::HeaderState`); 0 when
    /// headers carry no check value (glibc's layout). Set once, before the
    /// first chunk exists, with [`Memory::set_header_key`].
    #[inline(always)]
    fn header_key(&self) -> usize {
        0
    }
    /// Start keying chunk headers with `key` (with `chunk::KEY_BITS` set); a source that
    /// cannot keep a key ignores it and `header_key` stays 0.
    fn set_header_key(&mut self, key: usize) {
        let _ = key;
    }
    /// The bits of a size word that are size and flags: all of them unless
    /// headers are keyed (then the top 16 bits hold the check value).
    #[inline(always)]
    fn header_mask(&self) -> usize {
        if self.header_key() == 0 {
            usize::MAX
        } else {
            crate::chunk::HEADER_SIZE_BITS
        }
    }
    /// Whether `chunk` is a mapped chunk this source unmapped and has not
    /// mapped again (a second free of it would fault reading its header).
    #[inline(always)]
    fn was_unmapped(&self, chunk: usize) -> bool {
        let _ = chunk;
        false
    }
    /// The mapped chunk `chunk` is about to be unmapped (or moved away by
    /// `mremap`): a source that answers [`Memory::was_unmapped`] remembers it
    /// until the address is mapped again.
    fn note_unmapped(&mut self, chunk: usize) {
        let _ = chunk;
    }

    /// Reserve `max` bytes aligned to `max` (a power of two) for a non-main
    /// arena's heap, of which the first `size` are read-write and zeroed and
    /// the rest inaccessible until [`Memory::extend_heap`]; `None` on failure.
    /// Released with [`Memory::munmap`]`(base, max)`.
    fn map_heap(&mut self, max: usize, size: usize) -> Option<usize> {
        let _ = (max, size);
        None
    }
    /// Make the first `size` bytes of the heap at `base` read-write (they
    /// were read-write or inaccessible and untouched: zero).
    fn extend_heap(&mut self, base: usize, size: usize) -> bool {
        let _ = (base, size);
        false
    }

    // The platform's concurrency. A source used by one thread at a time
    // keeps these defaults: no locks, nothing deferred.

    /// Wait for and take arena `av`'s lock.
    #[inline(always)]
    fn lock_arena(&self, av: usize) {
        let _ = av;
    }
    /// Take arena `av`'s lock if it is free.
    #[inline(always)]
    fn try_lock_arena(&self, av: usize) -> bool {
        let _ = av;
        true
    }
    /// Release arena `av`'s lock.
    #[inline(always)]
    fn unlock_arena(&self, av: usize) {
        let _ = av;
    }
    /// Take the lock of the list of arenas (creation, binding, free list).
    #[inline(always)]
    fn lock_arena_list(&self) {}
    /// Release the lock of the list of arenas.
    #[inline(always)]
    fn unlock_arena_list(&self) {}
    /// Queue `chunk` on arena `av`'s deferred frees, for its owner or the
    /// next holder of its lock to take (see [`Memory::take_deferred`]):
    /// `true` if queued, `false` if the source does not queue frees or the
    /// queue is full (the caller then frees the chunk under the lock).
    #[inline(always)]
    fn defer_free(&mut self, av: usize, chunk: usize) -> Result<bool, Self::Error> {
        let _ = (av, chunk);
        Ok(false)
    }
    /// Take every chunk queued for `av`, with or without its lock (takers
    /// get disjoint chains): the first chunk of a chain linked through each
    /// chunk's `fd` word, or 0.
    #[inline(always)]
    fn take_deferred(&mut self, av: usize) -> Result<usize, Self::Error> {
        let _ = av;
        Ok(0)
    }
    /// A hint for a walk of a deferred-free chain: the chunk whose address
    /// is stored at `addr` (a queued chunk's `bk` word, which a queueing
    /// source may set to the chunk a few places further on) is wanted soon.
    /// The chain is a pointer chase through lines other threads wrote, one
    /// cache miss after another; fetching ahead overlaps them. No-op unless
    /// the source queues chunks.
    #[inline(always)]
    fn prefetch_from(&self, addr: usize) {
        let _ = addr;
    }
    /// Whether no thread is attached to arena `av` (read without the list
    /// lock, after the [`Memory::defer_free`] it follows): nobody would take
    /// what was queued for it, so the freeing thread takes the lock and frees
    /// the queue itself.
    #[inline(always)]
    fn arena_unattended(&self, av: usize) -> bool {
        let _ = av;
        false
    }
    /// Order the writes before it before those after it, as seen by other
    /// threads reading without a lock (a new arena is initialised, then
    /// linked into the list that statistics walk).
    #[inline(always)]
    fn release_fence(&self) {}
    /// Order the writes before it before the reads after it (the last thread
    /// leaving an arena, then emptying its queue, against a thread queueing
    /// a free, then reading whether anyone is attached).
    #[inline(always)]
    fn full_fence(&self) {}
    /// Count one step of the allocator (a no-op but for instrumented sources).
    #[inline(always)]
    fn count(&mut self, path: Path) {
        let _ = path;
    }
    /// Processors available, for the default arena limit (8 per core).
    fn cpu_count(&self) -> usize {
        1
    }
}
