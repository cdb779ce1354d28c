//! Walking an instance: every chunk of the main heap, every bin, every
//! tcache entry, and a full consistency check of what the walks find. For
//! tests, fuzzers and the Python bindings; never on an allocation path.

use crate::bins::{bin_index, fastbin_index, in_smallbin_range};
use crate::chunk::{is_aligned, reveal_ptr, Chunk, HeaderState, MINSIZE, PREV_INUSE, SIZE_BITS};
use crate::heap::Heap;
use crate::memory::Memory;
use crate::state::{Arena, NBINS, NFASTBINS};
use crate::tcache::{csize2tidx, Tcache, TCACHE_MAX_BINS};
use crate::{Allocator, Res};

/// Where a free chunk is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinKind {
    /// A tcache bin (index 0..64).
    Tcache,
    /// A fastbin (index 0..10).
    Fast,
    /// The unsorted bin (index 1).
    Unsorted,
    /// A small bin (index 2..64).
    Small,
    /// A large bin (index 64..127).
    Large,
}

/// A chunk of the main heap, as the boundary tags describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapChunk {
    /// The chunk header's address.
    pub chunk: Chunk,
    /// Size without flags.
    pub size: usize,
    /// The flag bits of the size field.
    pub flags: usize,
    /// Whether the next chunk's PREV_INUSE says this one is in use (cached
    /// and fastbin chunks count as in use, as in glibc).
    pub in_use: bool,
    /// Whether this is the top chunk.
    pub is_top: bool,
}

/// A broken invariant found by [`Allocator::check_heap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong.
    pub what: &'static str,
    /// Where.
    pub addr: usize,
}

/// Totals from a successful [`Allocator::check_heap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapSummary {
    /// Chunks between the heap start and the top.
    pub chunks: usize,
    /// Chunks in the unsorted, small and large bins.
    pub binned: usize,
    /// Chunks in fastbins.
    pub fast: usize,
    /// Chunks in the given tcaches.
    pub cached: usize,
    /// Size of the top chunk.
    pub top_size: usize,
}

impl<M: Memory> Allocator<M> {
    /// The first chunk of the main heap (0 before the heap exists).
    pub fn heap_start(&self) -> usize {
        if self.sbrk_base == 0 {
            0
        } else {
            Chunk(self.sbrk_base).0
                + (Chunk(self.sbrk_base).mem().wrapping_neg() & crate::chunk::MALLOC_ALIGN_MASK)
        }
    }

    /// Visit every chunk of the main heap, from its start up to and including
    /// the top chunk. Stops early with a [`Violation`] at a size that cannot be right.
    pub fn walk_heap(&self, f: impl FnMut(HeapChunk)) -> Res<Result<(), Violation>, M> {
        self.walk_arena(self.main, f)
    }

    /// Visit every chunk of arena `av`: the main heap, or each heap of a
    /// non-main arena (newest first; the older ones up to their fence posts,
    /// which are visited too).
    pub fn walk_arena(&self, av: Arena, mut f: impl FnMut(HeapChunk)) -> Res<Result<(), Violation>, M> {
        let m = &self.mem;
        let top = av.top(m)?;
        if av == self.main {
            let start = self.heap_start();
            if start == 0 {
                return Ok(Ok(()));
            }
            return self.walk_segment(Chunk(start), top, usize::MAX, &mut f);
        }
        let mut heap = Some(Heap::of(top.0));
        let mut n = 0;
        while let Some(h) = heap {
            let first = h.first_chunk(m)?;
            let end = h.0 + h.size(m)?;
            if let Err(v) = self.walk_segment(first, top, end, &mut f)? {
                return Ok(Err(v));
            }
            n += 1;
            heap = if n < crate::arena::MAX_ARENAS {
                h.prev(m)?
            } else {
                None
            };
        }
        Ok(Ok(()))
    }

    /// Walk chunks from `start` to the top or, in an older heap, to the
    /// end marker (a header of size 0) before `end`.
    fn walk_segment(
        &self,
        start: Chunk,
        top: Chunk,
        end: usize,
        f: &mut impl FnMut(HeapChunk),
    ) -> Res<Result<(), Violation>, M> {
        let m = &self.mem;
        let top_here = top.0 >= start.0 && top.0 < end;
        let limit = if top_here { top.0 } else { end };
        let mut p = start;
        loop {
            let raw = p.size_field(m)?;
            let size = raw & !SIZE_BITS;
            if p == top {
                f(HeapChunk {
                    chunk: p,
                    size,
                    flags: raw & SIZE_BITS,
                    in_use: false,
                    is_top: true,
                });
                return Ok(Ok(()));
            }
            if !top_here && size == 0 {
                // The end marker of an older heap.
                f(HeapChunk {
                    chunk: p,
                    size,
                    flags: raw & SIZE_BITS,
                    in_use: true,
                    is_top: false,
                });
                return Ok(Ok(()));
            }
            let fence = !top_here && size == crate::chunk::CHUNK_HDR_SZ;
            if (size < MINSIZE && !fence) || !is_aligned(size) || p.0 > limit || p.plus(size).0 > limit {
                return Ok(Err(Violation {
                    what: "chunk size out of bounds in heap walk",
                    addr: p.0,
                }));
            }
            let in_use = fence || p.inuse_at(m, size)?;
            f(HeapChunk {
                chunk: p,
                size,
                flags: raw & SIZE_BITS,
                in_use,
                is_top: false,
            });
            p = p.plus(size);
        }
    }

    /// Visit every chunk on a free list: the fastbins, the unsorted, small and
    /// large bins of the main arena, and the bins of the given tcaches, as
    /// `(kind, bin index, chunk)`. A list longer than `limit` stops the walk
    /// with a violation (a cycle).
    pub fn walk_bins(
        &self,
        tcaches: &[Tcache],
        limit: usize,
        f: impl FnMut(BinKind, usize, Chunk),
    ) -> Res<Result<(), Violation>, M> {
        self.walk_arena_bins(self.main, tcaches, limit, f)
    }

    /// [`Allocator::walk_bins`] for arena `av`.
    pub fn walk_arena_bins(
        &self,
        av: Arena,
        tcaches: &[Tcache],
        limit: usize,
        mut f: impl FnMut(BinKind, usize, Chunk),
    ) -> Res<Result<(), Violation>, M> {
        let m = &self.mem;
        for tc in tcaches.iter().filter(|t| t.exists()) {
            for idx in 0..TCACHE_MAX_BINS {
                let mut e = tc.entry(m, idx)?;
                let mut n = 0;
                while e != 0 {
                    n += 1;
                    // Counts are u16; a bin may hold other arenas' chunks.
                    if n > limit.max(u16::MAX as usize) {
                        return Ok(Err(Violation {
                            what: "tcache list too long (cycle?)",
                            addr: e,
                        }));
                    }
                    f(BinKind::Tcache, idx, Chunk::from_mem(e));
                    e = Tcache::next_of(m, e)?;
                }
            }
        }
        for idx in 0..NFASTBINS {
            let mut p = av.fastbin(m, idx)?;
            let mut n = 0;
            while p.0 != 0 {
                n += 1;
                if n > limit {
                    return Ok(Err(Violation {
                        what: "fastbin too long (cycle?)",
                        addr: p.0,
                    }));
                }
                f(BinKind::Fast, idx, p);
                p = Chunk(reveal_ptr(p.fd_addr(), p.fd(m)?.0));
            }
        }
        for i in 1..NBINS {
            let bin = av.bin_at(i);
            let kind = match i {
                1 => BinKind::Unsorted,
                _ if i < 64 => BinKind::Small,
                _ => BinKind::Large,
            };
            let mut p = bin.fd(m)?;
            let mut n = 0;
            while p != bin {
                n += 1;
                if n > limit {
                    return Ok(Err(Violation {
                        what: "bin too long (cycle?)",
                        addr: p.0,
                    }));
                }
                f(kind, i, p);
                p = p.fd(m)?;
            }
        }
        Ok(Ok(()))
    }

    /// Check the heap's invariants: boundary tags agree with each other, no
    /// two free neighbours, every bin's links are mutual and its chunks have
    /// the bin's sizes in order, the binmap covers non-empty bins, fastbin
    /// and tcache chunks look in use and sit in the right bin, and the
    /// numbers of free chunks seen by the walk and by the bins agree.
    pub fn check_heap(&self, tcaches: &[Tcache]) -> Res<Result<HeapSummary, Violation>, M> {
        self.check_arena(self.main, tcaches)
    }

    /// [`Allocator::check_heap`] for arena `av`; the tcaches' chunks of
    /// other arenas are skipped.
    pub fn check_arena(&self, av: Arena, tcaches: &[Tcache]) -> Res<Result<HeapSummary, Violation>, M> {
        let m = &self.mem;
        let is_main = av == self.main;
        let mut s = HeapSummary::default();
        let mut free_by_tags = 0usize;
        let mut prev_free = false;
        let mut bad: Option<Violation> = None;
        let walked = self.walk_arena(av, |c| {
            if bad.is_some() {
                return;
            }
            s.chunks += 1;
            let v = |what| {
                Some(Violation {
                    what,
                    addr: c.chunk.0,
                })
            };
            if c.size == 0 || (!is_main && c.size == crate::chunk::CHUNK_HDR_SZ && c.in_use) {
                // Fence posts at the end of an older heap.
                s.chunks -= 1;
                prev_free = false;
                return;
            }
            let allowed = if is_main {
                PREV_INUSE
            } else {
                PREV_INUSE | crate::chunk::NON_MAIN_ARENA
            };
            let header = c.chunk.header_state(m).unwrap_or(HeaderState::Forged);
            if c.flags & !allowed != 0 {
                bad = v("chunk with M bit, or A bit in the main arena");
            } else if header == HeaderState::Forged {
                bad = v("chunk header fails its check value");
            } else if header == HeaderState::Parked && (!c.in_use || c.is_top) {
                bad = v("free chunk or top with a parked header");
            } else if c.is_top {
                s.top_size = c.size;
                if prev_free {
                    bad = v("free chunk next to the top");
                }
            } else if !c.in_use {
                free_by_tags += 1;
                if prev_free {
                    bad = v("two free chunks side by side");
                }
            }
            if bad.is_none() && prev_free == (c.flags & PREV_INUSE != 0) {
                bad = v("PREV_INUSE disagrees with the previous chunk");
            }
            prev_free = !c.in_use && !c.is_top;
        })?;
        if let Err(v) = walked {
            return Ok(Err(v));
        }
        if let Some(v) = bad {
            return Ok(Err(v));
        }
        // Free chunks' feet.
        let mut foot_bad = None;
        self.walk_arena(av, |c| {
            if foot_bad.is_none() && !c.in_use && !c.is_top {
                match c.chunk.plus(c.size).prev_size(m) {
                    Ok(ps) if ps == c.size => {}
                    _ => {
                        foot_bad = Some(Violation {
                            what: "free chunk's foot differs from its size",
                            addr: c.chunk.0,
                        })
                    }
                }
            }
        })?
        .ok();
        if let Some(v) = foot_bad {
            return Ok(Err(v));
        }

        let limit = s.chunks + 1;
        let mut last: Option<(usize, Chunk)> = None;
        let heap_lo = self.heap_start();
        let top = av.top(m)?;
        let mut bin_bad = None;
        let walked = self.walk_arena_bins(av, tcaches, limit, |kind, idx, c| {
            if bin_bad.is_some() {
                return;
            }
            let v = |what| Some(Violation { what, addr: c.0 });
            let chunk_arena = if is_main || kind == BinKind::Tcache {
                self.arena_for_chunk(c).ok()
            } else {
                Heap::of(c.0).arena(m).ok()
            };
            if kind == BinKind::Tcache && chunk_arena != Some(av) {
                return;
            }
            let outside = if is_main {
                c.0 < heap_lo || c.0 >= top.0
            } else {
                chunk_arena != Some(av)
            };
            if outside {
                bin_bad = v("free-list chunk outside the heap");
                return;
            }
            let (Ok(size), Ok(in_use)) = (c.size(m), c.inuse(m)) else {
                bin_bad = v("unreadable free-list chunk");
                return;
            };
            let parked = c.header_state(m).ok() == Some(HeaderState::Parked);
            if parked != (kind == BinKind::Fast) && m.header_key() != 0 {
                bin_bad = v("parked header outside a fastbin, or the reverse");
                return;
            }
            match kind {
                BinKind::Tcache => {
                    s.cached += 1;
                    if csize2tidx(size) != idx || !in_use {
                        bin_bad = v("tcache chunk of the wrong size or not marked in use");
                    }
                }
                BinKind::Fast => {
                    s.fast += 1;
                    if fastbin_index(size) != idx || !in_use {
                        bin_bad = v("fastbin chunk of the wrong size or not marked in use");
                    }
                }
                _ => {
                    s.binned += 1;
                    let (Ok(fd), Ok(bk)) = (c.fd(m), c.bk(m)) else {
                        bin_bad = v("unreadable links");
                        return;
                    };
                    if in_use {
                        bin_bad = v("binned chunk marked in use");
                    } else if fd.bk(m).ok() != Some(c) || bk.fd(m).ok() != Some(c) {
                        bin_bad = v("bin links are not mutual");
                    } else if kind != BinKind::Unsorted && bin_index(size) != idx {
                        bin_bad = v("chunk in the wrong bin for its size");
                    } else if kind == BinKind::Large {
                        if let Some((prev_idx, prev)) = last {
                            if prev_idx == idx && prev.size(m).map(|ps| ps < size).unwrap_or(true) {
                                bin_bad = v("large bin not sorted by decreasing size");
                            }
                        }
                    }
                    if bin_bad.is_none() && kind != BinKind::Unsorted {
                        let bit = av.binmap(m, idx >> 5).map(|w| w & (1 << (idx & 31)) != 0);
                        if !matches!(bit, Ok(true)) {
                            bin_bad = v("non-empty bin not marked in the binmap");
                        }
                    }
                    if bin_bad.is_none() && kind == BinKind::Large && !in_smallbin_range(size) {
                        bin_bad = self.check_nextsize(av, c, idx).err();
                    }
                    last = Some((idx, c));
                }
            }
        })?;
        if let Err(v) = walked {
            return Ok(Err(v));
        }
        if let Some(v) = bin_bad {
            return Ok(Err(v));
        }
        if s.binned != free_by_tags {
            return Ok(Err(Violation {
                what: "free chunks in the heap and in the bins differ in number",
                addr: 0,
            }));
        }
        Ok(Ok(s))
    }

    /// The nextsize links of a large-bin chunk: the first chunk of each size
    /// is on a circular list of distinct sizes; the others have null links.
    fn check_nextsize(&self, av: Arena, c: Chunk, idx: usize) -> Result<(), Violation> {
        let m = &self.mem;
        let bad = |what| Violation { what, addr: c.0 };
        let bin = av.bin_at(idx);
        let (Ok(size), Ok(bk), Ok(fdn), Ok(bkn)) = (c.size(m), c.bk(m), c.fd_nextsize(m), c.bk_nextsize(m))
        else {
            return Err(bad("unreadable nextsize links"));
        };
        let first_of_size = bk == bin || bk.size(m).map(|s| s != size).unwrap_or(true);
        if first_of_size {
            if fdn.0 == 0 || bkn.0 == 0 {
                return Err(bad("first chunk of a size lacks nextsize links"));
            }
            if fdn.bk_nextsize(m).ok() != Some(c) || bkn.fd_nextsize(m).ok() != Some(c) {
                return Err(bad("nextsize links are not mutual"));
            }
        }
        Ok(())
    }
}
