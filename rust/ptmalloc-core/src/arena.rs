//! Arenas: the arena of a chunk, running arena code under the arena's lock
//! (after freeing what other threads deferred to it), making arenas on
//! heaps, binding threads to arenas, and the free list of arenas whose
//! threads have all exited.
//!
//! Locks come from the memory source (`Memory::lock_arena` and friends): a
//! private instance has none, the process allocator has a futex per arena
//! and one for the list. Lock order: the list lock is never held while
//! taking an arena lock, except the non-blocking tries of `reuse_arena`.

use crate::chunk::{align_up, Chunk, MALLOC_ALIGNMENT, NON_MAIN_ARENA, PREV_INUSE};
use crate::heap::{Heap, HEAP_INFO_SIZE};
use crate::memory::Memory;
use crate::state::{Arena, ARENA_SIZE};
use crate::tcache::Tcache;
use crate::{Allocator, Res, ThreadCache};

/// Arenas per core when `arena_max` is not set (`NARENAS_FROM_NCORES`, 64-bit).
const ARENAS_PER_CORE: usize = 8;
/// Bound on walks of the arena list (a corrupt list must not loop forever).
pub(crate) const MAX_ARENAS: usize = 1 << 16;

/// The arenas of an instance, main first, following the `next` links.
pub struct Arenas<'a, M: Memory> {
    mem: &'a M,
    main: Arena,
    next: Option<Arena>,
    seen: usize,
}

impl<M: Memory> Iterator for Arenas<'_, M> {
    type Item = Arena;

    fn next(&mut self) -> Option<Arena> {
        let av = self.next?;
        self.seen += 1;
        self.next = match av.next(self.mem) {
            Ok(n) if n != self.main && n.0 != 0 && self.seen < MAX_ARENAS => Some(n),
            _ => None,
        };
        Some(av)
    }
}

impl<M: Memory> Allocator<M> {
    /// The arena a heap chunk belongs to (`arena_for_chunk`): the main
    /// arena, or the arena recorded in the chunk's heap.
    #[inline(always)]
    pub fn arena_for_chunk(&self, p: Chunk) -> Res<Arena, M> {
        if p.size_field(&self.mem)? & NON_MAIN_ARENA == 0 {
            Ok(self.main)
        } else {
            Heap::of(p.0).arena(&self.mem)
        }
    }

    /// The arenas in use, main first (none once retired).
    pub fn arenas(&self) -> Arenas<'_, M> {
        Arenas {
            mem: &self.mem,
            main: self.main,
            next: if self.retired { None } else { Some(self.main) },
            seen: 0,
        }
    }

    /// Run `f` with `av` locked, after freeing the chunks other threads
    /// deferred to `av`.
    #[inline]
    pub(crate) fn locked<R>(&mut self, av: Arena, f: impl FnOnce(&mut Self) -> Res<R, M>) -> Res<R, M> {
        self.mem.lock_arena(av.0);
        let r = match self.free_deferred(av) {
            Ok(()) => f(self),
            Err(e) => Err(e),
        };
        self.mem.unlock_arena(av.0);
        r
    }

    /// Free the chunks other threads queued for `av` (locked).
    pub(crate) fn free_deferred(&mut self, av: Arena) -> Res<(), M> {
        let first = self.mem.take_deferred(av.0)?;
        self.free_chain(av, first)
    }

    /// Free into `av` (locked) a chain of its chunks linked through their
    /// `fd` words.
    pub(crate) fn free_chain(&mut self, av: Arena, first: usize) -> Res<(), M> {
        let mut c = first;
        while c != 0 {
            let p = Chunk(c);
            c = self.mem.read(p.fd_addr())?;
            self.mem.prefetch_from(p.bk_addr());
            // A hardened instance checked the header when the chunk was
            // queued; int_free checks it again.
            self.int_free(av, p, Tcache(0), false, true)?;
        }
        Ok(())
    }

    /// After a chunk was queued for `av`: if no thread is attached to `av`
    /// any more (its last one exited), nobody would take the queue, so free
    /// it now under the lock, into the arena, where it can be merged and
    /// trimmed instead of held.
    pub fn drain_if_unattended(&mut self, av: Arena) -> Res<(), M> {
        if self.mem.arena_unattended(av.0) {
            self.drain(av)?;
        }
        Ok(())
    }

    /// Free the chunks queued for `av`, waiting for its lock.
    fn drain(&mut self, av: Arena) -> Res<(), M> {
        self.locked(av, |_| Ok(()))
    }

    /// Free the chunks queued for `av` under its lock, if nobody holds it
    /// (a freeing thread that found its own push still first in the queue
    /// long after: the owner has not come for it).
    pub fn drain_if_unlocked(&mut self, av: Arena) -> Res<(), M> {
        if !self.mem.try_lock_arena(av.0) {
            return Ok(());
        }
        let r = self.free_deferred(av);
        self.mem.unlock_arena(av.0);
        r
    }

    /// Free into `av`, under its lock (after its deferred frees), a chain of
    /// its chunks linked through their `fd` words: chunks another thread
    /// batched for `av` that its deferred list had no room for.
    pub fn free_chain_locked(&mut self, av: Arena, first: usize) -> Res<(), M> {
        self.locked(av, |a| a.free_chain(av, first))
    }

    /// The thread's arena, binding one on its first use (`arena_get`).
    #[inline]
    pub fn thread_arena(&mut self, tc: &mut ThreadCache) -> Res<Arena, M> {
        if tc.arena.0 != 0 {
            return Ok(tc.arena);
        }
        if self.retired {
            return Ok(self.main);
        }
        self.mem.lock_arena_list();
        let r = self.bind_arena(tc, None);
        self.mem.unlock_arena_list();
        r
    }

    /// An arena other than `failed` for a request `failed` could not serve
    /// (`arena_get_retry`): a thread of a non-main arena tries the main one;
    /// a thread of the main arena moves to another arena.
    pub(crate) fn retry_arena(&mut self, tc: &mut ThreadCache, failed: Arena) -> Res<Option<Arena>, M> {
        if self.retired {
            return Ok(None);
        }
        if failed != self.main {
            return Ok(Some(self.main));
        }
        self.mem.lock_arena_list();
        let r = self.bind_arena(tc, Some(failed));
        self.mem.unlock_arena_list();
        Ok(match r? {
            av if av == failed => None,
            av => Some(av),
        })
    }

    /// Choose an arena for the thread (`arena_get2`), under the list lock:
    /// the main arena for the first thread, then an arena whose threads all
    /// exited, then a new arena while under the limit, else a shared one.
    fn bind_arena(&mut self, tc: &mut ThreadCache, avoid: Option<Arena>) -> Res<Arena, M> {
        let main = self.main;
        let av = if !main.main_claimed(&self.mem)? && avoid.is_none() {
            main.set_main_claimed(&mut self.mem)?;
            main
        } else if let Some(av) = self.take_free_arena(avoid)? {
            av
        } else if self.may_add_arena()? {
            match self.new_arena()? {
                Some(av) => av,
                None => self.reuse_arena(avoid)?,
            }
        } else {
            self.reuse_arena(avoid)?
        };
        if tc.arena.0 != 0 && tc.arena != av {
            self.detach(tc.arena)?;
        }
        tc.arena = av;
        Ok(av)
    }

    /// Whether one more arena stays within the limit: `arena_max` if set,
    /// else unlimited until `arena_test` arenas exist, then 8 per core.
    fn may_add_arena(&self) -> Res<bool, M> {
        let total = 1 + self.main.extra_arenas(&self.mem)?;
        let limit = if self.params.arena_max != 0 {
            self.params.arena_max
        } else if total > self.params.arena_test {
            ARENAS_PER_CORE * self.mem.cpu_count().max(1)
        } else {
            usize::MAX
        };
        Ok(total < limit)
    }

    /// Make an arena on a new heap and link it after the main arena
    /// (`_int_new_arena`); `None` when no heap can be mapped.
    fn new_arena(&mut self) -> Res<Option<Arena>, M> {
        let want = HEAP_INFO_SIZE + ARENA_SIZE + MALLOC_ALIGNMENT;
        let h = match self.new_heap(want, self.params.top_pad)? {
            Some(h) => h,
            None => match self.new_heap(want, 0)? {
                Some(h) => h,
                None => return Ok(None),
            },
        };
        let av = Arena(h.0 + HEAP_INFO_SIZE);
        av.init(&mut self.mem, false)?;
        self.mem.write(h.0, av.0)?;
        let size = h.size(&self.mem)?;
        av.set_system_mem(&mut self.mem, size)?;
        let top = Chunk(align_up(av.0 + ARENA_SIZE, MALLOC_ALIGNMENT));
        av.set_top(&mut self.mem, top)?;
        top.set_head(&mut self.mem, (h.0 + size - top.0) | PREV_INUSE)?;
        let main = self.main;
        let after_main = main.next(&self.mem)?;
        av.set_next(&mut self.mem, after_main)?;
        self.mem.release_fence();
        main.set_next(&mut self.mem, av)?;
        let n = main.extra_arenas(&self.mem)?;
        main.set_extra_arenas(&mut self.mem, n + 1)?;
        Ok(Some(av))
    }

    /// Take an arena from the free list (`get_free_list`), skipping `avoid`.
    fn take_free_arena(&mut self, avoid: Option<Arena>) -> Res<Option<Arena>, M> {
        let main = self.main;
        let mut prev: Option<Arena> = None;
        let mut av = main.free_list(&self.mem)?;
        let mut seen = 0;
        while av.0 != 0 && seen < MAX_ARENAS {
            let next = av.next_free(&self.mem)?;
            if Some(av) != avoid {
                match prev {
                    None => main.set_free_list(&mut self.mem, next)?,
                    Some(p) => p.set_next_free(&mut self.mem, next)?,
                }
                av.set_next_free(&mut self.mem, Arena(0))?;
                let n = av.attached_threads(&self.mem)?;
                av.set_attached_threads(&mut self.mem, n + 1)?;
                return Ok(Some(av));
            }
            prev = Some(av);
            av = next;
            seen += 1;
        }
        Ok(None)
    }

    /// Share an arena (`reused_arena`): the first from the round-robin
    /// position whose lock is free, else the one at that position.
    fn reuse_arena(&mut self, avoid: Option<Arena>) -> Res<Arena, M> {
        let main = self.main;
        let start = match main.next_to_use(&self.mem)? {
            Arena(0) => main,
            a => a,
        };
        let mut chosen = None;
        let mut av = start;
        for _ in 0..MAX_ARENAS {
            if Some(av) != avoid && self.mem.try_lock_arena(av.0) {
                self.mem.unlock_arena(av.0);
                chosen = Some(av);
                break;
            }
            av = av.next(&self.mem)?;
            if av == start {
                break;
            }
        }
        let mut av = chosen.unwrap_or(start);
        if Some(av) == avoid {
            av = av.next(&self.mem)?;
        }
        let after = av.next(&self.mem)?;
        main.set_next_to_use(&mut self.mem, after)?;
        let n = av.attached_threads(&self.mem)?;
        if n == 0 {
            self.remove_from_free_list(av)?;
        }
        av.set_attached_threads(&mut self.mem, n + 1)?;
        Ok(av)
    }

    fn remove_from_free_list(&mut self, target: Arena) -> Res<(), M> {
        let main = self.main;
        let mut prev: Option<Arena> = None;
        let mut av = main.free_list(&self.mem)?;
        let mut seen = 0;
        while av.0 != 0 && seen < MAX_ARENAS {
            let next = av.next_free(&self.mem)?;
            if av == target {
                match prev {
                    None => main.set_free_list(&mut self.mem, next)?,
                    Some(p) => p.set_next_free(&mut self.mem, next)?,
                }
                return av.set_next_free(&mut self.mem, Arena(0));
            }
            prev = Some(av);
            av = next;
            seen += 1;
        }
        Ok(())
    }

    /// One thread fewer on `av`; with none left it goes on the free list
    /// (`true`).
    fn detach(&mut self, av: Arena) -> Res<bool, M> {
        let n = av.attached_threads(&self.mem)?.saturating_sub(1);
        av.set_attached_threads(&mut self.mem, n)?;
        if n == 0 {
            let main = self.main;
            let head = main.free_list(&self.mem)?;
            av.set_next_free(&mut self.mem, head)?;
            main.set_free_list(&mut self.mem, av)?;
        }
        Ok(n == 0)
    }

    /// The thread is exiting: release its arena binding (`arena_thread_freeres`).
    pub fn detach_thread(&mut self, tc: &mut ThreadCache) -> Res<(), M> {
        let av = tc.arena;
        tc.arena = Arena(0);
        if av.0 == 0 || self.retired {
            return Ok(());
        }
        self.mem.lock_arena_list();
        let r = self.detach(av);
        self.mem.unlock_arena_list();
        if r? {
            // The last thread left: what other threads queued for `av` goes
            // into it now (a free queued from here on sees it unattended and
            // does the same, see `drain_if_unattended`).
            self.mem.full_fence();
            self.drain(av)?;
        }
        Ok(())
    }
}
