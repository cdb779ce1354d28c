//! Checks beyond glibc's, for a hardened instance (`Params::hardened`).
//!
//! The headers of a hardened instance are keyed (see `chunk::HeaderState`):
//! the top bits of each size word hold a check value over the chunk's
//! address, size and flags, made with a secret the memory source keeps, and
//! a parked bit for chunks in a fastbin. A header the allocator did not
//! write fails the check, and so does a size overwritten by the user; a
//! parked chunk freed again is a double free even where glibc's fastbin
//! check cannot tell. Chunks in a tcache or a remote-free queue are not
//! parked: their headers are written only under the arena's lock, whose
//! holder may be setting their PREV_INUSE bit; the tcache key finds their
//! double frees, and realloc walks the thread's bin as free does. A chunk
//! leaving a tcache bin is tested for that key, not for its header (which
//! was checked on its way in). glibc's
//! own checks run first on every path, so where glibc detects a misuse its
//! message is printed.
//!
//! With `Params::free_check`, chunks freed to a tcache, fastbin or queue
//! are also filled with a pattern that is verified when they leave the
//! tcache or fastbin: a write after free is reported at the next `malloc`
//! of the chunk.
//!
//! Every function here is a no-op for an instance whose headers are not
//! keyed (glibc's profile), apart from one test of the key.

use crate::chunk::{Chunk, HeaderState, CHUNK_HDR_SZ, SIZE_SZ};
use crate::memory::Memory;
use crate::Res;

/// The message for a chunk leaving a fastbin without a parked header.
pub(crate) const FASTBIN_ENTRY_CORRUPT: &str = "malloc(): corrupted fastbin entry";
/// The message for a chunk leaving another bin without a valid header.
pub(crate) const FREE_CHUNK_CORRUPT: &str = "malloc(): corrupted free chunk header";

/// The byte freed chunks are filled with in the free-check mode.
pub const FREE_FILL: u8 = 0xa5;
const FREE_FILL_WORD: usize = usize::from_ne_bytes([FREE_FILL; SIZE_SZ]);
/// The fill starts after the list link and the tcache key.
const FILL_START: usize = CHUNK_HDR_SZ + 2 * SIZE_SZ;

/// A header key from a seed (a deterministic instance's): the secret must
/// be non-zero, and should not be any other value the heap shows (such as
/// the tcache key, which cached chunks carry), so the seed is mixed.
pub const fn header_key_from(seed: usize) -> usize {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | crate::chunk::KEY_BITS
}

/// A chunk the user hands back (free, realloc) must be in use: its header
/// valid and not parked.
#[inline(always)]
pub(crate) fn check_in_use<M: Memory>(
    m: &mut M,
    p: Chunk,
    double_free: &'static str,
    forged: &'static str,
) -> Res<(), M> {
    match p.header_state(m)? {
        HeaderState::Valid => Ok(()),
        state => Err(reject(m, state, double_free, forged)),
    }
}

#[cold]
fn reject<M: Memory>(
    m: &mut M,
    state: HeaderState,
    double_free: &'static str,
    forged: &'static str,
) -> M::Error {
    m.corruption(if state == HeaderState::Parked {
        double_free
    } else {
        forged
    })
}

/// A free chunk leaving a bin, or the top, must have a valid header.
#[inline(always)]
pub(crate) fn check_free<M: Memory>(m: &mut M, p: Chunk, message: &'static str) -> Res<(), M> {
    if p.header_state(m)? != HeaderState::Valid {
        return Err(m.corruption(message));
    }
    Ok(())
}

/// A chunk leaving a tcache bin must carry the tcache key in its key word.
/// Only `tcache_put` writes it there, and `tcache_get` clears it, so a
/// fake chunk linked in by a poisoned pointer fails, and so does a chunk
/// on the list twice (the second time it is taken). The header is checked
/// when the chunk is freed; this test is the cheap half of the round trip
/// (one word on the line the link is read from), not a second header check.
#[inline(always)]
pub(crate) fn check_cached<M: Memory>(m: &mut M, word: usize, key: usize) -> Res<(), M> {
    if word != key && m.header_key() != 0 {
        return Err(m.corruption("malloc(): corrupted tcache entry"));
    }
    Ok(())
}

/// A chunk taken from a fastbin must be parked.
#[inline(always)]
pub(crate) fn check_parked<M: Memory>(m: &mut M, p: Chunk, message: &'static str) -> Res<(), M> {
    if p.header_state(m)? != HeaderState::Parked && m.header_key() != 0 {
        return Err(m.corruption(message));
    }
    Ok(())
}

/// Park a chunk checked in use (it enters a fastbin, under the arena lock).
#[inline(always)]
pub(crate) fn park<M: Memory>(m: &mut M, p: Chunk) -> Res<(), M> {
    p.toggle_parked(m)
}

/// Take a parked chunk back (checked), for the user or the arena.
#[inline(always)]
pub(crate) fn unpark<M: Memory>(m: &mut M, p: Chunk, message: &'static str) -> Res<(), M> {
    check_parked(m, p, message)?;
    p.toggle_parked(m)
}

/// A heap chunk the user hands back must be in use as its successor sees
/// it (glibc looks only on the arena path): a clear PREV_INUSE means the
/// chunk is free in a bin, or lies inside a free chunk it was merged into
/// (a stale header: house of botcake).
#[inline(always)]
pub(crate) fn check_next_in_use<M: Memory>(
    m: &mut M,
    p: Chunk,
    size: usize,
    message: &'static str,
) -> Res<(), M> {
    if m.header_key() != 0 && !p.inuse_at(m, size)? {
        return Err(m.corruption(message));
    }
    Ok(())
}

/// The next chunk of a chunk being freed must have a valid (or parked)
/// header: a forged one means the freed block overflowed into it.
#[inline(always)]
pub(crate) fn check_next<M: Memory>(m: &mut M, next: Chunk) -> Res<(), M> {
    if next.header_state(m)? == HeaderState::Forged {
        return Err(m.corruption("free(): corrupted next chunk header"));
    }
    Ok(())
}

/// Free-check mode: fill a parked chunk of `size` bytes past its link and
/// key words.
#[inline]
pub(crate) fn fill_freed<M: Memory>(m: &mut M, p: Chunk, size: usize) -> Res<(), M> {
    if size > FILL_START {
        m.fill(p.0 + FILL_START, FREE_FILL, size - FILL_START)?;
    }
    Ok(())
}

/// Free-check mode: the fill of a chunk leaving its tcache bin or fastbin
/// must be intact.
#[inline(never)]
pub(crate) fn check_fill<M: Memory>(m: &mut M, p: Chunk) -> Res<(), M> {
    let size = p.size(m)?;
    let mut addr = p.0.wrapping_add(FILL_START);
    let end = p.0.wrapping_add(size);
    while addr < end {
        if m.read(addr)? != FREE_FILL_WORD {
            return Err(m.corruption("malloc(): write after free detected"));
        }
        addr += SIZE_SZ;
    }
    Ok(())
}
