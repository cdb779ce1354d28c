#!/usr/bin/env python3
"""Replay an allocation trace under different tunables and compare the series.

    python examples/replay_trace.py                     # a generated trace
    python examples/replay_trace.py prog.trace          # a trace file (slot format)
    python examples/replay_trace.py --mtrace mtrace.log # a glibc MALLOC_TRACE log
    python examples/replay_trace.py --ltrace ltrace.log # an ltrace log of the malloc family
    python examples/replay_trace.py --bench 1000000     # time a replay of N random operations

Writes replay.png (with matplotlib) and timeline.svg (the first 80 operations)
into the current directory, or the directory given with --out.
"""

import argparse
import os
import random
import time

from ptmalloc_rs import Trace, load_ltrace, load_mtrace, replay, timeline


def generated(n_ops, seed=7):
    """A program-like mix: many small short-lived objects, some long-lived, a few big buffers."""
    rng = random.Random(seed)
    trace = Trace()
    live = []
    for _ in range(n_ops):
        if live and rng.random() < 0.45:
            trace.free(live.pop(rng.randrange(len(live))))
        elif live and rng.random() < 0.05:
            slot = rng.choice(live)
            trace.realloc(slot, rng.randrange(16, 4096))
        else:
            size = rng.choice((rng.randrange(8, 128), rng.randrange(128, 1024), rng.randrange(1024, 200000)))
            if size > 65536 and rng.random() < 0.9:
                size = rng.randrange(8, 128)
            live.append(trace.malloc(size))
    return trace


CONFIGS = {
    "glibc defaults": {},
    "no tcache, no fastbins": {"tcache_count": 0, "mxfast": 0},
    "mmap_threshold 4 KiB": {"mmap_threshold": 4096},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", nargs="?")
    parser.add_argument("--mtrace")
    parser.add_argument("--ltrace")
    parser.add_argument("--bench", type=int, metavar="N")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()

    if args.bench:
        trace = generated(args.bench, seed=1)
        started = time.perf_counter()
        rep = replay(trace, every=0)
        wall = time.perf_counter() - started
        print(
            f"replay of {len(trace)} ops: {wall:.2f} s wall ({rep.seconds:.2f} s in the loop, "
            f"{1e9 * rep.seconds / len(trace):.0f} ns/op); peak live {rep.peak_live}, "
            f"peak footprint {rep.peak_footprint}"
        )
        return

    if args.mtrace:
        trace = load_mtrace(args.mtrace)
    elif args.ltrace:
        trace = load_ltrace(args.ltrace)
    elif args.trace:
        trace = Trace.load(args.trace)
    else:
        trace = generated(20000)
    print(f"{trace!r}; {len(trace.skipped)} calls not expressible in slots")
    print("first operations:\n" + "".join(f"  {op}\n" for op in trace.ops[:8]))

    results = {}
    for name, tunables in CONFIGS.items():
        rep = replay(trace, **tunables)
        results[name] = rep
        print(f"[{name}] {tunables}\n  " + rep.summary().replace("\n", "\n  "))
        print(f"  counters: {dict(sorted(rep.counters.items()))}")

    os.makedirs(args.out, exist_ok=True)
    try:
        path = os.path.join(args.out, "replay.png")
        results["glibc defaults"].plot(path, title="glibc defaults")
        print(f"wrote {path}")
    except ImportError as exc:
        print(f"no plot: {exc}")
    path = os.path.join(args.out, "timeline.svg")
    with open(path, "w", encoding="utf-8") as out:
        out.write(timeline(trace[:80]))
    print(f"wrote {path} (the first 80 operations)")


if __name__ == "__main__":
    main()
