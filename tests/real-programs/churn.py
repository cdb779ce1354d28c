"""Deterministic dict/list/str churn with threads, for run.sh's python3-churn.

Every thread works on its own seeded data and hands its result back by
index, and the shared structures are combined order-independently, so the
printed output depends neither on scheduling nor on addresses (run.sh also
sets PYTHONHASHSEED=0).
"""
import hashlib
import queue
import random
import threading

NTHREADS = 4


def worker(idx, results):
    r = random.Random(1000 + idx)
    d = {}
    lst = []
    for i in range(60_000):
        k = "k%d_%d" % (r.randrange(20_000), idx)
        v = "".join(chr(97 + r.randrange(26)) for _ in range(r.randrange(1, 24)))
        d[k] = d.get(k, "") + v
        if len(d[k]) > 200:
            del d[k]
        lst.append((k, len(v)))
        if len(lst) > 5000:
            lst = [x for x in lst if x[1] % 3][-2500:]  # rebuild: frees many tuples at once
    # nested structures, then drop them
    tree = {}
    for i in range(20_000):
        a, b = r.randrange(100), r.randrange(100)
        tree.setdefault(a, {}).setdefault(b, []).append(str(i) * r.randrange(1, 6))
    n_leaves = sum(len(v2) for v1 in tree.values() for v2 in v1.values())
    del tree
    s = "|".join(sorted(d))
    h = hashlib.sha256(s.encode()).hexdigest()[:16]
    results[idx] = (len(d), sum(len(v) for v in d.values()), len(lst), n_leaves, h)


def pipeline():
    """Objects created in one thread and freed in another."""
    q = queue.Queue(maxsize=64)
    out = []
    lock = threading.Lock()

    def produce(seed):
        r = random.Random(seed)
        for _ in range(15_000):
            q.put([r.randrange(1000) for _ in range(r.randrange(1, 40))])
        q.put(None)

    def consume():
        total = 0
        count = 0
        while True:
            item = q.get()
            if item is None:
                break
            total += sum(item)
            count += 1
            del item
        with lock:
            out.append((count, total))

    prods = [threading.Thread(target=produce, args=(s,)) for s in (7, 8)]
    cons = [threading.Thread(target=consume) for _ in range(2)]
    for t in prods + cons:
        t.start()
    for t in prods + cons:
        t.join()
    return sum(c for c, _ in out), sum(t for _, t in out)


def main():
    results = [None] * NTHREADS
    threads = [threading.Thread(target=worker, args=(i, results)) for i in range(NTHREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, res in enumerate(results):
        print("thread %d: keys=%d chars=%d list=%d leaves=%d sha=%s" % ((i,) + res))

    count, total = pipeline()
    print("pipeline: items=%d total=%d" % (count, total))

    # big string building and splitting on the main thread
    r = random.Random(42)
    text = " ".join("w%d" % r.randrange(5000) for _ in range(300_000))
    freq = {}
    for w in text.split():
        freq[w] = freq.get(w, 0) + 1
    top = sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    print("words: distinct=%d top=%s" % (len(freq), top))
    big = [bytearray(r.randrange(1, 1 << 16)) for _ in range(2000)]
    print("bytearrays: total=%d" % sum(map(len, big)))
    del big
    s = set()
    for i in range(200_000):
        s.add(("t", i % 70_000, str(i % 1000)))
    print("set: %d" % len(s))


if __name__ == "__main__":
    main()
