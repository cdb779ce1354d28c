//! The glibc front ends of an instance: what `__libc_malloc`, `__libc_free`,
//! `__libc_calloc`, `__libc_realloc`, `_mid_memalign` and friends do before
//! and around the arena algorithms.
//!
//! `malloc` and `free` come in two halves so that a multi-threaded host can
//! run the per-thread cache without a lock: [`Allocator::malloc_cached`] and
//! [`Allocator::free_cached`] need only the memory and the thread's cache;
//! the `_uncached` halves need the arena (the caller's lock).

use crate::chunk::{
    checked_request2size, Chunk, CHUNK_HDR_SZ, IS_MMAPPED, MALLOC_ALIGNMENT, MINSIZE, SIZE_BITS, SIZE_SZ,
};
use crate::memory::Memory;
use crate::params::{Params, DEFAULT_MMAP_THRESHOLD_MAX};
use crate::state::Arena;
use crate::tcache::{csize2tidx, Tcache, TcacheConfig, TCACHE_MAX_BINS, TCACHE_STRUCT_SIZE};
use crate::{Allocator, MmapStats, Res, EINVAL, ENOMEM};

/// A thread's cache, its arena, and whether the thread is exiting (then it
/// gets no new cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadCache {
    /// The thread's tcache, if it has one yet.
    pub tcache: Tcache,
    /// The arena the thread allocates from (0 until its first allocation).
    pub arena: Arena,
    /// Set once the thread's cache was flushed at exit.
    pub shutting_down: bool,
}

/// Bytes a tcache bin may hold in returned chunks beyond `tcache_count`
/// (see `malloc_from_deferred`).
const DEFERRED_CACHE_BYTES: usize = 4096;

impl<M: Memory> Allocator<M> {
    /// A new instance whose main arena state lives at `main_arena` (the
    /// memory source must back `state::MAIN_ARENA_STORAGE` bytes there).
    /// `tcache_key` marks cached chunks (glibc draws it at random). A
    /// hardened instance keys its chunk headers with a secret mixed from it;
    /// a host with entropy to spare sets its own with
    /// `Memory::set_header_key` before the first allocation.
    pub fn new(mem: M, main_arena: usize, tcache_key: usize, params: Params) -> Res<Self, M> {
        let mut a = Allocator {
            mem,
            params,
            mmaps: Default::default(),
            sbrk_base: 0,
            last_error: 0,
            retired: false,
            main: Arena(main_arena),
            tcache_key,
        };
        if a.params.hardened {
            a.mem.set_header_key(crate::harden::header_key_from(tcache_key));
        }
        a.main.init(&mut a.mem, true)?;
        Ok(a)
    }

    /// Another handle on an instance whose arenas already live in `mem`:
    /// for a host that keeps the instance-wide values itself and runs each
    /// call on a fresh handle (the process allocator, whose threads work on
    /// different arenas at once). The arenas are not touched.
    #[allow(clippy::too_many_arguments)]
    pub fn view(
        mem: M,
        main_arena: usize,
        tcache_key: usize,
        params: Params,
        mmaps: MmapStats,
        sbrk_base: usize,
        retired: bool,
    ) -> Self {
        Allocator {
            mem,
            params,
            mmaps,
            sbrk_base,
            last_error: 0,
            retired,
            main: Arena(main_arena),
            tcache_key,
        }
    }

    /// Stop using the arenas, whose state may be half-updated (in the child
    /// of a fork that interrupted an arena operation). From now on requests
    /// are served by chunks mapped on their own and heap chunks are never
    /// freed: correctness over economy, for a child that usually just execs.
    pub fn retire_arenas(&mut self) {
        self.retired = true;
    }

    /// Whether [`Allocator::retire_arenas`] was called.
    pub fn arenas_retired(&self) -> bool {
        self.retired
    }

    /// The main arena.
    pub fn main_arena(&self) -> Arena {
        self.main
    }

    /// The tcache settings of the lock-free halves.
    #[inline(always)]
    pub fn tcache_config(&self) -> TcacheConfig {
        self.params.tcache_config(self.tcache_key)
    }

    /// Give the thread a tcache from `av` (locked) if it has none and is not
    /// exiting (`tcache_init`).
    fn ensure_tcache(&mut self, av: Arena, tc: &mut ThreadCache) -> Res<(), M> {
        if tc.tcache.exists() || tc.shutting_down {
            return Ok(());
        }
        let mem = self.int_malloc(av, Tcache(0), TCACHE_STRUCT_SIZE)?;
        if mem != 0 {
            self.mem.fill(mem, 0, TCACHE_STRUCT_SIZE)?;
            tc.tcache = Tcache(mem);
        }
        Ok(())
    }

    /// [`Allocator::ensure_tcache`] from the thread's arena, locking it.
    fn ensure_tcache_locked(&mut self, tc: &mut ThreadCache) -> Res<(), M> {
        if tc.tcache.exists() || tc.shutting_down {
            return Ok(());
        }
        let av = self.thread_arena(tc)?;
        self.locked(av, |a| a.ensure_tcache(av, tc))
    }

    /// Run an allocation `f` in the thread's arena `av` under its lock; if
    /// it fails, once more in another arena (`arena_get_retry`), where
    /// `sysmalloc` falls back to `mmap` before giving up.
    fn in_arena(
        &mut self,
        tc: &mut ThreadCache,
        av: Arena,
        f: impl FnMut(&mut Self, Arena, Tcache) -> Res<usize, M>,
    ) -> Res<usize, M> {
        self.in_arena_as(tc, av, true, f)
    }

    /// [`Allocator::in_arena`], giving the thread a tcache first only when
    /// `init_tcache` (glibc 2.36's `_mid_memalign` does not).
    fn in_arena_as(
        &mut self,
        tc: &mut ThreadCache,
        av: Arena,
        init_tcache: bool,
        mut f: impl FnMut(&mut Self, Arena, Tcache) -> Res<usize, M>,
    ) -> Res<usize, M> {
        let mem = self.locked(av, |a| {
            if init_tcache {
                a.ensure_tcache(av, tc)?;
            }
            f(a, av, tc.tcache)
        })?;
        if mem != 0 {
            return Ok(mem);
        }
        let Some(other) = self.retry_arena(tc, av)? else {
            return Ok(0);
        };
        let error = self.last_error;
        let mem = self.locked(other, |a| f(a, other, tc.tcache))?;
        if mem == 0 && self.last_error == 0 {
            self.last_error = error;
        }
        Ok(mem)
    }

    /// The lock-free half of `malloc`: a chunk from the thread's cache, if it
    /// holds one of the right size.
    #[inline(always)]
    pub fn malloc_cached(m: &mut M, cfg: &TcacheConfig, tc: Tcache, bytes: usize) -> Res<Option<usize>, M> {
        if !tc.exists() {
            return Ok(None);
        }
        let Some(nb) = checked_request2size(bytes) else {
            return Ok(None);
        };
        let idx = csize2tidx(nb);
        // The entry test is ours: a count out of step with its list (a fork
        // from a signal handler mid-update) must not hand out address 0.
        if idx < cfg.bins && tc.count(m, idx)? > 0 && tc.entry(m, idx)? != 0 {
            let e = tc.get(m, idx, cfg.key)?;
            if cfg.fill {
                crate::harden::check_fill(m, Chunk::from_mem(e))?;
            }
            return Ok(Some(e));
        }
        Ok(None)
    }

    /// The arena half of `malloc`, after [`Allocator::malloc_cached`] found nothing.
    pub fn malloc_uncached(&mut self, tc: &mut ThreadCache, bytes: usize) -> Res<usize, M> {
        let av = self.thread_arena(tc)?;
        if tc.tcache.exists() && !self.retired {
            if let Some(mem) = self.malloc_from_deferred(av, tc.tcache, bytes)? {
                return Ok(mem);
            }
        }
        self.in_arena(tc, av, |a, av, t| a.int_malloc(av, t, bytes))
    }

    /// Take the chunks other threads freed into `av` and put them in this
    /// thread's cache (cached chunks are in use as far as the arena is
    /// concerned, so nothing in the arena changes): a thread whose blocks
    /// are freed elsewhere gets most of them back without the arena lock.
    /// What the cache has no room for is freed into the arena. Then the
    /// request from the cache, if it now can be served.
    #[inline(never)]
    fn malloc_from_deferred(&mut self, av: Arena, tc: Tcache, bytes: usize) -> Res<Option<usize>, M> {
        let mut c = self.mem.take_deferred(av.0)?;
        if c == 0 {
            return Ok(None);
        }
        let cfg = self.tcache_config();
        // Returned chunks come in bursts (another thread frees a batch):
        // the cache keeps more of them than `tcache_count` (while it is not
        // 0), each saving a free into the arena and a malloc out of it. Not
        // many more bytes, though: a cached chunk serves its own size only,
        // and 32 a bin of every size kept 90 KiB idle per producer thread
        // (peak RSS 10% above glibc's); 4 KiB a bin keeps many of
        // the small, frequent sizes and few of the large. (A hardened
        // instance checked each header when the chunk was queued, and checks
        // it again when the chunk enters `int_free`.)
        let mut rest = 0;
        while c != 0 {
            let p = Chunk(c);
            c = self.mem.read(p.fd_addr())?;
            self.mem.prefetch_from(p.bk_addr());
            let size = p.size(&self.mem)?;
            let idx = csize2tidx(size);
            let room = |n: usize| cfg.count != 0 && (n < cfg.count || n * size < DEFERRED_CACHE_BYTES);
            if idx < cfg.bins && room(tc.count(&self.mem, idx)?) {
                tc.check_double_free(&mut self.mem, p, idx, &cfg)?;
                tc.put(&mut self.mem, p, idx, cfg.key)?;
            } else {
                self.mem.write(p.fd_addr(), rest)?;
                rest = p.0;
            }
        }
        // Queued again, the rest would be walked again by the next miss.
        if rest != 0 {
            self.locked(av, |a| a.free_chain(av, rest))?;
        }
        Self::malloc_cached(&mut self.mem, &cfg, tc, bytes)
    }

    /// `malloc`: 0 on failure, with [`Allocator::last_error`] set.
    pub fn malloc(&mut self, tc: &mut ThreadCache, bytes: usize) -> Res<usize, M> {
        let cfg = self.tcache_config();
        if let Some(mem) = Self::malloc_cached(&mut self.mem, &cfg, tc.tcache, bytes)? {
            return Ok(mem);
        }
        self.malloc_uncached(tc, bytes)
    }

    /// The lock-free half of `free` for a non-null `mem`: cache the chunk if
    /// the thread's cache has room. Returns the chunk when the arena half
    /// ([`Allocator::free_uncached`]) must finish the job.
    #[inline(always)]
    pub fn free_cached(m: &mut M, cfg: &TcacheConfig, tc: Tcache, mem: usize) -> Res<Option<Chunk>, M> {
        let p = Chunk::from_mem(mem);
        if m.was_unmapped(p.0) {
            return Err(m.corruption("munmap_chunk(): double free detected"));
        }
        let raw = p.size_field(m)?;
        if raw & IS_MMAPPED != 0 || !tc.exists() {
            return Ok(Some(p));
        }
        let size = raw & !SIZE_BITS;
        Self::check_free_pointer(m, p, size)?;
        let idx = csize2tidx(size);
        if idx < cfg.bins {
            tc.check_double_free(m, p, idx, cfg)?;
            if tc.count(m, idx)? < cfg.count {
                Self::check_freed(m, cfg, p, size)?;
                tc.put(m, p, idx, cfg.key)?;
                return Ok(None);
            }
        }
        Ok(Some(p))
    }

    /// The checks of [`Allocator::check_freed`] for a chunk a host frees on a
    /// path of its own (the process allocator's batched remote frees).
    #[inline(always)]
    pub fn check_foreign_free(m: &mut M, cfg: &TcacheConfig, p: Chunk) -> Res<(), M> {
        let size = p.size(m)?;
        Self::check_freed(m, cfg, p, size)
    }

    /// A user's chunk enters a tcache bin, fastbin or queue: on a hardened
    /// instance it must be in use (else it is a double free or not a chunk
    /// at all); in free-check mode it is filled. (Only a fastbin parks it:
    /// the header of a chunk in a tcache or queue is not written, because
    /// the arena's holder may be changing its PREV_INUSE bit meanwhile.)
    #[inline(always)]
    pub(crate) fn check_freed(m: &mut M, cfg: &TcacheConfig, p: Chunk, size: usize) -> Res<(), M> {
        crate::harden::check_in_use(
            m,
            p,
            "free(): double free detected",
            "free(): invalid chunk header",
        )?;
        if cfg.fill {
            crate::harden::fill_freed(m, p, size)?;
        }
        Ok(())
    }

    /// The arena half of `free`: unmap a mapped chunk (raising the dynamic
    /// mmap threshold), or free a heap chunk into its arena.
    pub fn free_uncached(&mut self, tc: &mut ThreadCache, p: Chunk) -> Res<(), M> {
        let raw = p.size_field(&self.mem)?;
        if raw & IS_MMAPPED != 0 {
            // A freed mapped chunk says requests of its size are not rare:
            // serve them from the heap from now on.
            if !self.params.no_dyn_threshold
                && raw > self.params.mmap_threshold
                && raw <= DEFAULT_MMAP_THRESHOLD_MAX
            {
                self.params.mmap_threshold = raw & !SIZE_BITS;
                self.params.trim_threshold = 2 * self.params.mmap_threshold;
            }
            return self.munmap_chunk(p);
        }
        let tried = tc.tcache.exists();
        self.ensure_tcache_locked(tc)?;
        let av = self.arena_for_chunk(p)?;
        let size = p.size(&self.mem)?;
        Self::check_free_pointer(&mut self.mem, p, size)?;
        // A chunk of another thread's arena is queued for that arena's
        // threads, without its lock; so is one of our own arena when another
        // thread holds it. Only a full queue makes us wait for the lock.
        // A large chunk of another arena is freed at once if its lock is
        // free: queued, it would wait for the owner's next slow call, and
        // an owner that has gone idle might never make one; at the top of
        // its heap, it would keep the heap from shrinking below it.
        let lock_now = av == tc.arena || csize2tidx(size) >= crate::tcache::TCACHE_MAX_BINS;
        if !(lock_now && self.mem.try_lock_arena(av.0)) {
            let cfg = self.tcache_config();
            Self::check_freed(&mut self.mem, &cfg, p, size)?;
            if self.mem.defer_free(av.0, p.0)? {
                return self.drain_if_unattended(av);
            }
            self.mem.lock_arena(av.0);
        }
        let r = match self.free_deferred(av) {
            Ok(()) => self.int_free(av, p, tc.tcache, false, tried),
            Err(e) => Err(e),
        };
        self.mem.unlock_arena(av.0);
        r
    }

    /// `free`.
    pub fn free(&mut self, tc: &mut ThreadCache, mem: usize) -> Res<(), M> {
        if mem == 0 {
            return Ok(());
        }
        let cfg = self.tcache_config();
        match Self::free_cached(&mut self.mem, &cfg, tc.tcache, mem)? {
            None => Ok(()),
            Some(p) => self.free_uncached(tc, p),
        }
    }

    /// `calloc`: zeroed memory for `n` elements of `size` bytes; clears only
    /// what is not fresh from the system.
    pub fn calloc(&mut self, tc: &mut ThreadCache, n: usize, size: usize) -> Res<usize, M> {
        let Some(bytes) = n.checked_mul(size) else {
            self.last_error = ENOMEM;
            return Ok(0);
        };
        let av = self.thread_arena(tc)?;
        self.in_arena(tc, av, |a, av, t| a.calloc_in(av, t, bytes))
    }

    /// `calloc`'s work in `av` (locked).
    fn calloc_in(&mut self, av: Arena, tc: Tcache, bytes: usize) -> Res<usize, M> {
        if self.retired {
            return self.int_malloc(av, tc, bytes);
        }
        let old_top = av.top(&self.mem)?;
        let mut old_top_size = old_top.size(&self.mem)?;
        // What lies past the old top is fresh from the system, and zero, in
        // the main arena: a lowered break gives its pages back to the kernel
        // (glibc 2.36 as built on Linux clears only the old top: measured,
        // 2 page faults where a max_system_mem rule would clear 16 MiB). In
        // a heap, memory below the highest accessible byte may be dirty
        // (shrinking a heap can leave it accessible).
        if av != self.main {
            let h = crate::heap::Heap::of(old_top.0);
            let maybe_dirty = (h.0 + h.mprotect_size(&self.mem)?).wrapping_sub(old_top.0);
            if old_top_size < maybe_dirty {
                old_top_size = maybe_dirty;
            }
        }
        let mem = self.int_malloc(av, tc, bytes)?;
        if mem == 0 {
            return Ok(0);
        }
        let p = Chunk::from_mem(mem);
        if p.is_mmapped(&self.mem)? {
            if self.params.perturb_byte != 0 {
                self.mem.fill(mem, 0, bytes)?;
            }
            return Ok(mem);
        }
        let mut csz = p.size(&self.mem)?;
        if self.params.perturb_byte == 0 && p == old_top && csz > old_top_size {
            csz = old_top_size;
        }
        self.mem.fill(mem, 0, csz - SIZE_SZ)?;
        Ok(mem)
    }

    /// `realloc`, glibc's way: `realloc(p, 0)` frees and returns 0; on
    /// failure the old block is untouched.
    pub fn realloc(&mut self, tc: &mut ThreadCache, old_mem: usize, bytes: usize) -> Res<usize, M> {
        if old_mem == 0 {
            return self.malloc(tc, bytes);
        }
        if bytes == 0 {
            self.free(tc, old_mem)?;
            return Ok(0);
        }
        self.realloc_block(tc, old_mem, bytes)
    }

    /// `realloc` of a live block to a non-zero size (the part that needs the arena).
    pub fn realloc_block(&mut self, tc: &mut ThreadCache, old_mem: usize, bytes: usize) -> Res<usize, M> {
        let oldp = Chunk::from_mem(old_mem);
        if self.mem.was_unmapped(oldp.0) {
            return Err(self.mem.corruption("realloc(): block already freed"));
        }
        let old_size = oldp.size(&self.mem)?;
        let mmapped = oldp.is_mmapped(&self.mem)?;
        if !mmapped {
            self.ensure_tcache_locked(tc)?;
        }
        if oldp.0 > old_size.wrapping_neg() || oldp.misaligned() {
            return Err(self.mem.corruption("realloc(): invalid pointer"));
        }
        crate::harden::check_in_use(
            &mut self.mem,
            oldp,
            "realloc(): block already freed",
            "realloc(): invalid chunk header",
        )?;
        if !mmapped {
            crate::harden::check_next_in_use(
                &mut self.mem,
                oldp,
                old_size,
                "realloc(): block already freed",
            )?;
        }
        if self.params.hardened && !mmapped && self.realloc_of_cached(tc.tcache, old_mem, old_size)? {
            return Err(self.mem.corruption("realloc(): block already freed"));
        }
        let Some(nb) = checked_request2size(bytes) else {
            self.last_error = ENOMEM;
            return Ok(0);
        };
        if mmapped {
            if let Some(newp) = self.mremap_chunk(oldp, nb)? {
                return Ok(newp.mem());
            }
            if old_size - SIZE_SZ >= nb {
                return Ok(old_mem);
            }
            let new_mem = self.malloc(tc, bytes)?;
            if new_mem == 0 {
                return Ok(0);
            }
            self.mem.copy(new_mem, old_mem, old_size - CHUNK_HDR_SZ)?;
            self.munmap_chunk(oldp)?;
            return Ok(new_mem);
        }
        let av = self.arena_for_chunk(oldp)?;
        let t = tc.tcache;
        let new_mem = self.locked(av, |a| a.int_realloc(av, oldp, old_size, nb, t))?;
        if new_mem != 0 || self.retired {
            return Ok(new_mem);
        }
        // The chunk's arena is out of memory: try the others.
        let new_mem = self.malloc(tc, bytes)?;
        if new_mem != 0 {
            self.mem.copy(new_mem, old_mem, old_size - SIZE_SZ)?;
            self.free(tc, old_mem)?;
        }
        Ok(new_mem)
    }

    /// Whether a block given to realloc is in the thread's tcache (its key
    /// word says it may be: the walk is free's double-free test).
    fn realloc_of_cached(&self, tc: Tcache, mem: usize, size: usize) -> Res<bool, M> {
        let cfg = self.tcache_config();
        let idx = csize2tidx(size);
        if !tc.exists() || idx >= cfg.bins || Tcache::key_of(&self.mem, mem)? != cfg.key {
            return Ok(false);
        }
        tc.holds(&self.mem, mem, idx, cfg.count.max(1))
    }

    /// `memalign` (`_mid_memalign`): a non-power-of-two alignment is rounded
    /// up; an alignment above `SIZE_MAX / 2 + 1` fails with EINVAL.
    pub fn memalign(&mut self, tc: &mut ThreadCache, alignment: usize, bytes: usize) -> Res<usize, M> {
        if alignment <= MALLOC_ALIGNMENT {
            return self.malloc(tc, bytes);
        }
        let mut alignment = alignment.max(MINSIZE);
        if alignment > usize::MAX / 2 + 1 {
            self.last_error = EINVAL;
            return Ok(0);
        }
        if !alignment.is_power_of_two() {
            alignment = alignment.next_power_of_two();
        }
        let av = self.thread_arena(tc)?;
        self.in_arena_as(tc, av, false, |a, av, t| a.int_memalign(av, alignment, bytes, t))
    }

    /// `posix_memalign`: `Ok(Ok(ptr))`, or `Ok(Err(errno))` (EINVAL for an
    /// alignment that is not a power-of-two multiple of the pointer size).
    pub fn posix_memalign(
        &mut self,
        tc: &mut ThreadCache,
        alignment: usize,
        bytes: usize,
    ) -> Res<Result<usize, i32>, M> {
        let word = core::mem::size_of::<usize>();
        if alignment == 0 || alignment % word != 0 || !(alignment / word).is_power_of_two() {
            return Ok(Err(EINVAL));
        }
        let mem = self.memalign(tc, alignment, bytes)?;
        Ok(if mem == 0 { Err(ENOMEM) } else { Ok(mem) })
    }

    /// `aligned_alloc` with C17's (and glibc 2.38's) rule: the alignment must
    /// be a power of two, else EINVAL.
    pub fn aligned_alloc(&mut self, tc: &mut ThreadCache, alignment: usize, bytes: usize) -> Res<usize, M> {
        if !alignment.is_power_of_two() {
            self.last_error = EINVAL;
            return Ok(0);
        }
        self.memalign(tc, alignment, bytes)
    }

    /// `valloc`: page-aligned memory.
    pub fn valloc(&mut self, tc: &mut ThreadCache, bytes: usize) -> Res<usize, M> {
        let page = self.mem.page_size();
        self.memalign(tc, page, bytes)
    }

    /// `pvalloc`: page-aligned memory, the size rounded up as glibc 2.36 does.
    pub fn pvalloc(&mut self, tc: &mut ThreadCache, bytes: usize) -> Res<usize, M> {
        let page = self.mem.page_size();
        let Some(rounded) = bytes.checked_add(page - 1) else {
            self.last_error = ENOMEM;
            return Ok(0);
        };
        // glibc masks with -(pagesize - 1), which keeps bit 0: reproduced.
        let rounded = rounded & (page - 1).wrapping_neg();
        self.memalign(tc, page, rounded)
    }

    /// `malloc_usable_size`: needs no arena, so no lock.
    pub fn usable_size(m: &M, mem: usize) -> Res<usize, M> {
        if mem == 0 {
            return Ok(0);
        }
        let p = Chunk::from_mem(mem);
        let raw = p.size_field(m)?;
        if raw & IS_MMAPPED != 0 {
            return Ok((raw & !SIZE_BITS).wrapping_sub(CHUNK_HDR_SZ));
        }
        if p.inuse(m)? {
            return Ok((raw & !SIZE_BITS).wrapping_sub(SIZE_SZ));
        }
        Ok(0)
    }

    /// `mallopt`: consolidate, then apply the setting; `true` on success.
    pub fn mallopt(&mut self, param: i32, value: i32) -> Res<bool, M> {
        if !self.retired {
            let main = self.main;
            self.locked(main, |a| a.consolidate(main))?;
        }
        Ok(self.params.set(param, value))
    }

    /// `malloc_trim`: in every arena, release the whole free pages inside
    /// free chunks, and in the main arena the top above `pad`. Returns
    /// whether memory was released.
    pub fn trim(&mut self, pad: usize) -> Res<bool, M> {
        if self.retired {
            return Ok(false);
        }
        let mut released = false;
        let mut av = self.main;
        for _ in 0..crate::arena::MAX_ARENAS {
            released |= self.locked(av, |a| a.trim_arena(av, pad))?;
            av = av.next(&self.mem)?;
            if av == self.main || av.0 == 0 {
                break;
            }
        }
        Ok(released)
    }

    /// `mtrim`: one arena's share of [`Allocator::trim`] (`av` locked).
    fn trim_arena(&mut self, av: Arena, pad: usize) -> Res<bool, M> {
        self.consolidate(av)?;
        let page = self.mem.page_size();
        let page_bin = crate::bins::bin_index(page);
        let mut released = false;
        for i in 1..crate::state::NBINS {
            if i != 1 && i < page_bin {
                continue;
            }
            let bin = av.bin_at(i);
            let mut p = bin.fd(&self.mem)?;
            while p != bin {
                let size = p.size(&self.mem)?;
                if size > page - 1 + crate::chunk::MALLOC_CHUNK_SZ {
                    let start = crate::chunk::align_up(p.0 + crate::chunk::MALLOC_CHUNK_SZ, page);
                    let len = size - (start - p.0);
                    if len > page - 1 {
                        self.mem.discard(start, len & !(page - 1));
                        released = true;
                    }
                }
                p = p.fd(&self.mem)?;
            }
        }
        if av == self.main {
            released |= self.systrim(pad, av)?;
        }
        Ok(released)
    }

    /// Flush a thread's cache into its arena at thread exit
    /// (`tcache_thread_shutdown`); the thread gets no new cache afterwards.
    pub fn thread_exit(&mut self, tc: &mut ThreadCache) -> Res<(), M> {
        let cache = tc.tcache;
        tc.tcache = Tcache(0);
        tc.shutting_down = true;
        if !cache.exists() {
            return self.detach_thread(tc);
        }
        for idx in 0..TCACHE_MAX_BINS {
            loop {
                let e = cache.entry(&self.mem, idx)?;
                if e == 0 {
                    break;
                }
                if !crate::chunk::is_aligned(e) {
                    return Err(self
                        .mem
                        .corruption("tcache_thread_shutdown(): unaligned tcache chunk detected"));
                }
                cache.get(&mut self.mem, idx, self.tcache_key)?;
                self.free(tc, e)?;
            }
        }
        self.free(tc, cache.0)?;
        self.detach_thread(tc)
    }
}
