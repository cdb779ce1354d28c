//! `LabMemory`: the simulated address space of a Python `Heap`, wrapped so
//! that the bindings can
//! - count the allocator's paths (the core's `Memory::count` hook, plus the
//!   system calls this source sees: sbrk, mmap, munmap, trim);
//! - undo a call that failed (a write journal, so a `HeapAbort` carries the
//!   state just before the call and the heap stays usable);
//! - bound every call (a step budget, so a cycle that a script wrote into a
//!   free list ends as an error instead of hanging the interpreter);
//! - list its regions (which mapping is a non-main heap, which a chunk).

use std::cell::Cell;

use ptmalloc_core::memory::{Memory, Path};
use ptmalloc_sim::{SimError, SimMemory, HEAP_BASE, MAIN_ARENA};

/// Where the simulated libc data (holding `main_arena`) starts, and its length.
pub const LIBC_DATA: usize = MAIN_ARENA & !0xfff;
/// The simulated libc data is two pages.
pub const LIBC_DATA_LEN: usize = 2 * 4096;

/// Memory accesses one call may make before it is stopped (a cycle in a
/// corrupted list); far above what any real call needs.
const STEP_BUDGET: u64 = 50_000_000;
/// The message of a call stopped by the step budget.
pub const BUDGET_MESSAGE: &str =
    "ptmalloc_rs: call stopped after 50000000 memory accesses (a cycle in a corrupted list?)";

/// The counters, by index: the core's paths first (in [`Path`] order), then
/// the memory source's own, then the bindings' record of where frees went.
pub const COUNTER_NAMES: [&str; 18] = [
    "tcache_hit",
    "fastbin",
    "smallbin",
    "unsorted_scan",
    "split",
    "largebin",
    "binmap_search",
    "top",
    "consolidate",
    "sbrk",
    "mmap",
    "munmap",
    "trim",
    "free_tcache",
    "free_fastbin",
    "free_bins",
    "free_top",
    "free_munmap",
];

/// Index of a counter in [`COUNTER_NAMES`].
#[derive(Clone, Copy)]
pub enum Counter {
    Sbrk = 9,
    Mmap,
    Munmap,
    Trim,
    FreeTcache,
    FreeFastbin,
    FreeBins,
    FreeTop,
    FreeMunmap,
}

fn path_counter(p: Path) -> usize {
    match p {
        Path::TcacheHit => 0,
        Path::Fastbin => 1,
        Path::Smallbin => 2,
        Path::UnsortedScan => 3,
        Path::Split => 4,
        Path::LargeBin => 5,
        Path::BinmapSearch => 6,
        Path::Top => 7,
        Path::Consolidate => 8,
    }
}

/// What a mapping holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// A chunk mapped on its own.
    Mmap,
    /// A non-main arena's heap (a reservation of which `len` bytes are accessible).
    ArenaHeap,
}

/// A mapping of the simulated address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub base: usize,
    /// Accessible bytes.
    pub len: usize,
    pub kind: MapKind,
}

/// The old contents of memory a call overwrote.
enum Undo {
    Word(usize, usize),
    U16(usize, u16),
    U32(usize, u32),
    Bytes(usize, Vec<u8>),
}

/// How a call's changes can be undone.
enum Journal {
    /// Not in a call: nothing recorded.
    Off,
    /// The writes so far, oldest first.
    Writes(Vec<Undo>),
    /// The call changed the mappings: the whole space as it was at its start.
    Before(Box<(SimMemory, Vec<Mapping>)>),
}

/// The simulated address space with counters, an undo journal and a step budget.
pub struct LabMemory {
    pub sim: SimMemory,
    /// Mappings other than the main heap and the libc data, by address.
    pub maps: Vec<Mapping>,
    pub counters: [u64; COUNTER_NAMES.len()],
    steps: Cell<u64>,
    journal: Journal,
    /// The journal's buffer, kept between calls.
    spare: Vec<Undo>,
}

impl Clone for LabMemory {
    /// A copy of the space and counters; the copy is not in a call.
    fn clone(&self) -> Self {
        LabMemory {
            sim: self.sim.clone(),
            maps: self.maps.clone(),
            counters: self.counters,
            steps: Cell::new(0),
            journal: Journal::Off,
            spare: Vec::new(),
        }
    }
}

impl LabMemory {
    pub fn new() -> Self {
        LabMemory {
            sim: SimMemory::new(),
            maps: Vec::new(),
            counters: [0; COUNTER_NAMES.len()],
            steps: Cell::new(0),
            journal: Journal::Off,
            spare: Vec::new(),
        }
    }

    /// Start a call: record what it overwrites, restart the step budget.
    pub fn begin(&mut self) {
        self.steps.set(0);
        let mut v = std::mem::take(&mut self.spare);
        v.clear();
        self.journal = Journal::Writes(v);
    }

    /// Restart the step budget (before introspection, which is never undone).
    pub fn reset_steps(&self) {
        self.steps.set(0);
    }

    /// The call succeeded: forget the journal.
    pub fn commit(&mut self) {
        if let Journal::Writes(v) = std::mem::replace(&mut self.journal, Journal::Off) {
            self.spare = v;
        }
    }

    /// The call failed: put the space back as it was at [`LabMemory::begin`].
    pub fn rollback(&mut self) {
        match std::mem::replace(&mut self.journal, Journal::Off) {
            Journal::Off => {}
            Journal::Writes(mut v) => {
                undo(&mut self.sim, &mut v);
                self.spare = v;
            }
            Journal::Before(b) => {
                let (sim, maps) = *b;
                self.sim = sim;
                self.maps = maps;
            }
        }
    }

    /// The call is about to change the mappings: keep the space as it was
    /// at its start, whole (word undo records cannot undo a mapping).
    fn structural(&mut self) {
        if let Journal::Writes(v) = &mut self.journal {
            let mut sim = self.sim.clone();
            undo(&mut sim, v);
            let maps = self.maps.clone();
            let mut v = std::mem::take(v);
            v.clear();
            self.spare = v;
            self.journal = Journal::Before(Box::new((sim, maps)));
        }
    }

    fn record(&mut self, u: impl FnOnce(&SimMemory) -> Option<Undo>) {
        if let Journal::Writes(v) = &mut self.journal {
            if let Some(u) = u(&self.sim) {
                v.push(u);
            }
        }
    }

    #[inline(always)]
    fn step(&self) -> Result<(), SimError> {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        if n > STEP_BUDGET {
            return Err(SimError::Abort {
                message: BUDGET_MESSAGE,
            });
        }
        Ok(())
    }

    /// Count a step of the bindings' own (where a free went).
    pub fn bump(&mut self, c: Counter) {
        self.counters[c as usize] += 1;
    }

    /// Every region: `(start, end, kind)` in address order, kind one of
    /// "heap", "arena", "mmap", "libc".
    pub fn regions(&self) -> Vec<(usize, usize, &'static str)> {
        let mut r = vec![
            (HEAP_BASE, self.sim.brk(), "heap"),
            (LIBC_DATA, LIBC_DATA + LIBC_DATA_LEN, "libc"),
        ];
        for m in &self.maps {
            let kind = match m.kind {
                MapKind::Mmap => "mmap",
                MapKind::ArenaHeap => "arena",
            };
            r.push((m.base, m.base + m.len, kind));
        }
        r.retain(|&(s, e, _)| e > s);
        r.sort_unstable();
        r
    }

    fn remove_map(&mut self, base: usize) -> Option<Mapping> {
        let i = self.maps.iter().position(|m| m.base == base)?;
        Some(self.maps.remove(i))
    }

    fn add_map(&mut self, m: Mapping) {
        let i = self.maps.partition_point(|x| x.base < m.base);
        self.maps.insert(i, m);
    }
}

/// Apply undo records newest first.
fn undo(sim: &mut SimMemory, v: &mut Vec<Undo>) {
    while let Some(u) = v.pop() {
        // Each record was read from the same place just before it was
        // overwritten, so writing it back cannot fail.
        let _ = match u {
            Undo::Word(a, x) => sim.write(a, x),
            Undo::U16(a, x) => sim.write_u16(a, x),
            Undo::U32(a, x) => sim.write_u32(a, x),
            Undo::Bytes(a, b) => sim.write_bytes(a, &b),
        };
    }
}

// SAFETY: every access goes to the bounds-checked `SimMemory`; nothing here
// touches host memory but the simulation's own vectors.
unsafe impl Memory for LabMemory {
    type Error = SimError;

    fn corruption(&mut self, message: &'static str) -> SimError {
        SimError::Abort { message }
    }

    #[inline(always)]
    fn read(&self, addr: usize) -> Result<usize, SimError> {
        self.step()?;
        self.sim.read(addr)
    }

    #[inline(always)]
    fn write(&mut self, addr: usize, value: usize) -> Result<(), SimError> {
        self.step()?;
        self.record(|s| s.read(addr).ok().map(|x| Undo::Word(addr, x)));
        self.sim.write(addr, value)
    }

    fn read_u16(&self, addr: usize) -> Result<u16, SimError> {
        self.step()?;
        self.sim.read_u16(addr)
    }

    fn write_u16(&mut self, addr: usize, value: u16) -> Result<(), SimError> {
        self.step()?;
        self.record(|s| s.read_u16(addr).ok().map(|x| Undo::U16(addr, x)));
        self.sim.write_u16(addr, value)
    }

    fn read_u32(&self, addr: usize) -> Result<u32, SimError> {
        self.step()?;
        self.sim.read_u32(addr)
    }

    fn write_u32(&mut self, addr: usize, value: u32) -> Result<(), SimError> {
        self.step()?;
        self.record(|s| s.read_u32(addr).ok().map(|x| Undo::U32(addr, x)));
        self.sim.write_u32(addr, value)
    }

    fn copy(&mut self, dst: usize, src: usize, len: usize) -> Result<(), SimError> {
        self.step()?;
        self.record(|s| s.read_bytes(dst, len).ok().map(|b| Undo::Bytes(dst, b.to_vec())));
        self.sim.copy(dst, src, len)
    }

    fn fill(&mut self, dst: usize, byte: u8, len: usize) -> Result<(), SimError> {
        self.step()?;
        self.record(|s| s.read_bytes(dst, len).ok().map(|b| Undo::Bytes(dst, b.to_vec())));
        self.sim.fill(dst, byte, len)
    }

    fn sbrk(&mut self, increment: isize) -> Option<usize> {
        if increment != 0 {
            self.structural();
        }
        let r = self.sim.sbrk(increment);
        if r.is_some() {
            if increment > 0 {
                self.bump(Counter::Sbrk);
            } else if increment < 0 {
                self.bump(Counter::Trim);
            }
        }
        r
    }

    fn mmap(&mut self, len: usize) -> Option<usize> {
        self.structural();
        let base = self.sim.mmap(len)?;
        self.add_map(Mapping {
            base,
            len,
            kind: MapKind::Mmap,
        });
        self.bump(Counter::Mmap);
        Some(base)
    }

    fn munmap(&mut self, addr: usize, len: usize) -> bool {
        self.structural();
        let ok = self.sim.munmap(addr, len);
        if ok {
            let kind = self.remove_map(addr).map(|m| m.kind);
            self.bump(if kind == Some(MapKind::ArenaHeap) {
                Counter::Trim
            } else {
                Counter::Munmap
            });
        }
        ok
    }

    fn mremap(&mut self, addr: usize, old_len: usize, new_len: usize) -> Option<usize> {
        self.structural();
        let new_base = self.sim.mremap(addr, old_len, new_len)?;
        self.remove_map(addr);
        self.add_map(Mapping {
            base: new_base,
            len: new_len,
            kind: MapKind::Mmap,
        });
        Some(new_base)
    }

    fn discard(&mut self, addr: usize, len: usize) {
        self.record(|s| {
            s.read_bytes(addr, len)
                .ok()
                .map(|b| Undo::Bytes(addr, b.to_vec()))
        });
        self.sim.discard(addr, len);
        self.bump(Counter::Trim);
    }

    fn page_size(&self) -> usize {
        self.sim.page_size()
    }

    fn map_heap(&mut self, max: usize, size: usize) -> Option<usize> {
        self.structural();
        let base = self.sim.map_heap(max, size)?;
        self.add_map(Mapping {
            base,
            len: size,
            kind: MapKind::ArenaHeap,
        });
        Some(base)
    }

    fn extend_heap(&mut self, base: usize, size: usize) -> bool {
        self.structural();
        let ok = self.sim.extend_heap(base, size);
        if ok {
            if let Some(m) = self.maps.iter_mut().find(|m| m.base == base) {
                m.len = m.len.max(size);
            }
        }
        ok
    }

    #[inline(always)]
    fn count(&mut self, path: Path) {
        self.counters[path_counter(path)] += 1;
    }
}
