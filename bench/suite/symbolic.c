/* symbolic: a computer-algebra-like churn of small objects.

   Each round builds a random expression tree (sums and products of numbers
   and symbols), differentiates it by two variables (the product rule copies
   whole subtrees) and simplifies the results (folding numbers with
   arbitrary-precision adds and multiplies, flattening nested sums and
   products with realloc, dropping zeros and ones), then frees what it no
   longer needs. The last 64 results stay in a cache, so lifetimes range
   from a few microseconds to many rounds. The objects are tree nodes (24
   bytes), child arrays (16..48+), names (2..24) and digit arrays (16..264):
   the 8-256 byte mix of a symbolic-math program.

   Checks: every node and every digit array carries a seal made of its kind,
   length and address, checked before its free; names end where their first
   byte says. Numbers are normalised, so a fold that read freed memory would
   show as a broken seal or a crash, not as a fast run. */
#include "bench.h"

#include <string.h>

enum { NUM, SYM, ADD, MUL };

typedef struct node {
  uint32_t kind;
  uint32_t n; /* NUM: digits; SYM: name length; ADD, MUL: children */
  uint64_t seal;
  union {
    uint64_t *digits; /* digits[0] is the array's seal, then n base-2^32 digits, least significant first */
    char *name;
    struct node **kids;
  } u;
} node_t;

enum { MAX_DIGITS = 32, CACHE = 64 };

static tally_t tally;

static uint64_t seal_of(const void *p, uint64_t a, uint64_t b) {
  uint64_t x = (uint64_t)(uintptr_t)p ^ (a << 40) ^ (b << 8) ^ 0x5bd1e995u;
  x ^= x >> 29;
  return x * 0xbf58476d1ce4e5b9ull;
}

static void *sym_alloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    bench_oom("malloc", n);
  tally.allocs++;
  return p;
}

static void *sym_realloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (q == NULL)
    bench_oom("realloc", n);
  return q;
}

static void sym_free(void *p) {
  free(p);
  tally.frees++;
}

/* ---------------------------------------------------------------- numbers */

static node_t *new_node(uint32_t kind, uint32_t n) {
  node_t *t = sym_alloc(sizeof *t);
  t->kind = kind;
  t->n = n;
  t->seal = seal_of(t, kind, n);
  return t;
}

/* A NUM whose digit array has room for `room` digits; n set by the caller. */
static node_t *new_num(uint32_t room) {
  node_t *t = new_node(NUM, room);
  uint64_t *d = sym_alloc(sizeof *d * (room + 1));
  d[0] = seal_of(d, room, 0);
  memset(d + 1, 0, sizeof *d * room);
  t->u.digits = d;
  return t;
}

/* Drop leading zero digits (keeping one) and reseal. */
static void normalise(node_t *t) {
  uint64_t *d = t->u.digits;
  uint32_t room = t->n;
  uint32_t n = room;
  while (n > 1 && d[n] == 0)
    n--;
  t->n = n;
  t->seal = seal_of(t, NUM, n);
  d[0] = seal_of(d, room, 0) ^ n; /* the array remembers its room */
}

static uint32_t num_room(const node_t *t) {
  const uint64_t *d = t->u.digits;
  for (uint32_t room = t->n; room <= MAX_DIGITS + 1; room++)
    if (d[0] == (seal_of(d, room, 0) ^ t->n))
      return room;
  return 0; /* damaged */
}

static node_t *small_num(uint64_t v) {
  node_t *t = new_num(1);
  t->u.digits[1] = v & 0xffffffffu;
  normalise(t);
  return t;
}

static int is_value(const node_t *t, uint64_t v) {
  return t->kind == NUM && t->n == 1 && t->u.digits[1] == v;
}

static node_t *num_add(const node_t *a, const node_t *b) {
  uint32_t room = (a->n > b->n ? a->n : b->n) + 1;
  if (room > MAX_DIGITS)
    room = MAX_DIGITS;
  node_t *s = new_num(room);
  uint64_t carry = 0;
  for (uint32_t i = 1; i <= room; i++) {
    uint64_t x = carry + (i <= a->n ? a->u.digits[i] : 0) + (i <= b->n ? b->u.digits[i] : 0);
    s->u.digits[i] = x & 0xffffffffu;
    carry = x >> 32;
  }
  normalise(s);
  return s;
}

static node_t *num_mul(const node_t *a, const node_t *b) {
  uint32_t room = a->n + b->n;
  if (room > MAX_DIGITS)
    room = MAX_DIGITS; /* modulo 2^(32*MAX_DIGITS): sizes stay bounded */
  node_t *p = new_num(room);
  uint64_t *d = p->u.digits;
  for (uint32_t i = 1; i <= a->n; i++) {
    uint64_t carry = 0;
    for (uint32_t j = 1; j <= b->n && i + j - 1 <= room; j++) {
      unsigned __int128 x = (unsigned __int128)a->u.digits[i] * b->u.digits[j] + d[i + j - 1] + carry;
      d[i + j - 1] = (uint64_t)x & 0xffffffffu;
      carry = (uint64_t)(x >> 32);
    }
  }
  normalise(p);
  return p;
}

/* ------------------------------------------------------------------ trees */

static void free_tree(node_t *t) {
  if (t->seal != seal_of(t, t->kind, t->n)) {
    tally.bad++; /* leak what it points to: following it would crash */
    sym_free(t);
    return;
  }
  switch (t->kind) {
  case NUM: {
    if (num_room(t) == 0)
      tally.bad++;
    sym_free(t->u.digits);
    break;
  }
  case SYM:
    if ((unsigned char)t->u.name[0] != t->n || t->u.name[t->n] != 0)
      tally.bad++;
    sym_free(t->u.name);
    break;
  default:
    for (uint32_t i = 0; i < t->n; i++)
      free_tree(t->u.kids[i]);
    sym_free(t->u.kids);
  }
  sym_free(t);
}

static node_t *new_sym(const char *name, uint32_t len) {
  node_t *t = new_node(SYM, len);
  char *s = sym_alloc(len + 1);
  memcpy(s, name, len);
  s[0] = (char)len; /* the name's first byte is its length: the check */
  s[len] = 0;
  t->u.name = s;
  return t;
}

static node_t *new_op(uint32_t kind, uint32_t n) {
  node_t *t = new_node(kind, n);
  t->u.kids = sym_alloc(sizeof *t->u.kids * n);
  return t;
}

static const char letters[] = "xyzabcdefghijklmnopqrstuvw";

static node_t *gen(rng_t *r, int depth) {
  uint64_t x = rnd(r);
  if (depth == 0 || x % 4 == 0) {
    if (x & 16) {
      uint32_t n = (uint32_t)rnd_log_range(r, 1, MAX_DIGITS / 2);
      node_t *t = new_num(n);
      for (uint32_t i = 1; i <= n; i++)
        t->u.digits[i] = rnd(r) & 0xffffffffu;
      if (n == 1)
        t->u.digits[1] %= 5; /* small constants, zeros and ones among them */
      normalise(t);
      return t;
    }
    char name[24];
    uint32_t len = (x & 32) ? 2 : (uint32_t)rnd_range(r, 3, 23); /* 2: a variable */
    for (uint32_t i = 0; i < len; i++)
      name[i] = letters[(x >> (8 + i % 7)) % 26];
    name[1] = letters[(x >> 40) % 4]; /* one symbol in four is x */
    return new_sym(name, len);
  }
  uint32_t n = (uint32_t)rnd_range(r, 2, 3);
  node_t *t = new_op((x & 8) ? ADD : MUL, n);
  for (uint32_t i = 0; i < n; i++)
    t->u.kids[i] = gen(r, depth - 1);
  return t;
}

static node_t *copy(const node_t *t) {
  switch (t->kind) {
  case NUM: {
    node_t *c = new_num(t->n);
    memcpy(c->u.digits + 1, t->u.digits + 1, sizeof(uint64_t) * t->n);
    normalise(c);
    return c;
  }
  case SYM:
    return new_sym(t->u.name, t->n);
  default: {
    node_t *c = new_op(t->kind, t->n);
    for (uint32_t i = 0; i < t->n; i++)
      c->u.kids[i] = copy(t->u.kids[i]);
    return c;
  }
  }
}

static node_t *deriv(const node_t *t, char var) {
  switch (t->kind) {
  case NUM:
    return small_num(0);
  case SYM:
    return small_num(t->n == 2 && t->u.name[1] == var);
  case ADD: {
    node_t *d = new_op(ADD, t->n);
    for (uint32_t i = 0; i < t->n; i++)
      d->u.kids[i] = deriv(t->u.kids[i], var);
    return d;
  }
  default: { /* product rule: one term per factor */
    node_t *d = new_op(ADD, t->n);
    for (uint32_t i = 0; i < t->n; i++) {
      node_t *term = new_op(MUL, t->n);
      for (uint32_t j = 0; j < t->n; j++)
        term->u.kids[j] = i == j ? deriv(t->u.kids[j], var) : copy(t->u.kids[j]);
      d->u.kids[i] = term;
    }
    return d;
  }
  }
}

/* Consumes t. */
static node_t *simplify(node_t *t) {
  if (t->kind == NUM || t->kind == SYM)
    return t;
  uint32_t kind = t->kind;
  node_t *folded = NULL; /* the numbers of this sum/product, folded into one */
  node_t **out = NULL;   /* the other children (flattened) */
  uint32_t nout = 0, cap = 0;
  for (uint32_t i = 0; i < t->n; i++) {
    node_t *k = simplify(t->u.kids[i]);
    node_t **items = &k;
    uint32_t nitems = 1;
    node_t *shell = NULL;
    if (k->kind == kind) { /* flatten: take the grandchildren */
      items = k->u.kids;
      nitems = k->n;
      shell = k;
    }
    for (uint32_t j = 0; j < nitems; j++) {
      node_t *c = items[j];
      if (c->kind == NUM) {
        node_t *f = folded == NULL ? copy(c) : kind == ADD ? num_add(folded, c) : num_mul(folded, c);
        if (folded != NULL)
          free_tree(folded);
        free_tree(c);
        folded = f;
        continue;
      }
      if (nout == cap) {
        cap = cap ? 2 * cap : 2;
        out = sym_realloc(out, sizeof *out * cap);
        if (cap == 2)
          tally.allocs++; /* realloc(NULL, n) was a malloc */
      }
      out[nout++] = c;
    }
    if (shell != NULL) {
      sym_free(shell->u.kids);
      sym_free(shell);
    }
  }
  sym_free(t->u.kids);
  sym_free(t);

  if (folded != NULL && kind == MUL && is_value(folded, 0)) {
    for (uint32_t i = 0; i < nout; i++)
      free_tree(out[i]);
    if (out != NULL)
      sym_free(out);
    return folded;
  }
  if (folded != NULL && is_value(folded, kind == ADD ? 0 : 1) && nout > 0) {
    free_tree(folded);
    folded = NULL;
  }
  uint32_t n = nout + (folded != NULL);
  node_t *res;
  if (n == 0) {
    res = small_num(kind == MUL);
  } else if (n == 1) {
    res = folded != NULL ? folded : out[0];
  } else {
    res = new_op(kind, n);
    for (uint32_t i = 0; i < nout; i++)
      res->u.kids[i] = out[i];
    if (folded != NULL)
      res->u.kids[nout] = folded;
  }
  if (out != NULL)
    sym_free(out);
  return res;
}

int wl_symbolic(void) {
  long rounds = bench_scaled(12000);
  rng_t r;
  rng_seed(&r, 101);
  node_t *cache[CACHE] = {0};
  unsigned next = 0;

  double t0 = bench_now();
  for (long round = 0; round < rounds; round++) {
    node_t *t = gen(&r, (int)rnd_range(&r, 3, 6));
    for (int v = 0; v < 2; v++) {
      node_t *d = simplify(deriv(t, v ? 'y' : 'x'));
      if (cache[next] != NULL)
        free_tree(cache[next]);
      cache[next] = d;
      next = (next + 1) % CACHE;
    }
    free_tree(simplify(t));
  }
  for (int i = 0; i < CACHE; i++)
    if (cache[i] != NULL)
      free_tree(cache[i]);
  double elapsed = bench_now() - t0;
  return bench_report("symbolic", elapsed, &tally, "");
}
