//! `_int_free` and `malloc_consolidate`: return chunks to the tcache, a
//! fastbin, or (merged with free neighbours) to the unsorted bin or the top.

use crate::bins::{fastbin_index, push_unsorted, unlink_chunk, FASTBIN_CONSOLIDATION_THRESHOLD};
use crate::chunk::{is_aligned, protect_ptr, reveal_ptr, Chunk, CHUNK_HDR_SZ, MINSIZE, PREV_INUSE};
use crate::harden::{self, FASTBIN_ENTRY_CORRUPT};
use crate::memory::Memory;
use crate::state::{Arena, NFASTBINS};
use crate::tcache::{csize2tidx, Tcache};
use crate::{Allocator, Res};

impl<M: Memory> Allocator<M> {
    /// Fill freed memory with the perturb byte (`free_perturb`).
    #[inline(always)]
    fn free_perturb(&mut self, mem: usize, n: usize) -> Res<(), M> {
        if self.params.perturb_byte != 0 {
            self.mem.fill(mem, self.params.perturb_byte, n)?;
        }
        Ok(())
    }

    /// The pointer and size checks every free starts with.
    #[inline(always)]
    pub(crate) fn check_free_pointer(m: &mut M, p: Chunk, size: usize) -> Res<(), M> {
        if p.0 > size.wrapping_neg() || p.misaligned() {
            return Err(m.corruption("free(): invalid pointer"));
        }
        if size < MINSIZE || !is_aligned(size) {
            return Err(m.corruption("free(): invalid size"));
        }
        Ok(())
    }

    /// `_int_free`: free `p`, which belongs to `av` and is not mmapped.
    /// `internal` is glibc's `have_lock`: the call comes from inside the
    /// allocator (realloc, memalign, sysmalloc), which enables one more check.
    /// `tcache_tried` skips the tcache when the caller already tried it.
    pub(crate) fn int_free(
        &mut self,
        av: Arena,
        p: Chunk,
        tc: Tcache,
        internal: bool,
        tcache_tried: bool,
    ) -> Res<(), M> {
        let size = p.size(&self.mem)?;
        Self::check_free_pointer(&mut self.mem, p, size)?;
        if self.retired && !p.is_mmapped(&self.mem)? {
            return Ok(());
        }
        if !tcache_tried && tc.exists() {
            let cfg = self.tcache_config();
            let tc_idx = csize2tidx(size);
            if tc_idx < cfg.bins {
                tc.check_double_free(&mut self.mem, p, tc_idx, &cfg)?;
                if tc.count(&self.mem, tc_idx)? < cfg.count {
                    Self::check_freed(&mut self.mem, &cfg, p, size)?;
                    return tc.put(&mut self.mem, p, tc_idx, cfg.key);
                }
            }
        }
        if size <= self.params.max_fast {
            return self.free_to_fastbin(av, p, size, internal);
        }
        if p.is_mmapped(&self.mem)? {
            return self.munmap_chunk(p);
        }
        self.free_merge(av, p, size)
    }

    fn free_to_fastbin(&mut self, av: Arena, p: Chunk, size: usize, internal: bool) -> Res<(), M> {
        let next = p.plus(size);
        let next_raw = next.size_field(&self.mem)?;
        if next_raw <= CHUNK_HDR_SZ || next.size(&self.mem)? >= av.system_mem(&self.mem)? {
            return Err(self.mem.corruption("free(): invalid next size (fast)"));
        }
        self.free_perturb(p.mem(), size - CHUNK_HDR_SZ)?;
        av.set_have_fastchunks(&mut self.mem, true)?;
        let idx = fastbin_index(size);
        let old = av.fastbin(&self.mem, idx)?;
        // Catches only a double free of the chunk at the top of the bin.
        if old == p {
            return Err(self.mem.corruption("double free or corruption (fasttop)"));
        }
        // A hardened instance catches the others (a forged neighbour is
        // caught when it is freed itself, or leaves a bin).
        let cfg = self.tcache_config();
        Self::check_freed(&mut self.mem, &cfg, p, size)?;
        // The successor's header is at hand here (glibc read its size): a
        // clear PREV_INUSE says the chunk is free already, or lies inside a
        // free chunk it was merged into. (The tcache path does not look:
        // another cache line on every free; there a link written through
        // the stale chunk fails the tcache-key test when it is followed.)
        harden::check_next_in_use(&mut self.mem, p, size, "free(): double free detected")?;
        harden::park(&mut self.mem, p)?;
        self.mem.write(p.fd_addr(), protect_ptr(p.fd_addr(), old.0))?;
        av.set_fastbin(&mut self.mem, idx, p)?;
        if internal && old.0 != 0 && fastbin_index(old.size(&self.mem)?) != idx {
            return Err(self.mem.corruption("invalid fastbin entry (free)"));
        }
        Ok(())
    }

    /// Free a non-fast heap chunk: merge it with free neighbours, put it in
    /// the unsorted bin or the top, and trim after a large free.
    fn free_merge(&mut self, av: Arena, p: Chunk, size: usize) -> Res<(), M> {
        let m = &mut self.mem;
        let next = p.plus(size);
        let top = av.top(m)?;
        if p == top {
            return Err(m.corruption("double free or corruption (top)"));
        }
        if av.contiguous(m)? && next.0 >= top.0.wrapping_add(top.size(m)?) {
            return Err(m.corruption("double free or corruption (out)"));
        }
        if !next.prev_inuse(m)? {
            return Err(m.corruption("double free or corruption (!prev)"));
        }
        let next_size = next.size(m)?;
        if next.size_field(m)? <= CHUNK_HDR_SZ || next_size >= av.system_mem(m)? {
            return Err(m.corruption("free(): invalid next size (normal)"));
        }
        harden::check_in_use(
            m,
            p,
            "free(): double free detected",
            "free(): invalid chunk header",
        )?;
        harden::check_next(m, next)?;
        self.free_perturb(p.mem(), size - CHUNK_HDR_SZ)?;
        let size = self.merge_neighbours(av, p, size, next, false)?;
        if size >= FASTBIN_CONSOLIDATION_THRESHOLD {
            if av.have_fastchunks(&self.mem)? {
                self.consolidate(av)?;
            }
            if av == self.main {
                let top_size = av.top(&self.mem)?.size(&self.mem)?;
                if top_size >= self.params.trim_threshold {
                    self.systrim(self.params.top_pad, av)?;
                }
            } else {
                let heap = crate::heap::Heap::of(av.top(&self.mem)?.0);
                self.heap_trim(heap, self.params.top_pad)?;
            }
        }
        Ok(())
    }

    /// Merge the free chunk `p` with a free predecessor and successor and put
    /// the result at the front of the unsorted bin, or into the top chunk when
    /// it borders it. Returns the merged size. `free` and `malloc_consolidate`
    /// differ only in their messages and in the unsorted-list check, which
    /// glibc's consolidation does not make (`from_fastbin`).
    fn merge_neighbours(
        &mut self,
        av: Arena,
        mut p: Chunk,
        mut size: usize,
        next: Chunk,
        from_fastbin: bool,
    ) -> Res<usize, M> {
        let m = &mut self.mem;
        let next_size = next.size(m)?;
        if !p.prev_inuse(m)? {
            let prev_size = p.prev_size(m)?;
            size = size.wrapping_add(prev_size);
            p = p.minus(prev_size);
            if p.size(m)? != prev_size {
                return Err(m.corruption(if from_fastbin {
                    "corrupted size vs. prev_size in fastbins"
                } else {
                    "corrupted size vs. prev_size while consolidating"
                }));
            }
            unlink_chunk(m, p)?;
        }
        if next != av.top(m)? {
            if !next.inuse_at(m, next_size)? {
                unlink_chunk(m, next)?;
                size += next_size;
            } else {
                next.clear_inuse_at(m, 0)?;
            }
            let check = (!from_fastbin).then_some("free(): corrupted unsorted chunks");
            push_unsorted(m, av, p, size, check)?;
            p.set_head(m, size | PREV_INUSE)?;
            p.set_foot(m, size)?;
        } else {
            size += next_size;
            p.set_head(m, size | PREV_INUSE)?;
            av.set_top(m, p)?;
        }
        Ok(size)
    }

    /// `malloc_consolidate`: empty every fastbin, merging each chunk with its
    /// free neighbours into the unsorted bin or the top.
    pub(crate) fn consolidate(&mut self, av: Arena) -> Res<(), M> {
        if self.retired {
            return Ok(());
        }
        self.mem.count(crate::memory::Path::Consolidate);
        av.set_have_fastchunks(&mut self.mem, false)?;
        for idx in 0..NFASTBINS {
            let mut p = av.fastbin(&self.mem, idx)?;
            av.set_fastbin(&mut self.mem, idx, Chunk(0))?;
            while p.0 != 0 {
                if p.misaligned() {
                    return Err(self
                        .mem
                        .corruption("malloc_consolidate(): unaligned fastbin chunk detected"));
                }
                let size = p.size(&self.mem)?;
                if fastbin_index(size) != idx {
                    return Err(self.mem.corruption("malloc_consolidate(): invalid chunk size"));
                }
                harden::unpark(&mut self.mem, p, FASTBIN_ENTRY_CORRUPT)?;
                let next_p = Chunk(reveal_ptr(p.fd_addr(), p.fd(&self.mem)?.0));
                self.merge_neighbours(av, p, size, p.plus(size), true)?;
                p = next_p;
            }
        }
        Ok(())
    }
}
