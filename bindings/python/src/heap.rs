//! `Heap`: a private ptmalloc instance over a simulated address space, and
//! the calls a script makes on it.
//!
//! Every allocator call runs inside [`Heap::run`]: the memory records what
//! the call overwrites, a panic is caught, and a call that fails (one of
//! glibc's checks, or an access outside the mapped regions) is undone, so
//! the exception carries the state just before the call and the heap stays
//! usable. Nothing a script writes into the heap can crash the interpreter.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use ptmalloc_core::bins::{fastbin_index, max_fast_for, MAX_FAST_SIZE};
use ptmalloc_core::chunk::{Chunk as CoreChunk, IS_MMAPPED};
use ptmalloc_core::inspect::BinKind;
use ptmalloc_core::params::{opt, HEAP_MAX_SIZE};
use ptmalloc_core::stats::{write_malloc_info, HeapInfo};
use ptmalloc_core::tcache::{csize2tidx, TCACHE_MAX_BINS};
use ptmalloc_core::{Allocator, Memory, Params, ThreadCache};
use ptmalloc_sim::SimError;

use crate::errors::{describe, to_pyerr};
use crate::history::{Event, FreeResult, Freed, Outcome, Record, TryResult, Went};
use crate::inspect::{walk_arena_bins, Arena, Bin, Chunk, Lens, SIZE_MASK};
use crate::memory::{Counter, COUNTER_NAMES};
use crate::snapshot::{diff, Diff, Snapshot};
use crate::state::State;

const PANIC_MESSAGE: &str = "ptmalloc_rs: internal error (a Rust panic; the call was undone)";

/// A Python int as a machine word: negative values wrap, as a C cast does.
fn word(v: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(u) = v.extract::<u64>() {
        return Ok(u as usize);
    }
    match v.extract::<i64>() {
        Ok(i) => Ok(i as usize),
        Err(_) => Err(PyValueError::new_err("expected an int that fits in 64 bits")),
    }
}

/// The glibc profile names.
fn profile_name(p: &str) -> PyResult<&'static str> {
    match p {
        "glibc-2.36" | "glibc" => Ok("glibc-2.36"),
        "hardened" => Ok("hardened"),
        _ => Err(PyValueError::new_err(format!(
            "unknown profile {p:?} (expected \"glibc-2.36\" or \"hardened\")"
        ))),
    }
}

/// Apply tunable `name` (glibc's `glibc.malloc.*` names) with glibc's ranges.
fn set_tunable(p: &mut Params, name: &str, v: usize) -> PyResult<()> {
    let bad = || PyValueError::new_err(format!("tunable {name}={v} is out of glibc's range"));
    match name {
        "tcache_count" => p.set_tcache_count(v).then_some(()).ok_or_else(bad)?,
        "tcache_max" => p.set_tcache_max(v).then_some(()).ok_or_else(bad)?,
        "tcache_unsorted_limit" => p.tcache_unsorted_limit = v,
        "mxfast" => {
            if v > MAX_FAST_SIZE {
                return Err(bad());
            }
            p.max_fast = max_fast_for(v);
        }
        "mmap_threshold" => {
            if v > HEAP_MAX_SIZE / 2 {
                return Err(bad());
            }
            p.mmap_threshold = v;
            p.no_dyn_threshold = true;
        }
        "trim_threshold" => {
            p.trim_threshold = v;
            p.no_dyn_threshold = true;
        }
        "top_pad" => {
            p.top_pad = v;
            p.no_dyn_threshold = true;
        }
        "mmap_max" => {
            p.n_mmaps_max = v;
            p.no_dyn_threshold = true;
        }
        "arena_test" => {
            if v > 0 {
                p.arena_test = v;
            }
        }
        "arena_max" => {
            if v > 0 {
                p.arena_max = v;
            }
        }
        "perturb" => {
            if v > 0xff {
                return Err(bad());
            }
            p.perturb_byte = v as u8;
        }
        "check" => p.check_action = v as i32,
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown tunable {name:?} (glibc names: tcache_count, tcache_max, \
                 tcache_unsorted_limit, mxfast, mmap_threshold, trim_threshold, top_pad, \
                 mmap_max, arena_test, arena_max, perturb, check)"
            )))
        }
    }
    Ok(())
}

/// `mallopt`'s parameter by number, M_ name or tunable name.
fn mallopt_param(p: &Bound<'_, PyAny>) -> PyResult<i32> {
    if let Ok(n) = p.extract::<i32>() {
        return Ok(n);
    }
    let s: String = p
        .extract()
        .map_err(|_| PyTypeError::new_err("mallopt parameter: an int or a name"))?;
    let name = s.to_ascii_lowercase();
    let name = name.strip_prefix("m_").unwrap_or(&name);
    Ok(match name {
        "mxfast" => opt::M_MXFAST,
        "trim_threshold" => opt::M_TRIM_THRESHOLD,
        "top_pad" => opt::M_TOP_PAD,
        "mmap_threshold" => opt::M_MMAP_THRESHOLD,
        "mmap_max" => opt::M_MMAP_MAX,
        "check_action" => opt::M_CHECK_ACTION,
        "perturb" => opt::M_PERTURB,
        "arena_test" => opt::M_ARENA_TEST,
        "arena_max" => opt::M_ARENA_MAX,
        _ => return Err(PyValueError::new_err(format!("unknown mallopt parameter {s:?}"))),
    })
}

/// Where the chunk of `mem`, freed just now, went. `size` and `av` are from
/// before the free.
fn locate_freed(st: &State, tc: &ThreadCache, mem: usize, size: usize, av: ptmalloc_core::Arena) -> Freed {
    let m = &st.a.mem.sim;
    let p = CoreChunk::from_mem(mem);
    let at = |went, position, merged| Freed {
        went,
        position,
        merged,
    };
    // Lists are pushed at the head: look there first.
    let idx = csize2tidx(size);
    if tc.tcache.exists() && idx < TCACHE_MAX_BINS && tc.tcache.entry(m, idx).ok() == Some(mem) {
        return at(Went::Bin(BinKind::Tcache, idx), Some(0), false);
    }
    let fidx = fastbin_index(size);
    if size <= st.a.params.max_fast && av.fastbin(m, fidx).ok() == Some(p) {
        return at(Went::Bin(BinKind::Fast, fidx), Some(0), false);
    }
    let holds = |c: usize| -> Option<usize> {
        let csize = m.read(c + 8).ok()? & SIZE_MASK;
        (c <= p.0 && p.0 < c.wrapping_add(csize)).then_some(csize)
    };
    if let Ok(top) = av.top(m) {
        if holds(top.0).is_some() {
            return at(Went::Top, None, true);
        }
    }
    // A chunk freed into the arena goes to the head of the unsorted bin.
    if let Ok(first) = m.read(av.unsorted().0 + 16) {
        if let Some(csize) = holds(first).filter(|_| first != av.unsorted().0) {
            return at(
                Went::Bin(BinKind::Unsorted, 1),
                Some(0),
                first != p.0 || csize != size,
            );
        }
    }
    for w in walk_arena_bins(m, av) {
        for (pos, &c) in w.chunks.iter().enumerate() {
            if let Some(csize) = holds(c) {
                return at(Went::Bin(w.kind, w.index), Some(pos), c != p.0 || csize != size);
            }
        }
    }
    at(Went::Unknown, None, false)
}

/// `free`, and where the chunk went.
fn free_located(st: &mut State, tc: &mut ThreadCache, mem: usize) -> Result<Freed, SimError> {
    if mem == 0 {
        st.a.free(tc, 0)?;
        return Ok(Freed {
            went: Went::Nothing,
            position: None,
            merged: false,
        });
    }
    let p = CoreChunk::from_mem(mem);
    let raw = p.size_field(&st.a.mem)?;
    let av = if raw & IS_MMAPPED == 0 {
        st.a.arena_for_chunk(p).ok()
    } else {
        None
    };
    st.a.free(tc, mem)?;
    st.requests.remove(&mem);
    let f = match av {
        None => Freed {
            went: Went::Munmapped,
            position: None,
            merged: false,
        },
        Some(av) => locate_freed(st, tc, mem, raw & SIZE_MASK, av),
    };
    st.a.mem.bump(match f.went {
        Went::Bin(BinKind::Tcache, _) => Counter::FreeTcache,
        Went::Bin(BinKind::Fast, _) => Counter::FreeFastbin,
        Went::Top => Counter::FreeTop,
        Went::Munmapped => Counter::FreeMunmap,
        _ => Counter::FreeBins,
    });
    Ok(f)
}

/// Note a block handed out.
fn handed_out(st: &mut State, mem: usize, request: usize) -> usize {
    if mem != 0 {
        st.requests.insert(mem, request);
    }
    mem
}

pub fn chunks_of(st: &State, arena: Option<usize>) -> Vec<Chunk> {
    let lens = Lens::new(st);
    match arena {
        None => lens.all_heap_chunks(),
        Some(i) => lens.heap_chunks(i).0,
    }
}

pub fn read_of<'py>(py: Python<'py>, st: &State, addr: usize, n: usize) -> PyResult<Bound<'py, PyBytes>> {
    match st.a.mem.sim.read_bytes(addr, n) {
        Ok(b) => Ok(PyBytes::new_bound(py, b)),
        Err(e) => Err(to_pyerr(py, &e, None)),
    }
}

/// A private ptmalloc heap in a simulated, bounds-checked address space.
///
/// `Heap(profile="glibc-2.36", **tunables)`: profile "glibc-2.36" behaves as
/// glibc 2.36 (techniques reproduce as there); "hardened" adds the process
/// allocator's checks. Tunables take glibc's names (`tcache_count`,
/// `tcache_max`, `mxfast`, `mmap_threshold`, `trim_threshold`, `top_pad`,
/// `arena_max`, `arena_test`, `mmap_max`, `perturb`, ...). The same
/// tunables and calls give the same addresses and bytes every time.
#[pyclass(module = "ptmalloc_rs._native", subclass)]
pub struct Heap {
    st: State,
    history: Vec<Record>,
    pending_label: Option<String>,
    /// errno of the last call that failed (ENOMEM 12, EINVAL 22), 0 if none did.
    #[pyo3(get, set)]
    errno: i32,
    profile: &'static str,
}

impl Heap {
    pub fn from_state(st: State, profile: &'static str) -> Heap {
        Heap {
            st,
            history: Vec::new(),
            pending_label: None,
            errno: 0,
            profile,
        }
    }

    /// Run one allocator call for thread `tid` (see the module comment):
    /// its value, or the error after the state was put back.
    fn run_raw<R>(
        &mut self,
        tid: i64,
        f: impl FnOnce(&mut State, &mut ThreadCache) -> Result<R, SimError>,
    ) -> Result<R, SimError> {
        let saved = self.st.save_values();
        self.st.a.mem.begin();
        self.st.a.last_error = 0;
        let mut tc = self.st.thread(tid);
        let st = &mut self.st;
        let r = catch_unwind(AssertUnwindSafe(|| f(st, &mut tc))).unwrap_or(Err(SimError::Abort {
            message: PANIC_MESSAGE,
        }));
        match r {
            Ok(v) => {
                self.st.a.mem.commit();
                self.st.threads.insert(tid, tc);
                if self.st.a.last_error != 0 {
                    self.errno = self.st.a.last_error;
                }
                Ok(v)
            }
            Err(e) => {
                self.st.a.mem.rollback();
                self.st.restore_values(&saved);
                Err(e)
            }
        }
    }

    fn record(
        &mut self,
        op: &'static str,
        args: Vec<usize>,
        tid: i64,
        outcome: Outcome,
        abort: Option<String>,
    ) {
        self.history.push(Record {
            op,
            args,
            outcome,
            tid,
            label: self.pending_label.take(),
            abort,
        });
    }

    /// [`Heap::run_raw`] recorded in the history, an error raised as its exception.
    fn run<R>(
        &mut self,
        py: Python<'_>,
        op: &'static str,
        args: Vec<usize>,
        tid: i64,
        f: impl FnOnce(&mut State, &mut ThreadCache) -> Result<R, SimError>,
        outcome: impl FnOnce(&R) -> Outcome,
    ) -> PyResult<R> {
        match self.run_raw(tid, f) {
            Ok(v) => {
                let o = outcome(&v);
                self.record(op, args, tid, o, None);
                Ok(v)
            }
            Err(e) => {
                let snap = Snapshot::of(&self.st, self.history.len(), self.profile);
                self.record(op, args, tid, Outcome::Nothing, Some(describe(&e)));
                Err(to_pyerr(py, &e, Some(Py::new(py, snap)?.into_py(py))))
            }
        }
    }

    /// A dry run of `f`: what it returns, aborts with, and which paths it takes.
    fn dry_run(
        &mut self,
        py: Python<'_>,
        tid: i64,
        f: impl FnOnce(&mut State, &mut ThreadCache) -> Result<Outcome, SimError>,
    ) -> TryResult {
        let saved = self.st.duplicate();
        let before = self.st.a.mem.counters;
        let errno = self.errno;
        let r = self.run_raw(tid, f);
        let after = self.st.a.mem.counters;
        let mut path: Vec<&str> = Vec::new();
        if let Ok(Outcome::Freed(f)) = &r {
            path.push(FreeResult::from(*f).where_);
        }
        path.extend(
            COUNTER_NAMES
                .iter()
                .enumerate()
                .filter(|(i, n)| after[*i] != before[*i] && !n.starts_with("free_"))
                .map(|(_, n)| *n),
        );
        self.st = saved;
        self.errno = errno;
        match r {
            Ok(o) => TryResult {
                ok: true,
                result: o.to_py(py),
                abort: None,
                path: path.join("+"),
            },
            Err(e) => TryResult {
                ok: false,
                result: py.None(),
                abort: Some(describe(&e)),
                path: path.join("+"),
            },
        }
    }

    fn int_call(
        &mut self,
        py: Python<'_>,
        op: &'static str,
        args: Vec<usize>,
        tid: i64,
        f: impl FnOnce(&mut State, &mut ThreadCache) -> Result<usize, SimError>,
    ) -> PyResult<usize> {
        self.run(py, op, args, tid, f, |&p| Outcome::Int(p))
    }

    fn lens(&self) -> Lens<'_> {
        Lens::new(&self.st)
    }
}

#[pymethods]
impl Heap {
    #[new]
    #[pyo3(signature = (profile="glibc-2.36", **tunables))]
    fn new(profile: &str, tunables: Option<&Bound<'_, PyDict>>) -> PyResult<Heap> {
        let profile = profile_name(profile)?;
        let mut params = Params {
            hardened: profile == "hardened",
            ..Params::default()
        };
        if let Some(t) = tunables {
            for (k, v) in t.iter() {
                let name: String = k.extract()?;
                set_tunable(&mut params, &name, word(&v)?)?;
            }
        }
        let st = State::new(params).map_err(|e| PyValueError::new_err(describe(&e)))?;
        Ok(Heap::from_state(st, profile))
    }

    /// "glibc-2.36" or "hardened".
    #[getter]
    fn profile(&self) -> &'static str {
        self.profile
    }

    /// The current tunables, by glibc name.
    #[getter]
    fn tunables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = &self.st.a.params;
        let d = PyDict::new_bound(py);
        d.set_item("tcache_count", p.tcache_count)?;
        d.set_item("tcache_max", p.tcache_max_bytes)?;
        d.set_item("tcache_unsorted_limit", p.tcache_unsorted_limit)?;
        d.set_item("mxfast", p.max_fast)?;
        d.set_item("mmap_threshold", p.mmap_threshold)?;
        d.set_item("trim_threshold", p.trim_threshold)?;
        d.set_item("top_pad", p.top_pad)?;
        d.set_item("mmap_max", p.n_mmaps_max)?;
        d.set_item("arena_test", p.arena_test)?;
        d.set_item("arena_max", p.arena_max)?;
        d.set_item("perturb", p.perturb_byte)?;
        Ok(d)
    }

    /// Address of the first chunk of the main heap (where the first brk
    /// starts; `HEAP_BASE`), so pointers can be read as offsets.
    #[getter]
    fn heap_base(&self) -> usize {
        ptmalloc_sim::HEAP_BASE
    }

    // ---- the malloc family ----

    /// `malloc(size)`: the user pointer, 0 on failure (then `errno` is set).
    #[pyo3(signature = (size, tid=0))]
    fn malloc(&mut self, py: Python<'_>, size: &Bound<'_, PyAny>, tid: i64) -> PyResult<usize> {
        let n = word(size)?;
        self.int_call(py, "malloc", vec![n], tid, |st, tc| {
            let p = st.a.malloc(tc, n)?;
            Ok(handed_out(st, p, n))
        })
    }

    /// `calloc(n, size)`: zeroed memory, 0 on failure.
    #[pyo3(signature = (n, size, tid=0))]
    fn calloc(
        &mut self,
        py: Python<'_>,
        n: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        tid: i64,
    ) -> PyResult<usize> {
        let (n, size) = (word(n)?, word(size)?);
        self.int_call(py, "calloc", vec![n, size], tid, |st, tc| {
            let p = st.a.calloc(tc, n, size)?;
            Ok(handed_out(st, p, n.wrapping_mul(size)))
        })
    }

    /// `realloc(ptr, size)`, glibc's way (`realloc(p, 0)` frees and returns 0).
    #[pyo3(signature = (ptr, size, tid=0))]
    fn realloc(
        &mut self,
        py: Python<'_>,
        ptr: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        tid: i64,
    ) -> PyResult<usize> {
        let (old, n) = (word(ptr)?, word(size)?);
        self.int_call(py, "realloc", vec![old, n], tid, |st, tc| {
            let p = st.a.realloc(tc, old, n)?;
            if p != 0 || n == 0 {
                st.requests.remove(&old);
            }
            Ok(handed_out(st, p, n))
        })
    }

    /// `free(ptr)`: where the chunk went (tcache bin and position, fastbin,
    /// unsorted, merged into the top, munmapped).
    #[pyo3(signature = (ptr, tid=0))]
    fn free(&mut self, py: Python<'_>, ptr: &Bound<'_, PyAny>, tid: i64) -> PyResult<FreeResult> {
        let mem = word(ptr)?;
        let f = self.run(
            py,
            "free",
            vec![mem],
            tid,
            |st, tc| free_located(st, tc, mem),
            |f| Outcome::Freed(*f),
        )?;
        Ok(f.into())
    }

    /// `memalign(alignment, size)`.
    #[pyo3(signature = (alignment, size, tid=0))]
    fn memalign(
        &mut self,
        py: Python<'_>,
        alignment: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        tid: i64,
    ) -> PyResult<usize> {
        let (al, n) = (word(alignment)?, word(size)?);
        self.int_call(py, "memalign", vec![al, n], tid, |st, tc| {
            let p = st.a.memalign(tc, al, n)?;
            Ok(handed_out(st, p, n))
        })
    }

    /// `aligned_alloc(alignment, size)` (EINVAL unless a power of two).
    #[pyo3(signature = (alignment, size, tid=0))]
    fn aligned_alloc(
        &mut self,
        py: Python<'_>,
        alignment: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        tid: i64,
    ) -> PyResult<usize> {
        let (al, n) = (word(alignment)?, word(size)?);
        self.int_call(py, "aligned_alloc", vec![al, n], tid, |st, tc| {
            let p = st.a.aligned_alloc(tc, al, n)?;
            Ok(handed_out(st, p, n))
        })
    }

    /// `posix_memalign(alignment, size)`: (error, pointer), error 0 on success.
    #[pyo3(signature = (alignment, size, tid=0))]
    fn posix_memalign(
        &mut self,
        py: Python<'_>,
        alignment: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        tid: i64,
    ) -> PyResult<(i32, usize)> {
        let (al, n) = (word(alignment)?, word(size)?);
        self.run(
            py,
            "posix_memalign",
            vec![al, n],
            tid,
            |st, tc| {
                Ok(match st.a.posix_memalign(tc, al, n)? {
                    Ok(p) => (0, handed_out(st, p, n)),
                    Err(e) => (e, 0),
                })
            },
            |&(e, p)| Outcome::Pair(e, p),
        )
    }

    /// `valloc(size)`: page-aligned.
    #[pyo3(signature = (size, tid=0))]
    fn valloc(&mut self, py: Python<'_>, size: &Bound<'_, PyAny>, tid: i64) -> PyResult<usize> {
        let n = word(size)?;
        self.int_call(py, "valloc", vec![n], tid, |st, tc| {
            let p = st.a.valloc(tc, n)?;
            Ok(handed_out(st, p, n))
        })
    }

    /// `pvalloc(size)`: page-aligned, the size rounded up to pages.
    #[pyo3(signature = (size, tid=0))]
    fn pvalloc(&mut self, py: Python<'_>, size: &Bound<'_, PyAny>, tid: i64) -> PyResult<usize> {
        let n = word(size)?;
        self.int_call(py, "pvalloc", vec![n], tid, |st, tc| {
            let p = st.a.pvalloc(tc, n)?;
            Ok(handed_out(st, p, n))
        })
    }

    /// `malloc_usable_size(ptr)`.
    fn malloc_usable_size(&mut self, py: Python<'_>, ptr: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mem = word(ptr)?;
        self.int_call(py, "malloc_usable_size", vec![mem], 0, |st, _| {
            Allocator::usable_size(&st.a.mem, mem).map(|n| n & SIZE_MASK)
        })
    }

    /// `malloc_trim(pad)`: whether memory was given back.
    #[pyo3(signature = (pad=0))]
    fn malloc_trim(&mut self, py: Python<'_>, pad: usize) -> PyResult<bool> {
        self.run(
            py,
            "malloc_trim",
            vec![pad],
            0,
            |st, _| st.a.trim(pad),
            |&b| Outcome::Bool(b),
        )
    }

    /// `mallopt(param, value)`: param by number (`M_MXFAST`, ...) or name
    /// ("M_MXFAST", "mmap_threshold", ...); whether it was accepted.
    fn mallopt(&mut self, py: Python<'_>, param: &Bound<'_, PyAny>, value: i32) -> PyResult<bool> {
        let p = mallopt_param(param)?;
        self.run(
            py,
            "mallopt",
            vec![p as isize as usize, value as isize as usize],
            0,
            |st, _| st.a.mallopt(p, value),
            |&b| Outcome::Bool(b),
        )
    }

    /// End simulated thread `tid`: its tcache is flushed into the arenas and
    /// it leaves its arena (glibc's thread exit). The tid may be used again
    /// afterwards as a new thread.
    fn thread_exit(&mut self, py: Python<'_>, tid: i64) -> PyResult<()> {
        let hits = self.st.a.mem.counters[0];
        self.run(
            py,
            "thread_exit",
            vec![],
            tid,
            |st, tc| st.a.thread_exit(tc),
            |_| Outcome::Nothing,
        )?;
        // The flush takes chunks from the cache but serves no request.
        self.st.a.mem.counters[0] = hits;
        self.st.threads.remove(&tid);
        Ok(())
    }

    // ---- memory ----

    /// `n` bytes at `addr` (SegFault outside the mapped regions).
    fn read<'py>(&self, py: Python<'py>, addr: &Bound<'_, PyAny>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        read_of(py, &self.st, word(addr)?, n)
    }

    /// Write `data` at `addr` (SegFault outside the mapped regions; nothing is written then).
    fn write(&mut self, py: Python<'_>, addr: &Bound<'_, PyAny>, data: &[u8]) -> PyResult<()> {
        let a = word(addr)?;
        self.st
            .a
            .mem
            .sim
            .write_bytes(a, data)
            .map_err(|e| to_pyerr(py, &e, None))?;
        self.record("write", vec![a, data.len()], 0, Outcome::Nothing, None);
        Ok(())
    }

    /// The 64-bit little-endian word at `addr`.
    fn read_word(&self, py: Python<'_>, addr: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.st
            .a
            .mem
            .sim
            .read(word(addr)?)
            .map_err(|e| to_pyerr(py, &e, None))
    }

    /// Write the 64-bit word `value` at `addr` (negative values wrap).
    fn write_word(
        &mut self,
        py: Python<'_>,
        addr: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (a, v) = (word(addr)?, word(value)?);
        self.st
            .a
            .mem
            .sim
            .write(a, v)
            .map_err(|e| to_pyerr(py, &e, None))?;
        self.record("write", vec![a, 8], 0, Outcome::Nothing, None);
        Ok(())
    }

    /// The mapped regions: (start, end, kind), kind "heap" (the brk heap),
    /// "arena" (a non-main arena's heap), "mmap" (a mapped chunk) or "libc"
    /// (the data holding `main_arena`).
    fn regions(&self) -> Vec<(usize, usize, &'static str)> {
        self.st.a.mem.regions()
    }

    // ---- introspection ----

    /// The heap chunks of arena `arena` (None: all arenas), in address
    /// order, the top chunk included.
    #[pyo3(signature = (arena=None))]
    fn chunks(&self, arena: Option<usize>) -> Vec<Chunk> {
        chunks_of(&self.st, arena)
    }

    /// The chunks mapped on their own.
    fn mmapped(&self) -> Vec<Chunk> {
        self.lens().mmapped()
    }

    /// The top chunk of arena `arena`.
    #[pyo3(signature = (arena=0))]
    fn top(&self, arena: usize) -> PyResult<Chunk> {
        self.lens()
            .top(arena)
            .ok_or_else(|| PyValueError::new_err(format!("no arena {arena}")))
    }

    /// The bins of arena `arena`: 10 fastbins, the unsorted bin, small bins
    /// 2..63, large bins 64..127, empty ones included, each walked in full.
    #[pyo3(signature = (arena=0))]
    fn bins(&self, arena: usize) -> Vec<Bin> {
        self.lens().bins(arena)
    }

    /// The 64 tcache bins of thread `tid` ([] before its first allocation).
    #[pyo3(signature = (tid=0))]
    fn tcache(&self, tid: i64) -> Vec<Bin> {
        self.lens().tcache(tid)
    }

    /// Every arena, the main one first.
    fn arenas(&self) -> Vec<Arena> {
        self.lens().arenas()
    }

    /// The chunk holding `addr`, or None.
    fn locate(&self, addr: &Bound<'_, PyAny>) -> PyResult<Option<Chunk>> {
        Ok(self.lens().locate(word(addr)?))
    }

    /// A full consistency walk: every broken invariant found, [] when consistent.
    fn check(&self) -> Vec<String> {
        self.lens().check()
    }

    // ---- what-if and history ----

    /// What `free(ptr)` would do; the heap is unchanged afterwards.
    #[pyo3(signature = (ptr, tid=0))]
    fn try_free(&mut self, py: Python<'_>, ptr: &Bound<'_, PyAny>, tid: i64) -> PyResult<TryResult> {
        let mem = word(ptr)?;
        Ok(self.dry_run(py, tid, |st, tc| free_located(st, tc, mem).map(Outcome::Freed)))
    }

    /// What `malloc(size)` would return; the heap is unchanged afterwards.
    #[pyo3(signature = (size, tid=0))]
    fn try_malloc(&mut self, py: Python<'_>, size: &Bound<'_, PyAny>, tid: i64) -> PyResult<TryResult> {
        let n = word(size)?;
        Ok(self.dry_run(py, tid, |st, tc| st.a.malloc(tc, n).map(Outcome::Int)))
    }

    /// A copy of the whole state, to `restore` or `diff` later.
    fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.st, self.history.len(), self.profile)
    }

    /// Go back to `snapshot` (memory, threads, counters); the history keeps
    /// its events and records the restore.
    fn restore(&mut self, snapshot: &Snapshot) {
        self.st = snapshot.state.duplicate();
        self.record("restore", vec![snapshot.index], 0, Outcome::Nothing, None);
    }

    /// What changed from `a` to `b` (None: the heap now).
    #[pyo3(signature = (a, b=None))]
    fn diff(&self, a: &Snapshot, b: Option<&Snapshot>) -> Diff {
        diff(&a.state, b.map(|s| &s.state).unwrap_or(&self.st))
    }

    /// Every call made so far, as Event objects.
    #[getter]
    fn history(&self, py: Python<'_>) -> Vec<Event> {
        self.history
            .iter()
            .enumerate()
            .map(|(i, r)| r.to_event(py, i))
            .collect()
    }

    /// Label the next call in the history.
    fn label(&mut self, text: String) {
        self.pending_label = Some(text);
    }

    /// Forget the history (the heap is unchanged).
    fn clear_history(&mut self) {
        self.history.clear();
    }

    // ---- statistics ----

    /// `mallinfo2()` as a dict of its fields.
    fn mallinfo2<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.st.a.mem.reset_steps();
        let mi = self.st.a.mallinfo2().map_err(|e| to_pyerr(py, &e, None))?;
        let d = PyDict::new_bound(py);
        for (k, v) in [
            ("arena", mi.arena),
            ("ordblks", mi.ordblks),
            ("smblks", mi.smblks),
            ("hblks", mi.hblks),
            ("hblkhd", mi.hblkhd),
            ("usmblks", mi.usmblks),
            ("fsmblks", mi.fsmblks),
            ("uordblks", mi.uordblks),
            ("fordblks", mi.fordblks),
            ("keepcost", mi.keepcost),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// What `malloc_stats()` prints (to stderr in C), as glibc prints it.
    fn malloc_stats(&self, py: Python<'_>) -> PyResult<String> {
        self.st.a.mem.reset_steps();
        let mut s = String::new();
        match self.st.a.write_malloc_stats(&mut s) {
            Ok(_) => Ok(s),
            Err(e) => Err(to_pyerr(py, &e, None)),
        }
    }

    /// What `malloc_info(0, fp)` writes: glibc's XML.
    fn malloc_info(&self, py: Python<'_>) -> PyResult<String> {
        self.st.a.mem.reset_steps();
        let infos: Result<Vec<HeapInfo>, SimError> =
            self.st.a.arenas().map(|av| self.st.a.heap_info(av)).collect();
        let infos = infos.map_err(|e| to_pyerr(py, &e, None))?;
        let mut s = String::new();
        let _ = write_malloc_info(&mut s, infos.iter(), self.st.a.mmaps);
        Ok(s)
    }

    /// How often each path served a call: tcache_hit, fastbin, smallbin,
    /// unsorted_scan (chunks examined), split, largebin, binmap_search, top,
    /// consolidate, sbrk, mmap, munmap, trim, and where frees went
    /// (free_tcache, free_fastbin, free_bins, free_top, free_munmap).
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new_bound(py);
        for (n, v) in COUNTER_NAMES.iter().zip(self.st.a.mem.counters.iter()) {
            d.set_item(*n, *v)?;
        }
        Ok(d)
    }

    /// Set every counter back to 0.
    fn reset_counters(&mut self) {
        self.st.a.mem.counters = [0; COUNTER_NAMES.len()];
    }

    fn __repr__(&self) -> String {
        format!(
            "Heap(profile='{}', arenas={}, threads={}, events={})",
            self.profile,
            self.st.a.arenas().count(),
            self.st.threads.len(),
            self.history.len()
        )
    }
}
