//! `LabMemory`: the simulated address space of a Python `Heap`, wrapped so
//! that the bindings can
//! - count the allocator's paths (the core's `Memory::count` hook, plus the
//!   system calls this source sees: sbrk, mmap, munmap, trim);
//! - undo a call that failed (a journal of its writes and of its changes to
//!   the mappings, so a `HeapAbort` carries the state just before the call
//!   and the heap stays usable; the cost is that of the call's own changes);
//! - bound every call (a step budget, so a cycle that a script wrote into a
//!   free list ends as an error instead of hanging the interpreter);
//! - list its regions (which mapping is a non-main heap, which a chunk).

use std::cell::Cell;

use ptmalloc_core::memory::{Memory, Path};
use ptmalloc_sim::{SavedMapping, SimError, SimMemory, HEAP_BASE, MAIN_ARENA};

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

/// How to take back one change a call made.
enum Undo {
    /// Old contents of memory it overwrote.
    Word(usize, usize),
    U16(usize, u16),
    U32(usize, u32),
    Bytes(usize, Vec<u8>),
    /// The break moved up by this much.
    Grew(isize),
    /// The break moved down over these bytes.
    Shrank(Vec<u8>),
    /// A mapping was made at `base` (reserving `len`), the cursor was at `cursor`.
    Mapped {
        base: usize,
        len: usize,
        cursor: usize,
    },
    /// A mapping was unmapped.
    Unmapped(SavedMapping),
    /// A mapping was resized to `len` at `base` (maybe moved), the cursor was at `cursor`.
    Remapped {
        old: SavedMapping,
        base: usize,
        len: usize,
        cursor: usize,
    },
    /// A heap's accessible part was `len` bytes.
    Resized {
        base: usize,
        len: usize,
    },
}

/// How a call's changes can be undone.
enum Journal {
    /// Not in a call: nothing recorded.
    Off,
    /// In a call: its changes, oldest first, and the mapping list as it was
    /// before the first change to the mappings.
    On {
        undo: Vec<Undo>,
        maps: Option<Vec<Mapping>>,
    },
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
        let mut undo = std::mem::take(&mut self.spare);
        undo.clear();
        self.journal = Journal::On { undo, maps: None };
    }

    /// Restart the step budget (before introspection, which is never undone).
    pub fn reset_steps(&self) {
        self.steps.set(0);
    }

    /// The call succeeded: forget the journal.
    pub fn commit(&mut self) {
        if let Journal::On { undo, .. } = std::mem::replace(&mut self.journal, Journal::Off) {
            self.spare = undo;
        }
    }

    /// The call failed: put the space back as it was at [`LabMemory::begin`].
    pub fn rollback(&mut self) {
        if let Journal::On { mut undo, maps } = std::mem::replace(&mut self.journal, Journal::Off) {
            take_back(&mut self.sim, &mut undo);
            self.spare = undo;
            if let Some(m) = maps {
                self.maps = m;
            }
        }
    }

    /// The call is about to change the mappings: keep the list as it was.
    fn save_maps(&mut self) {
        if let Journal::On { maps: m @ None, .. } = &mut self.journal {
            *m = Some(self.maps.clone());
        }
    }

    fn record(&mut self, u: impl FnOnce(&SimMemory) -> Option<Undo>) {
        if let Journal::On { undo, .. } = &mut self.journal {
            if let Some(u) = u(&self.sim) {
                undo.push(u);
            }
        }
    }

    fn journaling(&self) -> bool {
        matches!(self.journal, Journal::On { .. })
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

/// Take back the changes, newest first. Each was recorded just before it
/// was made, from the same place, so taking it back cannot fail.
fn take_back(sim: &mut SimMemory, v: &mut Vec<Undo>) {
    while let Some(u) = v.pop() {
        match u {
            Undo::Word(a, x) => drop(sim.write(a, x)),
            Undo::U16(a, x) => drop(sim.write_u16(a, x)),
            Undo::U32(a, x) => drop(sim.write_u32(a, x)),
            Undo::Bytes(a, b) => drop(sim.write_bytes(a, &b)),
            Undo::Grew(n) => drop(sim.sbrk(-n)),
            Undo::Shrank(b) => {
                let end = sim.brk();
                if sim.sbrk(b.len() as isize).is_some() {
                    drop(sim.write_bytes(end, &b));
                }
            }
            Undo::Mapped { base, len, cursor } => {
                sim.munmap(base, len);
                sim.set_mmap_cursor(cursor);
            }
            Undo::Unmapped(m) => sim.restore_mapping(m),
            Undo::Remapped {
                old,
                base,
                len,
                cursor,
            } => {
                if base != old.base() {
                    sim.munmap(base, len);
                }
                sim.restore_mapping(old);
                sim.set_mmap_cursor(cursor);
            }
            Undo::Resized { base, len } => drop(sim.set_mapping_len(base, len)),
        }
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
        let brk = self.sim.brk();
        let dropped = increment.unsigned_abs();
        let shrink = (increment < 0 && self.journaling())
            .then(|| {
                self.sim
                    .read_bytes(brk.wrapping_sub(dropped), dropped)
                    .ok()
                    .map(<[u8]>::to_vec)
            })
            .flatten();
        let r = self.sim.sbrk(increment)?;
        if increment > 0 {
            self.record(|_| Some(Undo::Grew(increment)));
            self.bump(Counter::Sbrk);
        } else if increment < 0 {
            if let Some(b) = shrink {
                self.record(|_| Some(Undo::Shrank(b)));
            }
            self.bump(Counter::Trim);
        }
        Some(r)
    }

    fn mmap(&mut self, len: usize) -> Option<usize> {
        let cursor = self.sim.mmap_cursor();
        let base = self.sim.mmap(len)?;
        self.save_maps();
        self.record(|_| Some(Undo::Mapped { base, len, cursor }));
        self.add_map(Mapping {
            base,
            len,
            kind: MapKind::Mmap,
        });
        self.bump(Counter::Mmap);
        Some(base)
    }

    fn munmap(&mut self, addr: usize, len: usize) -> bool {
        let ok = match self.sim.take_mapping(addr, len) {
            Some(m) => {
                self.save_maps();
                self.record(|_| Some(Undo::Unmapped(m)));
                true
            }
            None => false,
        };
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
        let cursor = self.sim.mmap_cursor();
        let old = self.journaling().then(|| self.sim.save_mapping(addr)).flatten();
        let new_base = self.sim.mremap(addr, old_len, new_len)?;
        self.save_maps();
        if let Some(old) = old {
            self.record(|_| {
                Some(Undo::Remapped {
                    old,
                    base: new_base,
                    len: new_len,
                    cursor,
                })
            });
        }
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

    // The hardened profile's keyed headers: the key lives in the simulated
    // memory, so a snapshot or an undone call keeps it.
    #[inline(always)]
    fn header_key(&self) -> usize {
        self.sim.header_key()
    }

    fn set_header_key(&mut self, key: usize) {
        self.sim.set_header_key(key);
    }

    fn map_heap(&mut self, max: usize, size: usize) -> Option<usize> {
        let cursor = self.sim.mmap_cursor();
        let base = self.sim.map_heap(max, size)?;
        self.save_maps();
        self.record(|_| {
            Some(Undo::Mapped {
                base,
                len: max,
                cursor,
            })
        });
        self.add_map(Mapping {
            base,
            len: size,
            kind: MapKind::ArenaHeap,
        });
        Some(base)
    }

    fn extend_heap(&mut self, base: usize, size: usize) -> bool {
        let old_len = self.maps.iter().find(|m| m.base == base).map(|m| m.len);
        let ok = self.sim.extend_heap(base, size);
        if ok {
            self.save_maps();
            if let Some(len) = old_len {
                self.record(|_| Some(Undo::Resized { base, len }));
            }
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
