/* fuzz_common.h - what every fuzz target shares.

   Each target is one C99 file that defines LLVMFuzzerTestOneInput and
   includes this file, which pulls in the whole implementation. A target
   checks invariants with FUZZ_CHECK: a broken one prints where and what,
   then aborts, which libFuzzer (or driver.c, in the regression run)
   reports as a crash.

   Also here: a byte reader that turns fuzz input into decisions, a counting
   allocator (to prove that limits bound memory), and a UTF-8 decoder written
   independently of the library's, by code point arithmetic rather than by a
   table of byte ranges, so that the two can be compared. */
#ifndef WSR_FUZZ_COMMON_H
#define WSR_FUZZ_COMMON_H

#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Helpers a target may leave unused without a warning. */
#if defined(__GNUC__) || defined(__clang__)
#  define FUZZ_FN static __attribute__((unused))
#else
#  define FUZZ_FN static
#endif

/* A violated invariant: say which, then crash so the fuzzer keeps the input. */
#define FUZZ_CHECK(expr)                                                       \
    do {                                                                       \
        if (!(expr)) {                                                         \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n", __FILE__,  \
                    __LINE__, #expr);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Does an HTTP head of n bytes hold its blank line ("\r\n\r\n")? A parser
   that asks for more bytes (WSR_ERR_AGAIN) must not have had one. */
FUZZ_FN int fuzz_has_head_end(const char *head, size_t n) {
    size_t i;
    for (i = 3; i < n; i++)
        if (memcmp(head + i - 3, "\r\n\r\n", 4) == 0) return 1;
    return 0;
}

/* Is [p, p+n) inside [base, base+size)? */
FUZZ_FN int fuzz_within(const void *p, size_t n, const void *base, size_t size) {
    const unsigned char *q = (const unsigned char *)p, *b = (const unsigned char *)base;
    return q >= b && q <= b + size && n <= (size_t)(b + size - q);
}

/* ---- decisions from the input -------------------------------------------
   The first bytes of an input steer the target (which role, where to split);
   a reader hands them out and gives zeros once they run out, so every input
   is valid. */
typedef struct fuzz_reader { const uint8_t *p; size_t n, pos; } fuzz_reader;

FUZZ_FN unsigned fuzz_byte(fuzz_reader *r) { return r->pos < r->n ? r->p[r->pos++] : 0; }
FUZZ_FN unsigned fuzz_u16(fuzz_reader *r) { unsigned hi = fuzz_byte(r); return hi << 8 | fuzz_byte(r); }
/* Up to n bytes from the reader; *got says how many there were. */
FUZZ_FN const uint8_t *fuzz_bytes(fuzz_reader *r, size_t n, size_t *got) {
    const uint8_t *q = r->p + r->pos;
    *got = WSR__MIN(n, r->n - r->pos);
    r->pos += *got;
    return q;
}

/* ---- counting allocator --------------------------------------------------
   Every block carries its size in front, so frees can be counted. held is
   what is allocated now, peak the most ever held; fail_after > 0 makes the
   allocation with that number (1 = the first) and every later one fail. */
typedef struct fuzz_heap {
    size_t held, peak, count;
    size_t fail_after;
} fuzz_heap;

typedef union fuzz_block_head { size_t size; long double align_ld; void *align_p; uint64_t align_u; } fuzz_block_head;

FUZZ_FN void *fuzz_alloc(size_t size, void *user) {
    fuzz_heap *h = (fuzz_heap *)user;
    fuzz_block_head *b;
    h->count++;
    if (h->fail_after && h->count >= h->fail_after) return NULL;
    if (size > (size_t)1 << 30) return NULL;   /* the fuzzer's RSS limit would stop us first */
    b = (fuzz_block_head *)malloc(sizeof *b + size);
    if (!b) return NULL;
    b->size = size;
    h->held += size;
    if (h->held > h->peak) h->peak = h->held;
    return b + 1;
}

FUZZ_FN void fuzz_free(void *ptr, void *user) {
    fuzz_heap *h = (fuzz_heap *)user;
    fuzz_block_head *b;
    if (!ptr) return;
    b = (fuzz_block_head *)ptr - 1;
    FUZZ_CHECK(b->size <= h->held);
    h->held -= b->size;
    free(b);
}

FUZZ_FN wsr_allocator fuzz_allocator(fuzz_heap *h) {
    wsr_allocator a;
    memset(h, 0, sizeof *h);
    a.alloc_fn = fuzz_alloc;
    a.free_fn = fuzz_free;
    a.user = h;
    return a;
}

/* Mask keys for client protos: a fixed pattern is as good as random here,
   and keeps a crash reproducible. */
FUZZ_FN void fuzz_rand(void *buf, size_t n, void *user) {
    unsigned char *b = (unsigned char *)buf;
    uint32_t *seed = (uint32_t *)user;
    size_t i;
    for (i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        b[i] = (unsigned char)(*seed >> 16);
    }
}

/* ---- reference UTF-8 --------------------------------------------------
   Decodes each sequence into its code point and checks the value: the
   length must be the shortest for it, no surrogates (U+D800..DFFF), nothing
   above U+10FFFF (RFC 3629 §3-4). A sequence cut off by the end of the
   input is judged by the code points it could still become: the prefix is
   viable when some completion with continuation bytes is a valid code
   point. Returns 1 (valid, complete), 2 (valid so far, but it ends inside
   a sequence) or 0 (no continuation can make it valid). */
FUZZ_FN int fuzz_utf8_ref(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned b = s[i];
        size_t need, k;
        uint32_t lo, hi, min_cp;
        if (b < 0x80) { i++; continue; }
        if ((b & 0xE0) == 0xC0) { need = 2; lo = b & 0x1F; min_cp = 0x80; }
        else if ((b & 0xF0) == 0xE0) { need = 3; lo = b & 0x0F; min_cp = 0x800; }
        else if ((b & 0xF8) == 0xF0) { need = 4; lo = b & 0x07; min_cp = 0x10000; }
        else return 0;                             /* a continuation byte or F8..FF as a lead */
        for (k = 1; k < need && i + k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            lo = lo << 6 | (s[i + k] & 0x3F);
        }
        /* k bytes are present; the rest may be anything from 80 to BF. */
        hi = lo;
        {
            size_t m;
            for (m = k; m < need; m++) { lo = lo << 6; hi = hi << 6 | 0x3F; }
        }
        /* Does [lo, hi] meet [min_cp, 0x10FFFF] minus the surrogates? */
        if (hi < min_cp || lo > 0x10FFFF) return 0;
        if (lo < min_cp) lo = min_cp;
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        if (lo >= 0xD800 && hi <= 0xDFFF) return 0;
        if (k < need) return 2;                    /* cut off, but viable */
        i += need;
    }
    return 1;
}

#endif /* WSR_FUZZ_COMMON_H */
