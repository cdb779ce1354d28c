//! What calls return and what the history keeps of them: `FreeResult`
//! (where a freed chunk went), `TryResult` (a dry run), `Event` (one
//! recorded call). The history is kept compact in Rust and becomes Python
//! objects only when read.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use ptmalloc_core::inspect::BinKind;

use crate::inspect::{bin_name, kind_name};

/// Where a freed chunk went, found by looking after the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Went {
    /// free(NULL): nothing happened.
    Nothing,
    /// On a list: a tcache bin, a fastbin, or the unsorted/small/large bins.
    Bin(BinKind, usize),
    /// Merged into the top chunk.
    Top,
    /// A mapped chunk, unmapped.
    Munmapped,
    /// Not found anywhere (only after a script broke the lists).
    Unknown,
}

/// A free's outcome, compact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freed {
    pub went: Went,
    pub position: Option<usize>,
    pub merged: bool,
}

/// Where `free` put a chunk.
#[pyclass(module = "ptmalloc_rs._native", frozen, get_all, eq)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeResult {
    /// "tcache", "fastbin", "unsorted", "small", "large", "top",
    /// "munmapped"; "none" for free(NULL), "unknown" if it is on no list.
    #[pyo3(name = "where")]
    pub where_: &'static str,
    /// The bin ("tcache[3]", "fastbin[0]", "unsorted", ...), or None.
    pub bin: Option<String>,
    /// Its index in that bin, counted from the head (0: first out), or None.
    pub position: Option<usize>,
    /// Whether it was merged with a free neighbour (or the top).
    pub merged: bool,
}

#[pymethods]
impl FreeResult {
    fn __repr__(&self) -> String {
        let mut s = format!("FreeResult(where='{}'", self.where_);
        if let Some(b) = &self.bin {
            s += &format!(", bin='{b}'");
        }
        if let Some(p) = self.position {
            s += &format!(", position={p}");
        }
        s + if self.merged { ", merged=True)" } else { ")" }
    }
}

impl From<Freed> for FreeResult {
    fn from(f: Freed) -> Self {
        let (where_, bin) = match f.went {
            Went::Nothing => ("none", None),
            Went::Bin(k, i) => (kind_name(k), Some(bin_name(k, i))),
            Went::Top => ("top", None),
            Went::Munmapped => ("munmapped", None),
            Went::Unknown => ("unknown", None),
        };
        FreeResult {
            where_,
            bin,
            position: f.position,
            merged: f.merged,
        }
    }
}

/// The outcome of a dry run (`try_free`, `try_malloc`); the heap is unchanged.
#[pyclass(module = "ptmalloc_rs._native", frozen, get_all)]
#[derive(Debug)]
pub struct TryResult {
    /// Whether the call would complete.
    pub ok: bool,
    /// What it would return: a pointer (malloc) or a FreeResult (free); None if it aborts.
    pub result: PyObject,
    /// glibc's message if it would abort ("segmentation fault at 0x..." for a bad access).
    pub abort: Option<String>,
    /// The allocator paths it would take, as counter names joined with "+"
    /// (e.g. "unsorted_scan+split"); for a free, where the chunk would go first.
    pub path: String,
}

#[pymethods]
impl TryResult {
    fn __repr__(&self, py: Python<'_>) -> String {
        let r = match self.result.bind(py).extract::<usize>() {
            Ok(v) if v >= 0x10000 => format!("{v:#x}"),
            _ => self
                .result
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_default(),
        };
        format!(
            "TryResult(ok={}, result={}, abort={:?}, path='{}')",
            if self.ok { "True" } else { "False" },
            r,
            self.abort,
            self.path
        )
    }
}

/// What a recorded call returned, compact.
#[derive(Clone, Debug)]
pub enum Outcome {
    Int(usize),
    Freed(Freed),
    Bool(bool),
    /// posix_memalign's (error, pointer).
    Pair(i32, usize),
    Nothing,
}

/// One call, as the history keeps it.
#[derive(Clone, Debug)]
pub struct Record {
    pub op: &'static str,
    pub args: Vec<usize>,
    pub outcome: Outcome,
    pub tid: i64,
    pub label: Option<String>,
    pub abort: Option<String>,
}

/// One recorded call of a heap.
#[pyclass(module = "ptmalloc_rs._native", frozen, get_all)]
#[derive(Debug)]
pub struct Event {
    /// Position in the history (0: the first call).
    pub index: usize,
    /// The method called: "malloc", "free", "realloc", ..., "write", "restore".
    pub op: &'static str,
    /// Its arguments, tid left out (write: address and length).
    pub args: Py<PyTuple>,
    /// What it returned (a pointer, a FreeResult, a bool, a tuple), or None.
    pub result: PyObject,
    /// The simulated thread that made it.
    pub tid: i64,
    /// The label given by `Heap.label()` just before it, or None.
    pub label: Option<String>,
    /// glibc's message if the call aborted (the heap was put back), else None.
    pub abort: Option<String>,
}

#[pymethods]
impl Event {
    fn __repr__(&self, py: Python<'_>) -> String {
        let args: Vec<String> = self
            .args
            .bind(py)
            .iter()
            .map(|a| match a.extract::<usize>() {
                Ok(v) if v >= 0x10000 => format!("{v:#x}"),
                Ok(v) => v.to_string(),
                Err(_) => a.to_string(),
            })
            .collect();
        let args = format!("({})", args.join(", "));
        let result = match self.result.bind(py).extract::<usize>() {
            Ok(v) if v >= 0x10000 => format!("{v:#x}"),
            _ => self
                .result
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_default(),
        };
        let mut s = format!("Event({}, {}{} -> {}", self.index, self.op, args, result);
        if self.tid != 0 {
            s += &format!(", tid={}", self.tid);
        }
        if let Some(l) = &self.label {
            s += &format!(", label={l:?}");
        }
        if let Some(a) = &self.abort {
            s += &format!(", abort={a:?}");
        }
        s + ")"
    }
}

impl Outcome {
    pub fn to_py(&self, py: Python<'_>) -> PyObject {
        match self {
            Outcome::Int(v) => v.into_py(py),
            Outcome::Freed(f) => FreeResult::from(*f).into_py(py),
            Outcome::Bool(b) => b.into_py(py),
            Outcome::Pair(e, p) => (*e, *p).into_py(py),
            Outcome::Nothing => py.None(),
        }
    }
}

impl Record {
    pub fn to_event(&self, py: Python<'_>, index: usize) -> Event {
        Event {
            index,
            op: self.op,
            args: PyTuple::new_bound(py, &self.args).unbind(),
            result: self.outcome.to_py(py),
            tid: self.tid,
            label: self.label.clone(),
            abort: self.abort.clone(),
        }
    }
}
