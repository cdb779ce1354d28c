//! `Snapshot` (a copy of a whole simulated process) and `Diff` (what
//! changed between two of them: chunks, bin moves, bytes).

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::inspect::{Bin, Chunk, Lens};
use crate::state::State;

/// A copy of a heap's whole state (memory, threads, counters), from
/// `Heap.snapshot()` or a `HeapAbort`; `Heap.restore()` goes back to it.
#[pyclass(module = "ptmalloc_rs._native", frozen)]
pub struct Snapshot {
    pub state: State,
    /// The heap's history length when the snapshot was taken.
    #[pyo3(get)]
    pub index: usize,
    pub profile: &'static str,
}

impl Snapshot {
    pub fn of(st: &State, index: usize, profile: &'static str) -> Snapshot {
        Snapshot {
            state: st.duplicate(),
            index,
            profile,
        }
    }
}

#[pymethods]
impl Snapshot {
    /// A new, independent Heap in this state (its history is empty).
    fn heap(&self) -> crate::heap::Heap {
        crate::heap::Heap::from_state(self.state.duplicate(), self.profile)
    }

    /// The heap chunks of one arena (None: of all arenas), in address order.
    #[pyo3(signature = (arena=None))]
    fn chunks(&self, arena: Option<usize>) -> Vec<Chunk> {
        crate::heap::chunks_of(&self.state, arena)
    }

    /// The bins of arena `arena` (fastbins, unsorted, small, large).
    #[pyo3(signature = (arena=0))]
    fn bins(&self, arena: usize) -> Vec<Bin> {
        Lens::new(&self.state).bins(arena)
    }

    /// The tcache bins of thread `tid`.
    #[pyo3(signature = (tid=0))]
    fn tcache(&self, tid: i64) -> Vec<Bin> {
        Lens::new(&self.state).tcache(tid)
    }

    /// `n` bytes of memory at `addr` as they were.
    fn read<'py>(&self, py: Python<'py>, addr: usize, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        crate::heap::read_of(py, &self.state, addr, n)
    }

    /// The consistency check of the state (see `Heap.check`).
    fn check(&self) -> Vec<String> {
        Lens::new(&self.state).check()
    }

    fn __repr__(&self) -> String {
        format!("Snapshot(index={})", self.index)
    }
}

/// What changed between two states.
#[pyclass(module = "ptmalloc_rs._native", frozen)]
pub struct Diff {
    /// Chunks only in the later state.
    #[pyo3(get)]
    pub new: Vec<Chunk>,
    /// Chunks only in the earlier state.
    #[pyo3(get)]
    pub gone: Vec<Chunk>,
    /// Chunks at the same address whose header, links, state or bin differ: (before, after).
    #[pyo3(get)]
    pub changed: Vec<(Chunk, Chunk)>,
    /// Chunks that changed lists: (address, bin before, bin after); None is no bin.
    #[pyo3(get)]
    pub moved: Vec<(usize, Option<String>, Option<String>)>,
    runs: Vec<(usize, Vec<u8>, Vec<u8>)>,
}

#[pymethods]
impl Diff {
    /// The changed bytes as runs: (address, before, after).
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Vec<(usize, Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        self.runs
            .iter()
            .map(|(a, b, c)| (*a, PyBytes::new_bound(py, b), PyBytes::new_bound(py, c)))
            .collect()
    }

    fn __bool__(&self) -> bool {
        !(self.new.is_empty()
            && self.gone.is_empty()
            && self.changed.is_empty()
            && self.moved.is_empty()
            && self.runs.is_empty())
    }

    fn __repr__(&self) -> String {
        format!(
            "Diff(new={}, gone={}, changed={}, moved={}, bytes={} runs)",
            self.new.len(),
            self.gone.len(),
            self.changed.len(),
            self.moved.len(),
            self.runs.len()
        )
    }
}

fn all_chunks(st: &State) -> BTreeMap<usize, Chunk> {
    let lens = Lens::new(st);
    let mut v = lens.all_heap_chunks();
    v.extend(lens.mmapped());
    v.into_iter().map(|c| (c.address, c)).collect()
}

/// What tells two versions of a chunk apart (user data of an allocated chunk does not).
fn header(c: &Chunk) -> impl PartialEq + '_ {
    let links = c.state != "allocated" && c.state != "mmapped";
    (
        c.raw_size,
        c.state,
        &c.bin,
        c.request,
        links.then_some((c.fd_raw, c.bk, c.fd_nextsize, c.bk_nextsize)),
    )
}

/// Runs of differing bytes, runs fewer than 8 equal bytes apart merged.
fn byte_runs(base: usize, before: &[u8], after: &[u8], out: &mut Vec<(usize, Vec<u8>, Vec<u8>)>) {
    let n = after.len();
    let at = |i: usize| before.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while i < n {
        if at(i) == after[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < n && j - end < 8 {
            if at(j) != after[j] {
                end = j + 1;
            }
            j += 1;
        }
        let old: Vec<u8> = (start..end).map(at).collect();
        out.push((base + start, old, after[start..end].to_vec()));
        i = end;
    }
}

/// The diff from `a` to `b`.
pub fn diff(a: &State, b: &State) -> Diff {
    let ca = all_chunks(a);
    let cb = all_chunks(b);
    let mut d = Diff {
        new: Vec::new(),
        gone: Vec::new(),
        changed: Vec::new(),
        moved: Vec::new(),
        runs: Vec::new(),
    };
    for (addr, c) in &cb {
        match ca.get(addr) {
            None => d.new.push(c.clone()),
            Some(old) => {
                if header(old) != header(c) {
                    d.changed.push((old.clone(), c.clone()));
                }
                if old.bin != c.bin {
                    d.moved.push((*addr, old.bin.clone(), c.bin.clone()));
                }
            }
        }
    }
    d.gone = ca
        .iter()
        .filter(|(k, _)| !cb.contains_key(k))
        .map(|(_, c)| c.clone())
        .collect();
    let (ma, mb) = (&a.a.mem, &b.a.mem);
    let ra = ma.regions();
    for (start, end, _) in mb.regions() {
        let Ok(after) = mb.sim.read_bytes(start, end - start) else {
            continue;
        };
        let before = ra
            .iter()
            .find(|r| r.0 == start)
            .and_then(|r| ma.sim.read_bytes(r.0, r.1 - r.0).ok())
            .unwrap_or(&[]);
        byte_runs(start, before, after, &mut d.runs);
    }
    d
}
