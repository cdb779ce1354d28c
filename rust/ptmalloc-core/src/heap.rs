//! The heaps of non-main arenas: regions of `HEAP_MAX_SIZE` bytes aligned to
//! their size, so that the heap of any chunk is its address with the low bits
//! cleared (`heap_for_ptr`). A heap starts with its `heap_info`; the first
//! heap of an arena holds the arena's state next. A heap grows in place (more
//! of the reservation made accessible), gives pages back when its top shrinks,
//! and is unmapped when the arena's top retreats out of it.
//!
//! ```text
//!   0  ar_ptr         the arena
//!   8  prev           the arena's previous heap (0 for the first)
//!  16  size           bytes in use, from the heap's start
//!  24  mprotect_size  bytes ever made accessible
//!  32  pagesize
//!  48  (size: chunks start 16-aligned after it)
//! ```

use crate::chunk::{
    align_down, align_up, Chunk, CHUNK_HDR_SZ, MALLOC_ALIGN_MASK, MINSIZE, NON_MAIN_ARENA, PREV_INUSE,
    SIZE_SZ,
};
use crate::memory::Memory;
use crate::state::Arena;
use crate::tcache::Tcache;
use crate::{Allocator, Res};

pub use crate::params::HEAP_MAX_SIZE;

/// Smallest heap mapped (`HEAP_MIN_SIZE`).
pub const HEAP_MIN_SIZE: usize = 32 * 1024;
/// Bytes of a `heap_info`, padded so that chunks after it are aligned.
pub const HEAP_INFO_SIZE: usize = 6 * SIZE_SZ;

const AR_PTR: usize = 0;
const PREV: usize = SIZE_SZ;
const SIZE: usize = 2 * SIZE_SZ;
const MPROTECT_SIZE: usize = 3 * SIZE_SZ;
const PAGESIZE: usize = 4 * SIZE_SZ;

/// The address of a heap's `heap_info`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Heap(pub usize);

impl Heap {
    /// The heap holding `addr` (`heap_for_ptr`).
    #[inline(always)]
    pub const fn of(addr: usize) -> Heap {
        Heap(addr & !(HEAP_MAX_SIZE - 1))
    }

    /// The arena this heap belongs to.
    #[inline(always)]
    pub fn arena<M: Memory>(self, m: &M) -> Res<Arena, M> {
        Ok(Arena(m.read(self.0 + AR_PTR)?))
    }

    /// The arena's previous heap, if any.
    pub fn prev<M: Memory>(self, m: &M) -> Res<Option<Heap>, M> {
        let p = m.read(self.0 + PREV)?;
        Ok(if p == 0 { None } else { Some(Heap(p)) })
    }

    /// Bytes in use from the heap's start.
    pub fn size<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0 + SIZE)
    }

    /// Bytes of the reservation ever made accessible.
    pub fn mprotect_size<M: Memory>(self, m: &M) -> Res<usize, M> {
        m.read(self.0 + MPROTECT_SIZE)
    }

    fn set_size<M: Memory>(self, m: &mut M, v: usize) -> Res<(), M> {
        m.write(self.0 + SIZE, v)
    }

    /// The first chunk of the heap: after the arena's state in the arena's
    /// first heap, after the `heap_info` in the others.
    pub fn first_chunk<M: Memory>(self, m: &M) -> Res<Chunk, M> {
        let av = self.arena(m)?;
        Ok(if av.0 == self.0 + HEAP_INFO_SIZE {
            Chunk(align_up(
                av.0 + crate::state::ARENA_SIZE,
                crate::chunk::MALLOC_ALIGNMENT,
            ))
        } else {
            Chunk(self.0 + HEAP_INFO_SIZE)
        })
    }
}

impl<M: Memory> Allocator<M> {
    /// Map a heap with room for `size` bytes plus `top_pad` if it fits
    /// (`new_heap`); its `heap_info` is filled in but for the arena.
    pub(crate) fn new_heap(&mut self, size: usize, top_pad: usize) -> Res<Option<Heap>, M> {
        let page = self.mem.page_size();
        let size = if size + top_pad < HEAP_MIN_SIZE {
            HEAP_MIN_SIZE
        } else if size + top_pad <= HEAP_MAX_SIZE {
            size + top_pad
        } else if size > HEAP_MAX_SIZE {
            return Ok(None);
        } else {
            HEAP_MAX_SIZE
        };
        let size = align_up(size, page);
        let Some(base) = self.mem.map_heap(HEAP_MAX_SIZE, size) else {
            return Ok(None);
        };
        let h = Heap(base);
        self.mem.write(h.0 + AR_PTR, 0)?;
        self.mem.write(h.0 + PREV, 0)?;
        h.set_size(&mut self.mem, size)?;
        self.mem.write(h.0 + MPROTECT_SIZE, size)?;
        self.mem.write(h.0 + PAGESIZE, page)?;
        Ok(Some(h))
    }

    /// Grow heap `h` by `diff` bytes, rounded to pages, in place (`grow_heap`).
    fn grow_heap(&mut self, h: Heap, diff: usize) -> Res<bool, M> {
        let page = self.mem.page_size();
        let new_size = h.size(&self.mem)? + align_up(diff, page);
        if new_size > HEAP_MAX_SIZE {
            return Ok(false);
        }
        if new_size > h.mprotect_size(&self.mem)? {
            if !self.mem.extend_heap(h.0, new_size) {
                return Ok(false);
            }
            self.mem.write(h.0 + MPROTECT_SIZE, new_size)?;
        }
        h.set_size(&mut self.mem, new_size)?;
        Ok(true)
    }

    /// Give the last `diff` bytes of heap `h` back to the system (`shrink_heap`);
    /// they stay accessible and read as zero.
    fn shrink_heap(&mut self, h: Heap, diff: usize) -> Res<(), M> {
        let new_size = h.size(&self.mem)? - diff;
        self.mem.discard(h.0 + new_size, diff);
        h.set_size(&mut self.mem, new_size)
    }

    /// Grow a non-main arena for a request of `nb` bytes: extend the heap of
    /// its top, or start a new heap and free what was left of the old top
    /// behind two fence posts. `false` when neither is possible.
    pub(crate) fn grow_non_main(&mut self, nb: usize, av: Arena, tc: Tcache) -> Res<bool, M> {
        let old_top = av.top(&self.mem)?;
        let old_size = old_top.size(&self.mem)?;
        let h = Heap::of(old_top.0);
        let old_heap_size = h.size(&self.mem)?;
        if MINSIZE + nb > old_size && self.grow_heap(h, MINSIZE + nb - old_size)? {
            let grown = h.size(&self.mem)? - old_heap_size;
            let system_mem = av.system_mem(&self.mem)? + grown;
            av.set_system_mem(&mut self.mem, system_mem)?;
            let end = h.0 + h.size(&self.mem)?;
            old_top.set_head(&mut self.mem, (end - old_top.0) | PREV_INUSE)?;
            return Ok(true);
        }
        let Some(nh) = self.new_heap(nb + MINSIZE + HEAP_INFO_SIZE, self.params.top_pad)? else {
            return Ok(false);
        };
        self.mem.write(nh.0 + AR_PTR, av.0)?;
        self.mem.write(nh.0 + PREV, h.0)?;
        let nh_size = nh.size(&self.mem)?;
        let system_mem = av.system_mem(&self.mem)? + nh_size;
        av.set_system_mem(&mut self.mem, system_mem)?;
        let top = Chunk(nh.0 + HEAP_INFO_SIZE);
        av.set_top(&mut self.mem, top)?;
        top.set_head(&mut self.mem, (nh_size - HEAP_INFO_SIZE) | PREV_INUSE)?;
        // Fence the old top: its last MINSIZE bytes become two in-use
        // chunks (16 bytes, then a 0-size end marker) so that nothing merges
        // past the end of the old heap; the rest is freed.
        let kept = (old_size - MINSIZE) & !MALLOC_ALIGN_MASK;
        old_top
            .plus(kept + CHUNK_HDR_SZ)
            .set_head(&mut self.mem, PREV_INUSE)?;
        if kept >= MINSIZE {
            let fence = old_top.plus(kept);
            fence.set_head(&mut self.mem, CHUNK_HDR_SZ | PREV_INUSE)?;
            fence.set_foot(&mut self.mem, CHUNK_HDR_SZ)?;
            old_top.set_head(&mut self.mem, kept | PREV_INUSE | NON_MAIN_ARENA)?;
            self.int_free(av, old_top, tc, true, false)?;
        } else {
            old_top.set_head(&mut self.mem, (kept + CHUNK_HDR_SZ) | PREV_INUSE)?;
            old_top.set_foot(&mut self.mem, kept + CHUNK_HDR_SZ)?;
        }
        Ok(true)
    }

    /// After a large free in a non-main arena (`heap_trim`): unmap heaps the
    /// top has retreated out of, then give back the top's whole pages above
    /// `pad` once it exceeds the trim threshold.
    pub(crate) fn heap_trim(&mut self, mut h: Heap, pad: usize) -> Res<bool, M> {
        let page = self.mem.page_size();
        let av = h.arena(&self.mem)?;
        let mut top = av.top(&self.mem)?;
        while top.0 == h.0 + HEAP_INFO_SIZE {
            let Some(prev_heap) = h.prev(&self.mem)? else {
                break;
            };
            let prev_size = prev_heap.size(&self.mem)?;
            // The end marker of the fence posts grow_non_main left.
            let end_marker = prev_heap.0 + prev_size - (MINSIZE - 2 * SIZE_SZ);
            let misalign = end_marker & MALLOC_ALIGN_MASK;
            let end_marker = Chunk(end_marker - misalign);
            if end_marker.size_field(&self.mem)? != PREV_INUSE {
                return Err(self
                    .mem
                    .corruption("heap_trim(): fence post at the end of a heap is corrupt"));
            }
            let fence = Chunk(end_marker.0 - end_marker.prev_size(&self.mem)?);
            let mut new_size = fence.size(&self.mem)? + (MINSIZE - 2 * SIZE_SZ) + misalign;
            let mut new_top = fence;
            let free_before = !fence.prev_inuse(&self.mem)?;
            if free_before {
                new_size += fence.prev_size(&self.mem)?;
            }
            if new_size + (HEAP_MAX_SIZE - prev_size) < self.params.trim_threshold + MINSIZE + page {
                break;
            }
            let system_mem = av.system_mem(&self.mem)? - h.size(&self.mem)?;
            av.set_system_mem(&mut self.mem, system_mem)?;
            self.mem.munmap(h.0, HEAP_MAX_SIZE);
            h = prev_heap;
            if free_before {
                new_top = Chunk(fence.0 - fence.prev_size(&self.mem)?);
                crate::bins::unlink_chunk(&mut self.mem, new_top)?;
            }
            av.set_top(&mut self.mem, new_top)?;
            new_top.set_head(&mut self.mem, new_size | PREV_INUSE)?;
            top = new_top;
        }
        let top_size = top.size(&self.mem)?;
        if top_size < self.params.trim_threshold {
            return Ok(false);
        }
        let Some(area) = top_size.checked_sub(MINSIZE + 1) else {
            return Ok(false);
        };
        if area <= pad {
            return Ok(false);
        }
        let extra = align_down(area - pad, page);
        if extra == 0 {
            return Ok(false);
        }
        self.shrink_heap(h, extra)?;
        let system_mem = av.system_mem(&self.mem)? - extra;
        av.set_system_mem(&mut self.mem, system_mem)?;
        top.set_head(&mut self.mem, (top_size - extra) | PREV_INUSE)?;
        Ok(true)
    }
}
