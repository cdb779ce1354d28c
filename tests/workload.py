"""The main job's workload: a deterministic mix of what Python programs do to
an allocator (dicts, lists, strings, bytes, JSON, threads), printing a digest
of the results so runs can be compared across allocators."""
import hashlib
import json
import random
import threading

random.seed(2026)
digest = hashlib.sha256()

# Dict and list churn with objects of many sizes.
table = {}
for i in range(300_000):
    key = random.randrange(60_000)
    table[key] = [random.random()] * random.randrange(1, 48)
    if i % 3 == 0:
        table.pop(random.randrange(60_000), None)
digest.update(str(sum(len(v) for v in table.values())).encode())

# Strings and bytes growing and shrinking (realloc chains).
text = ""
for i in range(20_000):
    text += "x" * (i % 97)
    if len(text) > 200_000:
        text = text[len(text) // 3 :]
digest.update(text.encode())
blob = bytearray()
for i in range(2_000):
    blob.extend(bytes(i % 251 for _ in range(i % 700)))
digest.update(bytes(blob))

# JSON round trip of a large document.
doc = {str(k): {"v": v[:3], "n": len(v)} for k, v in list(table.items())[:50_000]}
digest.update(json.dumps(json.loads(json.dumps(doc)), sort_keys=True).encode())

# Threads allocating and freeing, handing objects to each other through a
# queue; each thread's result is deterministic whatever the interleaving.
results = [0] * 4
handoff = []
lock = threading.Lock()


def worker(k):
    local = []
    total = 0
    for i in range(40_000):
        local.append(bytearray((i * (k + 1)) % 900 + 1))
        if len(local) > 500:
            with lock:
                handoff.append(local.pop(0))
                if len(handoff) > 1000:
                    handoff.pop(0)
        total += len(local[-1])
    results[k] = total


threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
digest.update(str(results).encode())

print("entries:", len(table), "text:", len(text), "blob:", len(blob), "threads:", results)
print("digest:", digest.hexdigest())
