/* Replay an allocation trace under the system's malloc (glibc) and print,
 * for each call that returns a pointer, its offset from the start of the
 * heap (the program break before the first allocation), or NULL.
 *
 * The trace has one call per line, slots instead of addresses:
 *   m SLOT SIZE            slot = malloc(SIZE)
 *   c SLOT N SIZE          slot = calloc(N, SIZE)
 *   r SLOT SIZE            slot = realloc(slot, SIZE)
 *   a SLOT ALIGN SIZE      slot = memalign(ALIGN, SIZE)
 *   f SLOT                 free(slot); slot = NULL
 *
 * Nothing here allocates but the calls replayed: the trace is read with
 * read(2) into a static buffer and the output is written with write(2), so
 * stdio's buffers do not take a place in the heap.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_TRACE (16 << 20)
#define MAX_SLOTS 65536
#define MAX_OUT (8 << 20)

static char trace[MAX_TRACE];
static char out[MAX_OUT];
static size_t out_len;
static void *slots[MAX_SLOTS];

static void put_str(const char *s)
{
    while (*s && out_len < MAX_OUT)
        out[out_len++] = *s++;
}

static void put_offset(void *p, uintptr_t base)
{
    char digits[32];
    int n = 0;
    uintptr_t v;

    if (p == NULL) {
        put_str("NULL\n");
        return;
    }
    if ((uintptr_t)p < base) {
        put_str("-");
        v = base - (uintptr_t)p;
    } else {
        v = (uintptr_t)p - base;
    }
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && out_len < MAX_OUT)
        out[out_len++] = digits[--n];
    put_str("\n");
}

static size_t number(char **s)
{
    size_t v = 0;

    while (**s == ' ')
        (*s)++;
    while (**s >= '0' && **s <= '9')
        v = v * 10 + (size_t)(*(*s)++ - '0');
    return v;
}

int main(int argc, char **argv)
{
    uintptr_t base;
    ssize_t got;
    size_t len = 0;
    char *s, *end;
    int fd;

    if (argc != 2)
        return 2;
    fd = open(argv[1], O_RDONLY);
    if (fd < 0)
        return 2;
    while ((got = read(fd, trace + len, MAX_TRACE - 1 - len)) > 0)
        len += (size_t)got;
    close(fd);
    trace[len] = '\0';

    base = (uintptr_t)sbrk(0);
    s = trace;
    end = trace + len;
    while (s < end) {
        char op = *s++;
        size_t slot = number(&s) % MAX_SLOTS;
        size_t a, b;

        switch (op) {
        case 'm':
            slots[slot] = malloc(number(&s));
            put_offset(slots[slot], base);
            break;
        case 'c':
            a = number(&s);
            b = number(&s);
            slots[slot] = calloc(a, b);
            put_offset(slots[slot], base);
            break;
        case 'r':
            slots[slot] = realloc(slots[slot], number(&s));
            put_offset(slots[slot], base);
            break;
        case 'a':
            a = number(&s);
            b = number(&s);
            slots[slot] = memalign(a, b);
            put_offset(slots[slot], base);
            break;
        case 'f':
            free(slots[slot]);
            slots[slot] = NULL;
            break;
        default:
            break;
        }
        while (s < end && *s != '\n')
            s++;
        s++;
    }
    for (size_t off = 0; off < out_len;) {
        got = write(1, out + off, out_len - off);
        if (got <= 0)
            return 1;
        off += (size_t)got;
    }
    return 0;
}
