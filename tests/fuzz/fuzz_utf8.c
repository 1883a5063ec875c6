/* fuzz_utf8.c - the library's UTF-8 validator against the reference one.

   wsr__utf8_valid (whole texts) and wsr_utf8_feed (texts in pieces, as
   fragments arrive) must agree with fuzz_utf8_ref in fuzz_common.h, which
   decodes code points instead of following byte ranges:

   - a whole text is valid exactly when the reference says so;
   - fed in pieces cut where the input says, the feed fails on the piece
     holding the first byte after which no ending can make the text valid
     (RFC 6455 §8.1 "fail fast"), not before and not later;
   - at the end, *state is 0 exactly for a complete text. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const unsigned char *s;
    size_t n, i, bad = 0;
    uint32_t st = 0;
    int ref, ok = 1;
    unsigned cut;
    if (size < 1) return 0;
    cut = data[0];                   /* piece sizes for the incremental feed */
    s = data + 1;
    n = size - 1;
    ref = fuzz_utf8_ref(s, n);
    FUZZ_CHECK(wsr__utf8_valid(s, n) == (ref == 1));

    /* The first impossible byte, by the reference: the shortest prefix that
       cannot be completed (a binary search, since every longer prefix
       cannot be either). */
    if (ref == 0) {
        size_t lo = 1, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (fuzz_utf8_ref(s, mid) == 0) hi = mid; else lo = mid + 1;
        }
        bad = lo;
        FUZZ_CHECK(fuzz_utf8_ref(s, bad - 1) != 0);
    }

    /* Fed in pieces of 1..(cut % 16 + 1) bytes, the sizes varying. */
    for (i = 0; i < n && ok;) {
        size_t piece = 1 + (cut + i * 7) % (cut % 16 + 1);
        if (piece > n - i) piece = n - i;
        ok = wsr_utf8_feed(&st, s + i, piece);
        if (!ok) FUZZ_CHECK(bad > i && bad <= i + piece);    /* the piece with the bad byte */
        i += piece;
    }
    if (ok) {
        FUZZ_CHECK(bad == 0);
        FUZZ_CHECK((st == 0) == (ref == 1));
    }
    /* An empty piece changes nothing. */
    if (ok) {
        uint32_t before = st;
        FUZZ_CHECK(wsr_utf8_feed(&st, s, 0) == 1 && st == before);
    }
    return 0;
}
