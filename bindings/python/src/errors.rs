//! The exceptions: `HeapError`, and below it `HeapAbort` (one of glibc's
//! integrity checks failed; glibc would print the message and abort) and
//! `SegFault` (an access outside the mapped regions).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use ptmalloc_sim::SimError;

create_exception!(
    ptmalloc_rs,
    HeapError,
    PyException,
    "Base class of the errors a simulated heap raises."
);
create_exception!(
    ptmalloc_rs,
    HeapAbort,
    HeapError,
    "An integrity check failed where glibc would print `message` and abort.\n\n\
     Attributes: `message` (glibc's exact text), `snapshot` (the heap just\n\
     before the failing call; the heap itself is also put back to that state)."
);
create_exception!(
    ptmalloc_rs,
    SegFault,
    HeapError,
    "An access outside every mapped region of the simulated address space.\n\n\
     Attributes: `address` (the address accessed), `snapshot` (for a failing\n\
     allocator call: the heap just before it; None for a direct read/write)."
);

/// A one-line description of a simulation error.
pub fn describe(e: &SimError) -> String {
    match e {
        SimError::SegFault { addr } => format!("segmentation fault at {addr:#x}"),
        SimError::Abort { message } => (*message).to_string(),
    }
}

/// The Python exception for `e`, carrying `snapshot` (or None).
pub fn to_pyerr(py: Python<'_>, e: &SimError, snapshot: Option<PyObject>) -> PyErr {
    let snap = snapshot.unwrap_or_else(|| py.None());
    match e {
        SimError::Abort { message } => {
            let err = HeapAbort::new_err(message.to_string());
            let v = err.value_bound(py);
            let _ = v.setattr("message", *message);
            let _ = v.setattr("snapshot", snap);
            err
        }
        SimError::SegFault { addr } => {
            let err = SegFault::new_err(format!("segmentation fault at {addr:#x}"));
            let v = err.value_bound(py);
            let _ = v.setattr("address", *addr);
            let _ = v.setattr("snapshot", snap);
            err
        }
    }
}
