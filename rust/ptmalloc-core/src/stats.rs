//! Statistics with glibc's meaning: `mallinfo2`, `malloc_stats` and
//! `malloc_info`. Gathering needs the arena (the caller's lock); formatting
//! goes to any `core::fmt::Write`, so the host chooses where text goes
//! without the core allocating.

use core::fmt::{self, Write};

use crate::chunk::{reveal_ptr, Chunk, MALLOC_ALIGNMENT};
use crate::memory::Memory;
use crate::state::{Arena, NBINS, NFASTBINS};
use crate::sysmalloc::MmapStats;
use crate::{Allocator, Res};

/// `struct mallinfo2`, field for field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Mallinfo2 {
    /// Bytes obtained from the system for the arenas (excluding mmapped chunks).
    pub arena: usize,
    /// Free chunks outside fastbins, the top chunk included.
    pub ordblks: usize,
    /// Free chunks in fastbins.
    pub smblks: usize,
    /// Chunks mapped on their own.
    pub hblks: usize,
    /// Bytes in chunks mapped on their own.
    pub hblkhd: usize,
    /// Always 0.
    pub usmblks: usize,
    /// Bytes in fastbin chunks.
    pub fsmblks: usize,
    /// Bytes in use (cached chunks count as in use).
    pub uordblks: usize,
    /// Bytes free, the top chunk included.
    pub fordblks: usize,
    /// Bytes at the top that trimming could release.
    pub keepcost: usize,
}

/// One row of `malloc_info`'s size histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeRow {
    /// Smallest chunk size counted.
    pub from: usize,
    /// Largest chunk size counted.
    pub to: usize,
    /// Bytes in the row.
    pub total: usize,
    /// Chunks in the row.
    pub count: usize,
}

/// Rows of the histogram: one per fastbin, then one per bin (the first is the unsorted bin).
pub const SIZE_ROWS: usize = NFASTBINS + NBINS - 1;

/// What `malloc_info` reports about one arena.
#[derive(Clone, Copy, Debug)]
pub struct HeapInfo {
    /// The size histogram.
    pub sizes: [SizeRow; SIZE_ROWS],
    /// Chunks in fastbins.
    pub fast_count: usize,
    /// Bytes in fastbins.
    pub fast_bytes: usize,
    /// Chunks in the other bins, plus the top chunk.
    pub rest_count: usize,
    /// Bytes in the other bins, plus the top chunk.
    pub rest_bytes: usize,
    /// Bytes obtained from the system.
    pub system_mem: usize,
    /// Most bytes ever obtained from the system.
    pub max_system_mem: usize,
    /// Address space: the heaps' sizes (system_mem for the main arena).
    pub aspace: usize,
    /// Address space made accessible (system_mem for the main arena).
    pub aspace_mprotect: usize,
    /// Heaps of a non-main arena (none for the main arena).
    pub subheaps: Option<usize>,
}

impl<M: Memory> Allocator<M> {
    /// `int_mallinfo` for one arena, added into `mi`.
    pub fn add_arena_info(&self, av: Arena, mi: &mut Mallinfo2) -> Res<(), M> {
        let m = &self.mem;
        let top = av.top(m)?.size(m)?;
        let mut avail = top;
        let mut nblocks = 1;
        let (mut nfast, mut fastavail) = (0, 0);
        for idx in 0..NFASTBINS {
            let mut p = av.fastbin(m, idx)?;
            while p.0 != 0 {
                if p.misaligned() {
                    // Counting stops at a corrupt link; the checks report it elsewhere.
                    break;
                }
                nfast += 1;
                fastavail += p.size(m)?;
                p = Chunk(reveal_ptr(p.fd_addr(), p.fd(m)?.0));
            }
        }
        avail += fastavail;
        for i in 1..NBINS {
            let bin = av.bin_at(i);
            let mut p = bin.bk(m)?;
            while p != bin {
                nblocks += 1;
                avail += p.size(m)?;
                p = p.bk(m)?;
            }
        }
        let system_mem = av.system_mem(m)?;
        mi.smblks += nfast;
        mi.ordblks += nblocks;
        mi.fordblks += avail;
        mi.uordblks += system_mem - avail;
        mi.arena += system_mem;
        mi.fsmblks += fastavail;
        if av == self.main {
            mi.hblks = self.mmaps.count;
            mi.hblkhd = self.mmaps.bytes;
            mi.usmblks = 0;
            mi.keepcost = top;
        }
        Ok(())
    }

    /// [`Allocator::add_arena_info`] with `av` locked.
    fn add_arena_info_locked(&self, av: Arena, mi: &mut Mallinfo2) -> Res<(), M> {
        self.mem.lock_arena(av.0);
        let r = self.add_arena_info(av, mi);
        self.mem.unlock_arena(av.0);
        r
    }

    /// `mallinfo2`, summed over all arenas.
    pub fn mallinfo2(&self) -> Res<Mallinfo2, M> {
        let mut mi = Mallinfo2::default();
        for av in self.arenas() {
            self.add_arena_info_locked(av, &mut mi)?;
        }
        Ok(mi)
    }

    /// `malloc_stats` in glibc's format (the numbers are truncated to
    /// `unsigned int` as glibc prints them).
    pub fn write_malloc_stats<W: Write>(&self, w: &mut W) -> Res<fmt::Result, M> {
        Ok(self.format_malloc_stats(w))
    }

    fn format_malloc_stats<W: Write>(&self, w: &mut W) -> fmt::Result {
        let mut system = self.mmaps.bytes as u32;
        let mut in_use = system;
        for (i, av) in self.arenas().enumerate() {
            let mut mi = Mallinfo2::default();
            if self.add_arena_info_locked(av, &mut mi).is_err() {
                return Err(fmt::Error);
            }
            writeln!(w, "Arena {}:", i)?;
            writeln!(w, "system bytes     = {:>10}", mi.arena as u32)?;
            writeln!(w, "in use bytes     = {:>10}", mi.uordblks as u32)?;
            system = system.wrapping_add(mi.arena as u32);
            in_use = in_use.wrapping_add(mi.uordblks as u32);
        }
        w.write_str("Total (incl. mmap):\n")?;
        writeln!(w, "system bytes     = {:>10}", system)?;
        writeln!(w, "in use bytes     = {:>10}", in_use)?;
        writeln!(w, "max mmap regions = {:>10}", self.mmaps.max_count as u32)?;
        writeln!(w, "max mmap bytes   = {:>10}", self.mmaps.max_bytes)
    }

    /// Gather `malloc_info`'s numbers for one arena, with the arena locked.
    pub fn heap_info(&self, av: Arena) -> Res<HeapInfo, M> {
        self.mem.lock_arena(av.0);
        let r = self.heap_info_unlocked(av);
        self.mem.unlock_arena(av.0);
        r
    }

    fn heap_info_unlocked(&self, av: Arena) -> Res<HeapInfo, M> {
        let m = &self.mem;
        let system_mem = av.system_mem(m)?;
        // A non-main arena's address space is its heaps, each counted whole.
        let (mut aspace, mut mprotect, mut subheaps) = (system_mem, system_mem, None);
        if av != self.main {
            let (mut total, mut prot, mut n) = (0, 0, 0);
            let mut h = Some(crate::heap::Heap::of(av.top(m)?.0));
            while let Some(heap) = h {
                n += 1;
                total += heap.size(m)?;
                prot += heap.mprotect_size(m)?;
                h = if n < crate::arena::MAX_ARENAS {
                    heap.prev(m)?
                } else {
                    None
                };
            }
            (aspace, mprotect, subheaps) = (total, prot, Some(n));
        }
        let mut info = HeapInfo {
            sizes: [SizeRow::default(); SIZE_ROWS],
            fast_count: 0,
            fast_bytes: 0,
            // glibc counts the top chunk among the "rest".
            rest_count: 1,
            rest_bytes: av.top(m)?.size(m)?,
            system_mem,
            max_system_mem: av.max_system_mem(m)?,
            aspace,
            aspace_mprotect: mprotect,
            subheaps,
        };
        for idx in 0..NFASTBINS {
            let mut p = av.fastbin(m, idx)?;
            if p.0 == 0 {
                continue;
            }
            let this_size = p.size(m)?;
            let mut n = 0;
            while p.0 != 0 && !p.misaligned() {
                n += 1;
                p = Chunk(reveal_ptr(p.fd_addr(), p.fd(m)?.0));
            }
            info.fast_bytes += n * this_size;
            info.fast_count += n;
            info.sizes[idx] = SizeRow {
                from: this_size - (MALLOC_ALIGNMENT - 1),
                to: this_size,
                total: n * this_size,
                count: n,
            };
        }
        for i in 1..NBINS {
            let bin = av.bin_at(i);
            let row = &mut info.sizes[NFASTBINS - 1 + i];
            row.from = usize::MAX;
            let mut r = bin.fd(m)?;
            while r.0 != 0 && r != bin {
                let size = r.size_field(m)?;
                row.count += 1;
                row.total += size;
                row.from = row.from.min(size);
                row.to = row.to.max(size);
                r = r.fd(m)?;
            }
            if row.count == 0 {
                row.from = 0;
            }
            info.rest_count += row.count;
            info.rest_bytes += row.total;
        }
        Ok(info)
    }
}

/// Write `malloc_info`'s XML (glibc's schema) for the given arenas.
pub fn write_malloc_info<W: Write, H: core::borrow::Borrow<HeapInfo>>(
    w: &mut W,
    heaps: impl Iterator<Item = H>,
    mmaps: MmapStats,
) -> fmt::Result {
    w.write_str("<malloc version=\"1\">\n")?;
    let (mut fast_count, mut fast_bytes, mut rest_count, mut rest_bytes) = (0, 0, 0, 0);
    let (mut system, mut max_system, mut aspace, mut aspace_mprotect) = (0, 0, 0, 0);
    for (n, h) in heaps.enumerate() {
        let h: &HeapInfo = h.borrow();
        write!(w, "<heap nr=\"{}\">\n<sizes>\n", n)?;
        for (i, row) in h.sizes.iter().enumerate() {
            if row.count != 0 && i != NFASTBINS {
                writeln!(
                    w,
                    "  <size from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>",
                    row.from, row.to, row.total, row.count
                )?;
            }
        }
        let unsorted = &h.sizes[NFASTBINS];
        if unsorted.count != 0 {
            writeln!(
                w,
                "  <unsorted from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>",
                unsorted.from, unsorted.to, unsorted.total, unsorted.count
            )?;
        }
        write!(
            w,
            "</sizes>\n<total type=\"fast\" count=\"{}\" size=\"{}\"/>\n\
             <total type=\"rest\" count=\"{}\" size=\"{}\"/>\n\
             <system type=\"current\" size=\"{}\"/>\n\
             <system type=\"max\" size=\"{}\"/>\n",
            h.fast_count, h.fast_bytes, h.rest_count, h.rest_bytes, h.system_mem, h.max_system_mem
        )?;
        write!(
            w,
            "<aspace type=\"total\" size=\"{}\"/>\n<aspace type=\"mprotect\" size=\"{}\"/>\n",
            h.aspace, h.aspace_mprotect
        )?;
        if let Some(n) = h.subheaps {
            writeln!(w, "<aspace type=\"subheaps\" size=\"{}\"/>", n)?;
        }
        w.write_str("</heap>\n")?;
        fast_count += h.fast_count;
        fast_bytes += h.fast_bytes;
        rest_count += h.rest_count;
        rest_bytes += h.rest_bytes;
        system += h.system_mem;
        max_system += h.max_system_mem;
        aspace += h.aspace;
        aspace_mprotect += h.aspace_mprotect;
    }
    write!(
        w,
        "<total type=\"fast\" count=\"{}\" size=\"{}\"/>\n\
         <total type=\"rest\" count=\"{}\" size=\"{}\"/>\n\
         <total type=\"mmap\" count=\"{}\" size=\"{}\"/>\n\
         <system type=\"current\" size=\"{}\"/>\n\
         <system type=\"max\" size=\"{}\"/>\n\
         <aspace type=\"total\" size=\"{}\"/>\n\
         <aspace type=\"mprotect\" size=\"{}\"/>\n\
         </malloc>\n",
        fast_count,
        fast_bytes,
        rest_count,
        rest_bytes,
        mmaps.count,
        mmaps.bytes,
        system,
        max_system,
        aspace,
        aspace_mprotect
    )
}
