//! The whole state of a simulated process: the allocator instance over its
//! address space, each simulated thread's cache and arena, and the request
//! behind each live block. Cloning it is a snapshot.

use std::collections::{BTreeMap, HashMap};

use ptmalloc_core::{Allocator, ThreadCache};
use ptmalloc_sim::MAIN_ARENA;

use crate::memory::LabMemory;

/// The tcache key of every simulated heap (glibc draws it at random; fixed
/// here so that the same calls give the same bytes).
pub const TCACHE_KEY: usize = 0x2f6e_3a8f_1c4d_5b79;

/// The allocator, the threads and the requests of a simulated process.
pub struct State {
    pub a: Allocator<LabMemory>,
    /// Each simulated thread's cache and arena, by thread id.
    pub threads: BTreeMap<i64, ThreadCache>,
    /// The size asked for, by user pointer, for blocks handed out and not freed.
    pub requests: HashMap<usize, usize>,
}

impl State {
    /// A fresh process with `params`.
    pub fn new(params: ptmalloc_core::Params) -> Result<State, ptmalloc_sim::SimError> {
        let a = Allocator::new(LabMemory::new(), MAIN_ARENA, TCACHE_KEY, params)?;
        Ok(State {
            a,
            threads: BTreeMap::new(),
            requests: HashMap::new(),
        })
    }

    /// A copy that later calls on either do not affect.
    pub fn duplicate(&self) -> State {
        let a = &self.a;
        let mut copy = Allocator::view(
            a.mem.clone(),
            a.main_arena().0,
            TCACHE_KEY,
            a.params,
            a.mmaps,
            a.sbrk_base,
            a.arenas_retired(),
        );
        copy.last_error = a.last_error;
        State {
            a: copy,
            threads: self.threads.clone(),
            requests: self.requests.clone(),
        }
    }

    /// The instance-wide values a failed call may have changed, to put back.
    pub fn save_values(&self) -> SavedValues {
        SavedValues {
            params: self.a.params,
            mmaps: self.a.mmaps,
            sbrk_base: self.a.sbrk_base,
            counters: self.a.mem.counters,
        }
    }

    /// Put back what [`State::save_values`] saved (the memory is rolled back separately).
    pub fn restore_values(&mut self, v: &SavedValues) {
        self.a.params = v.params;
        self.a.mmaps = v.mmaps;
        self.a.sbrk_base = v.sbrk_base;
        self.a.mem.counters = v.counters;
    }

    /// The thread's cache, a fresh one for a thread not seen before.
    pub fn thread(&self, tid: i64) -> ThreadCache {
        self.threads.get(&tid).copied().unwrap_or_default()
    }
}

/// See [`State::save_values`].
pub struct SavedValues {
    params: ptmalloc_core::Params,
    mmaps: ptmalloc_core::MmapStats,
    sbrk_base: usize,
    counters: [u64; crate::memory::COUNTER_NAMES.len()],
}
