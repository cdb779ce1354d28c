//! Talking to the memory source: growing an arena (`sysmalloc`), trimming
//! it (`systrim`), and chunks mapped on their own (`mmap`/`munmap`/`mremap`).

use crate::chunk::{
    align_down, align_up, is_aligned, Chunk, CHUNK_HDR_SZ, IS_MMAPPED, MALLOC_ALIGNMENT, MALLOC_ALIGN_MASK,
    MINSIZE, PREV_INUSE, SIZE_SZ,
};
use crate::memory::Memory;
use crate::state::Arena;
use crate::tcache::Tcache;
use crate::{Allocator, Res, ENOMEM};

/// Smallest region mapped when `brk` fails and `mmap` stands in for it.
const MMAP_AS_MORECORE_SIZE: usize = 1024 * 1024;

/// Counters of chunks mapped on their own (`mp_.n_mmaps` and friends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmapStats {
    /// Chunks mapped now.
    pub count: usize,
    /// Most chunks mapped at once.
    pub max_count: usize,
    /// Bytes mapped now.
    pub bytes: usize,
    /// Most bytes mapped at once.
    pub max_bytes: usize,
}

impl MmapStats {
    fn add(&mut self, bytes: usize) {
        self.count += 1;
        self.max_count = self.max_count.max(self.count);
        self.bytes += bytes;
        self.max_bytes = self.max_bytes.max(self.bytes);
    }
}

impl<M: Memory> Allocator<M> {
    /// `sysmalloc`: serve `nb` bytes with new memory, by a chunk mapped on
    /// its own (large requests, or no arena) or by growing `av`'s top.
    pub(crate) fn sysmalloc(&mut self, nb: usize, av: Option<Arena>, tc: Tcache) -> Res<usize, M> {
        let page = self.mem.page_size();
        let mut tried_mmap = false;
        if av.is_none() || (nb >= self.params.mmap_threshold && self.mmaps.count < self.params.n_mmaps_max) {
            let mem = self.mmap_chunk(nb, page)?;
            if mem != 0 {
                return Ok(mem);
            }
            tried_mmap = true;
        }
        let Some(av) = av else {
            self.last_error = ENOMEM;
            return Ok(0);
        };
        if av != self.main {
            // A non-main arena grows its heap or starts another; failing
            // that, a chunk of its own.
            if !self.grow_non_main(nb, av, tc)? {
                if !tried_mmap {
                    let mem = self.mmap_chunk(nb, page)?;
                    if mem != 0 {
                        return Ok(mem);
                    }
                }
                self.last_error = ENOMEM;
                return Ok(0);
            }
        } else {
            self.grow_main(nb, av, tc, page)?;
        }
        let top = av.top(&self.mem)?;
        let size = top.size(&self.mem)?;
        if size >= nb + MINSIZE {
            let rest = top.plus(nb);
            let bit = self.arena_bit(av);
            av.set_top(&mut self.mem, rest)?;
            top.set_head(&mut self.mem, nb | PREV_INUSE | bit)?;
            rest.set_head(&mut self.mem, (size - nb) | PREV_INUSE)?;
            return Ok(top.mem());
        }
        self.last_error = ENOMEM;
        Ok(0)
    }

    /// Map a chunk of its own for `nb` bytes (`sysmalloc_mmap`); 0 on failure.
    fn mmap_chunk(&mut self, nb: usize, page: usize) -> Res<usize, M> {
        let size = align_up(nb.wrapping_add(SIZE_SZ), page);
        if size <= nb {
            return Ok(0);
        }
        let Some(mm) = self.mem.mmap(size) else {
            return Ok(0);
        };
        let p = Chunk(mm);
        p.set_prev_size(&mut self.mem, 0)?;
        p.set_head(&mut self.mem, size | IS_MMAPPED)?;
        self.mmaps.add(size);
        Ok(p.mem())
    }

    /// Grow the main arena's top with `brk`, or with `mmap` when the break
    /// cannot move; a foreign `sbrk` in between leaves a fenced-off old top.
    fn grow_main(&mut self, nb: usize, av: Arena, tc: Tcache, page: usize) -> Res<(), M> {
        let old_top = av.top(&self.mem)?;
        let old_size = old_top.size(&self.mem)?;
        let old_end = old_top.plus(old_size).0;
        let sane_start = old_top == av.unsorted() && old_size == 0;
        let sane_top = old_size >= MINSIZE && old_top.prev_inuse(&self.mem)? && old_end & (page - 1) == 0;
        if !(sane_start || sane_top) {
            return Err(self.mem.corruption(
                "sysmalloc(): Assertion `(old_top == initial_top (av) && old_size == 0) || \
                 ((unsigned long) (old_size) >= MINSIZE && prev_inuse (old_top) && \
                 ((unsigned long) old_end & (pagesize - 1)) == 0)' failed.",
            ));
        }
        if old_size >= nb + MINSIZE {
            return Err(self.mem.corruption(
                "sysmalloc(): Assertion `(unsigned long) (old_size) < (unsigned long) (nb + MINSIZE)' failed.",
            ));
        }
        let contiguous = av.contiguous(&self.mem)?;
        let mut size = nb + self.params.top_pad + MINSIZE;
        if contiguous {
            size -= old_size;
        }
        size = align_up(size, page);

        let mut brk = if size > 0 && size <= isize::MAX as usize {
            self.mem.sbrk(size as isize)
        } else {
            None
        };
        let mut snd_brk = None;
        if brk.is_none() {
            // The break cannot move: map memory instead, and stop assuming
            // the arena is contiguous.
            if contiguous {
                size = align_up(size + old_size, page);
            }
            size = size.max(MMAP_AS_MORECORE_SIZE);
            if size > nb {
                if let Some(mbrk) = self.mem.mmap(size) {
                    brk = Some(mbrk);
                    snd_brk = Some(mbrk + size);
                    av.set_noncontiguous(&mut self.mem)?;
                }
            }
        }
        let Some(brk) = brk else {
            return Ok(());
        };
        if self.sbrk_base == 0 {
            self.sbrk_base = brk;
        }
        let mut system_mem = av.system_mem(&self.mem)? + size;
        av.set_system_mem(&mut self.mem, system_mem)?;
        let contiguous = av.contiguous(&self.mem)?;

        if brk == old_end && snd_brk.is_none() {
            // The common case: the break simply moved past the old top.
            old_top.set_head(&mut self.mem, (size + old_size) | PREV_INUSE)?;
            return Ok(());
        }
        if contiguous && old_size != 0 && brk < old_end {
            return Err(self.mem.corruption("break adjusted to free malloc space"));
        }

        let mut aligned_brk = brk;
        let mut correction = 0;
        if contiguous {
            // Somebody else moved the break: count their bytes, align ours.
            if old_size != 0 {
                system_mem += brk - old_end;
                av.set_system_mem(&mut self.mem, system_mem)?;
            }
            let front_misalign = Chunk(brk).mem() & MALLOC_ALIGN_MASK;
            if front_misalign > 0 {
                correction = MALLOC_ALIGNMENT - front_misalign;
                aligned_brk += correction;
            }
            correction += old_size;
            let end_misalign = brk + size + correction;
            correction += align_up(end_misalign, page) - end_misalign;
            snd_brk = self.mem.sbrk(correction as isize);
            if snd_brk.is_none() {
                correction = 0;
                snd_brk = self.mem.sbrk(0);
            }
        } else if snd_brk.is_none() {
            snd_brk = self.mem.sbrk(0);
        }
        let Some(snd_brk) = snd_brk else {
            return Ok(());
        };
        let top = Chunk(aligned_brk);
        av.set_top(&mut self.mem, top)?;
        top.set_head(&mut self.mem, (snd_brk - aligned_brk + correction) | PREV_INUSE)?;
        av.set_system_mem(&mut self.mem, system_mem + correction)?;
        if old_size != 0 {
            // Fence off the old top with two tiny in-use chunks so it is never
            // merged with memory that is not ours, then free what is left.
            let old_size = (old_size - MINSIZE) & !MALLOC_ALIGN_MASK;
            old_top.set_head(&mut self.mem, old_size | PREV_INUSE)?;
            old_top
                .plus(old_size)
                .set_head(&mut self.mem, CHUNK_HDR_SZ | PREV_INUSE)?;
            old_top
                .plus(old_size + CHUNK_HDR_SZ)
                .set_head(&mut self.mem, CHUNK_HDR_SZ | PREV_INUSE)?;
            if old_size >= MINSIZE {
                self.int_free(av, old_top, tc, true, false)?;
            }
        }
        Ok(())
    }

    /// `systrim`: give back the part of the main arena's top above `pad`
    /// by lowering the break. Returns whether memory was released.
    pub(crate) fn systrim(&mut self, pad: usize, av: Arena) -> Res<bool, M> {
        let page = self.mem.page_size();
        let top = av.top(&self.mem)?;
        let top_size = top.size(&self.mem)?;
        let top_area = top_size.wrapping_sub(MINSIZE + 1);
        if top_area <= pad || top_size < MINSIZE + 1 {
            return Ok(false);
        }
        let extra = align_down(top_area - pad, page);
        if extra == 0 || extra > isize::MAX as usize {
            return Ok(false);
        }
        // Only shrink when the break still ends at our top.
        let Some(current) = self.mem.sbrk(0) else {
            return Ok(false);
        };
        if current != top.0 + top_size {
            return Ok(false);
        }
        self.mem.sbrk(-(extra as isize));
        let Some(new_brk) = self.mem.sbrk(0) else {
            return Ok(false);
        };
        let released = current - new_brk;
        if released == 0 {
            return Ok(false);
        }
        let system_mem = av.system_mem(&self.mem)? - released;
        av.set_system_mem(&mut self.mem, system_mem)?;
        top.set_head(&mut self.mem, (top_size - released) | PREV_INUSE)?;
        Ok(true)
    }

    /// Validate a mapped chunk and return its mapping (`block`, `total`).
    fn mapping_of(&mut self, p: Chunk, message: &'static str) -> Res<(usize, usize), M> {
        let page = self.mem.page_size();
        let offset = p.prev_size(&self.mem)?;
        let size = p.size(&self.mem)?;
        let block = p.0.wrapping_sub(offset);
        let total = offset.wrapping_add(size);
        let in_page = p.mem() & (page - 1);
        if (block | total) & (page - 1) != 0 || in_page & in_page.wrapping_sub(1) != 0 {
            return Err(self.mem.corruption(message));
        }
        Ok((block, total))
    }

    /// Unmap a chunk mapped on its own (`munmap_chunk`).
    pub(crate) fn munmap_chunk(&mut self, p: Chunk) -> Res<(), M> {
        let (block, total) = self.mapping_of(p, "munmap_chunk(): invalid pointer")?;
        crate::harden::check_in_use(
            &mut self.mem,
            p,
            "munmap_chunk(): double free detected",
            "free(): invalid chunk header",
        )?;
        self.mmaps.count = self.mmaps.count.wrapping_sub(1);
        self.mmaps.bytes = self.mmaps.bytes.wrapping_sub(total);
        // Before the unmapping: once it is done, another thread may map
        // the address again, and then it must not be remembered.
        if self.params.hardened {
            self.mem.note_unmapped(p.0);
        }
        self.mem.munmap(block, total);
        Ok(())
    }

    /// Resize a chunk mapped on its own in place or by moving the mapping
    /// (`mremap_chunk`); `None` when the system cannot.
    pub(crate) fn mremap_chunk(&mut self, p: Chunk, nb: usize) -> Res<Option<Chunk>, M> {
        let page = self.mem.page_size();
        let (block, total) = self.mapping_of(p, "mremap_chunk(): invalid pointer")?;
        let offset = p.prev_size(&self.mem)?;
        let new_size = align_up(nb + offset + SIZE_SZ, page);
        if total == new_size {
            return Ok(Some(p));
        }
        if self.params.hardened {
            self.mem.note_unmapped(p.0);
        }
        let Some(moved) = self.mem.mremap(block, total, new_size) else {
            return Ok(None);
        };
        let p = Chunk(moved + offset);
        debug_assert!(is_aligned(p.mem()));
        p.set_head(&mut self.mem, (new_size - offset) | IS_MMAPPED)?;
        self.mmaps.bytes = self.mmaps.bytes - total + new_size;
        self.mmaps.max_bytes = self.mmaps.max_bytes.max(self.mmaps.bytes);
        Ok(Some(p))
    }
}
