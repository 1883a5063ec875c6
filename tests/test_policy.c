/* test_policy.c - the reconnection policy as pure functions: the backoff
   schedule with each jitter mode, and which errors are worth a retry.
   No sockets, no clock: random values are passed in. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

/* A small deterministic random source (xorshift32) for bound checks. */
static uint32_t rng_state = 2463534242u;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static wsr_backoff backoff(int initial, int max, double factor, wsr_jitter j) {
    wsr_backoff b;
    b.initial_ms = initial;
    b.max_ms = max;
    b.factor = factor;
    b.jitter = j;
    return b;
}

TEST(exponential_schedule_without_jitter) {
    wsr_backoff b = backoff(100, 1000, 2.0, WSR_JITTER_NONE);
    static const int want[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
    int k;
    for (k = 1; k <= 7; k++) CHECK_EQ_INT(wsr_backoff_delay(&b, k, 0, 12345u), want[k - 1]);
    /* Far attempts stay at the cap instead of overflowing. */
    CHECK_EQ_INT(wsr_backoff_delay(&b, 1000000, 0, 0), 1000);
    /* A factor of 1.5 and the cap of a long outage. */
    b = backoff(1000, 30000, 1.5, WSR_JITTER_NONE);
    CHECK_EQ_INT(wsr_backoff_delay(&b, 2, 0, 0), 1500);
    CHECK_EQ_INT(wsr_backoff_delay(&b, 3, 0, 0), 2250);
    CHECK_EQ_INT(wsr_backoff_delay(&b, 50, 0, 0), 30000);
}

TEST(odd_settings_are_safe) {
    wsr_backoff b = backoff(100, 0, 0.5, WSR_JITTER_NONE);   /* factor < 1 acts as 1; max 0 = no cap */
    CHECK_EQ_INT(wsr_backoff_delay(&b, 10, 0, 0), 100);
    b = backoff(0, 1000, 2.0, WSR_JITTER_NONE);              /* initial 0: retry at once */
    CHECK_EQ_INT(wsr_backoff_delay(&b, 5, 0, 0), 0);
    b = backoff(5000, 1000, 2.0, WSR_JITTER_NONE);           /* initial above the cap: the cap wins */
    CHECK_EQ_INT(wsr_backoff_delay(&b, 1, 0, 0), 1000);
    b = backoff(1000, 0, 10.0, WSR_JITTER_FULL);             /* no cap and a huge base: no overflow */
    CHECK(wsr_backoff_delay(&b, 100, 0, 0xFFFFFFFFu) >= 0);
}

TEST(full_jitter_bounds) {
    wsr_backoff b = backoff(100, 10000, 2.0, WSR_JITTER_FULL);
    int k, i, seen_low = 0, seen_high = 0;
    for (k = 1; k <= 10; k++) {
        int base = wsr_backoff_delay(&b, k, 0, 0);
        wsr_backoff nb = b;
        nb.jitter = WSR_JITTER_NONE;
        base = wsr_backoff_delay(&nb, k, 0, 0);
        for (i = 0; i < 2000; i++) {
            int d = wsr_backoff_delay(&b, k, 0, rng());
            if (d < 0 || d > base) { CHECK(d >= 0 && d <= base); return; }
            seen_low += d < base / 4;
            seen_high += d > base * 3 / 4;
        }
    }
    CHECK(seen_low > 0 && seen_high > 0);     /* spread over the whole range */
    CHECK_EQ_INT(wsr_backoff_delay(&b, 3, 0, 0), 0);
    CHECK_EQ_INT(wsr_backoff_delay(&b, 3, 0, 400), 400);   /* rnd % (400 + 1) */
}

TEST(equal_jitter_bounds) {
    wsr_backoff b = backoff(101, 10000, 2.0, WSR_JITTER_EQUAL);
    int i;
    for (i = 0; i < 5000; i++) {
        int d = wsr_backoff_delay(&b, 1, 0, rng());
        if (d < 51 || d > 101) { CHECK(d >= 51 && d <= 101); return; }
    }
    CHECK_EQ_INT(wsr_backoff_delay(&b, 1, 0, 0), 51);
    CHECK_EQ_INT(wsr_backoff_delay(&b, 1, 0, 50), 101);
    CHECK_EQ_INT(wsr_backoff_delay(&b, 30, 0, 0), 5000);   /* half the cap at least */
}

TEST(decorrelated_jitter_bounds) {
    wsr_backoff b = backoff(100, 5000, 3.0, WSR_JITTER_DECORRELATED);
    int i, prev = 0, highest = 0;
    for (i = 0; i < 5000; i++) {
        int hi = (prev > 100 ? prev : 100) * 3;
        int d = wsr_backoff_delay(&b, i + 1, prev, rng());
        if (hi > 5000) hi = 5000;
        if (d < 100 || d > hi) { CHECK(d >= 100 && d <= hi); return; }
        if (d > highest) highest = d;
        prev = d;
    }
    CHECK(highest > 4000);                    /* waits do grow towards the cap */
    CHECK_EQ_INT(wsr_backoff_delay(&b, 1, 0, 0), 100);
    CHECK_EQ_INT(wsr_backoff_delay(&b, 1, 0, 200), 300);      /* 100 + 200 % 201 */
}

static wsr_error err_of(wsr_err code, int http, int close_code, int transient) {
    wsr_error e;
    memset(&e, 0, sizeof e);
    e.code = code;
    e.http_status = http;
    e.close_code = close_code;
    e.transient = transient;
    return e;
}

TEST(retry_classification) {
    static const struct { wsr_err code; int http, cc, transient, want; } cases[] = {
        { WSR_ERR_REFUSED, 0, 1006, 1, 1 },
        { WSR_ERR_RESET, 0, 1006, 1, 1 },
        { WSR_ERR_TIMEOUT, 0, 1006, 1, 1 },
        { WSR_ERR_UNREACHABLE, 0, 1006, 1, 1 },
        { WSR_ERR_DNS, 0, 1006, 1, 1 },
        { WSR_ERR_EOF, 0, 1006, 1, 1 },
        { WSR_ERR_IO, 0, 1006, 0, 0 },              /* EACCES and friends: permanent */
        { WSR_ERR_INVALID, 0, 0, 0, 0 },
        { WSR_ERR_TLS_UNAVAILABLE, 0, 0, 0, 0 },
        { WSR_ERR_CLOSED, 0, 1000, 0, 0 },          /* our own close */
        { WSR_ERR_PROTOCOL, 0, 1002, 0, 0 },
        { WSR_ERR_PROTOCOL, 0, 1007, 0, 0 },
        { WSR_ERR_TOO_BIG, 0, 1009, 0, 0 },
        { WSR_ERR_HANDSHAKE, 400, 1006, 0, 0 },
        { WSR_ERR_HANDSHAKE, 401, 1006, 0, 0 },
        { WSR_ERR_HANDSHAKE, 403, 1006, 0, 0 },
        { WSR_ERR_HANDSHAKE, 404, 1006, 0, 0 },
        { WSR_ERR_HANDSHAKE, 426, 1006, 0, 0 },
        { WSR_ERR_HANDSHAKE, 408, 1006, 1, 1 },
        { WSR_ERR_HANDSHAKE, 429, 1006, 1, 1 },
        { WSR_ERR_HANDSHAKE, 500, 1006, 1, 1 },
        { WSR_ERR_HANDSHAKE, 502, 1006, 1, 1 },
        { WSR_ERR_HANDSHAKE, 503, 1006, 1, 1 },
        { WSR_ERR_HANDSHAKE, 101, 1006, 0, 0 },     /* a broken 101 (wrong accept key) */
        { WSR_ERR_HANDSHAKE, 0, 1006, 1, 1 },       /* the link dropped during the upgrade */
        { WSR_ERR_PEER_CLOSED, 0, 1000, 0, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 1001, 1, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 1005, 1, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 1011, 1, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 1012, 1, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 1013, 1, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 1014, 1, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 4000, 0, 1 },
        { WSR_ERR_PEER_CLOSED, 0, 1002, 0, 0 },
        { WSR_ERR_PEER_CLOSED, 0, 1003, 0, 0 },
        { WSR_ERR_PEER_CLOSED, 0, 1007, 0, 0 },
        { WSR_ERR_PEER_CLOSED, 0, 1008, 0, 0 },
        { WSR_ERR_PEER_CLOSED, 0, 1009, 0, 0 },
        { WSR_ERR_PEER_CLOSED, 0, 1010, 0, 0 },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsr_error e = err_of(cases[i].code, cases[i].http, cases[i].cc, cases[i].transient);
        int got = wsr_error_retryable(&e);
        if (got != cases[i].want)
            printf("  case %u: code %d http %d close %d -> %d, want %d\n", (unsigned)i, (int)cases[i].code,
                   cases[i].http, cases[i].cc, got, cases[i].want);
        CHECK_EQ_INT(got, cases[i].want);
    }
}

/* The errors the handshake check produces carry the class that
   wsr_error_retryable reads (end to end through the sans-I/O layer). */
TEST(handshake_errors_classified) {
    static const char *answers[] = {
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n\r\n",
        "HTTP/1.1 401 Unauthorized\r\n\r\n",
        "HTTP/1.1 429 Too Many Requests\r\n\r\n",
    };
    static const int want[] = { 1, 0, 1 };
    size_t i;
    for (i = 0; i < 3; i++) {
        wsr_handshake_result res;
        wsr_error e;
        wsr_err r = wsr_handshake_response_check(answers[i], strlen(answers[i]), 0, "dGhlIHNhbXBsZSBub25jZQ==",
                                                 NULL, &res, &e);
        CHECK_EQ_INT(r, WSR_ERR_HANDSHAKE);
        CHECK_EQ_INT(wsr_error_retryable(&e), want[i]);
    }
}

TEST_MAIN()
