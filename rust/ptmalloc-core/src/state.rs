//! The arena state (`struct malloc_state`), kept in allocator memory with
//! glibc 2.36's x86_64 layout so that free chunks link to bin headers inside
//! it exactly as on glibc (an unsorted chunk's `fd` is `&main_arena + 96`).
//!
//! ```text
//!   0  mutex            u32      (unused by the core; locking is the caller's)
//!   4  flags            u32      NONCONTIGUOUS_BIT
//!   8  have_fastchunks  u32
//!  16  fastbinsY[10]    single lists of fast chunks, safe-linked
//!  96  top              the top chunk
//! 104  last_remainder   the remainder of the last small-request split
//! 112  bins[254]        fd/bk pairs: bin i's header is the fake chunk at
//!                       112 + (i-1)*16 - 16, whose fd/bk overlay the pair
//! 2144 binmap[4]        u32 bitmap of possibly non-empty bins
//! 2160 next, next_free, attached_threads, system_mem, max_system_mem
//! 2200 (size of glibc's struct)
//! 2200 deferred         ours: chunks other threads queued for this arena
//! ```
//!
//! The main arena's storage also holds the instance's arena bookkeeping
//! (glibc keeps it in statics): the free list, the arena count, the arena
//! to reuse next, and whether a thread took the main arena yet.

use crate::chunk::{Chunk, CHUNK_HDR_SZ, SIZE_SZ};
use crate::memory::Memory;

type Res<T, M> = Result<T, <M as Memory>::Error>;

/// Number of fastbins (`NFASTBINS`).
pub const NFASTBINS: usize = 10;
/// Number of bins; bin 0 does not exist, bin 1 is the unsorted bin (`NBINS`).
pub const NBINS: usize = 128;
/// Words of the binmap (`BINMAPSIZE`).
pub const BINMAPSIZE: usize = 4;

const FLAGS: usize = 4;
const HAVE_FASTCHUNKS: usize = 8;
const FASTBINS: usize = 16;
const TOP: usize = FASTBINS + NFASTBINS * SIZE_SZ;
const LAST_REMAINDER: usize = TOP + SIZE_SZ;
const BINS: usize = LAST_REMAINDER + SIZE_SZ;
const BINMAP: usize = BINS + (NBINS * 2 - 2) * SIZE_SZ;
const NEXT: usize = BINMAP + BINMAPSIZE * 4;
const NEXT_FREE: usize = NEXT + SIZE_SZ;
const ATTACHED_THREADS: usize = NEXT_FREE + SIZE_SZ;
const SYSTEM_MEM: usize = ATTACHED_THREADS + SIZE_SZ;
const MAX_SYSTEM_MEM: usize = SYSTEM_MEM + SIZE_SZ;
/// Bytes of a `malloc_state` (`sizeof (struct malloc_state)`).
pub const ARENA_STATE_SIZE: usize = MAX_SYSTEM_MEM + SIZE_SZ;

/// Where each arena keeps the head of its deferred frees (our extension):
/// on a cache line of its own, since other threads write it while the owner
/// reads the state (a line's distance either side, whatever the arena's
/// alignment).
const DEFERRED: usize = ARENA_STATE_SIZE + CACHE_LINE;
/// Bytes of an arena's state: glibc's struct and our extension.
pub const ARENA_SIZE: usize = DEFERRED + CACHE_LINE;
const CACHE_LINE: usize = 64;
const FREE_LIST: usize = ARENA_SIZE;
const NARENAS: usize = FREE_LIST + SIZE_SZ;
const NEXT_TO_USE: usize = NARENAS + SIZE_SZ;
const MAIN_CLAIMED: usize = NEXT_TO_USE + SIZE_SZ;
/// Bytes the memory source backs at the main arena's address.
pub const MAIN_ARENA_STORAGE: usize = MAIN_CLAIMED + SIZE_SZ;

/// The arena's memory is not one contiguous `brk` region.
const NONCONTIGUOUS_BIT: u32 = 2;

/// The address of an arena's `malloc_state` (0: none).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Arena(pub usize);

impl Arena {
    /// The header of bin `i` (`bin_at`), a fake chunk whose fd/bk are the bin's ends.
    #[inline(always)]
    pub const fn bin_at(self, i: usize) -> Chunk {
        Chunk(self.0 + BINS + (i - 1) * 2 * SIZE_SZ - CHUNK_HDR_SZ)
    }

    /// The unsorted bin's header (`unsorted_chunks`); also the initial top.
    #[inline(always)]
    pub const fn unsorted(self) -> Chunk {
        self.bin_at(1)
    }

    /// Which bin a header address belongs to (inverse of [`Arena::bin_at`]).
    pub const fn bin_index_of(self, header: Chunk) -> Option<usize> {
        let first = self.bin_at(1).0;
        if header.0 < first || (header.0 - first) % (2 * SIZE_SZ) != 0 {
            return None;
        }
        let i = (header.0 - first) / (2 * SIZE_SZ) + 1;
        if i < NBINS {
            Some(i)
        } else {
            None
        }
    }

    /// Address of fastbin slot `idx` (`&fastbin (av, idx)`).
    #[inline(always)]
    pub const fn fastbin_slot(self, idx: usize) -> usize {
        self.0 + FASTBINS + idx * SIZE_SZ
    }

    /// The head of fastbin `idx` (a chunk address, not safe-linked).
    #[inline(always)]
    pub fn fastbin<M: Memory>(self, m: &M, idx: usize) -> Res<Chunk, M> {
        Ok(Chunk(m.read(self.fastbin_slot(idx))?))
    }

    /// Replace the head of fastbin `idx`.
    #[inline(always)]
    pub fn set_fastbin<M: Memory>(self, m: &mut M, idx: usize, c: Chunk) -> Res<(), M> {
        m.write(self.fastbin_slot(idx), c.0)
    }

    /// The top chunk.
    #[inline(always)]
    pub fn top<M: Memory>(self, m: &M) -> Res<Chunk, M> {
        Ok(Chunk(m.read(self.0 + TOP)?))
    }

    /// Replace the top chunk.
    #[inline(always)]
    pub fn set_top<M: Memory>(self, m: &mut M, c: Chunk) -> Res<(), M> {
        m.write(self.0 + TOP, c.0)
    }

    /// The remainder of the most recent split for a small request.
    #[inline(always)]
    pub fn last_remainder<M: Memory>(self, m: &M) -> Res<Chunk, M> {
        Ok(Chunk(m.read(self.0 + LAST_REMAINDER)?))
    }

    /// Record the remainder of a split.
    #[inline(always)]
    pub fn set_last_remainder<M: Memory>(self, m: &mut M, c: Chunk) -> Res<(), M> {
        m.write(self.0 + LAST_REMAINDER, c.0)
    }

    /// Whether any fastbin may hold chunks.
    #[inline(always)]
    pub fn have_fastchunks<M: Memory>(self, m: &M) -> Res<bool, M> {
        Ok(m.read_u32(self.0 + HAVE_FASTCHUNKS)? != 0)
    }

    /// Note that fastbins may (or may not) hold chunks.
    #[inline(always)]
    pub fn set_have_fastchunks<M: Memory>(self, m: &mut M, v: bool) -> Res<(), M> {
        m.write_u32(self.0 + HAVE_FASTCHUNKS, v as u32)
    }

    /// Whether the arena's memory is one contiguous region (`contiguous`).
    #[inline(always)]
    pub fn contiguous<M: Memory>(self, m: &M) -> Res<bool, M> {
        Ok(m.read_u32(self.0 + FLAGS)? & NONCONTIGUOUS_BIT == 0)
    }

    /// Mark the arena as not contiguous (`set_noncontiguous`).
    pub fn set_noncontiguous<M: Memory>(self, m: &mut M) -> Res<(), M> {
        let f = m.read_u32(self.0 + FLAGS)?;
        m.write_u32(self.0 + FLAGS, f | NONCONTIGUOUS_BIT)
    }

    /// Word `block` of the binmap.
    #[inline(always)]
    pub fn binmap<M: Memory>(self, m: &M, block: usize) -> Res<u32, M> {
        m.read_u32(self.0 + BINMAP + block * 4)
    }

    /// Overwrite word `block` of the binmap.
    #[inline(always)]
    pub fn set_binmap<M: Memory>(self, m: &mut M, block: usize, v: u32) -> Res<(), M> {
        m.write_u32(self.0 + BINMAP + block * 4, v)
    }

    /// Mark bin `i` as possibly non-empty (`mark_bin`).
    #[inline(always)]
    pub fn mark_bin<M: Memory>(self, m: &mut M, i: usize) -> Res<(), M> {
        let block = i >> 5;
        let v = self.binmap(m, block)?;
        self.set_binmap(m, block, v | (1 << (i & 31)))
    }

    /// Bytes obtained from the system for this arena.
    #[inline(always)]
    pub fn system_mem<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0 + SYSTEM_MEM)
    }

    /// Set the bytes obtained from the system, keeping the maximum up to date.
    pub fn set_system_mem<M: Memory>(self, m: &mut M, v: usize) -> Res<(), M> {
        m.write(self.0 + SYSTEM_MEM, v)?;
        if v > self.max_system_mem(m)? {
            m.write(self.0 + MAX_SYSTEM_MEM, v)?;
        }
        Ok(())
    }

    /// The most bytes this arena ever held from the system.
    #[inline(always)]
    pub fn max_system_mem<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0 + MAX_SYSTEM_MEM)
    }

    /// The next arena on the circular list of all arenas.
    pub fn next<M: Memory>(self, m: &M) -> Res<Arena, M> {
        Ok(Arena(m.read(self.0 + NEXT)?))
    }

    /// Link the next arena.
    pub fn set_next<M: Memory>(self, m: &mut M, a: Arena) -> Res<(), M> {
        m.write(self.0 + NEXT, a.0)
    }

    /// The next arena on the list of arenas no thread is attached to.
    pub fn next_free<M: Memory>(self, m: &M) -> Res<Arena, M> {
        Ok(Arena(m.read(self.0 + NEXT_FREE)?))
    }

    /// Link the next arena of the free list.
    pub fn set_next_free<M: Memory>(self, m: &mut M, a: Arena) -> Res<(), M> {
        m.write(self.0 + NEXT_FREE, a.0)
    }

    /// The address of the head of this arena's deferred frees.
    pub const fn deferred_slot(self) -> usize {
        self.0 + DEFERRED
    }

    /// The address of the count of threads attached to this arena.
    pub const fn attached_slot(self) -> usize {
        self.0 + ATTACHED_THREADS
    }

    /// Threads attached to this arena.
    pub fn attached_threads<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0 + ATTACHED_THREADS)
    }

    /// Set the number of threads attached to this arena.
    pub fn set_attached_threads<M: Memory>(self, m: &mut M, n: usize) -> Res<(), M> {
        m.write(self.0 + ATTACHED_THREADS, n)
    }

    /// Initialise a zeroed `malloc_state` (`malloc_init_state`): every bin
    /// empty, top the unsorted header (size 0), non-main arenas non-contiguous.
    pub fn init<M: Memory>(self, m: &mut M, is_main: bool) -> Res<(), M> {
        m.fill(self.0, 0, if is_main { MAIN_ARENA_STORAGE } else { ARENA_SIZE })?;
        for i in 1..NBINS {
            let b = self.bin_at(i);
            b.set_fd(m, b)?;
            b.set_bk(m, b)?;
        }
        if !is_main {
            self.set_noncontiguous(m)?;
        }
        m.write(self.0 + NEXT_FREE, 0)?;
        self.set_next(m, self)?;
        self.set_attached_threads(m, 1)?;
        self.set_top(m, self.unsorted())
    }
}

/// The instance's arena bookkeeping, kept in the main arena's storage.
impl Arena {
    /// The first arena no thread is attached to (0: none).
    pub fn free_list<M: Memory>(self, m: &M) -> Res<Arena, M> {
        Ok(Arena(m.read(self.0 + FREE_LIST)?))
    }

    /// Set the head of the free list.
    pub fn set_free_list<M: Memory>(self, m: &mut M, a: Arena) -> Res<(), M> {
        m.write(self.0 + FREE_LIST, a.0)
    }

    /// Arenas made so far besides the main one.
    pub fn extra_arenas<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0 + NARENAS)
    }

    /// Set the count of arenas besides the main one.
    pub fn set_extra_arenas<M: Memory>(self, m: &mut M, n: usize) -> Res<(), M> {
        m.write(self.0 + NARENAS, n)
    }

    /// The arena a thread that must share one looks at first (0: main).
    pub fn next_to_use<M: Memory>(self, m: &M) -> Res<Arena, M> {
        Ok(Arena(m.read(self.0 + NEXT_TO_USE)?))
    }

    /// Set the arena shared next.
    pub fn set_next_to_use<M: Memory>(self, m: &mut M, a: Arena) -> Res<(), M> {
        m.write(self.0 + NEXT_TO_USE, a.0)
    }

    /// Whether a thread already took the main arena.
    pub fn main_claimed<M: Memory>(self, m: &M) -> Res<bool, M> {
        Ok(m.read(self.0 + MAIN_CLAIMED)? != 0)
    }

    /// Record that a thread took the main arena.
    pub fn set_main_claimed<M: Memory>(self, m: &mut M) -> Res<(), M> {
        m.write(self.0 + MAIN_CLAIMED, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_glibc_2_36() {
        assert_eq!(TOP, 96);
        assert_eq!(BINS, 112);
        assert_eq!(BINMAP, 2144);
        assert_eq!(SYSTEM_MEM, 2184);
        assert_eq!(ARENA_STATE_SIZE, 2200);
        let av = Arena(0x1000);
        assert_eq!(av.unsorted().0, 0x1000 + 96);
        assert_eq!(av.bin_at(2).0, 0x1000 + 112);
        assert_eq!(av.bin_index_of(av.bin_at(127)), Some(127));
        assert_eq!(av.bin_index_of(Chunk(0x1000 + 97)), None);
    }
}
