//! `_int_malloc`: serve a request from an arena's bins or its top chunk.
//!
//! The order of search is ptmalloc2's, step for step, so that a sequence of
//! calls places chunks where glibc places them:
//!
//! 1. the fastbin of the exact size (stashing the rest of it into the tcache);
//! 2. the small bin of the exact size (likewise); a large request first
//!    consolidates the fastbins;
//! 3. the unsorted bin, oldest first: the last remainder is split for small
//!    requests, an exact fit is taken (or cached while the tcache has room),
//!    everything else is sorted into its bin;
//! 4. for a large request, the smallest fitting chunk of its own bin;
//! 5. the next non-empty larger bin, found through the binmap, split;
//! 6. the top chunk, after a last consolidation; else [`sysmalloc`].
//!
//! [`sysmalloc`]: crate::Allocator::sysmalloc

use crate::bins::{
    fastbin_index, in_smallbin_range, largebin_index, smallbin_index, split_or_take, unlink_chunk,
};
use crate::chunk::{checked_request2size, reveal_ptr, Chunk, CHUNK_HDR_SZ, MINSIZE, PREV_INUSE, SIZE_BITS};
use crate::harden::{self, FASTBIN_ENTRY_CORRUPT, FREE_CHUNK_CORRUPT};
use crate::memory::Memory;
use crate::state::{Arena, BINMAPSIZE};
use crate::tcache::{csize2tidx, Tcache};
use crate::{Allocator, Res};

/// Unsorted chunks sorted per request before giving up on the bin.
const MAX_ITERS: usize = 10000;

impl<M: Memory> Allocator<M> {
    /// Fill fresh memory with the inverted perturb byte (`alloc_perturb`).
    #[inline(always)]
    pub(crate) fn alloc_perturb(&mut self, mem: usize, n: usize) -> Res<(), M> {
        if self.params.perturb_byte != 0 {
            self.mem.fill(mem, self.params.perturb_byte ^ 0xff, n)?;
        }
        Ok(())
    }

    /// The bits a chunk handed out by `av` carries (`NON_MAIN_ARENA` or none).
    #[inline(always)]
    pub(crate) fn arena_bit(&self, av: Arena) -> usize {
        if av == self.main {
            0
        } else {
            crate::chunk::NON_MAIN_ARENA
        }
    }

    /// Whether the thread may stash chunks of tcache bin `tc_idx`.
    #[inline(always)]
    fn can_stash(&self, tc: Tcache, tc_idx: usize) -> bool {
        tc.exists() && tc_idx < self.params.tcache_bins
    }

    /// `_int_malloc`: a chunk of at least `bytes` from `av`, or 0 when the
    /// system has no more memory (the instance's errno says why).
    pub(crate) fn int_malloc(&mut self, av: Arena, tc: Tcache, bytes: usize) -> Res<usize, M> {
        let Some(nb) = checked_request2size(bytes) else {
            self.last_error = crate::ENOMEM;
            return Ok(0);
        };
        if self.retired {
            return self.sysmalloc(nb, None, tc);
        }
        let victim = self.take_exact(av, tc, nb)?;
        if let Some(v) = victim {
            self.alloc_perturb(v.mem(), bytes)?;
            return Ok(v.mem());
        }
        let mut idx = if in_smallbin_range(nb) {
            smallbin_index(nb)
        } else {
            if av.have_fastchunks(&self.mem)? {
                self.consolidate(av)?;
            }
            largebin_index(nb)
        };
        let tc_idx = csize2tidx(nb);
        let stash = self.can_stash(tc, tc_idx);
        loop {
            let found = match self.scan_unsorted(av, tc, nb, stash)? {
                Unsorted::Found(v) => Some(v),
                Unsorted::Cached => {
                    let e = tc.get(&mut self.mem, tc_idx, self.tcache_key)?;
                    if self.params.free_check {
                        harden::check_fill(&mut self.mem, Chunk::from_mem(e))?;
                    }
                    return Ok(e);
                }
                Unsorted::Exhausted => match self.best_fit_large(av, nb, idx)? {
                    Some(v) => Some(v),
                    None => self.next_larger_bin(av, nb, idx)?,
                },
            };
            if let Some(v) = found {
                self.alloc_perturb(v.mem(), bytes)?;
                return Ok(v.mem());
            }
            // use_top
            let top = av.top(&self.mem)?;
            let size = top.size(&self.mem)?;
            if size > av.system_mem(&self.mem)? {
                return Err(self.mem.corruption("malloc(): corrupted top size"));
            }
            if size >= nb + MINSIZE {
                harden::check_free(&mut self.mem, top, "malloc(): corrupted top chunk header")?;
                self.mem.count(crate::memory::Path::Top);
                let rest = top.plus(nb);
                av.set_top(&mut self.mem, rest)?;
                let bit = self.arena_bit(av);
                top.set_head(&mut self.mem, nb | PREV_INUSE | bit)?;
                rest.set_head(&mut self.mem, (size - nb) | PREV_INUSE)?;
                self.alloc_perturb(top.mem(), bytes)?;
                return Ok(top.mem());
            }
            if av.have_fastchunks(&self.mem)? {
                // Merged fastbin chunks may now fit: search the bins again.
                self.consolidate(av)?;
                idx = crate::bins::bin_index(nb);
                continue;
            }
            let mem = self.sysmalloc(nb, Some(av), tc)?;
            if mem != 0 {
                self.alloc_perturb(mem, bytes)?;
            }
            return Ok(mem);
        }
    }

    /// Steps 1 and 2: an exact-size chunk from a fastbin or small bin.
    #[inline(always)]
    fn take_exact(&mut self, av: Arena, tc: Tcache, nb: usize) -> Res<Option<Chunk>, M> {
        if nb <= self.params.max_fast {
            let idx = fastbin_index(nb);
            let victim = av.fastbin(&self.mem, idx)?;
            if victim.0 != 0 {
                self.mem.count(crate::memory::Path::Fastbin);
                if victim.misaligned() {
                    return Err(self
                        .mem
                        .corruption("malloc(): unaligned fastbin chunk detected 2"));
                }
                let next = reveal_ptr(victim.fd_addr(), victim.fd(&self.mem)?.0);
                av.set_fastbin(&mut self.mem, idx, Chunk(next))?;
                if fastbin_index(victim.size(&self.mem)?) != idx {
                    return Err(self.mem.corruption("malloc(): memory corruption (fast)"));
                }
                harden::unpark(&mut self.mem, victim, FASTBIN_ENTRY_CORRUPT)?;
                if self.params.free_check {
                    harden::check_fill(&mut self.mem, victim)?;
                }
                let tc_idx = csize2tidx(nb);
                if self.can_stash(tc, tc_idx) {
                    self.stash_fastbin(av, tc, idx, tc_idx)?;
                }
                return Ok(Some(victim));
            }
        }
        if in_smallbin_range(nb) {
            let idx = smallbin_index(nb);
            let bin = av.bin_at(idx);
            let victim = bin.bk(&self.mem)?;
            if victim != bin {
                self.mem.count(crate::memory::Path::Smallbin);
                let bck = victim.bk(&self.mem)?;
                if bck.fd(&self.mem)? != victim {
                    return Err(self
                        .mem
                        .corruption("malloc(): smallbin double linked list corrupted"));
                }
                harden::check_free(&mut self.mem, victim, FREE_CHUNK_CORRUPT)?;
                victim.set_inuse_at(&mut self.mem, nb)?;
                bin.set_bk(&mut self.mem, bck)?;
                bck.set_fd(&mut self.mem, bin)?;
                self.mark_arena(av, victim)?;
                let tc_idx = csize2tidx(nb);
                if self.can_stash(tc, tc_idx) {
                    self.stash_smallbin(av, tc, bin, nb, tc_idx)?;
                }
                return Ok(Some(victim));
            }
        }
        Ok(None)
    }

    /// Set NON_MAIN_ARENA on a chunk handed out by a non-main arena.
    #[inline(always)]
    fn mark_arena(&mut self, av: Arena, victim: Chunk) -> Res<(), M> {
        let bit = self.arena_bit(av);
        if bit != 0 {
            let v = victim.size_field(&self.mem)?;
            victim.set_head(&mut self.mem, v | bit)?;
        }
        Ok(())
    }

    /// A chunk from a bin goes into the tcache: filled in free-check mode,
    /// like a chunk the user freed there.
    #[inline(always)]
    fn fill_stashed(&mut self, victim: Chunk, size: usize) -> Res<(), M> {
        if self.params.free_check {
            harden::fill_freed(&mut self.mem, victim, size)?;
        }
        Ok(())
    }

    /// Move chunks of the same fastbin into the tcache while it has room.
    fn stash_fastbin(&mut self, av: Arena, tc: Tcache, idx: usize, tc_idx: usize) -> Res<(), M> {
        while tc.count(&self.mem, tc_idx)? < self.params.tcache_count {
            let victim = av.fastbin(&self.mem, idx)?;
            if victim.0 == 0 {
                break;
            }
            if victim.misaligned() {
                return Err(self
                    .mem
                    .corruption("malloc(): unaligned fastbin chunk detected 3"));
            }
            // Checked here, not when it leaves the tcache (which tests
            // only the tcache key that `put` writes).
            harden::unpark(&mut self.mem, victim, FASTBIN_ENTRY_CORRUPT)?;
            let next = reveal_ptr(victim.fd_addr(), victim.fd(&self.mem)?.0);
            av.set_fastbin(&mut self.mem, idx, Chunk(next))?;
            tc.put(&mut self.mem, victim, tc_idx, self.tcache_key)?;
        }
        Ok(())
    }

    /// Move chunks of the same small bin into the tcache while it has room.
    /// Like glibc 2.36 this does not re-check the links it follows.
    fn stash_smallbin(&mut self, av: Arena, tc: Tcache, bin: Chunk, nb: usize, tc_idx: usize) -> Res<(), M> {
        while tc.count(&self.mem, tc_idx)? < self.params.tcache_count {
            let victim = bin.bk(&self.mem)?;
            if victim == bin {
                break;
            }
            let bck = victim.bk(&self.mem)?;
            harden::check_free(&mut self.mem, victim, FREE_CHUNK_CORRUPT)?;
            victim.set_inuse_at(&mut self.mem, nb)?;
            self.mark_arena(av, victim)?;
            bin.set_bk(&mut self.mem, bck)?;
            bck.set_fd(&mut self.mem, bin)?;
            self.fill_stashed(victim, nb)?;
            tc.put(&mut self.mem, victim, tc_idx, self.tcache_key)?;
        }
        Ok(())
    }

    /// Step 3: process the unsorted bin.
    fn scan_unsorted(&mut self, av: Arena, tc: Tcache, nb: usize, stash: bool) -> Res<Unsorted, M> {
        let unsorted = av.unsorted();
        let tc_idx = csize2tidx(nb);
        let mut return_cached = false;
        let mut sorted = 0usize;
        let mut iters = 0usize;
        loop {
            let victim = unsorted.bk(&self.mem)?;
            if victim == unsorted {
                break;
            }
            self.mem.count(crate::memory::Path::UnsortedScan);
            let bck = victim.bk(&self.mem)?;
            let raw = victim.size_field(&self.mem)?;
            let size = raw & !SIZE_BITS;
            let next = victim.plus(size);
            let system_mem = av.system_mem(&self.mem)?;
            if raw <= CHUNK_HDR_SZ || raw > system_mem {
                return Err(self.mem.corruption("malloc(): invalid size (unsorted)"));
            }
            let next_raw = next.size_field(&self.mem)?;
            if next_raw < CHUNK_HDR_SZ || next_raw > system_mem {
                return Err(self.mem.corruption("malloc(): invalid next size (unsorted)"));
            }
            if next.prev_size(&self.mem)? & !SIZE_BITS != size {
                return Err(self
                    .mem
                    .corruption("malloc(): mismatching next->prev_size (unsorted)"));
            }
            if bck.fd(&self.mem)? != victim || victim.fd(&self.mem)? != unsorted {
                return Err(self
                    .mem
                    .corruption("malloc(): unsorted double linked list corrupted"));
            }
            if next_raw & PREV_INUSE != 0 {
                return Err(self
                    .mem
                    .corruption("malloc(): invalid next->prev_inuse (unsorted)"));
            }
            harden::check_free(&mut self.mem, victim, FREE_CHUNK_CORRUPT)?;

            // A small request takes a piece of the last remainder when that is
            // the only unsorted chunk: runs of small requests stay adjacent.
            if in_smallbin_range(nb)
                && bck == unsorted
                && victim == av.last_remainder(&self.mem)?
                && size > nb + MINSIZE
            {
                self.mem.count(crate::memory::Path::Split);
                let remainder_size = size - nb;
                let remainder = victim.plus(nb);
                unsorted.set_bk(&mut self.mem, remainder)?;
                unsorted.set_fd(&mut self.mem, remainder)?;
                av.set_last_remainder(&mut self.mem, remainder)?;
                remainder.set_bk(&mut self.mem, unsorted)?;
                remainder.set_fd(&mut self.mem, unsorted)?;
                if !in_smallbin_range(remainder_size) {
                    remainder.set_fd_nextsize(&mut self.mem, Chunk(0))?;
                    remainder.set_bk_nextsize(&mut self.mem, Chunk(0))?;
                }
                let bit = self.arena_bit(av);
                victim.set_head(&mut self.mem, nb | PREV_INUSE | bit)?;
                remainder.set_head(&mut self.mem, remainder_size | PREV_INUSE)?;
                remainder.set_foot(&mut self.mem, remainder_size)?;
                return Ok(Unsorted::Found(victim));
            }

            if bck.fd(&self.mem)? != victim {
                return Err(self.mem.corruption("malloc(): corrupted unsorted chunks 3"));
            }
            unsorted.set_bk(&mut self.mem, bck)?;
            bck.set_fd(&mut self.mem, unsorted)?;

            if size == nb {
                victim.set_inuse_at(&mut self.mem, size)?;
                self.mark_arena(av, victim)?;
                if stash && tc.count(&self.mem, tc_idx)? < self.params.tcache_count {
                    // Cache exact fits; hand one out when the scan is done.
                    self.fill_stashed(victim, size)?;
                    tc.put(&mut self.mem, victim, tc_idx, self.tcache_key)?;
                    return_cached = true;
                    continue;
                }
                return Ok(Unsorted::Found(victim));
            }

            self.sort_into_bin(av, victim, size)?;

            sorted += 1;
            let limit = self.params.tcache_unsorted_limit;
            if return_cached && limit > 0 && sorted > limit {
                return Ok(Unsorted::Cached);
            }
            iters += 1;
            if iters >= MAX_ITERS {
                break;
            }
        }
        Ok(if return_cached {
            Unsorted::Cached
        } else {
            Unsorted::Exhausted
        })
    }

    /// Place an unsorted chunk in its small or large bin; large bins stay
    /// sorted by decreasing size, with one nextsize entry per distinct size.
    fn sort_into_bin(&mut self, av: Arena, victim: Chunk, size: usize) -> Res<(), M> {
        let hardened = self.params.hardened;
        let m = &mut self.mem;
        let (index, mut bck, mut fwd);
        if in_smallbin_range(size) {
            index = smallbin_index(size);
            bck = av.bin_at(index);
            fwd = bck.fd(m)?;
        } else {
            index = largebin_index(size);
            bck = av.bin_at(index);
            fwd = bck.fd(m)?;
            if fwd != bck {
                // Free chunks always carry PREV_INUSE: compare raw fields.
                let key = size | PREV_INUSE;
                let smallest = bck.bk(m)?;
                if key < smallest.size_field(m)? {
                    fwd = bck;
                    bck = smallest;
                    let first = fwd.fd(m)?;
                    // glibc 2.36 checks the size list on the other branch
                    // only; this is the one the large bin attack uses.
                    if hardened && first.bk_nextsize(m)?.fd_nextsize(m)? != first {
                        return Err(
                            m.corruption("malloc(): largebin double linked list corrupted (nextsize)")
                        );
                    }
                    victim.set_fd_nextsize(m, first)?;
                    victim.set_bk_nextsize(m, first.bk_nextsize(m)?)?;
                    let before = victim.bk_nextsize(m)?;
                    before.set_fd_nextsize(m, victim)?;
                    first.set_bk_nextsize(m, victim)?;
                } else {
                    while key < fwd.size_field(m)? {
                        fwd = fwd.fd_nextsize(m)?;
                    }
                    if key == fwd.size_field(m)? {
                        // Same size: insert second so the skip list is untouched.
                        fwd = fwd.fd(m)?;
                    } else {
                        victim.set_fd_nextsize(m, fwd)?;
                        let fbn = fwd.bk_nextsize(m)?;
                        victim.set_bk_nextsize(m, fbn)?;
                        if fbn.fd_nextsize(m)? != fwd {
                            return Err(
                                m.corruption("malloc(): largebin double linked list corrupted (nextsize)")
                            );
                        }
                        fwd.set_bk_nextsize(m, victim)?;
                        fbn.set_fd_nextsize(m, victim)?;
                    }
                    bck = fwd.bk(m)?;
                    if bck.fd(m)? != fwd {
                        return Err(m.corruption("malloc(): largebin double linked list corrupted (bk)"));
                    }
                }
            } else {
                victim.set_fd_nextsize(m, victim)?;
                victim.set_bk_nextsize(m, victim)?;
            }
        }
        av.mark_bin(m, index)?;
        victim.set_bk(m, bck)?;
        victim.set_fd(m, fwd)?;
        fwd.set_bk(m, victim)?;
        bck.set_fd(m, victim)
    }

    /// Step 4: the smallest chunk of a large request's own bin that fits.
    fn best_fit_large(&mut self, av: Arena, nb: usize, idx: usize) -> Res<Option<Chunk>, M> {
        if in_smallbin_range(nb) {
            return Ok(None);
        }
        let bin = av.bin_at(idx);
        let first = bin.fd(&self.mem)?;
        if first == bin || first.size_field(&self.mem)? < nb {
            return Ok(None);
        }
        let mut victim = first.bk_nextsize(&self.mem)?;
        let mut size = victim.size(&self.mem)?;
        while size < nb {
            victim = victim.bk_nextsize(&self.mem)?;
            size = victim.size(&self.mem)?;
        }
        // Prefer the second chunk of a size: the first carries the skip list.
        if victim != bin.bk(&self.mem)? {
            let fd = victim.fd(&self.mem)?;
            if victim.size_field(&self.mem)? == fd.size_field(&self.mem)? {
                victim = fd;
            }
        }
        self.mem.count(crate::memory::Path::LargeBin);
        unlink_chunk(&mut self.mem, victim)?;
        let bit = self.arena_bit(av);
        split_or_take(
            &mut self.mem,
            av,
            victim,
            size,
            nb,
            bit,
            "malloc(): corrupted unsorted chunks",
        )?;
        Ok(Some(victim))
    }

    /// Step 5: split the first chunk of the next non-empty larger bin, found
    /// through the binmap (clearing bits of bins found empty on the way).
    fn next_larger_bin(&mut self, av: Arena, nb: usize, idx: usize) -> Res<Option<Chunk>, M> {
        let mut idx = idx + 1;
        let mut block = idx >> 5;
        let mut map = av.binmap(&self.mem, block)?;
        let mut bit: u32 = 1 << (idx & 31);
        loop {
            if bit > map || bit == 0 {
                loop {
                    block += 1;
                    if block >= BINMAPSIZE {
                        return Ok(None);
                    }
                    map = av.binmap(&self.mem, block)?;
                    if map != 0 {
                        break;
                    }
                }
                idx = block << 5;
                bit = 1;
            }
            while bit & map == 0 {
                idx += 1;
                bit <<= 1;
            }
            let bin = av.bin_at(idx);
            let victim = bin.bk(&self.mem)?;
            if victim == bin {
                map &= !bit;
                av.set_binmap(&mut self.mem, block, map)?;
                idx += 1;
                bit <<= 1;
                continue;
            }
            self.mem.count(crate::memory::Path::BinmapSearch);
            let size = victim.size(&self.mem)?;
            unlink_chunk(&mut self.mem, victim)?;
            let bit_a = self.arena_bit(av);
            let rest = split_or_take(
                &mut self.mem,
                av,
                victim,
                size,
                nb,
                bit_a,
                "malloc(): corrupted unsorted chunks 2",
            )?;
            if let Some(r) = rest {
                if in_smallbin_range(nb) {
                    av.set_last_remainder(&mut self.mem, r)?;
                }
            }
            return Ok(Some(victim));
        }
    }
}

/// What the unsorted scan ended with.
enum Unsorted {
    /// A chunk for the request, already marked in use.
    Found(Chunk),
    /// Exact fits went to the tcache: take one from there.
    Cached,
    /// Nothing fit; everything was sorted into bins.
    Exhausted,
}
