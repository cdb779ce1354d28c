//! Bin geometry and list surgery: which bin a size belongs to, and taking a
//! chunk off a doubly linked bin with glibc's integrity checks.
//!
//! Sizes below 1024 bytes go to 62 small bins of one size each (16-byte
//! steps); larger sizes go to 63 large bins of growing width, each kept sorted
//! by size with a second "nextsize" list that skips over equal sizes:
//!
//! ```text
//!  bin header <-> A(4096) <-> A'(4096) <-> B(4000) <-> C(3900) <-> header
//!                 |  ^-------- nextsize ------+------------+         (fd/bk)
//!                 A.fd_nextsize = B, B.fd_nextsize = C, C.fd_nextsize = A
//! ```
//!
//! Chunks up to `global_max_fast` (128 bytes by default) freed outside the
//! tcache go to singly linked, LIFO fastbins, left marked in use until
//! `malloc_consolidate` merges them.

use crate::chunk::Chunk;
use crate::memory::Memory;
use crate::state::Arena;

type Res<T, M> = Result<T, <M as Memory>::Error>;

/// Width of a small bin (`SMALLBIN_WIDTH`).
pub const SMALLBIN_WIDTH: usize = 16;
/// The smallest size that lives in a large bin (`MIN_LARGE_SIZE`).
pub const MIN_LARGE_SIZE: usize = 64 * SMALLBIN_WIDTH;
/// Freeing a chunk at least this large consolidates fastbins and may trim.
pub const FASTBIN_CONSOLIDATION_THRESHOLD: usize = 65536;
/// The largest value M_MXFAST accepts (`MAX_FAST_SIZE`).
pub const MAX_FAST_SIZE: usize = 80 * crate::chunk::SIZE_SZ / 4;
/// The default fastbin limit (`DEFAULT_MXFAST`).
pub const DEFAULT_MXFAST: usize = 64 * crate::chunk::SIZE_SZ / 4;

/// Whether a chunk size is served by a small bin (`in_smallbin_range`).
#[inline(always)]
pub const fn in_smallbin_range(size: usize) -> bool {
    size < MIN_LARGE_SIZE
}

/// Small bin of a chunk size (`smallbin_index`).
#[inline(always)]
pub const fn smallbin_index(size: usize) -> usize {
    size >> 4
}

/// Large bin of a chunk size (`largebin_index_64`).
#[inline(always)]
pub const fn largebin_index(size: usize) -> usize {
    if (size >> 6) <= 48 {
        48 + (size >> 6)
    } else if (size >> 9) <= 20 {
        91 + (size >> 9)
    } else if (size >> 12) <= 10 {
        110 + (size >> 12)
    } else if (size >> 15) <= 4 {
        119 + (size >> 15)
    } else if (size >> 18) <= 2 {
        124 + (size >> 18)
    } else {
        126
    }
}

/// The bin a free chunk of `size` belongs in (`bin_index`).
#[inline(always)]
pub const fn bin_index(size: usize) -> usize {
    if in_smallbin_range(size) {
        smallbin_index(size)
    } else {
        largebin_index(size)
    }
}

/// Fastbin of a chunk size (`fastbin_index`).
#[inline(always)]
pub const fn fastbin_index(size: usize) -> usize {
    (size >> 4).wrapping_sub(2)
}

/// The fastbin limit stored for an M_MXFAST request (`set_max_fast`).
pub const fn max_fast_for(request: usize) -> usize {
    if request == 0 {
        crate::chunk::MINSIZE / 2
    } else {
        (request + crate::chunk::SIZE_SZ) & !crate::chunk::MALLOC_ALIGN_MASK
    }
}

/// Take `p` off whatever doubly linked bin holds it (`unlink_chunk`).
pub fn unlink_chunk<M: Memory>(m: &mut M, p: Chunk) -> Res<(), M> {
    let size = p.size(m)?;
    if size != p.plus(size).prev_size(m)? {
        return Err(m.corruption("corrupted size vs. prev_size"));
    }
    let fd = p.fd(m)?;
    let bk = p.bk(m)?;
    if fd.bk(m)? != p || bk.fd(m)? != p {
        return Err(m.corruption("corrupted double-linked list"));
    }
    // A hardened instance: the chunk's header must be the allocator's (a
    // fake chunk with consistent links still fails here: unsafe unlink).
    crate::harden::check_free(m, p, "corrupted free chunk header")?;
    fd.set_bk(m, bk)?;
    bk.set_fd(m, fd)?;
    if !in_smallbin_range(p.size_field(m)?) && p.fd_nextsize(m)?.0 != 0 {
        let fdn = p.fd_nextsize(m)?;
        let bkn = p.bk_nextsize(m)?;
        if fdn.bk_nextsize(m)? != p || bkn.fd_nextsize(m)? != p {
            return Err(m.corruption("corrupted double-linked list (not small)"));
        }
        if fd.fd_nextsize(m)?.0 == 0 {
            if fdn == p {
                fd.set_fd_nextsize(m, fd)?;
                fd.set_bk_nextsize(m, fd)?;
            } else {
                fd.set_fd_nextsize(m, fdn)?;
                fd.set_bk_nextsize(m, bkn)?;
                fdn.set_bk_nextsize(m, fd)?;
                bkn.set_fd_nextsize(m, fd)?;
            }
        } else {
            fdn.set_bk_nextsize(m, bkn)?;
            bkn.set_fd_nextsize(m, fdn)?;
        }
    }
    Ok(())
}

/// Put `p` (of `size`) at the front of the unsorted bin, first checking the
/// bin's first link when `check` names the glibc message for the path.
/// Large chunks get cleared nextsize links.
pub fn push_unsorted<M: Memory>(
    m: &mut M,
    av: Arena,
    p: Chunk,
    size: usize,
    check: Option<&'static str>,
) -> Res<(), M> {
    let bck = av.unsorted();
    let fwd = bck.fd(m)?;
    if let Some(message) = check {
        if fwd.bk(m)? != bck {
            return Err(m.corruption(message));
        }
    }
    p.set_fd(m, fwd)?;
    p.set_bk(m, bck)?;
    if !in_smallbin_range(size) {
        p.set_fd_nextsize(m, Chunk(0))?;
        p.set_bk_nextsize(m, Chunk(0))?;
    }
    bck.set_fd(m, p)?;
    fwd.set_bk(m, p)
}

/// Split `victim` (of `size`, off every list) into an in-use chunk of `nb`
/// bytes and a free remainder, or hand out the whole chunk when the remainder
/// would be smaller than a chunk. Returns the remainder, if any.
pub fn split_or_take<M: Memory>(
    m: &mut M,
    av: Arena,
    victim: Chunk,
    size: usize,
    nb: usize,
    arena_bit: usize,
    check: &'static str,
) -> Res<Option<Chunk>, M> {
    let remainder_size = size - nb;
    if remainder_size < crate::chunk::MINSIZE {
        victim.set_inuse_at(m, size)?;
        if arena_bit != 0 {
            let v = victim.size_field(m)?;
            victim.set_head(m, v | arena_bit)?;
        }
        return Ok(None);
    }
    m.count(crate::memory::Path::Split);
    let remainder = victim.plus(nb);
    push_unsorted(m, av, remainder, remainder_size, Some(check))?;
    victim.set_head(m, nb | crate::chunk::PREV_INUSE | arena_bit)?;
    remainder.set_head(m, remainder_size | crate::chunk::PREV_INUSE)?;
    remainder.set_foot(m, remainder_size)?;
    Ok(Some(remainder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_indexes_match_glibc() {
        assert_eq!(smallbin_index(32), 2);
        assert_eq!(smallbin_index(1008), 63);
        assert_eq!(bin_index(1024), 64);
        assert_eq!(bin_index(1088), 65);
        assert_eq!(bin_index(3072), 96);
        assert_eq!(bin_index(3584), 98);
        assert_eq!(bin_index(0x10000), 121);
        assert_eq!(bin_index(usize::MAX & !15), 126);
        assert_eq!(fastbin_index(32), 0);
        assert_eq!(fastbin_index(128), 6);
        assert_eq!(fastbin_index(176), 9);
        assert_eq!(max_fast_for(DEFAULT_MXFAST), 128);
        assert_eq!(max_fast_for(0), 16);
        assert_eq!(max_fast_for(MAX_FAST_SIZE), 160);
    }

    #[test]
    fn large_bins_cover_every_size_in_order() {
        let mut last = 64;
        let mut size = MIN_LARGE_SIZE;
        while size < (1 << 30) {
            let i = bin_index(size);
            assert!(i == last || i == last + 1, "size {size}: bin {i} after {last}");
            assert!(i < 127);
            last = i;
            size += 16;
        }
    }
}
