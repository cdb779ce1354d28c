//! Introspection: chunks, bins, tcaches and arenas as plain Python objects
//! (copies of what memory held when they were made, valid after later
//! calls), full bin walks with the corruption they run into, and `check`.
//!
//! Walks read the simulated memory directly and never follow a pointer they
//! cannot read; every list walk keeps the addresses it has seen, so a cycle
//! written by a script ends the walk with a report instead of hanging.

use std::collections::{HashMap, HashSet};

use pyo3::prelude::*;

use ptmalloc_core::bins::{bin_index, fastbin_index};
use ptmalloc_core::chunk::{reveal_ptr, CHUNK_HDR_SZ, IS_MMAPPED, MINSIZE, NON_MAIN_ARENA, PREV_INUSE};
use ptmalloc_core::heap::Heap;
use ptmalloc_core::inspect::BinKind;
use ptmalloc_core::state::{Arena as CoreArena, NBINS, NFASTBINS};
use ptmalloc_core::tcache::{Tcache, TCACHE_MAX_BINS};
use ptmalloc_core::Memory;
use ptmalloc_sim::{SimMemory, HEAP_BASE};

use crate::memory::MapKind;
use crate::state::State;

/// The size bits of a size field: neither the A|M|P flags nor the top 16
/// bits (where the hardened profile keeps its header check).
pub const SIZE_MASK: usize = 0x0000_ffff_ffff_fff8;

/// Entries after which a list walk gives up (far more than fit in any heap
/// the simulation can hold at 16 bytes a chunk... or a script's fake list).
const WALK_CAP: usize = 1 << 24;

/// A chunk as memory described it when the object was made.
#[pyclass(module = "ptmalloc_rs._native", frozen, get_all, eq)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Address of the chunk header (`prev_size` field).
    pub address: usize,
    /// The user pointer (`address + 16`).
    pub mem: usize,
    /// Size without the flag bits.
    pub size: usize,
    /// The size field as stored, flag bits included.
    pub raw_size: usize,
    /// P: the previous chunk is in use.
    pub prev_inuse: bool,
    /// M: the chunk was mapped on its own.
    pub is_mmapped: bool,
    /// A: the chunk belongs to a non-main arena.
    pub non_main_arena: bool,
    /// The `prev_size` field (the previous chunk's size when that is free).
    pub prev_size: usize,
    /// The forward link, safe-linking undone for tcache and fastbin chunks.
    pub fd: usize,
    /// The backward link (the tcache key for a cached chunk).
    pub bk: usize,
    /// The forward link as stored.
    pub fd_raw: usize,
    /// Large bins: the next chunk of a smaller size.
    pub fd_nextsize: usize,
    /// Large bins: the previous chunk of a larger size.
    pub bk_nextsize: usize,
    /// What `malloc_usable_size` reports for the chunk (0 when free).
    pub usable_size: usize,
    /// The size requested for the block in it, when it is allocated.
    pub request: Option<usize>,
    /// One of "allocated", "tcache", "fastbin", "unsorted", "small",
    /// "large", "top", "mmapped", "free" (free by its boundary tags but in no bin).
    pub state: &'static str,
    /// The bin holding the chunk ("tcache[3]", "fastbin[0]", "unsorted",
    /// "small[5]", "large[70]"), or None.
    pub bin: Option<String>,
    /// Index of the chunk's arena in `Heap.arenas()` (None for a mapped chunk).
    pub arena: Option<usize>,
}

#[pymethods]
impl Chunk {
    /// The address just past the chunk.
    #[getter]
    fn end(&self) -> usize {
        self.address.wrapping_add(self.size)
    }

    /// The A|M|P bits of the size field.
    #[getter]
    fn flags(&self) -> usize {
        self.raw_size & 7
    }

    fn __repr__(&self) -> String {
        let mut s = format!(
            "Chunk(address={:#x}, size={:#x}, state='{}'",
            self.address, self.size, self.state
        );
        if let Some(b) = &self.bin {
            s += &format!(", bin='{b}'");
        }
        let flags: Vec<&str> = [
            (self.prev_inuse, "PREV_INUSE"),
            (self.is_mmapped, "IS_MMAPPED"),
            (self.non_main_arena, "NON_MAIN_ARENA"),
        ]
        .iter()
        .filter(|f| f.0)
        .map(|f| f.1)
        .collect();
        if !flags.is_empty() {
            s += &format!(", flags={}", flags.join("|"));
        }
        if let Some(r) = self.request {
            s += &format!(", request={r}");
        }
        s + ")"
    }
}

/// A bin, walked in full from its head.
#[pyclass(module = "ptmalloc_rs._native", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct Bin {
    /// "tcache", "fastbin", "unsorted", "small" or "large".
    pub kind: &'static str,
    /// Index: tcache 0..64, fastbin 0..10, unsorted 1, small 2..64, large 64..128.
    pub index: usize,
    /// "tcache[3]", "fastbin[0]", "unsorted", "small[5]", "large[70]".
    pub name: String,
    /// Smallest chunk size the bin is for.
    pub min_size: usize,
    /// Largest chunk size the bin is for.
    pub max_size: usize,
    /// The chunks from the head on, every one of them.
    pub chunks: Vec<Chunk>,
    /// The allocator's own count: the tcache's `counts[]`, else the chunks walked.
    pub count: usize,
    /// The first corruption met on the walk (and why it stopped, if it did), or None.
    pub corruption: Option<String>,
}

#[pymethods]
impl Bin {
    fn __len__(&self) -> usize {
        self.chunks.len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<PyObject> {
        let list = pyo3::types::PyList::new_bound(py, self.chunks.clone().into_iter().map(|c| c.into_py(py)));
        Ok(list.as_any().iter()?.into_any().unbind())
    }

    fn __repr__(&self) -> String {
        let addrs: Vec<String> = self.chunks.iter().map(|c| format!("{:#x}", c.address)).collect();
        let mut s = format!(
            "Bin({}, count={}, chunks=[{}]",
            self.name,
            self.count,
            addrs.join(", ")
        );
        if let Some(c) = &self.corruption {
            s += &format!(", corruption={c:?}");
        }
        s + ")"
    }
}

/// An arena.
#[pyclass(module = "ptmalloc_rs._native", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct Arena {
    /// Position in `Heap.arenas()` (0: the main arena).
    pub index: usize,
    /// Address of its `malloc_state`.
    pub address: usize,
    /// Whether it is the main arena.
    pub is_main: bool,
    /// Its top chunk.
    pub top: Chunk,
    /// Bytes it obtained from the system.
    pub system_mem: usize,
    /// Its heaps as (start, end): the brk heap, or each mapped heap.
    pub heaps: Vec<(usize, usize)>,
    /// The simulated threads bound to it.
    pub threads: Vec<i64>,
}

#[pymethods]
impl Arena {
    fn __repr__(&self) -> String {
        format!(
            "Arena(index={}, address={:#x}, is_main={}, top={:#x}, system_mem={:#x}, threads={:?})",
            self.index,
            self.address,
            if self.is_main { "True" } else { "False" },
            self.top.address,
            self.system_mem,
            self.threads
        )
    }
}

/// A bin's chunks as addresses, before they become objects.
pub struct Walk {
    pub kind: BinKind,
    pub index: usize,
    pub chunks: Vec<usize>,
    pub count: usize,
    pub corruption: Option<String>,
}

pub fn kind_name(k: BinKind) -> &'static str {
    match k {
        BinKind::Tcache => "tcache",
        BinKind::Fast => "fastbin",
        BinKind::Unsorted => "unsorted",
        BinKind::Small => "small",
        BinKind::Large => "large",
    }
}

pub fn bin_name(k: BinKind, i: usize) -> String {
    match k {
        BinKind::Unsorted => "unsorted".to_string(),
        _ => format!("{}[{}]", kind_name(k), i),
    }
}

/// The smallest chunk size of bin `i` of the regular bins (2..NBINS).
fn bin_min_size(i: usize) -> usize {
    // bin_index is monotonic in the size: search the first size mapping to i.
    let (mut lo, mut hi) = (MINSIZE / 16, 1usize << 59);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if bin_index(mid * 16) >= i {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo * 16
}

/// The chunk sizes a bin is for.
pub fn bin_range(k: BinKind, i: usize) -> (usize, usize) {
    match k {
        BinKind::Tcache | BinKind::Fast => ((i + 2) * 16, (i + 2) * 16),
        BinKind::Unsorted => (MINSIZE, usize::MAX & SIZE_MASK),
        BinKind::Small => (i * 16, i * 16),
        BinKind::Large => {
            let lo = bin_min_size(i);
            let hi = if i + 1 < NBINS {
                bin_min_size(i + 1) - 16
            } else {
                SIZE_MASK
            };
            (lo, hi)
        }
    }
}

fn note(c: &mut Option<String>, s: String) {
    if c.is_none() {
        *c = Some(s);
    }
}

/// Walk tcache bin `idx` of `tc`.
pub fn walk_tcache(m: &SimMemory, tc: Tcache, idx: usize) -> Walk {
    let mut w = Walk {
        kind: BinKind::Tcache,
        index: idx,
        chunks: Vec::new(),
        count: tc.count(m, idx).unwrap_or(0),
        corruption: None,
    };
    let mut e = match tc.entry(m, idx) {
        Ok(e) => e,
        Err(_) => {
            w.corruption = Some(format!("the tcache at {:#x} is unreadable", tc.0));
            return w;
        }
    };
    let mut seen = HashSet::new();
    while e != 0 {
        if e % 16 != 0 {
            note(&mut w.corruption, format!("misaligned entry {e:#x}"));
            break;
        }
        if !seen.insert(e) {
            note(&mut w.corruption, format!("cycle: {e:#x} is on the list twice"));
            break;
        }
        if w.chunks.len() >= WALK_CAP {
            note(
                &mut w.corruption,
                format!("walk stopped after {WALK_CAP} entries"),
            );
            break;
        }
        match m.read(e) {
            Ok(raw) => {
                w.chunks.push(e - CHUNK_HDR_SZ);
                e = reveal_ptr(e, raw);
            }
            Err(_) => {
                note(
                    &mut w.corruption,
                    format!("entry {e:#x} is outside mapped memory"),
                );
                break;
            }
        }
    }
    if w.corruption.is_none() && w.count != w.chunks.len() {
        w.corruption = Some(format!(
            "count is {} but the list holds {}",
            w.count,
            w.chunks.len()
        ));
    }
    w
}

/// Walk fastbin `idx` of `av`.
pub fn walk_fastbin(m: &SimMemory, av: CoreArena, idx: usize) -> Walk {
    let mut w = Walk {
        kind: BinKind::Fast,
        index: idx,
        chunks: Vec::new(),
        count: 0,
        corruption: None,
    };
    let mut p = match m.read(av.fastbin_slot(idx)) {
        Ok(p) => p,
        Err(_) => {
            w.corruption = Some("the arena is unreadable".into());
            return w;
        }
    };
    let mut seen = HashSet::new();
    while p != 0 {
        if p % 16 != 0 {
            note(&mut w.corruption, format!("misaligned chunk {p:#x}"));
            break;
        }
        if !seen.insert(p) {
            note(&mut w.corruption, format!("cycle: {p:#x} is on the list twice"));
            break;
        }
        if w.chunks.len() >= WALK_CAP {
            note(
                &mut w.corruption,
                format!("walk stopped after {WALK_CAP} entries"),
            );
            break;
        }
        let (Ok(raw), Ok(fd)) = (m.read(p + 8), m.read(p + 16)) else {
            note(
                &mut w.corruption,
                format!("chunk {p:#x} is outside mapped memory"),
            );
            break;
        };
        if fastbin_index(raw & SIZE_MASK) != idx {
            note(
                &mut w.corruption,
                format!(
                    "chunk {p:#x} has size {:#x}, not that of fastbin[{idx}]",
                    raw & SIZE_MASK
                ),
            );
        }
        w.chunks.push(p);
        p = reveal_ptr(p + 16, fd);
    }
    w.count = w.chunks.len();
    w
}

/// Walk regular bin `i` (1: unsorted, 2..64 small, 64.. large) of `av`.
pub fn walk_bin(m: &SimMemory, av: CoreArena, i: usize) -> Walk {
    let kind = match i {
        1 => BinKind::Unsorted,
        _ if i < 64 => BinKind::Small,
        _ => BinKind::Large,
    };
    let mut w = Walk {
        kind,
        index: i,
        chunks: Vec::new(),
        count: 0,
        corruption: None,
    };
    let head = av.bin_at(i).0;
    let Ok(mut p) = m.read(head + 16) else {
        w.corruption = Some("the arena is unreadable".into());
        return w;
    };
    let mut prev = head;
    let mut seen = HashSet::new();
    while p != head {
        if p % 16 != 0 {
            note(&mut w.corruption, format!("misaligned chunk {p:#x}"));
            break;
        }
        if !seen.insert(p) {
            note(&mut w.corruption, format!("cycle: {p:#x} is on the list twice"));
            break;
        }
        if w.chunks.len() >= WALK_CAP {
            note(
                &mut w.corruption,
                format!("walk stopped after {WALK_CAP} entries"),
            );
            break;
        }
        let (Ok(raw), Ok(fd), Ok(bk)) = (m.read(p + 8), m.read(p + 16), m.read(p + 24)) else {
            note(
                &mut w.corruption,
                format!("chunk {p:#x} is outside mapped memory"),
            );
            break;
        };
        if bk != prev {
            note(
                &mut w.corruption,
                format!("chunk {p:#x}: bk is {bk:#x}, the chunk before it is {prev:#x}"),
            );
        }
        let size = raw & SIZE_MASK;
        if kind != BinKind::Unsorted && bin_index(size) != i {
            note(
                &mut w.corruption,
                format!(
                    "chunk {p:#x} has size {size:#x}, not one of {}",
                    bin_name(kind, i)
                ),
            );
        }
        w.chunks.push(p);
        prev = p;
        p = fd;
    }
    w.count = w.chunks.len();
    w
}

/// Every bin of `av`: fastbins, then unsorted, small and large bins.
pub fn walk_arena_bins(m: &SimMemory, av: CoreArena) -> Vec<Walk> {
    let mut v: Vec<Walk> = (0..NFASTBINS).map(|i| walk_fastbin(m, av, i)).collect();
    v.extend((1..NBINS).map(|i| walk_bin(m, av, i)));
    v
}

/// Where a chunk was found on a list.
#[derive(Clone, Copy)]
struct Place {
    kind: BinKind,
    index: usize,
}

/// What introspection needs to know about the whole process at once: the
/// arenas and which list holds which chunk.
pub struct Lens<'a> {
    pub st: &'a State,
    pub m: &'a SimMemory,
    pub arenas: Vec<CoreArena>,
    places: HashMap<usize, Place>,
}

impl<'a> Lens<'a> {
    pub fn new(st: &'a State) -> Lens<'a> {
        st.a.mem.reset_steps();
        let m = &st.a.mem.sim;
        let arenas: Vec<CoreArena> = st.a.arenas().collect();
        let mut places = HashMap::new();
        let mut put = |w: &Walk| {
            for &c in &w.chunks {
                places.entry(c).or_insert(Place {
                    kind: w.kind,
                    index: w.index,
                });
            }
        };
        for tc in st.threads.values() {
            if tc.tcache.exists() {
                for idx in 0..TCACHE_MAX_BINS {
                    put(&walk_tcache(m, tc.tcache, idx));
                }
            }
        }
        for &av in &arenas {
            for w in walk_arena_bins(m, av) {
                put(&w);
            }
        }
        Lens {
            st,
            m,
            arenas,
            places,
        }
    }

    /// Index of the arena at `av` in [`Lens::arenas`].
    pub fn arena_index(&self, av: CoreArena) -> Option<usize> {
        self.arenas.iter().position(|&a| a == av)
    }

    /// The arena index of a heap chunk, from its A bit and heap.
    fn arena_of(&self, addr: usize, raw: usize) -> Option<usize> {
        if raw & NON_MAIN_ARENA == 0 {
            return Some(0);
        }
        let av = Heap::of(addr).arena(self.m).ok()?;
        self.arena_index(CoreArena(av.0))
    }

    /// The chunk at `addr`. `in_use` and `top` come from a heap walk when
    /// there was one; otherwise the next chunk's P bit tells.
    pub fn chunk(&self, addr: usize, in_use: Option<bool>, top: bool) -> Chunk {
        let m = self.m;
        let rd = |a: usize| m.read(a).unwrap_or(0);
        let raw = rd(addr.wrapping_add(8));
        let size = raw & SIZE_MASK;
        let fd_raw = rd(addr.wrapping_add(16));
        let place = self.places.get(&addr).copied();
        let mmapped = raw & IS_MMAPPED != 0;
        let in_use = in_use.unwrap_or_else(|| {
            m.read(addr.wrapping_add(size).wrapping_add(8))
                .map(|n| n & PREV_INUSE != 0)
                .unwrap_or(true)
        });
        let state = if top {
            "top"
        } else if let Some(p) = place {
            kind_name(p.kind)
        } else if mmapped {
            "mmapped"
        } else if in_use {
            "allocated"
        } else {
            "free"
        };
        let single = matches!(place.map(|p| p.kind), Some(BinKind::Tcache | BinKind::Fast));
        let mem = addr.wrapping_add(16);
        let usable_size = if top || !(in_use || mmapped) || size < MINSIZE {
            0
        } else if mmapped {
            size - CHUNK_HDR_SZ
        } else {
            size - 8
        };
        Chunk {
            address: addr,
            mem,
            size,
            raw_size: raw,
            prev_inuse: raw & PREV_INUSE != 0,
            is_mmapped: mmapped,
            non_main_arena: raw & NON_MAIN_ARENA != 0,
            prev_size: rd(addr),
            fd: if single { reveal_ptr(mem, fd_raw) } else { fd_raw },
            bk: rd(addr.wrapping_add(24)),
            fd_raw,
            fd_nextsize: rd(addr.wrapping_add(32)),
            bk_nextsize: rd(addr.wrapping_add(40)),
            usable_size,
            request: if matches!(state, "allocated" | "mmapped") {
                self.st.requests.get(&mem).copied()
            } else {
                None
            },
            state,
            bin: place.map(|p| bin_name(p.kind, p.index)),
            arena: if mmapped && !top {
                None
            } else {
                self.arena_of(addr, raw)
            },
        }
    }

    /// The heap chunks of arena `i` in address order, up to the top (or the
    /// first size that cannot be right), fence posts left out.
    pub fn heap_chunks(&self, i: usize) -> (Vec<Chunk>, Option<String>) {
        let Some(&av) = self.arenas.get(i) else {
            return (Vec::new(), None);
        };
        let mut found = Vec::new();
        let walked = self.st.a.walk_arena(av, |hc| found.push(hc));
        let stop = match walked {
            Ok(Ok(())) => None,
            Ok(Err(v)) => Some(format!("{} at {:#x}", v.what, v.addr)),
            Err(e) => Some(crate::errors::describe(&e)),
        };
        let mut v: Vec<Chunk> = found
            .into_iter()
            .filter(|hc| hc.is_top || hc.size >= MINSIZE)
            .map(|hc| {
                let mut c = self.chunk(hc.chunk.0, Some(hc.in_use), hc.is_top);
                c.arena = Some(i);
                c
            })
            .collect();
        v.sort_by_key(|c| c.address);
        (v, stop)
    }

    /// Every heap chunk of every arena, in address order.
    pub fn all_heap_chunks(&self) -> Vec<Chunk> {
        let mut v: Vec<Chunk> = (0..self.arenas.len())
            .flat_map(|i| self.heap_chunks(i).0)
            .collect();
        v.sort_by_key(|c| c.address);
        v
    }

    /// The chunks mapped on their own, in address order.
    pub fn mmapped(&self) -> Vec<Chunk> {
        let mut v = Vec::new();
        let mut handed_out: Vec<usize> = self.st.requests.keys().copied().collect();
        handed_out.sort_unstable();
        for map in self.st.a.mem.maps.iter().filter(|m| m.kind == MapKind::Mmap) {
            let end = map.base + map.len;
            // A chunk aligned by memalign starts inside its mapping.
            let from = handed_out.partition_point(|&p| p <= map.base);
            let to = handed_out.partition_point(|&p| p < end);
            let mut inside: Vec<usize> = handed_out[from..to]
                .iter()
                .map(|&p| p - CHUNK_HDR_SZ)
                .filter(|&c| self.m.read(c + 8).map(|r| r & IS_MMAPPED != 0).unwrap_or(false))
                .collect();
            if inside.is_empty() {
                inside.push(map.base);
            }
            inside.sort_unstable();
            v.extend(inside.into_iter().map(|c| self.chunk(c, Some(true), false)));
        }
        v
    }

    /// The walks of arena `i`'s bins as objects.
    pub fn bins(&self, i: usize) -> Vec<Bin> {
        let Some(&av) = self.arenas.get(i) else {
            return Vec::new();
        };
        walk_arena_bins(self.m, av)
            .into_iter()
            .map(|w| self.bin(w, Some(i)))
            .collect()
    }

    /// The tcache bins of thread `tid` (empty when it has no tcache yet).
    pub fn tcache(&self, tid: i64) -> Vec<Bin> {
        let tc = self.st.thread(tid).tcache;
        if !tc.exists() {
            return Vec::new();
        }
        (0..TCACHE_MAX_BINS)
            .map(|idx| self.bin(walk_tcache(self.m, tc, idx), None))
            .collect()
    }

    fn bin(&self, w: Walk, arena: Option<usize>) -> Bin {
        let (min_size, max_size) = bin_range(w.kind, w.index);
        Bin {
            kind: kind_name(w.kind),
            index: w.index,
            name: bin_name(w.kind, w.index),
            min_size,
            max_size,
            chunks: w
                .chunks
                .iter()
                .map(|&c| {
                    let mut ch = self.chunk(c, None, false);
                    if arena.is_some() && w.kind != BinKind::Tcache {
                        ch.arena = arena;
                    }
                    ch
                })
                .collect(),
            count: w.count,
            corruption: w.corruption,
        }
    }

    /// Arena `i`'s top chunk.
    pub fn top(&self, i: usize) -> Option<Chunk> {
        let av = *self.arenas.get(i)?;
        let t = av.top(self.m).ok()?;
        let mut c = self.chunk(t.0, Some(false), true);
        c.arena = Some(i);
        Some(c)
    }

    /// Every arena.
    pub fn arenas(&self) -> Vec<Arena> {
        let m = self.m;
        self.arenas
            .iter()
            .enumerate()
            .map(|(i, &av)| {
                let is_main = i == 0;
                let mut heaps = Vec::new();
                if is_main {
                    if self.st.a.sbrk_base != 0 {
                        heaps.push((HEAP_BASE, self.st.a.mem.sim.brk()));
                    }
                } else if let Ok(t) = av.top(m) {
                    let mut h = Some(Heap::of(t.0));
                    while let Some(heap) = h {
                        if heaps.len() > 1 << 16 {
                            break;
                        }
                        let Ok(size) = heap.size(m) else { break };
                        heaps.push((heap.0, heap.0 + size));
                        h = heap.prev(m).ok().flatten();
                    }
                    heaps.sort_unstable();
                }
                Arena {
                    index: i,
                    address: av.0,
                    is_main,
                    top: self.top(i).unwrap_or_else(|| self.chunk(0, Some(false), true)),
                    system_mem: av.system_mem(m).unwrap_or(0),
                    heaps,
                    threads: self
                        .st
                        .threads
                        .iter()
                        .filter(|(_, tc)| tc.arena.0 == av.0)
                        .map(|(&t, _)| t)
                        .collect(),
                }
            })
            .collect()
    }

    /// The chunk holding `addr`: a heap chunk (the top included) or a mapped one.
    pub fn locate(&self, addr: usize) -> Option<Chunk> {
        let chunks = self.all_heap_chunks();
        let i = chunks.partition_point(|c| c.address <= addr);
        if i > 0 {
            let c = &chunks[i - 1];
            if addr < c.address + c.size.max(MINSIZE) {
                return Some(c.clone());
            }
        }
        self.mmapped()
            .into_iter()
            .find(|c| addr >= c.address && addr < c.address.wrapping_add(c.size))
    }

    /// Every broken invariant found: the core's full consistency walk of
    /// each arena, every list walk's corruption, each thread's tcache
    /// counts, the mapped chunks' headers. Empty when all is consistent.
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        let caches: Vec<Tcache> = self.st.threads.values().map(|t| t.tcache).collect();
        for (i, &av) in self.arenas.iter().enumerate() {
            self.st.a.mem.reset_steps();
            match self.st.a.check_arena(av, &caches) {
                Ok(Ok(_)) => {}
                Ok(Err(v)) => out.push(format!("arena {i}: {} at {:#x}", v.what, v.addr)),
                Err(e) => out.push(format!("arena {i}: {}", crate::errors::describe(&e))),
            }
            for w in walk_arena_bins(self.m, av) {
                if let Some(c) = w.corruption {
                    out.push(format!("arena {i} {}: {c}", bin_name(w.kind, w.index)));
                }
            }
        }
        for (tid, tc) in &self.st.threads {
            if !tc.tcache.exists() {
                continue;
            }
            for idx in 0..TCACHE_MAX_BINS {
                let w = walk_tcache(self.m, tc.tcache, idx);
                if let Some(c) = w.corruption {
                    out.push(format!("thread {tid} tcache[{idx}]: {c}"));
                }
                for &c in &w.chunks {
                    let size = self.m.read(c + 8).map(|r| r & SIZE_MASK).unwrap_or(0);
                    if size < MINSIZE || ptmalloc_core::tcache::csize2tidx(size) != idx {
                        out.push(format!(
                            "thread {tid} tcache[{idx}]: chunk {c:#x} has size {size:#x}, not that of the bin"
                        ));
                    }
                }
            }
        }
        for c in self.mmapped() {
            if !c.is_mmapped {
                out.push(format!("mapped chunk {:#x} lacks IS_MMAPPED", c.address));
            } else if c.size % 4096 != 0 && c.prev_size == 0 {
                out.push(format!(
                    "mapped chunk {:#x} has size {:#x}, not whole pages",
                    c.address, c.size
                ));
            }
        }
        let mut seen = HashSet::new();
        out.retain(|s| seen.insert(s.clone()));
        out
    }
}
