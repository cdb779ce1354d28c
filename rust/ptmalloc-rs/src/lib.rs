//! libptmalloc-rs: the ptmalloc2 allocator as a drop-in replacement for the
//! C library's `malloc`, by linking (`-lptmalloc-rs`) or `LD_PRELOAD`.
//!
//! This crate is the process front: one `ptmalloc_core::Allocator` over raw
//! memory ([`os`]), behind a futex lock ([`lock`]), with per-thread caches,
//! lazy initialisation, thread exit and fork handling ([`process`]), each thread's
//! state in initial-exec TLS ([`tls`]), settings
//! from the environment ([`env`]), allocation-free output ([`output`]), and
//! the exported C functions ([`exports`]).

pub mod env;
pub mod exports;
pub mod fork;
pub mod harden;
pub mod lock;
pub mod os;
pub mod output;
pub mod process;
pub mod tls;
pub mod valgrind;
