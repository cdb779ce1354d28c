//! `ptmalloc_rs._native`: private ptmalloc heaps for Python, over a
//! simulated, bounds-checked address space.
//!
//! The extension links the allocator core and the simulation only, never
//! the exported `malloc`: importing it changes nothing in the interpreter's
//! own allocation.
//!
//! - [`memory`]: the simulated space with path counters, undo and a step budget;
//! - [`state`]: allocator + threads + requests (cloning it is a snapshot);
//! - [`heap`]: the `Heap` class and its calls;
//! - [`inspect`]: `Chunk`, `Bin`, `Arena` and the walks behind them;
//! - [`history`]: `FreeResult`, `TryResult`, `Event`;
//! - [`snapshot`]: `Snapshot`, `Diff`;
//! - [`errors`]: `HeapError`, `HeapAbort`, `SegFault`.

// pyo3 0.22's #[pymethods] expansion converts PyErr into itself.
#![allow(clippy::useless_conversion)]

use pyo3::prelude::*;

mod errors;
mod heap;
mod history;
mod inspect;
mod memory;
mod snapshot;
mod state;

use ptmalloc_core::params::opt;

/// Safe-linking: the value glibc stores for `ptr` at address `pos`
/// (`(pos >> 12) ^ ptr`).
#[pyfunction]
fn protect_ptr(pos: u64, ptr: u64) -> u64 {
    ptmalloc_core::chunk::protect_ptr(pos as usize, ptr as usize) as u64
}

/// Safe-linking undone: the pointer that `value`, stored at `pos`, stands for.
#[pyfunction]
fn reveal_ptr(pos: u64, value: u64) -> u64 {
    ptmalloc_core::chunk::reveal_ptr(pos as usize, value as usize) as u64
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<heap::Heap>()?;
    m.add_class::<inspect::Chunk>()?;
    m.add_class::<inspect::Bin>()?;
    m.add_class::<inspect::Arena>()?;
    m.add_class::<history::FreeResult>()?;
    m.add_class::<history::TryResult>()?;
    m.add_class::<history::Event>()?;
    m.add_class::<snapshot::Snapshot>()?;
    m.add_class::<snapshot::Diff>()?;
    m.add("HeapError", py.get_type_bound::<errors::HeapError>())?;
    m.add("HeapAbort", py.get_type_bound::<errors::HeapAbort>())?;
    m.add("SegFault", py.get_type_bound::<errors::SegFault>())?;
    m.add_function(wrap_pyfunction!(protect_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(reveal_ptr, m)?)?;
    m.add("HEAP_BASE", ptmalloc_sim::HEAP_BASE)?;
    m.add("MAIN_ARENA", ptmalloc_sim::MAIN_ARENA)?;
    m.add("M_MXFAST", opt::M_MXFAST)?;
    m.add("M_TRIM_THRESHOLD", opt::M_TRIM_THRESHOLD)?;
    m.add("M_TOP_PAD", opt::M_TOP_PAD)?;
    m.add("M_MMAP_THRESHOLD", opt::M_MMAP_THRESHOLD)?;
    m.add("M_MMAP_MAX", opt::M_MMAP_MAX)?;
    m.add("M_CHECK_ACTION", opt::M_CHECK_ACTION)?;
    m.add("M_PERTURB", opt::M_PERTURB)?;
    m.add("M_ARENA_TEST", opt::M_ARENA_TEST)?;
    m.add("M_ARENA_MAX", opt::M_ARENA_MAX)?;
    m.add("COUNTERS", memory::COUNTER_NAMES.to_vec())?;
    Ok(())
}
