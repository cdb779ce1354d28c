//! Arenas in a private instance: threads bound to arenas on heaps, chunks
//! that know their arena, heaps that grow, multiply and go away, arenas
//! reused after their threads exit, and `arena_max`.

use ptmalloc_core::chunk::NON_MAIN_ARENA;
use ptmalloc_core::heap::{Heap, HEAP_MAX_SIZE};
use ptmalloc_core::stats::HeapInfo;
use ptmalloc_core::{Allocator, Chunk, Params, Tcache, ThreadCache};
use ptmalloc_sim::{SimMemory, MAIN_ARENA};

type Instance = Allocator<SimMemory>;

fn instance(params: Params) -> Instance {
    Instance::new(SimMemory::new(), MAIN_ARENA, 0x1234_5678_9abc_def0, params).unwrap()
}

fn check_all(a: &Instance, threads: &[ThreadCache]) {
    let caches: Vec<Tcache> = threads.iter().map(|t| t.tcache).collect();
    for av in a.arenas() {
        if let Err(v) = a.check_arena(av, &caches).unwrap() {
            panic!("arena {:#x}: {v:?}", av.0);
        }
    }
}

fn fill(a: &mut Instance, p: usize, n: usize, seed: u8) {
    let data: Vec<u8> = (0..n).map(|i| seed.wrapping_add(i as u8)).collect();
    a.mem.write_bytes(p, &data).unwrap();
}

fn verify(a: &Instance, p: usize, n: usize, seed: u8) {
    let data = a.mem.read_bytes(p, n).unwrap();
    for (i, &b) in data.iter().enumerate() {
        assert_eq!(b, seed.wrapping_add(i as u8), "block {p:#x} byte {i} changed");
    }
}

fn heap_infos(a: &Instance) -> Vec<HeapInfo> {
    a.arenas().map(|av| a.heap_info(av).unwrap()).collect()
}

#[test]
fn threads_get_arenas_on_aligned_heaps_and_chunks_know_them() {
    let mut a = instance(Params::default());
    let mut threads = vec![ThreadCache::default(); 16];
    let mut blocks = Vec::new();
    for (t, tc) in threads.iter_mut().enumerate() {
        for i in 0..50 {
            let n = 24 + (i * 37 + t * 11) % 3000;
            let p = a.malloc(tc, n).unwrap();
            assert_ne!(p, 0);
            fill(&mut a, p, n, (t * 7 + i) as u8);
            blocks.push((t, p, n, (t * 7 + i) as u8));
        }
    }
    // The first thread has the main arena; 8 more arenas (arena_test), then
    // the limit of 8 per core (1 simulated core) stops the creation.
    let arenas: Vec<_> = a.arenas().collect();
    assert_eq!(arenas.len(), 9, "arenas: {arenas:x?}");
    assert_eq!(threads[0].arena, a.main_arena());
    for &(t, p, _, _) in &blocks {
        let c = Chunk::from_mem(p);
        let av = a.arena_for_chunk(c).unwrap();
        assert_eq!(av, threads[t].arena, "block of thread {t}");
        let non_main = c.size_field(&a.mem).unwrap() & NON_MAIN_ARENA != 0;
        assert_eq!(non_main, av != a.main_arena());
        if non_main {
            // The arena's state sits in the first heap, right after heap_info.
            assert_eq!(Heap::of(av.0).0 % HEAP_MAX_SIZE, 0);
        }
    }
    check_all(&a, &threads);
    // Cross-thread frees: every block freed by another thread.
    for (k, &(t, p, n, seed)) in blocks.iter().enumerate() {
        verify(&a, p, n, seed);
        let other = (t + 1 + k % 5) % threads.len();
        a.free(&mut threads[other], p).unwrap();
        if k % 97 == 0 {
            check_all(&a, &threads);
        }
    }
    check_all(&a, &threads);
    let infos = heap_infos(&a);
    assert_eq!(infos.len(), 9);
    assert!(infos[1..].iter().all(|h| h.subheaps == Some(1)));
}

#[test]
fn heaps_grow_multiply_and_are_unmapped_when_empty() {
    let mut a = instance(Params::default());
    let mut main_thread = ThreadCache::default();
    let mut tc = ThreadCache::default();
    let first = a.malloc(&mut main_thread, 16).unwrap();
    a.free(&mut main_thread, first).unwrap();
    // 100 KiB blocks stay below the mmap threshold: 1200 of them need two heaps.
    let mut blocks = Vec::new();
    for i in 0..1200 {
        let p = a.malloc(&mut tc, 100 * 1024).unwrap();
        assert_ne!(p, 0);
        assert!(
            Chunk::from_mem(p).size_field(&a.mem).unwrap() & 2 == 0,
            "not mmapped"
        );
        fill(&mut a, p, 64, i as u8);
        blocks.push(p);
    }
    let av = tc.arena;
    assert_ne!(av, a.main_arena());
    let grown = a.heap_info(av).unwrap();
    assert!(grown.subheaps.unwrap() >= 2, "{grown:?}");
    assert!(grown.system_mem > 100 << 20);
    check_all(&a, &[main_thread, tc]);
    for (i, &p) in blocks.iter().enumerate().rev() {
        verify(&a, p, 64, i as u8);
        a.free(&mut tc, p).unwrap();
    }
    check_all(&a, &[main_thread, tc]);
    let shrunk = a.heap_info(av).unwrap();
    assert_eq!(shrunk.subheaps, Some(1), "{shrunk:?}");
    assert!(shrunk.system_mem < 1 << 20, "{shrunk:?}");
    // The arena still serves.
    let p = a.malloc(&mut tc, 1000).unwrap();
    assert_eq!(a.arena_for_chunk(Chunk::from_mem(p)).unwrap(), av);
}

#[test]
fn an_exited_threads_arena_is_reused_before_a_new_one() {
    let mut a = instance(Params::default());
    let mut t0 = ThreadCache::default();
    let mut t1 = ThreadCache::default();
    a.malloc(&mut t0, 10).unwrap();
    let kept = a.malloc(&mut t1, 10).unwrap();
    let av1 = t1.arena;
    assert_eq!(a.arenas().count(), 2);
    a.thread_exit(&mut t1).unwrap();
    let mut t2 = ThreadCache::default();
    a.malloc(&mut t2, 10).unwrap();
    assert_eq!(t2.arena, av1, "the free arena is taken again");
    assert_eq!(a.arenas().count(), 2);
    a.free(&mut t2, kept).unwrap();
    check_all(&a, &[t0, t2]);
}

#[test]
fn arena_max_one_keeps_every_chunk_in_the_main_arena() {
    let mut params = Params::default();
    assert!(params.set(ptmalloc_core::params::opt::M_ARENA_MAX, 1));
    let mut a = instance(params);
    let mut threads = vec![ThreadCache::default(); 8];
    for tc in threads.iter_mut() {
        for n in [10, 100, 1000, 5000] {
            let p = a.malloc(tc, n).unwrap();
            assert_eq!(Chunk::from_mem(p).size_field(&a.mem).unwrap() & NON_MAIN_ARENA, 0);
        }
        assert_eq!(tc.arena, a.main_arena());
    }
    assert_eq!(a.arenas().count(), 1);
    check_all(&a, &threads);
}

#[test]
fn malloc_info_lists_every_arena_with_its_heaps() {
    let mut a = instance(Params::default());
    let mut threads = [ThreadCache::default(); 4];
    for tc in threads.iter_mut() {
        let p = a.malloc(tc, 200).unwrap();
        a.free(tc, p).unwrap();
    }
    let infos = heap_infos(&a);
    let mut out = String::new();
    ptmalloc_core::stats::write_malloc_info(&mut out, infos.iter(), a.mmaps).unwrap();
    for n in 0..4 {
        assert!(out.contains(&format!("<heap nr=\"{n}\">")), "{out}");
    }
    assert_eq!(
        out.matches("<aspace type=\"subheaps\" size=\"1\"/>").count(),
        3,
        "{out}"
    );
    let mut stats = String::new();
    a.write_malloc_stats(&mut stats).unwrap().unwrap();
    assert!(stats.contains("Arena 3:"), "{stats}");
}
