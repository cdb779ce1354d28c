//! Changing a chunk's size or alignment: `_int_realloc` and `_int_memalign`.

use crate::bins::unlink_chunk;
use crate::chunk::{Chunk, CHUNK_HDR_SZ, IS_MMAPPED, MALLOC_ALIGN_MASK, MINSIZE, PREV_INUSE, SIZE_SZ};
use crate::memory::Memory;
use crate::state::Arena;
use crate::tcache::Tcache;
use crate::{Allocator, Res, ENOMEM};

impl<M: Memory> Allocator<M> {
    /// `_int_realloc`: resize the heap chunk `oldp` (of `old_size`) to `nb`,
    /// in place when the following chunk (free, or the top) allows it.
    pub(crate) fn int_realloc(
        &mut self,
        av: Arena,
        oldp: Chunk,
        old_size: usize,
        nb: usize,
        tc: Tcache,
    ) -> Res<usize, M> {
        if self.retired {
            // Move to a mapped chunk; the old heap chunk is left alone.
            let new_mem = self.int_malloc(av, tc, nb - MALLOC_ALIGN_MASK)?;
            if new_mem != 0 {
                let keep = (old_size - SIZE_SZ).min(nb - SIZE_SZ);
                self.mem.copy(new_mem, oldp.mem(), keep)?;
            }
            return Ok(new_mem);
        }
        let system_mem = av.system_mem(&self.mem)?;
        if oldp.size_field(&self.mem)? <= CHUNK_HDR_SZ || old_size >= system_mem {
            return Err(self.mem.corruption("realloc(): invalid old size"));
        }
        let next = oldp.plus(old_size);
        let next_size = next.size(&self.mem)?;
        if next.size_field(&self.mem)? <= CHUNK_HDR_SZ || next_size >= system_mem {
            return Err(self.mem.corruption("realloc(): invalid next size"));
        }
        let bit = self.arena_bit(av);
        let (newp, new_size);
        if old_size >= nb {
            newp = oldp;
            new_size = old_size;
        } else {
            let top = av.top(&self.mem)?;
            if next == top && old_size + next_size >= nb + MINSIZE {
                // Grow into the top chunk.
                oldp.set_head_size(&mut self.mem, nb | bit)?;
                let new_top = oldp.plus(nb);
                av.set_top(&mut self.mem, new_top)?;
                new_top.set_head(&mut self.mem, (old_size + next_size - nb) | PREV_INUSE)?;
                return Ok(oldp.mem());
            } else if next != top && !next.inuse(&self.mem)? && old_size + next_size >= nb {
                // Absorb the free chunk that follows.
                newp = oldp;
                new_size = old_size + next_size;
                unlink_chunk(&mut self.mem, next)?;
            } else {
                let new_mem = self.int_malloc(av, tc, nb - MALLOC_ALIGN_MASK)?;
                if new_mem == 0 {
                    return Ok(0);
                }
                let got = Chunk::from_mem(new_mem);
                if got == next {
                    // The new chunk is the one that follows: just merge.
                    newp = oldp;
                    new_size = got.size(&self.mem)? + old_size;
                } else {
                    self.mem.copy(new_mem, oldp.mem(), old_size - SIZE_SZ)?;
                    self.int_free(av, oldp, tc, true, false)?;
                    return Ok(new_mem);
                }
            }
        }
        // Give back what is left beyond nb, if it makes a chunk.
        let rest = new_size - nb;
        if rest < MINSIZE {
            newp.set_head_size(&mut self.mem, new_size | bit)?;
            newp.set_inuse_at(&mut self.mem, new_size)?;
        } else {
            let remainder = newp.plus(nb);
            newp.set_head_size(&mut self.mem, nb | bit)?;
            remainder.set_head(&mut self.mem, rest | PREV_INUSE | bit)?;
            remainder.set_inuse_at(&mut self.mem, rest)?;
            self.int_free(av, remainder, tc, true, false)?;
        }
        Ok(newp.mem())
    }

    /// `_int_memalign`: over-allocate, then free the misaligned lead and the
    /// excess tail. `alignment` is a power of two above MALLOC_ALIGNMENT.
    pub(crate) fn int_memalign(
        &mut self,
        av: Arena,
        alignment: usize,
        bytes: usize,
        tc: Tcache,
    ) -> Res<usize, M> {
        let Some(nb) = crate::chunk::checked_request2size(bytes) else {
            self.last_error = ENOMEM;
            return Ok(0);
        };
        if nb > usize::MAX - alignment - MINSIZE {
            self.last_error = ENOMEM;
            return Ok(0);
        }
        let m = self.int_malloc(av, tc, nb + alignment + MINSIZE)?;
        if m == 0 {
            return Ok(0);
        }
        let mut p = Chunk::from_mem(m);
        let bit = self.arena_bit(av);
        if m % alignment != 0 {
            let mut brk = Chunk::from_mem(crate::chunk::align_up(m, alignment));
            if brk.0 - p.0 < MINSIZE {
                brk = brk.plus(alignment);
            }
            let lead = brk.0 - p.0;
            let new_size = p.size(&self.mem)? - lead;
            if p.is_mmapped(&self.mem)? {
                let prev = p.prev_size(&self.mem)?;
                brk.set_prev_size(&mut self.mem, prev + lead)?;
                brk.set_head(&mut self.mem, new_size | IS_MMAPPED)?;
                return Ok(brk.mem());
            }
            brk.set_head(&mut self.mem, new_size | PREV_INUSE | bit)?;
            brk.set_inuse_at(&mut self.mem, new_size)?;
            p.set_head_size(&mut self.mem, lead | bit)?;
            self.int_free(av, p, tc, true, false)?;
            p = brk;
        }
        if !p.is_mmapped(&self.mem)? {
            let size = p.size(&self.mem)?;
            if size > nb + MINSIZE {
                let remainder = p.plus(nb);
                remainder.set_head(&mut self.mem, (size - nb) | PREV_INUSE | bit)?;
                p.set_head_size(&mut self.mem, nb)?;
                self.int_free(av, remainder, tc, true, false)?;
            }
        }
        Ok(p.mem())
    }
}
