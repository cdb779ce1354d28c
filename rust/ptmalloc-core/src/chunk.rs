//! Chunks: the boundary-tagged blocks every allocation lives in, and the
//! size arithmetic that maps a request to a chunk.
//!
//! ```text
//!     chunk-> +-------------------------------------------------+
//!             | prev_size: size of previous chunk, if it is free |
//!             +-------------------------------------------------+
//!             | size of this chunk                        |A|M|P|
//!       mem-> +-------------------------------------------------+
//!             | fd            (free chunks only)                |
//!             | bk            (free chunks only)                |
//!             | fd_nextsize   (free large chunks only)          |
//!             | bk_nextsize   (free large chunks only)          |
//!             | ... user data ...                               |
//! next chunk->+-------------------------------------------------+
//!             | prev_size: our size when we are free (our foot) |
//! ```
//!
//! `P` (PREV_INUSE) says whether the chunk before this one is in use, `M`
//! (IS_MMAPPED) that the chunk was mapped on its own, `A` (NON_MAIN_ARENA) that
//! it belongs to an arena other than the main one. An in-use chunk may use the
//! next chunk's `prev_size` word for data, which is why the usable size of a
//! heap chunk is its size minus one word. All address arithmetic wraps: a
//! corrupted size must lead to an integrity check, never to an overflow panic.

use crate::memory::Memory;

/// Bytes in a machine word (`SIZE_SZ`).
pub const SIZE_SZ: usize = core::mem::size_of::<usize>();
/// Alignment of every pointer handed out (`MALLOC_ALIGNMENT`).
pub const MALLOC_ALIGNMENT: usize = 2 * SIZE_SZ;
/// Mask of the low bits an aligned address or size has clear.
pub const MALLOC_ALIGN_MASK: usize = MALLOC_ALIGNMENT - 1;
/// Bytes of header before the user's memory (`CHUNK_HDR_SZ`).
pub const CHUNK_HDR_SZ: usize = 2 * SIZE_SZ;
/// The smallest chunk: header plus the two list links (`MINSIZE`).
pub const MINSIZE: usize = 4 * SIZE_SZ;
/// `sizeof(struct malloc_chunk)`: header plus four links.
pub const MALLOC_CHUNK_SZ: usize = 6 * SIZE_SZ;

/// The previous chunk is in use.
pub const PREV_INUSE: usize = 0x1;
/// The chunk was obtained with its own `mmap`.
pub const IS_MMAPPED: usize = 0x2;
/// The chunk belongs to an arena other than the main arena.
pub const NON_MAIN_ARENA: usize = 0x4;
/// All flag bits of the size field.
pub const SIZE_BITS: usize = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA;

/// Largest request ever satisfied: objects must stay subtractable.
pub const MAX_REQUEST: usize = isize::MAX as usize;

/// The bits of a size word that hold the size and flags when headers are
/// keyed: no real chunk is 2^48 bytes, so the top 16 bits are free for a
/// check value.
pub const HEADER_SIZE_BITS: usize = (1 << 48) - 1;
const TAG_BITS: usize = !HEADER_SIZE_BITS;

/// What a keyed header says about its chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// The check value matches: a chunk in use, or free in a bin or the top.
    Valid,
    /// The check value matches a parked chunk (in a fastbin: in use as far
    /// as its neighbours know, but not the user's any more).
    Parked,
    /// The check value matches neither: the header was not written by the
    /// allocator (a fake chunk, an overwritten size, a stray pointer).
    Forged,
}

/// The check value of a header at `addr` whose size and flags are the low
/// 48 bits of `word` (the top 16 bits of the result count, the rest is
/// noise): keyed by the instance's secret, so that without the key a fake
/// or altered header is caught with probability 1 - 2^-16. The top bits
/// of a product by the (odd) key depend on every bit of the address and
/// size; the address is rotated so that copying a valid header to a nearby
/// address would need a size change of 4 GiB or more to keep its value.
/// The PREV_INUSE bit enters as a keyed flip of its own: the allocator sets
/// and clears it in other chunks' headers without recomputing anything.
#[inline(always)]
const fn header_hash(key: usize, addr: usize, word: usize) -> usize {
    let h = (addr.rotate_left(28) ^ (word & HEADER_SIZE_BITS & !PREV_INUSE)).wrapping_mul(key);
    h ^ (key & (word & PREV_INUSE).wrapping_neg())
}

/// The check value's bits for a header of size and flags `low`.
#[inline(always)]
const fn header_tag(key: usize, addr: usize, low: usize) -> usize {
    header_hash(key, addr, low) & TAG_BITS
}

/// What setting PREV_INUSE changes in a keyed header: the bit and a keyed
/// flip of the check value (never zero: see [`KEY_BITS`]).
#[inline(always)]
const fn prev_inuse_bits(key: usize) -> usize {
    PREV_INUSE | (key & TAG_BITS)
}

/// Bits every header key has set: odd (a product by it loses no bit) and
/// with a non-zero PREV_INUSE flip.
pub const KEY_BITS: usize = 1 | (1 << 50);

/// What parking changes in a keyed header: a keyed, non-zero flip of the
/// check value (so a parked header is not a valid one, nor the reverse).
#[inline(always)]
const fn park_bits(key: usize) -> usize {
    ((key >> 16) & TAG_BITS) | (1 << 48)
}

/// The chunk size that serves a request of `req` bytes (`request2size`).
#[inline(always)]
pub const fn request2size(req: usize) -> usize {
    if req.wrapping_add(SIZE_SZ + MALLOC_ALIGN_MASK) < MINSIZE {
        MINSIZE
    } else {
        req.wrapping_add(SIZE_SZ + MALLOC_ALIGN_MASK) & !MALLOC_ALIGN_MASK
    }
}

/// `request2size` for requests that can be satisfied at all; `None` above
/// `PTRDIFF_MAX` (`checked_request2size`).
#[inline(always)]
pub const fn checked_request2size(req: usize) -> Option<usize> {
    if req > MAX_REQUEST {
        None
    } else {
        Some(request2size(req))
    }
}

/// Whether an address or size has the allocator's alignment.
#[inline(always)]
pub const fn is_aligned(value: usize) -> bool {
    value & MALLOC_ALIGN_MASK == 0
}

/// Round `value` up to a multiple of `align` (a power of two), wrapping.
#[inline(always)]
pub const fn align_up(value: usize, align: usize) -> usize {
    value.wrapping_add(align - 1) & !(align - 1)
}

/// Round `value` down to a multiple of `align` (a power of two).
#[inline(always)]
pub const fn align_down(value: usize, align: usize) -> usize {
    value & !(align - 1)
}

// Field offsets inside a chunk.
const PREV_SIZE: usize = 0;
const SIZE: usize = SIZE_SZ;
const FD: usize = 2 * SIZE_SZ;
const BK: usize = 3 * SIZE_SZ;
const FD_NEXTSIZE: usize = 4 * SIZE_SZ;
const BK_NEXTSIZE: usize = 5 * SIZE_SZ;

/// The address of a chunk header. A plain value: it is only dereferenced
/// through a [`Memory`], which decides what a bad address means.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct Chunk(pub usize);

type Res<T, M> = Result<T, <M as Memory>::Error>;

impl Chunk {
    /// The chunk whose user memory starts at `mem` (`mem2chunk`).
    #[inline(always)]
    pub const fn from_mem(mem: usize) -> Chunk {
        Chunk(mem.wrapping_sub(CHUNK_HDR_SZ))
    }

    /// The user pointer of this chunk (`chunk2mem`).
    #[inline(always)]
    pub const fn mem(self) -> usize {
        self.0.wrapping_add(CHUNK_HDR_SZ)
    }

    /// The chunk `offset` bytes after this one (`chunk_at_offset`).
    #[inline(always)]
    pub const fn plus(self, offset: usize) -> Chunk {
        Chunk(self.0.wrapping_add(offset))
    }

    /// The chunk `offset` bytes before this one.
    #[inline(always)]
    pub const fn minus(self, offset: usize) -> Chunk {
        Chunk(self.0.wrapping_sub(offset))
    }

    /// The size field, flags included (`chunksize_nomask`), without the
    /// check value of a keyed header.
    #[inline(always)]
    pub fn size_field<M: Memory>(self, m: &M) -> Res<usize, M> {
        Ok(self.header_word(m)? & m.header_mask())
    }

    /// The whole size word, check value and parked bit included.
    #[inline(always)]
    pub fn header_word<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0.wrapping_add(SIZE))
    }

    /// What the header's check value says (always `Valid` when headers are
    /// not keyed).
    #[inline(always)]
    pub fn header_state<M: Memory>(self, m: &M) -> Res<HeaderState, M> {
        let key = m.header_key();
        if key == 0 {
            return Ok(HeaderState::Valid);
        }
        let raw = self.header_word(m)?;
        let diff = (header_hash(key, self.0, raw) ^ raw) & TAG_BITS;
        Ok(if diff == 0 {
            HeaderState::Valid
        } else if diff == park_bits(key) {
            HeaderState::Parked
        } else {
            HeaderState::Forged
        })
    }

    /// Flip a keyed header between valid and parked (the caller checked
    /// which it is); nothing when headers are not keyed.
    #[inline(always)]
    pub fn toggle_parked<M: Memory>(self, m: &mut M) -> Res<(), M> {
        let key = m.header_key();
        if key != 0 {
            let raw = self.header_word(m)?;
            m.write(self.0.wrapping_add(SIZE), raw ^ park_bits(key))?;
        }
        Ok(())
    }

    /// Change the size and flags of a header to `low`, carrying its check
    /// value along: a valid header stays valid, a parked one parked, and a
    /// forged one forged (the allocator never launders a corrupted header).
    #[inline(always)]
    fn rewrite_low<M: Memory>(self, m: &mut M, raw: usize, low: usize) -> Res<(), M> {
        let key = m.header_key();
        let value = if key == 0 {
            low
        } else {
            let old = raw & HEADER_SIZE_BITS;
            let high =
                (raw & !HEADER_SIZE_BITS) ^ header_tag(key, self.0, old) ^ header_tag(key, self.0, low);
            low | high
        };
        m.write(self.0.wrapping_add(SIZE), value)
    }

    /// The chunk size without flags (`chunksize`).
    #[inline(always)]
    pub fn size<M: Memory>(self, m: &M) -> Res<usize, M> {
        Ok(self.size_field(m)? & !SIZE_BITS)
    }

    /// Overwrite the size field, flags included (`set_head`); a keyed header
    /// gets a fresh, valid check value.
    #[inline(always)]
    pub fn set_head<M: Memory>(self, m: &mut M, value: usize) -> Res<(), M> {
        let key = m.header_key();
        let value = if key == 0 {
            value
        } else {
            let low = value & HEADER_SIZE_BITS;
            low | header_tag(key, self.0, low)
        };
        m.write(self.0.wrapping_add(SIZE), value)
    }

    /// Set the size, keeping the flags (`set_head_size`).
    #[inline(always)]
    pub fn set_head_size<M: Memory>(self, m: &mut M, size: usize) -> Res<(), M> {
        let raw = self.header_word(m)?;
        self.rewrite_low(m, raw, (raw & m.header_mask() & SIZE_BITS) | size)
    }

    /// The previous chunk's size, valid when that chunk is free.
    #[inline(always)]
    pub fn prev_size<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0.wrapping_add(PREV_SIZE))
    }

    /// Write this chunk's `prev_size` word.
    #[inline(always)]
    pub fn set_prev_size<M: Memory>(self, m: &mut M, value: usize) -> Res<(), M> {
        m.write(self.0.wrapping_add(PREV_SIZE), value)
    }

    /// Record `size` as this chunk's foot: the next chunk's `prev_size`.
    #[inline(always)]
    pub fn set_foot<M: Memory>(self, m: &mut M, size: usize) -> Res<(), M> {
        self.plus(size).set_prev_size(m, size)
    }

    /// Whether the chunk before this one is in use (`prev_inuse`).
    #[inline(always)]
    pub fn prev_inuse<M: Memory>(self, m: &M) -> Res<bool, M> {
        Ok(self.size_field(m)? & PREV_INUSE != 0)
    }

    /// Whether this chunk was mapped on its own (`chunk_is_mmapped`).
    #[inline(always)]
    pub fn is_mmapped<M: Memory>(self, m: &M) -> Res<bool, M> {
        Ok(self.size_field(m)? & IS_MMAPPED != 0)
    }

    /// Whether this chunk belongs to a non-main arena.
    #[inline(always)]
    pub fn is_non_main<M: Memory>(self, m: &M) -> Res<bool, M> {
        Ok(self.size_field(m)? & NON_MAIN_ARENA != 0)
    }

    /// Whether the chunk `offset` bytes ahead records its predecessor in use
    /// (`inuse_bit_at_offset`).
    #[inline(always)]
    pub fn inuse_at<M: Memory>(self, m: &M, offset: usize) -> Res<bool, M> {
        self.plus(offset).prev_inuse(m)
    }

    /// Set PREV_INUSE in the chunk `offset` bytes ahead (`set_inuse_bit_at_offset`).
    #[inline(always)]
    pub fn set_inuse_at<M: Memory>(self, m: &mut M, offset: usize) -> Res<(), M> {
        self.plus(offset).set_prev_inuse(m, true)
    }

    /// Clear PREV_INUSE in the chunk `offset` bytes ahead.
    #[inline(always)]
    pub fn clear_inuse_at<M: Memory>(self, m: &mut M, offset: usize) -> Res<(), M> {
        self.plus(offset).set_prev_inuse(m, false)
    }

    /// Set or clear this chunk's PREV_INUSE, with the keyed flip of its
    /// check value (so a valid header stays valid, a forged one forged).
    #[inline(always)]
    fn set_prev_inuse<M: Memory>(self, m: &mut M, on: bool) -> Res<(), M> {
        let raw = self.header_word(m)?;
        if (raw & PREV_INUSE != 0) == on {
            return Ok(());
        }
        let key = m.header_key();
        let flip = if key == 0 {
            PREV_INUSE
        } else {
            prev_inuse_bits(key)
        };
        m.write(self.0.wrapping_add(SIZE), raw ^ flip)
    }

    /// Whether this chunk is in use, as recorded by the next chunk (`inuse`).
    #[inline(always)]
    pub fn inuse<M: Memory>(self, m: &M) -> Res<bool, M> {
        let size = self.size(m)?;
        self.inuse_at(m, size)
    }

    /// Forward link of a free chunk.
    #[inline(always)]
    pub fn fd<M: Memory>(self, m: &M) -> Res<Chunk, M> {
        Ok(Chunk(m.read(self.0.wrapping_add(FD))?))
    }

    /// Backward link of a free chunk.
    #[inline(always)]
    pub fn bk<M: Memory>(self, m: &M) -> Res<Chunk, M> {
        Ok(Chunk(m.read(self.0.wrapping_add(BK))?))
    }

    /// Set the forward link.
    #[inline(always)]
    pub fn set_fd<M: Memory>(self, m: &mut M, v: Chunk) -> Res<(), M> {
        m.write(self.0.wrapping_add(FD), v.0)
    }

    /// Set the backward link.
    #[inline(always)]
    pub fn set_bk<M: Memory>(self, m: &mut M, v: Chunk) -> Res<(), M> {
        m.write(self.0.wrapping_add(BK), v.0)
    }

    /// Next larger size in a large bin's size list (0 when not on that list).
    #[inline(always)]
    pub fn fd_nextsize<M: Memory>(self, m: &M) -> Res<Chunk, M> {
        Ok(Chunk(m.read(self.0.wrapping_add(FD_NEXTSIZE))?))
    }

    /// Next smaller size in a large bin's size list.
    #[inline(always)]
    pub fn bk_nextsize<M: Memory>(self, m: &M) -> Res<Chunk, M> {
        Ok(Chunk(m.read(self.0.wrapping_add(BK_NEXTSIZE))?))
    }

    /// Set the size-list forward link.
    #[inline(always)]
    pub fn set_fd_nextsize<M: Memory>(self, m: &mut M, v: Chunk) -> Res<(), M> {
        m.write(self.0.wrapping_add(FD_NEXTSIZE), v.0)
    }

    /// Set the size-list backward link.
    #[inline(always)]
    pub fn set_bk_nextsize<M: Memory>(self, m: &mut M, v: Chunk) -> Res<(), M> {
        m.write(self.0.wrapping_add(BK_NEXTSIZE), v.0)
    }

    /// Address of the `fd` word (the position safe-linking mixes in).
    #[inline(always)]
    pub const fn fd_addr(self) -> usize {
        self.0.wrapping_add(FD)
    }

    /// Address of the `bk` word.
    #[inline(always)]
    pub const fn bk_addr(self) -> usize {
        self.0.wrapping_add(BK)
    }

    /// Whether the chunk address is misaligned for a heap chunk (`misaligned_chunk`).
    #[inline(always)]
    pub const fn misaligned(self) -> bool {
        !is_aligned(self.mem())
    }
}

/// Safe-linking: hide a single-list pointer stored at `pos` (`PROTECT_PTR`).
#[inline(always)]
pub const fn protect_ptr(pos: usize, ptr: usize) -> usize {
    (pos >> 12) ^ ptr
}

/// Safe-linking: recover the pointer stored at `pos` (`REVEAL_PTR`).
#[inline(always)]
pub const fn reveal_ptr(pos: usize, stored: usize) -> usize {
    protect_ptr(pos, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sizes_match_glibc() {
        assert_eq!(request2size(0), 32);
        assert_eq!(request2size(24), 32);
        assert_eq!(request2size(25), 48);
        assert_eq!(request2size(40), 48);
        assert_eq!(request2size(1032), 1040);
        assert_eq!(request2size(1033), 1056);
        assert_eq!(checked_request2size(MAX_REQUEST + 1), None);
        assert_eq!(checked_request2size(usize::MAX), None);
        // Usable size of a heap chunk is its size minus one word.
        for req in 0..5000usize {
            let usable = request2size(req) - SIZE_SZ;
            assert!(usable >= req && usable - req <= MALLOC_ALIGNMENT + SIZE_SZ);
        }
    }

    #[test]
    fn chunk_and_mem_convert() {
        let c = Chunk(0x1000);
        assert_eq!(c.mem(), 0x1010);
        assert_eq!(Chunk::from_mem(0x1010), c);
        assert!(!c.misaligned());
        assert!(Chunk(0x1008).misaligned());
    }

    #[test]
    fn safe_linking_round_trips() {
        let pos = 0x5555_5555_92a0;
        let ptr = 0x5555_5555_92c0;
        let stored = protect_ptr(pos, ptr);
        assert_ne!(stored, ptr);
        assert_eq!(reveal_ptr(pos, stored), ptr);
        assert_eq!(protect_ptr(pos, 0), pos >> 12);
    }
}
