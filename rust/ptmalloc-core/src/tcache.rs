//! The per-thread cache (`tcache_perthread_struct`): 64 singly linked,
//! safe-linked lists of up to 7 chunks each, for chunk sizes 32..=1040.
//!
//! ```text
//!  tcache ->  counts[64]   u16     (128 bytes)
//!             entries[64]  pointer to the user memory of the first chunk
//!  entry  ->  next         PROTECT_PTR(&next, next entry)
//!             key          the instance's tcache key while cached
//! ```
//!
//! The structure itself is the first chunk a thread allocates from its arena
//! (0x290 bytes), exactly as in glibc. It is only ever touched by its thread,
//! so the operations here need no lock.

use crate::chunk::{is_aligned, protect_ptr, reveal_ptr, Chunk, MALLOC_ALIGNMENT, MINSIZE, SIZE_SZ};
use crate::memory::Memory;

type Res<T, M> = Result<T, <M as Memory>::Error>;

/// Number of tcache bins (`TCACHE_MAX_BINS`).
pub const TCACHE_MAX_BINS: usize = 64;
/// Default chunks per bin (`TCACHE_FILL_COUNT`).
pub const TCACHE_FILL_COUNT: usize = 7;
/// Largest value of `tcache_count` (`MAX_TCACHE_COUNT`).
pub const MAX_TCACHE_COUNT: usize = u16::MAX as usize;
/// Bytes of the per-thread structure.
pub const TCACHE_STRUCT_SIZE: usize = TCACHE_MAX_BINS * 2 + TCACHE_MAX_BINS * SIZE_SZ;

const ENTRIES: usize = TCACHE_MAX_BINS * 2;
const ENTRY_KEY: usize = SIZE_SZ;

/// Bin of a chunk size (`csize2tidx`).
#[inline(always)]
pub const fn csize2tidx(size: usize) -> usize {
    size.wrapping_sub(MINSIZE - MALLOC_ALIGNMENT + 1) / MALLOC_ALIGNMENT
}

/// Largest request served by bin `idx` (`tidx2usize`).
#[inline(always)]
pub const fn tidx2usize(idx: usize) -> usize {
    idx * MALLOC_ALIGNMENT + MINSIZE - SIZE_SZ
}

/// Bin of a request size (`usize2tidx`).
#[inline(always)]
pub const fn usize2tidx(bytes: usize) -> usize {
    csize2tidx(crate::chunk::request2size(bytes))
}

/// What the lock-free tcache paths need to know about their instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcacheConfig {
    /// Bins in use (`mp_.tcache_bins`), from `tcache_max`.
    pub bins: usize,
    /// Chunks a bin may hold (`mp_.tcache_count`).
    pub count: usize,
    /// The value stored in a cached chunk's key word to spot double frees.
    pub key: usize,
    /// Free-check mode: cached chunks are filled, and verified on reuse.
    pub fill: bool,
}

/// How a walk of a bin for one entry ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Found,
    NotFound,
    /// More links than the bin may hold.
    TooLong,
    /// A link that is no chunk's address.
    Misaligned,
}

/// Where a thread's cache lives (0: the thread has none yet).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Tcache(pub usize);

impl Tcache {
    /// Whether the thread has a cache.
    #[inline(always)]
    pub const fn exists(self) -> bool {
        self.0 != 0
    }

    /// Chunks cached in bin `idx`.
    #[inline(always)]
    pub fn count<M: Memory>(self, m: &M, idx: usize) -> Res<usize, M> {
        Ok(m.read_u16(self.0 + idx * 2)? as usize)
    }

    #[inline(always)]
    fn set_count<M: Memory>(self, m: &mut M, idx: usize, n: usize) -> Res<(), M> {
        m.write_u16(self.0 + idx * 2, n as u16)
    }

    /// The user pointer at the head of bin `idx` (0 when empty).
    #[inline(always)]
    pub fn entry<M: Memory>(self, m: &M, idx: usize) -> Res<usize, M> {
        m.read(self.0 + ENTRIES + idx * SIZE_SZ)
    }

    #[inline(always)]
    fn set_entry<M: Memory>(self, m: &mut M, idx: usize, e: usize) -> Res<(), M> {
        m.write(self.0 + ENTRIES + idx * SIZE_SZ, e)
    }

    /// The entry after `e` in its bin, with safe-linking undone.
    #[inline(always)]
    pub fn next_of<M: Memory>(m: &M, e: usize) -> Res<usize, M> {
        Ok(reveal_ptr(e, m.read(e)?))
    }

    /// The key word of a cached entry.
    #[inline(always)]
    pub fn key_of<M: Memory>(m: &M, e: usize) -> Res<usize, M> {
        m.read(e + ENTRY_KEY)
    }

    /// Take the first chunk of bin `idx`, which must be non-empty
    /// (`tcache_get`). `key` is the instance's tcache key, which every
    /// cached chunk carries: a hardened instance checks it (see
    /// `harden::check_cached`).
    #[inline(always)]
    pub fn get<M: Memory>(self, m: &mut M, idx: usize, key: usize) -> Res<usize, M> {
        m.count(crate::memory::Path::TcacheHit);
        let e = self.entry(m, idx)?;
        if !is_aligned(e) {
            return Err(m.corruption("malloc(): unaligned tcache chunk detected"));
        }
        crate::harden::check_cached(m, Self::key_of(m, e)?, key)?;
        let next = Self::next_of(m, e)?;
        self.set_entry(m, idx, next)?;
        let n = self.count(m, idx)?;
        self.set_count(m, idx, n.wrapping_sub(1))?;
        m.write(e + ENTRY_KEY, 0)?;
        Ok(e)
    }

    /// Cache `chunk` in bin `idx`, which must have room (`tcache_put`).
    #[inline(always)]
    pub fn put<M: Memory>(self, m: &mut M, chunk: Chunk, idx: usize, key: usize) -> Res<(), M> {
        let e = chunk.mem();
        m.write(e + ENTRY_KEY, key)?;
        let head = self.entry(m, idx)?;
        m.write(e, protect_ptr(e, head))?;
        self.set_entry(m, idx, e)?;
        let n = self.count(m, idx)?;
        self.set_count(m, idx, n + 1)
    }

    /// The double-free test of `free`: a chunk whose key word holds the key
    /// is probably cached already, so look for it in its bin.
    #[inline(always)]
    pub fn check_double_free<M: Memory>(
        self,
        m: &mut M,
        chunk: Chunk,
        idx: usize,
        cfg: &TcacheConfig,
    ) -> Res<(), M> {
        let e = chunk.mem();
        if Self::key_of(m, e)? != cfg.key {
            return Ok(());
        }
        self.check_not_cached(m, e, idx, cfg.count)
    }

    /// Whether `e` is on bin `idx` (a walk of at most `limit` entries,
    /// stopping at a misaligned link).
    #[cold]
    pub fn holds<M: Memory>(self, m: &M, e: usize, idx: usize, limit: usize) -> Res<bool, M> {
        Ok(self.find(m, e, idx, limit)? == Walk::Found)
    }

    /// Walk bin `idx` and fail with glibc's message if `e` is on it.
    #[cold]
    fn check_not_cached<M: Memory>(self, m: &mut M, e: usize, idx: usize, limit: usize) -> Res<(), M> {
        let message = match self.find(m, e, idx, limit)? {
            Walk::NotFound => return Ok(()),
            Walk::TooLong => "free(): too many chunks detected in tcache",
            Walk::Misaligned => "free(): unaligned chunk detected in tcache 2",
            Walk::Found => "free(): double free detected in tcache 2",
        };
        Err(m.corruption(message))
    }

    /// Look for `e` on bin `idx`, following at most `limit` links.
    fn find<M: Memory>(self, m: &M, e: usize, idx: usize, limit: usize) -> Res<Walk, M> {
        let mut tmp = self.entry(m, idx)?;
        let mut seen = 0;
        while tmp != 0 {
            if seen >= limit {
                return Ok(Walk::TooLong);
            }
            if !is_aligned(tmp) {
                return Ok(Walk::Misaligned);
            }
            if tmp == e {
                return Ok(Walk::Found);
            }
            tmp = Self::next_of(m, tmp)?;
            seen += 1;
        }
        Ok(Walk::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::request2size;

    #[test]
    fn indexes_match_glibc() {
        assert_eq!(csize2tidx(32), 0);
        assert_eq!(csize2tidx(48), 1);
        assert_eq!(csize2tidx(1040), 63);
        assert_eq!(tidx2usize(63), 1032);
        assert_eq!(usize2tidx(1032), 63);
        assert_eq!(usize2tidx(0), 0);
        assert_eq!(usize2tidx(24), 0);
        assert_eq!(usize2tidx(25), 1);
        for req in 0..2000 {
            assert_eq!(csize2tidx(request2size(req)), usize2tidx(req), "req {req}");
        }
        assert_eq!(TCACHE_STRUCT_SIZE, 640);
        assert_eq!(request2size(TCACHE_STRUCT_SIZE), 0x290);
    }
}
