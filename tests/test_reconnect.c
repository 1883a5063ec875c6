/* test_reconnect.c - what the client does after a connection ends: the
   backoff schedule and its jitter, giving up, which failures are retried,
   wsr_client_reconnect / close / probe, keepalive pings and heartbeats, and
   the outbound queue across connections.

   The same idea as test_client.c: a scripted wsr_transport (cfg.transport)
   and a fake clock handed to wsr_client_step(). The transport is opened again
   for every attempt; ft_open starts a fresh script (no input, no write
   failure) and remembers where the new connection's bytes begin in `out`, so
   every connection's frames can be decoded on their own. cfg.random_fn is a
   seeded generator, so jitter is deterministic and each wait can be checked
   against the exact 32-bit value the client drew for it. wsr_client_poll() is
   never called: nothing touches the network or the real clock. */
#include "scripted_client.h"
/* ---- 1. the backoff schedule ----------------------------------------------- */

TEST(backoff_schedule_exact_without_jitter) {
    world *w = world_cfg(NULL);
    uint64_t now = 0;
    int k, i, ok;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 0), 0);     /* IDLE: the first step is due at once */
    CHECK_EQ_INT(step(w, 0), WSR_ERR_REFUSED);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->t->open_calls, 1);
    for (k = 1; k <= 8; k++) {
        int wait = base_delay(100, 1000, k);                /* 100 200 400 800 1000 1000 ... */
        CHECK_EQ_INT(w->nrc, k);
        CHECK_EQ_INT(w->rc_attempt[k - 1], k);
        CHECK_EQ_INT(w->rc_delay[k - 1], wait);
        CHECK_EQ_INT(w->rc_code[k - 1], WSR_ERR_REFUSED);
        CHECK_EQ_INT(w->rc_close[k - 1], 1006);
        CHECK_EQ_INT(w->closes, k);                        /* on_close once per attempt */
        CHECK_EQ_INT(wsr_client_error(w->c)->code, WSR_ERR_REFUSED);
        CHECK_EQ_INT(wsr_client_error(w->c)->attempts, k);
        CHECK_EQ_INT(wsr_client_error(w->c)->down_ms, now);
        CHECK_EQ_INT(wsr_client_socket(w->c), WSR_INVALID_SOCKET);
        CHECK_EQ_INT(wsr_client_events(w->c), 0);
        CHECK_EQ_INT(wsr_client_timeout_ms(w->c, now), wait);
        CHECK_EQ_INT(wsr_client_timeout_ms(w->c, now + wait - 1), 1);
        CHECK_EQ_INT(wsr_client_timeout_ms(w->c, now + wait + 5), 0);
        CHECK_EQ_INT(step(w, now + wait - 1), WSR_OK);       /* 1 ms early: nothing */
        CHECK_EQ_INT(w->t->open_calls, k);
        CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
        now += (uint64_t)wait;
        CHECK_EQ_INT(step(w, now), WSR_ERR_REFUSED);        /* exactly on time: the next attempt */
        CHECK_EQ_INT(w->t->open_calls, k + 1);
        CHECK_EQ_INT(w->t->open_times[k], now);
    }
    CHECK_EQ_INT(now, 100 + 200 + 400 + 800 + 4 * 1000);
    CHECK_EQ_INT(w->t->close_calls, w->t->open_calls);      /* every failed attempt closed */
    /* IDLE -> CONNECTING, then CONNECTING -> WAITING -> CONNECTING ... */
    CHECK_EQ_INT(w->nstates, 2 + 2 * 8);
    ok = w->from[0] == WSR_STATE_IDLE && w->to[0] == WSR_STATE_CONNECTING;
    for (i = 1; i < w->nstates; i++) {
        wsr_state f = (i & 1) ? WSR_STATE_CONNECTING : WSR_STATE_WAITING;
        wsr_state t = (i & 1) ? WSR_STATE_WAITING : WSR_STATE_CONNECTING;
        if (w->from[i] != f || w->to[i] != t) ok = 0;
    }
    CHECK(ok);
    CHECK_EQ_INT(w->ends, 0);
    CHECK_EQ_INT(w->opens, 0);
    world_free(w);
}

/* The attempt fails in CONNECTING (the connect times out) instead of at open:
   the same schedule, and WAITING follows CONNECTING. */
TEST(backoff_after_connect_timeout) {
    world *w = world_cfg(NULL);
    w->t->connected = 0;
    w->cfg.connect_timeout_ms = 50;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_CONNECTING);
    step(w, 49);
    CHECK_EQ_INT(st(w), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(step(w, 50), WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(w->rc_delay[0], 100);
    CHECK_EQ_INT(w->rc_code[0], WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 50), 100);
    step(w, 149);
    CHECK_EQ_INT(w->t->open_calls, 1);
    step(w, 150);
    CHECK_EQ_INT(w->t->open_calls, 2);
    CHECK_EQ_INT(st(w), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(step(w, 200), WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(w->rc_delay[1], 200);
    CHECK_EQ_INT(w->rc_attempt[1], 2);
    world_free(w);
}

/* ---- 2. jitter -------------------------------------------------------------- */

/* Runs 40 failed attempts with the given jitter and checks every wait against
   its bounds and against the exact value for the 32-bit number drawn. */
static void jitter_run(wsr_jitter jitter, int *below_half, int *distinct, int *at_base) {
    world *w = world_cfg(NULL);
    uint64_t now = 0;
    int k, prev = 0, last = -1;
    w->cfg.backoff.jitter = jitter;
    w->seed = 0xC0FFEEull + (uint64_t)jitter;
    w->t->open_result = WSR_ERR_REFUSED;
    *below_half = *distinct = *at_base = 0;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    for (k = 1; k <= 40; k++) {
        int base = base_delay(100, 1000, k), d, exp = -1, lo = 0, hi = 0;
        uint32_t rnd;
        if (w->nrc != k) { CHECK_EQ_INT(w->nrc, k); break; }
        d = w->rc_delay[k - 1];
        rnd = w->rc_rnd[k - 1];
        switch (jitter) {
        case WSR_JITTER_FULL:
            lo = 0; hi = base;
            exp = (int)(rnd % ((uint32_t)base + 1));
            break;
        case WSR_JITTER_EQUAL:
            lo = base - base / 2; hi = base;
            exp = base - base / 2 + (int)(rnd % ((uint32_t)(base / 2) + 1));
            break;
        default: /* decorrelated: [initial, min(max, prev * factor)] */
            lo = 100;
            hi = (prev > 100 ? prev : 100) * 2;
            if (hi > 1000) hi = 1000;
            exp = lo + (int)(rnd % ((uint32_t)(hi - lo) + 1));
            break;
        }
        CHECK(d >= lo && d <= hi);
        CHECK_EQ_INT(d, exp);
        if (d < base / 2) (*below_half)++;
        if (d == base) (*at_base)++;
        if (d != last) (*distinct)++;
        last = d;
        prev = d;
        /* The wait is the one announced. */
        CHECK_EQ_INT(wsr_client_timeout_ms(w->c, now), d);
        if (d > 0) {
            step(w, now + (uint64_t)d - 1);
            CHECK_EQ_INT(w->t->open_calls, k);
        }
        now += (uint64_t)d;
        step(w, now);
        CHECK_EQ_INT(w->t->open_calls, k + 1);
        CHECK_EQ_INT(w->t->open_times[k], now);
    }
    /* One 4-byte draw per backoff wait, one 16-byte draw (the key) per attempt,
       nothing else (no connection got far enough to mask a frame). */
    CHECK_EQ_INT(w->rand4_calls, 41);
    CHECK_EQ_INT(w->rand16_calls, 41);
    CHECK_EQ_INT(w->rand_calls, 82);
    world_free(w);
}

TEST(jitter_full_in_zero_to_base) {
    int below, distinct, at_base;
    jitter_run(WSR_JITTER_FULL, &below, &distinct, &at_base);
    CHECK(below > 0);          /* really spread down to 0, not EQUAL */
    CHECK(distinct > 20);
}

TEST(jitter_equal_in_half_to_base) {
    int below, distinct, at_base;
    jitter_run(WSR_JITTER_EQUAL, &below, &distinct, &at_base);
    CHECK_EQ_INT(below, 0);
    CHECK(distinct > 20);
    CHECK(at_base < 10);       /* randomised, not the plain exponential value */
}

TEST(jitter_decorrelated_in_initial_to_prev_times_factor) {
    int below, distinct, at_base;
    jitter_run(WSR_JITTER_DECORRELATED, &below, &distinct, &at_base);
    CHECK(distinct > 20);
}

/* ---- 3./4. giving up ---------------------------------------------------------- */

TEST(max_attempts_ends_once) {
    world *w = world_cfg(NULL);
    w->cfg.backoff.max_attempts = 3;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "a", 1, 7), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, "bb", 2, 8), WSR_OK);
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    step(w, 100);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->t->open_calls, 2);
    CHECK_EQ_INT(step(w, 300), WSR_ERR_REFUSED);
    CHECK_EQ_INT(w->t->open_calls, 3);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->state_at_end, WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->end_why.code, WSR_ERR_REFUSED);
    CHECK_EQ_INT(w->end_why.attempts, 3);
    CHECK_EQ_INT(w->end_why.down_ms, 300);
    CHECK(strstr(w->end_why.message, "gave up after 3 attempts") != NULL);
    CHECK(strstr(wsr_client_error(w->c)->message, "gave up after 3 attempts") != NULL);
    CHECK_EQ_INT(w->closes, 3);
    CHECK_EQ_INT(w->nrc, 2);                       /* no wait announced after the last one */
    CHECK_EQ_INT(w->to[w->nstates - 1], WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->from[w->nstates - 1], WSR_STATE_CONNECTING);
    /* The queue was given up with the client. */
    CHECK_EQ_INT(w->ndel, 2);
    CHECK(w->del_tag[0] == 7 && w->del_fate[0] == WSR_DELIVERY_GAVE_UP);
    CHECK(w->del_tag[1] == 8 && w->del_fate[1] == WSR_DELIVERY_GAVE_UP);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 0);
    /* Nothing more, however far the clock goes. */
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 300), -1);
    step(w, 301);
    step(w, 100000);
    step(w, (uint64_t)1 << 40);
    CHECK_EQ_INT(w->t->open_calls, 3);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->closes, 3);
    CHECK_EQ_INT(wsr_send_text(w->c, "x", 1), WSR_ERR_STATE);
    world_free(w);
}

TEST(max_elapsed_ends_once) {
    world *w = world_cfg(NULL);
    w->cfg.backoff.max_elapsed_ms = 1000;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    /* Attempts at 0, 100, 300, 700; after the one at 700 the next wait (800)
       would end at 1500, past the 1000 allowed. */
    step(w, 0);
    step(w, 100);
    step(w, 300);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    step(w, 700);
    CHECK_EQ_INT(w->t->open_calls, 4);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->nrc, 3);
    CHECK_EQ_INT(w->closes, 4);
    CHECK_EQ_INT(w->end_why.attempts, 4);
    CHECK_EQ_INT(w->end_why.down_ms, 700);
    CHECK(strstr(w->end_why.message, "gave up after 4 attempts") != NULL);
    step(w, 100000);
    CHECK_EQ_INT(w->t->open_calls, 4);
    CHECK_EQ_INT(w->ends, 1);
    world_free(w);

    /* A wait that ends exactly at max_elapsed_ms is still taken. */
    w = world_cfg(NULL);
    w->cfg.backoff.max_elapsed_ms = 1500;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0); step(w, 100); step(w, 300); step(w, 700);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 700), 800);
    step(w, 1500);
    CHECK_EQ_INT(w->t->open_calls, 5);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->end_why.down_ms, 1500);
    world_free(w);
}

/* ---- 5. min_uptime_ms ---------------------------------------------------------- */

TEST(min_uptime_resets_attempts) {
    world *w = world_cfg(NULL);
    uint64_t t = 0;
    w->cfg.backoff.min_uptime_ms = 5000;
    if (!world_new(w)) { CHECK(0); return; }
    /* Three connections that open and drop after 900 ms: the waits grow. */
    CHECK(open_link(w, 0));
    w->t->read_err = WSR_ERR_EOF;
    step(w, 900);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->rc_attempt[0], 1);
    CHECK_EQ_INT(w->rc_delay[0], 100);
    CHECK_EQ_INT(w->rc_code[0], WSR_ERR_EOF);
    CHECK_EQ_INT(w->rc_close[0], 1006);
    CHECK(open_link(w, 1000));
    w->t->read_err = WSR_ERR_EOF;
    step(w, 1900);
    CHECK_EQ_INT(w->rc_attempt[1], 2);
    CHECK_EQ_INT(w->rc_delay[1], 200);
    CHECK(open_link(w, 2100));
    w->t->read_err = WSR_ERR_EOF;
    step(w, 3000);
    CHECK_EQ_INT(w->rc_attempt[2], 3);
    CHECK_EQ_INT(w->rc_delay[2], 400);
    CHECK_EQ_INT(wsr_client_error(w->c)->down_ms, 3000);   /* short connections do not count as up */
    /* One that stays 4999 ms: still counted. */
    CHECK(open_link(w, 3400));
    w->t->read_err = WSR_ERR_EOF;
    step(w, 3400 + 4999);
    CHECK_EQ_INT(w->rc_attempt[3], 4);
    CHECK_EQ_INT(w->rc_delay[3], 800);
    t = 3400 + 4999 + 800;
    CHECK(open_link(w, t));
    /* One that stays exactly 5000 ms: the count starts again. */
    w->t->read_err = WSR_ERR_EOF;
    step(w, t + 5000);
    CHECK_EQ_INT(w->nrc, 5);
    CHECK_EQ_INT(w->rc_attempt[4], 1);
    CHECK_EQ_INT(w->rc_delay[4], 100);
    CHECK_EQ_INT(wsr_client_error(w->c)->attempts, 1);
    CHECK_EQ_INT(wsr_client_error(w->c)->down_ms, 0);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, t + 5000), 100);
    CHECK_EQ_INT(w->opens, 5);
    CHECK_EQ_INT(w->closes, 5);
    CHECK_EQ_INT(w->ends, 0);
    world_free(w);
}

/* ---- 6. what is retried ----------------------------------------------------------- */

TEST(http_401_403_404_stop_at_once) {
    static const int statuses[] = { 401, 403, 404 };
    static const char *const resp[] = {
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n" };
    int i;
    for (i = 0; i < 3; i++) {
        world *w = world_cfg(NULL);
        if (!world_new(w)) { CHECK(0); return; }
        CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "q", 1, 5), WSR_OK);
        step(w, 0);
        CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
        feed_http(w, resp[i]);
        CHECK_EQ_INT(step(w, 10), WSR_ERR_HANDSHAKE);
        CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
        CHECK_EQ_INT(w->ends, 1);
        CHECK_EQ_INT(w->closes, 1);
        CHECK_EQ_INT(w->nrc, 0);
        CHECK(!was_in(w, WSR_STATE_WAITING));
        CHECK_EQ_INT(w->end_why.code, WSR_ERR_HANDSHAKE);
        CHECK_EQ_INT(w->end_why.http_status, statuses[i]);
        CHECK_EQ_INT(w->end_why.attempts, 1);
        CHECK(strstr(w->end_why.message, "not worth retrying") != NULL);
        CHECK_EQ_INT(w->ndel, 1);
        CHECK(w->del_tag[0] == 5 && w->del_fate[0] == WSR_DELIVERY_GAVE_UP);
        step(w, 1000000);
        CHECK_EQ_INT(w->t->open_calls, 1);
        world_free(w);
    }
}

TEST(http_503_retries_with_backoff) {
    world *w = world_cfg(NULL);
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    feed_http(w, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    CHECK_EQ_INT(step(w, 1), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(w->rc_delay[0], 100);
    CHECK_EQ_INT(w->rc_status[0], 503);
    CHECK_EQ_INT(w->rc_code[0], WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(w->ends, 0);
    step(w, 101);
    CHECK_EQ_INT(w->t->open_calls, 2);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    world_free(w);
}

/* Retry-After (seconds) on 503 and 429 sets the least wait. */
static void retry_after_case(const char *resp, int status, int expect_ms) {
    world *w = world_cfg(NULL);
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    feed_http(w, resp);
    step(w, 1);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(w->rc_status[0], status);
    CHECK_EQ_INT(w->rc_delay[0], expect_ms);             /* the backoff alone says 100 */
    CHECK_EQ_INT(wsr_client_error(w->c)->retry_after_ms, expect_ms);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 1), expect_ms);
    step(w, 1 + (uint64_t)expect_ms - 1);
    CHECK_EQ_INT(w->t->open_calls, 1);
    step(w, 1 + (uint64_t)expect_ms);
    CHECK_EQ_INT(w->t->open_calls, 2);
    world_free(w);
}

TEST(http_503_retry_after_wins) {
    retry_after_case("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\r\n", 503, 7000);
}

TEST(http_429_retry_after_wins) {
    retry_after_case("HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\nContent-Length: 0\r\n\r\n", 429, 3000);
}

/* Server close frames: the code decides. */
static world *closed_by_server(int code, int retry_later_ms, int initial_ms) {
    world *w = world_cfg(NULL);
    w->cfg.backoff.retry_later_ms = retry_later_ms;
    w->cfg.backoff.initial_ms = initial_ms;
    w->cfg.backoff.max_ms = 60000;
    if (!world_new(w)) { CHECK(0); return w; }
    CHECK(open_link(w, 0));
    server_close(w, code);
    /* The close frame comes in a short read, so the EOF is seen by the next step. */
    step(w, 50);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSING);
    step(w, 50);
    /* Our echo of the close went out before the link was dropped. */
    {
        int n = conn_frames(w->t, 0, g_frames, 64);
        CHECK_EQ_INT(n, 1);
        if (n == 1) CHECK_EQ_INT(close_code_of(&g_frames[0]), code);
    }
    return w;
}

TEST(close_1012_1013_wait_retry_later) {
    static const int codes[] = { 1012, 1013 };
    int i;
    for (i = 0; i < 2; i++) {
        world *w = closed_by_server(codes[i], 3000, 100);
        if (!w->c) { world_free(w); return; }
        CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
        CHECK_EQ_INT(w->nrc, 1);
        CHECK_EQ_INT(w->rc_close[0], codes[i]);
        CHECK_EQ_INT(w->rc_code[0], WSR_ERR_PEER_CLOSED);
        CHECK_EQ_INT(w->rc_delay[0], 3000);
        CHECK_EQ_INT(w->why.retry_after_ms, 3000);
        CHECK_EQ_INT(w->why.close_code, codes[i]);
        CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 50), 3000);
        step(w, 3049);
        CHECK_EQ_INT(w->t->open_calls, 1);
        step(w, 3050);
        CHECK_EQ_INT(w->t->open_calls, 2);
        world_free(w);
    }
    /* A longer backoff than retry_later_ms is kept. */
    {
        world *w = closed_by_server(1013, 2000, 5000);
        if (!w->c) { world_free(w); return; }
        CHECK_EQ_INT(w->nrc, 1);
        CHECK_EQ_INT(w->rc_delay[0], 5000);
        world_free(w);
    }
}

TEST(close_1008_1002_stop) {
    static const int codes[] = { 1008, 1002, 1003 };
    int i;
    for (i = 0; i < 3; i++) {
        world *w = closed_by_server(codes[i], 2000, 100);
        if (!w->c) { world_free(w); return; }
        CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
        CHECK_EQ_INT(w->ends, 1);
        CHECK_EQ_INT(w->closes, 1);
        CHECK_EQ_INT(w->nrc, 0);
        CHECK(!was_in(w, WSR_STATE_WAITING));
        CHECK_EQ_INT(w->end_why.code, WSR_ERR_PEER_CLOSED);
        CHECK_EQ_INT(w->end_why.close_code, codes[i]);
        CHECK_EQ_STR(w->end_why.close_reason, "bye");
        step(w, 1000000);
        CHECK_EQ_INT(w->t->open_calls, 1);
        world_free(w);
    }
}

TEST(close_1001_1011_and_eof_retry) {
    static const int codes[] = { 1001, 1011, 1000 };
    int i;
    for (i = 0; i < 3; i++) {
        world *w = closed_by_server(codes[i], 2000, 100);
        if (!w->c) { world_free(w); return; }
        CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
        CHECK_EQ_INT(w->nrc, 1);
        CHECK_EQ_INT(w->rc_close[0], codes[i]);
        CHECK_EQ_INT(w->rc_delay[0], 100);            /* no retry_later for these */
        CHECK_EQ_INT(w->ends, 0);
        step(w, 150);
        CHECK_EQ_INT(w->t->open_calls, 2);
        world_free(w);
    }
    /* The link just drops (EOF, 1006). */
    {
        world *w = world_cfg(NULL);
        if (!world_new(w)) { CHECK(0); return; }
        CHECK(open_link(w, 0));
        w->t->read_err = WSR_ERR_EOF;
        CHECK_EQ_INT(step(w, 20), WSR_ERR_EOF);
        CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
        CHECK_EQ_INT(w->why.code, WSR_ERR_EOF);
        CHECK_EQ_INT(w->why.close_code, 1006);
        CHECK_EQ_INT(w->why.transient, 1);
        CHECK_EQ_INT(w->nrc, 1);
        CHECK_EQ_INT(w->rc_delay[0], 100);
        world_free(w);
    }
}

TEST(own_close_never_reopens) {
    world *w = world_cfg(NULL);
    int n;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    CHECK_EQ_INT(wsr_client_close(w->c, 1000, "done"), WSR_OK);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSING);
    step(w, 10);
    n = conn_frames(w->t, 0, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_EQ_INT(close_code_of(&g_frames[0]), 1000);
    ft_feed_close(w->t, 1000, NULL);
    w->t->read_err = WSR_ERR_EOF;
    step(w, 20);
    step(w, 20);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->closes, 1);
    CHECK_EQ_INT(w->nrc, 0);
    CHECK_EQ_INT(w->end_why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(w->end_why.close_code, 1000);
    CHECK(!was_in(w, WSR_STATE_WAITING));
    step(w, 1000000);
    CHECK_EQ_INT(w->t->open_calls, 1);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 1000000), -1);
    world_free(w);

    /* Also when the server never answers: the close timer ends it, for good. */
    w = world_cfg(NULL);
    w->cfg.close_timeout_ms = 300;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    CHECK_EQ_INT(wsr_client_close(w->c, 1000, NULL), WSR_OK);
    step(w, 10);
    step(w, 310);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->nrc, 0);
    step(w, 1000000);
    CHECK_EQ_INT(w->t->open_calls, 1);
    world_free(w);
}

TEST(retry_fn_overrides) {
    world *w = world_cfg(NULL);
    w->cfg.retry_fn = cb_retry;
    w->retry_401 = 1;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    feed_http(w, "HTTP/1.1 401 Unauthorized\r\n\r\n");
    step(w, 5);
    CHECK_EQ_INT(w->retry_fn_calls, 1);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(w->rc_status[0], 401);
    CHECK_EQ_INT(w->rc_delay[0], 100);
    CHECK_EQ_INT(w->ends, 0);
    step(w, 105);
    CHECK_EQ_INT(w->t->open_calls, 2);
    world_free(w);

    /* And the other way: a retry_fn that refuses everything stops at a 503. */
    w = world_cfg(NULL);
    w->cfg.retry_fn = cb_retry;
    w->retry_never = 1;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    feed_http(w, "HTTP/1.1 503 Busy\r\n\r\n");
    step(w, 5);
    CHECK_EQ_INT(w->retry_fn_calls, 1);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->nrc, 0);
    CHECK_EQ_INT(w->end_why.http_status, 503);
    world_free(w);

    /* reconnect = 0: no retry at all, retry_fn not asked. */
    w = world_cfg(NULL);
    w->cfg.retry_fn = cb_retry;
    w->cfg.reconnect = 0;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->retry_fn_calls, 0);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->nrc, 0);
    world_free(w);
}

/* ---- 7. on_reconnecting ---------------------------------------------------------- */

TEST(on_reconnecting_zero_stops) {
    world *w = world_cfg(NULL);
    w->rc_ret = 0;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "x", 1, 9), WSR_OK);
    step(w, 0);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->state_at_end, WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->closes, 1);
    CHECK(strstr(w->end_why.message, "on_reconnecting") != NULL);
    CHECK_EQ_INT(w->ndel, 1);
    CHECK(w->del_tag[0] == 9 && w->del_fate[0] == WSR_DELIVERY_GAVE_UP);
    step(w, 100);
    step(w, 1000000);
    CHECK_EQ_INT(w->t->open_calls, 1);
    CHECK_EQ_INT(w->ends, 1);
    world_free(w);
}

TEST(on_reconnecting_changes_url_and_headers) {
    world *w = world_cfg("ws://primary.example.com:8080/chat");
    wsr_request req;
    const char *hdr;
    size_t s, e;
    w->cfg.headers = "Authorization: Bearer old\r\n";
    w->rc_url = "ws://backup.example.net:9090/v2?x=1";
    w->rc_headers = "Authorization: Bearer new\r\n";
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_STR(w->t->hosts[0], "primary.example.com");
    CHECK_EQ_INT(w->t->ports[0], 8080);
    feed_http(w, "HTTP/1.1 503 Busy\r\n\r\n");
    step(w, 1);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(w->rc_set_result, WSR_OK);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    step(w, 101);
    CHECK_EQ_INT(w->t->open_calls, 2);
    CHECK_EQ_STR(w->t->hosts[1], "backup.example.net");
    CHECK_EQ_INT(w->t->ports[1], 9090);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    CHECK(conn_request(w->t, 1, &req));
    CHECK(req.host_len == 23 && memcmp(req.host, "backup.example.net:9090", 23) == 0);
    CHECK(req.path_len == 7 && memcmp(req.path, "/v2?x=1", 7) == 0);
    s = w->t->conn_start[1];
    e = conn_end(w->t, 1);
    {
        /* The request as text, to look for the header lines. */
        char *text = (char *)calloc(1, e - s + 1);
        memcpy(text, w->t->out + s, e - s);
        hdr = strstr(text, "\r\nAuthorization: Bearer new\r\n");
        CHECK(hdr != NULL);
        CHECK(strstr(text, "Bearer old") == NULL);
        free(text);
    }
    /* The first request had the old one. */
    {
        char *text = (char *)calloc(1, w->t->conn_start[1] + 1);
        memcpy(text, w->t->out, w->t->conn_start[1]);
        CHECK(strstr(text, "\r\nAuthorization: Bearer old\r\n") != NULL);
        CHECK(strstr(text, "Host: primary.example.com:8080\r\n") != NULL);
        free(text);
    }
    /* Bad values are refused and change nothing. */
    {
        wsr_error e;
        CHECK_EQ_INT(wsr_client_set_url(w->c, "http://x.example/", &e), WSR_ERR_INVALID);
        CHECK_EQ_INT(e.code, WSR_ERR_INVALID);
        CHECK_EQ_INT(wsr_client_set_url(w->c, "wss://secure.example/", &e), WSR_ERR_TLS_UNAVAILABLE);
        CHECK_EQ_INT(wsr_client_set_headers(w->c, "no colon here\r\n"), WSR_ERR_INVALID);
    }
    /* And the new URL holds for the connection that follows. */
    CHECK(feed_101(w));
    step(w, 102);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    w->rc_url = w->rc_headers = NULL;
    w->t->read_err = WSR_ERR_EOF;
    step(w, 103);
    CHECK_EQ_INT(w->rc_delay[1], 200);      /* up 1 ms: still attempt 2 */
    step(w, 303);
    CHECK_EQ_INT(w->t->open_calls, 3);
    CHECK_EQ_STR(w->t->hosts[2], "backup.example.net");
    CHECK_EQ_INT(w->t->ports[2], 9090);
    CHECK(conn_request(w->t, 2, &req));
    CHECK(req.path_len == 7 && memcmp(req.path, "/v2?x=1", 7) == 0);
    world_free(w);
}

/* ---- 8. close / reconnect from the application ----------------------------------------- */

TEST(close_while_waiting_stops_at_once) {
    world *w = world_cfg(NULL);
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "q", 1, 3), WSR_OK);
    w->now = 40;
    CHECK_EQ_INT(wsr_client_close(w->c, 1000, NULL), WSR_OK);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);              /* without waiting for a step */
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(w->end_why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(w->closes, 1);                          /* only the failed attempt's */
    CHECK_EQ_INT(w->ndel, 1);
    CHECK(w->del_tag[0] == 3 && w->del_fate[0] == WSR_DELIVERY_CLOSED);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 40), -1);
    step(w, 100);
    step(w, 1000000);
    CHECK_EQ_INT(w->t->open_calls, 1);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(wsr_client_close(w->c, 1000, NULL), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_client_reconnect(w->c), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_client_probe(w->c, 100), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_send_text(w->c, "x", 1), WSR_ERR_STATE);
    world_free(w);
}

TEST(reconnect_while_waiting_skips_wait) {
    world *w = world_cfg(NULL);
    w->t->open_fail_n = 1;
    w->cfg.backoff.initial_ms = 5000;
    w->cfg.backoff.max_ms = 5000;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 10), 4990);
    CHECK_EQ_INT(wsr_client_reconnect(w->c), WSR_OK);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 10), 0);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->t->open_calls, 1);
    step(w, 10);
    CHECK_EQ_INT(w->t->open_calls, 2);
    CHECK_EQ_INT(w->t->open_times[1], 10);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    CHECK(feed_101(w));
    step(w, 11);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(w->nrc, 1);                  /* only the first wait was announced */
    world_free(w);
}

TEST(reconnect_while_open_drops_and_reconnects) {
    world *w = world_cfg(NULL);
    int n, i;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    CHECK_EQ_INT(wsr_client_reconnect(w->c), WSR_OK);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);          /* acts at the next step */
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 500), 0);
    step(w, 500);
    CHECK_EQ_INT(w->closes, 1);
    CHECK_EQ_INT(w->why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(w->nrc, 0);                      /* no wait, no announcement */
    CHECK_EQ_INT(w->ends, 0);
    CHECK_EQ_INT(w->t->open_calls, 2);            /* the new attempt started in the same step */
    CHECK_EQ_INT(w->t->open_times[1], 500);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    /* The old link said goodbye with 1001. */
    n = conn_frames(w->t, 0, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_EQ_INT(close_code_of(&g_frames[0]), 1001);
    /* OPEN -> WAITING -> CONNECTING -> HANDSHAKE */
    CHECK_EQ_INT(w->nstates, 6);
    for (i = 0; i < 3 && w->nstates == 6; i++) {
        static const wsr_state seq[] = { WSR_STATE_WAITING, WSR_STATE_CONNECTING, WSR_STATE_HANDSHAKE };
        CHECK_EQ_INT(w->to[3 + i], seq[i]);
    }
    CHECK(feed_101(w));
    step(w, 501);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(w->opens, 2);
    /* A reconnect the application asked for is not a failure: when this
       connection drops, it is attempt 1 again. */
    w->t->read_err = WSR_ERR_EOF;
    step(w, 600);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(w->rc_attempt[0], 1);
    CHECK_EQ_INT(w->rc_delay[0], 100);
    world_free(w);
}

TEST(reconnect_after_give_up_restarts) {
    world *w = world_cfg(NULL);
    w->cfg.backoff.max_attempts = 1;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    step(w, 1000);
    CHECK_EQ_INT(w->t->open_calls, 1);
    w->t->open_result = WSR_OK;
    CHECK_EQ_INT(wsr_client_reconnect(w->c), WSR_OK);
    /* The restart is due at the next step: an event loop that waits for
       wsr_client_timeout_ms() must not sleep forever. */
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 2000), 0);
    step(w, 2000);
    CHECK_EQ_INT(w->t->open_calls, 2);
    CHECK_EQ_INT(w->t->open_times[1], 2000);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    CHECK(feed_101(w));
    step(w, 2001);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    /* The count started again: a drop now is attempt 1 of max_attempts 1. */
    w->t->read_err = WSR_ERR_EOF;
    step(w, 2002);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 2);
    CHECK_EQ_INT(w->end_why.attempts, 1);
    world_free(w);
}

TEST(reconnect_after_close_is_state_error) {
    world *w = world_cfg(NULL);
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    CHECK_EQ_INT(wsr_client_close(w->c, 1000, NULL), WSR_OK);
    CHECK_EQ_INT(wsr_client_reconnect(w->c), WSR_ERR_STATE);     /* while CLOSING */
    ft_feed_close(w->t, 1000, NULL);
    w->t->read_err = WSR_ERR_EOF;
    step(w, 10);
    step(w, 10);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_reconnect(w->c), WSR_ERR_STATE);     /* and after */
    step(w, 5000);
    CHECK_EQ_INT(w->t->open_calls, 1);
    CHECK_EQ_INT(w->ends, 1);
    world_free(w);
}

/* ---- 9. keepalive ------------------------------------------------------------------------ */

static world *keepalive_world(void) {
    world *w = world_cfg(NULL);
    w->cfg.ping_interval_ms = 1000;
    w->cfg.pong_timeout_ms = 500;
    return w;
}

TEST(keepalive_ping_after_idle_interval) {
    world *w = keepalive_world();
    size_t before;
    int n;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 1000));
    before = w->t->out_len;
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 1000), 1000);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 1700), 300);
    step(w, 1999);
    CHECK_EQ_INT(w->t->out_len, before);            /* idle 999 ms: nothing yet */
    step(w, 2000);
    n = frames_after(w->t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_PING);
        CHECK(g_frames[0].masked && g_frames[0].fin);
        CHECK_EQ_INT(g_frames[0].len, 4);
        CHECK_MEM(g_frames[0].data, "\0\0\0\1", 4);
    }
    /* Now only the pong deadline is timed, and no second ping goes out. */
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 2000), 500);
    before = w->t->out_len;
    step(w, 2300);
    CHECK_EQ_INT(w->t->out_len, before);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    world_free(w);
}

TEST(keepalive_inbound_traffic_postpones_ping) {
    world *w = keepalive_world();
    size_t before;
    int n;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    before = w->t->out_len;
    ft_feed_text(w->t, "hi");
    step(w, 600);
    CHECK_EQ_INT(w->messages, 1);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 600), 1000);
    step(w, 1000);
    step(w, 1599);
    CHECK_EQ_INT(w->t->out_len, before);
    step(w, 1600);
    n = frames_after(w->t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_PING);
    world_free(w);
}

TEST(keepalive_no_answer_fails_link) {
    world *w = keepalive_world();
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));                          /* last traffic: the 101 at 0 */
    step(w, 1000);                                   /* ping */
    step(w, 1499);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(w->closes, 0);
    CHECK_EQ_INT(step(w, 1500), WSR_ERR_TIMEOUT);   /* dead within interval + timeout */
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->closes, 1);
    CHECK_EQ_INT(w->why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(w->why.close_code, 1006);
    CHECK_EQ_INT(w->why.transient, 1);
    CHECK_EQ_INT(w->nrc, 1);
    CHECK_EQ_INT(w->rc_code[0], WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(w->rc_delay[0], 100);
    CHECK_EQ_INT(w->t->close_calls, 1);
    step(w, 1600);
    CHECK_EQ_INT(w->t->open_calls, 2);
    world_free(w);
}

/* A ping stuck behind a big upload on a slow link: while the socket keeps
   taking bytes the link is alive; the pong's time starts when the ping is
   on the wire. Once the socket takes nothing for pong_timeout_ms, dead. */
static char upload[64 * 1024];
TEST(keepalive_slow_upload_is_not_a_dead_link) {
    world *w = keepalive_world();
    uint64_t now;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    w->t->budgeted = 1;                              /* a slow link: 1 KiB per step */
    CHECK_EQ_INT(wsr_send_binary(w->c, upload, sizeof upload), WSR_OK);
    /* Steps every 100 ms; the ping falls due at 1000 behind ~54 KiB still
       to go, which takes until ~6500 at this pace. No inbound traffic at all. */
    for (now = 100; now <= 6000; now += 100) { w->t->budget = 1024; step(w, now); }
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(w->closes, 0);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 1);
    for (; now <= 6800; now += 100) { w->t->budget = 1024; step(w, now); }
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);             /* upload done, ping on the wire */
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    /* No pong: dead pong_timeout_ms after the ping reached the socket. */
    for (; now <= 8000 && st(w) == WSR_STATE_OPEN; now += 100) { w->t->budget = 1024; step(w, now); }
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->why.code, WSR_ERR_TIMEOUT);
    CHECK(now - 100 >= 6900 && now - 100 <= 7200);
    world_free(w);
}

/* The same upload into a socket that stops taking bytes: found once
   nothing has moved for pong_timeout_ms. */
TEST(keepalive_stalled_upload_is_a_dead_link) {
    world *w = keepalive_world();
    uint64_t now;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    w->t->budgeted = 1;
    CHECK_EQ_INT(wsr_send_binary(w->c, upload, sizeof upload), WSR_OK);
    for (now = 100; now <= 2000; now += 100) { w->t->budget = 1024; step(w, now); }
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    w->t->write_block = 1;                           /* the peer stops reading at 2000 */
    for (now = 2100; now <= 4000 && st(w) == WSR_STATE_OPEN; now += 100) step(w, now);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT((int)(now - 100), 2500);            /* last progress at 2000 + 500 */
    world_free(w);
}

TEST(keepalive_pong_gives_rtt) {
    world *w = keepalive_world();
    size_t before;
    int n;
    unsigned char seq[4];
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_client_rtt_ms(w->c), -1);
    CHECK(open_link(w, 0));
    step(w, 1000);
    /* A pong with another payload is traffic, not an answer. */
    ft_feed_frame(w->t, 1, WSR_OP_PONG, "zzzz", 4);
    step(w, 1010);
    CHECK_EQ_INT(w->pongs, 1);
    CHECK_EQ_INT(wsr_client_rtt_ms(w->c), -1);
    before = w->t->out_len;
    step(w, 2010);                                   /* idle again since 1010: second ping */
    n = frames_after(w->t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n != 1) { world_free(w); return; }
    CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_PING);
    CHECK_EQ_INT(g_frames[0].len, 4);
    memcpy(seq, g_frames[0].data, 4);
    CHECK_MEM(seq, "\0\0\0\2", 4);
    ft_feed_frame(w->t, 1, WSR_OP_PONG, seq, 4);
    step(w, 2047);
    CHECK_EQ_INT(w->pongs, 2);
    CHECK_EQ_INT(wsr_client_rtt_ms(w->c), 37);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    step(w, 2600);                                   /* answered: no timeout */
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    world_free(w);
}

TEST(keepalive_any_frame_prevents_timeout) {
    world *w = keepalive_world();
    size_t before;
    int n;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    step(w, 1000);                                   /* ping */
    ft_feed_text(w->t, "news");                      /* not a pong, but proof of life */
    step(w, 1400);
    CHECK_EQ_INT(w->messages, 1);
    step(w, 1500);
    step(w, 2399);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(w->closes, 0);
    before = w->t->out_len;
    step(w, 2400);                                   /* idle 1000 ms since 1400 */
    n = frames_after(w->t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_EQ_INT(g_frames[0].opcode, WSR_OP_PING);
    step(w, 2899);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    step(w, 2900);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->why.code, WSR_ERR_TIMEOUT);
    world_free(w);
}

TEST(heartbeat_text_instead_of_ping) {
    world *w = keepalive_world();
    size_t before;
    int n, i;
    w->cfg.heartbeat_text = "{\"type\":\"ping\"}";
    w->cfg.heartbeat_reply = "pong";
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    before = w->t->out_len;
    step(w, 1000);
    n = frames_after(w->t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(frame_is_text(&g_frames[0], "{\"type\":\"ping\"}"));
    ft_feed_text(w->t, "{\"type\":\"pong\"}");
    step(w, 1020);
    CHECK_EQ_INT(w->messages, 0);                    /* the reply is not a message */
    CHECK_EQ_INT(wsr_client_rtt_ms(w->c), 20);
    ft_feed_text(w->t, "{\"type\":\"news\"}");
    step(w, 1030);
    CHECK_EQ_INT(w->messages, 1);
    CHECK(w->msg_len == 15 && memcmp(w->msg, "{\"type\":\"news\"}", 15) == 0);
    /* Unanswered, it fails the link like a ping. */
    before = w->t->out_len;
    step(w, 2030);
    n = frames_after(w->t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(frame_is_text(&g_frames[0], "{\"type\":\"ping\"}"));
    step(w, 2529);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    step(w, 2530);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->why.code, WSR_ERR_TIMEOUT);
    /* No protocol ping was ever sent. */
    n = conn_frames(w->t, 0, g_frames, 64);
    CHECK_EQ_INT(n, 2);
    for (i = 0; i < n; i++) CHECK(g_frames[i].opcode != WSR_OP_PING);
    world_free(w);
}

/* A reply that arrives before any heartbeat was sent answers nothing: the
   RTT must stay unknown (-1), as documented for wsr_client_rtt_ms. */
TEST(heartbeat_reply_without_heartbeat_has_no_rtt) {
    world *w = keepalive_world();
    w->cfg.heartbeat_text = "{\"type\":\"ping\"}";
    w->cfg.heartbeat_reply = "pong";
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 5000));
    ft_feed_text(w->t, "{\"type\":\"pong\"}");
    step(w, 5100);
    CHECK_EQ_INT(w->messages, 0);
    CHECK_EQ_INT(wsr_client_rtt_ms(w->c), -1);
    world_free(w);
}

TEST(probe_pings_now_and_fails_without_traffic) {
    world *w = world_cfg(NULL);              /* ping_interval 0: no automatic pings */
    size_t before;
    int n;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 0), -1);
    before = w->t->out_len;
    step(w, 3000);
    CHECK_EQ_INT(w->t->out_len, before);
    CHECK_EQ_INT(wsr_client_probe(w->c, 0), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_client_probe(w->c, 200), WSR_OK);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 3000), 0);
    step(w, 3000);
    n = frames_after(w->t, before, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(g_frames[0].opcode == WSR_OP_PING && g_frames[0].masked);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 3000), 200);
    step(w, 3199);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(step(w, 3200), WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->why.code, WSR_ERR_TIMEOUT);
    CHECK_EQ_INT(w->why.close_code, 1006);
    /* While waiting, a probe skips the wait. */
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 3210), 90);
    CHECK_EQ_INT(wsr_client_probe(w->c, 200), WSR_OK);
    step(w, 3210);
    CHECK_EQ_INT(w->t->open_calls, 2);
    CHECK_EQ_INT(w->t->open_times[1], 3210);
    /* A probe answered by any traffic does not fail the link. */
    CHECK(feed_101(w));
    step(w, 3211);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(wsr_client_probe(w->c, 200), WSR_OK);
    step(w, 3300);
    ft_feed_text(w->t, "alive");
    step(w, 3450);
    step(w, 3500);
    step(w, 10000);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(w->closes, 1);
    world_free(w);
}

/* ---- 10. the queue ---------------------------------------------------------------------- */

TEST(queue_sent_while_down_goes_first_in_order) {
    world *w = world_cfg(NULL);
    int n, i;
    static const char *const expect[] = { "m1", "m2", "m3", "m4", "from-open", "m5" };
    static const uint64_t tags[] = { 1, 2, 3, 4, 100, 5 };
    w->t->open_fail_n = 1;
    w->open_send = "from-open";
    w->open_tag = 100;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "m1", 2, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "m2", 2, 2), WSR_OK);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 2);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 4);
    w->t->connected = 0;
    step(w, 100);
    CHECK_EQ_INT(st(w), WSR_STATE_CONNECTING);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "m3", 2, 3), WSR_OK);
    w->t->connected = 1;
    step(w, 101);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "m4", 2, 4), WSR_OK);
    CHECK_EQ_INT(conn_frames(w->t, 1, g_frames, 64), 0);    /* nothing before the 101 */
    CHECK_EQ_INT(w->ndel, 0);
    CHECK(feed_101(w));
    step(w, 102);
    CHECK_EQ_INT(st(w), WSR_STATE_OPEN);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "m5", 2, 5), WSR_OK);
    step(w, 103);
    n = conn_frames(w->t, 1, g_frames, 64);
    CHECK_EQ_INT(n, 6);
    for (i = 0; i < n && i < 6; i++) CHECK(frame_is_text(&g_frames[i], expect[i]));
    CHECK_EQ_INT(w->ndel, 6);
    for (i = 0; i < w->ndel && i < 6; i++) {
        CHECK_EQ_INT(w->del_tag[i], tags[i]);
        CHECK_EQ_INT(w->del_fate[i], WSR_DELIVERY_WRITTEN);
    }
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 0);
    world_free(w);
}

TEST(queue_partial_write_resent_whole) {
    world *w = world_cfg(NULL);
    unsigned char a[300], b[300], cc[40];
    size_t fs, end_a;
    int n, i;
    for (i = 0; i < 300; i++) { a[i] = (unsigned char)i; b[i] = (unsigned char)(255 - i); }
    memset(cc, 'c', sizeof cc);
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, a, sizeof a, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, b, sizeof b, 2), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, cc, sizeof cc, 3), WSR_OK);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 640);
    step(w, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    fs = conn_frames_start(w->t, 0);
    /* 50 bytes per write; after 400 frame bytes the link dies: A (8 + 300
       bytes) is through, B only 92 of its 308. */
    w->t->write_max = 50;
    w->t->write_fail_at = fs + 400;
    CHECK(feed_101(w));
    CHECK_EQ_INT(step(w, 10), WSR_ERR_RESET);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->t->out_len, fs + 400);
    n = split_frames(w->t->out + fs, 308, g_frames, 64);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(g_frames[0].len == 300 && memcmp(g_frames[0].data, a, 300) == 0);
    end_a = fs + 308;
    CHECK_EQ_INT(w->ndel, 1);
    CHECK(w->del_tag[0] == 1 && w->del_fate[0] == WSR_DELIVERY_WRITTEN);
    /* Reported in the write that finished it, not before. */
    CHECK(w->del_out[0] >= end_a && w->del_out[0] < end_a + 50);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 2);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 340);
    /* The next connection carries B whole, then C. */
    CHECK(open_link(w, 110));
    step(w, 111);
    n = conn_frames(w->t, 1, g_frames, 64);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK(g_frames[0].opcode == WSR_OP_BINARY && g_frames[0].masked && g_frames[0].fin);
        CHECK(g_frames[0].len == 300 && memcmp(g_frames[0].data, b, 300) == 0);
        CHECK(g_frames[1].len == 40 && memcmp(g_frames[1].data, cc, 40) == 0);
    }
    CHECK_EQ_INT(w->ndel, 3);
    if (w->ndel == 3) {
        size_t fs1 = conn_frames_start(w->t, 1);
        CHECK(w->del_tag[1] == 2 && w->del_fate[1] == WSR_DELIVERY_WRITTEN);
        CHECK(w->del_tag[2] == 3 && w->del_fate[2] == WSR_DELIVERY_WRITTEN);
        CHECK(w->del_out[1] >= fs1 + 308 && w->del_out[1] < fs1 + 308 + 50);
        CHECK(w->del_out[2] >= fs1 + 308 + 46 && w->del_out[2] < fs1 + 308 + 46 + 50);
    }
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 0);
    world_free(w);
}

/* One byte per write: each WRITTEN comes in the very write that took the
   message's last byte, also with control frames and a 64-bit length. */
TEST(written_reported_at_last_byte) {
    world *w = world_cfg(NULL);
    static unsigned char big[70000];
    size_t fs, end1, end2, end3;
    int n;
    memset(big, 'z', sizeof big);
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    fs = w->t->out_len;
    w->t->write_max = 1;
    w->t->write_block = 1;
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "hello", 5, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_ping(w->c, "p", 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, big, 200, 2), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, big, sizeof big, 3), WSR_OK);
    w->t->write_block = 0;
    step(w, 1);
    end1 = fs + 6 + 5;
    end2 = end1 + 6 + 1 + 8 + 200;
    end3 = end2 + 14 + sizeof big;
    CHECK_EQ_INT(w->t->out_len, end3);
    n = frames_after(w->t, fs, g_frames, 64);
    CHECK_EQ_INT(n, 4);
    if (n == 4) {
        CHECK(frame_is_text(&g_frames[0], "hello"));
        CHECK_EQ_INT(g_frames[1].opcode, WSR_OP_PING);
        CHECK_EQ_INT(g_frames[2].len, 200);
        CHECK_EQ_INT(g_frames[3].len, sizeof big);
    }
    CHECK_EQ_INT(w->ndel, 3);
    CHECK_EQ_INT(w->del_out[0], end1);
    CHECK_EQ_INT(w->del_out[1], end2);
    CHECK_EQ_INT(w->del_out[2], end3);
    CHECK(w->del_tag[0] == 1 && w->del_tag[1] == 2 && w->del_tag[2] == 3);
    world_free(w);
}

TEST(queue_max_messages_reject) {
    world *w = world_cfg(NULL);
    w->cfg.queue_max_messages = 3;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "a", 1, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "b", 1, 2), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "c", 1, 3), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "d", 1, 4), WSR_ERR_QUEUE_FULL);
    CHECK_EQ_INT(w->ndel, 0);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 3);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 3);
    CHECK_EQ_INT(wsr_client_clear_queue(w->c), 3);
    CHECK_EQ_INT(w->ndel, 3);
    CHECK(w->del_tag[0] == 1 && w->del_tag[1] == 2 && w->del_tag[2] == 3);
    world_free(w);
}

TEST(queue_max_bytes_reject) {
    world *w = world_cfg(NULL);
    w->cfg.queue_max_bytes = 10;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "aaaa", 4, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "bbbb", 4, 2), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "ccc", 3, 3), WSR_ERR_QUEUE_FULL);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "0123456789x", 11, 4), WSR_ERR_QUEUE_FULL);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "cc", 2, 5), WSR_OK);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 10);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 3);
    CHECK_EQ_INT(w->ndel, 0);
    world_free(w);
}

TEST(queue_drop_oldest_by_messages) {
    world *w = world_cfg(NULL);
    int n, i;
    w->cfg.queue_max_messages = 3;
    w->cfg.queue_overflow = WSR_OVERFLOW_DROP_OLDEST;
    w->t->open_fail_n = 1;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    for (i = 1; i <= 5; i++) {
        char m[2];
        m[0] = (char)('0' + i); m[1] = 0;
        CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, m, 1, (uint64_t)i), WSR_OK);
    }
    CHECK_EQ_INT(w->ndel, 2);
    CHECK(w->del_tag[0] == 1 && w->del_fate[0] == WSR_DELIVERY_DROPPED_OVERFLOW);
    CHECK(w->del_tag[1] == 2 && w->del_fate[1] == WSR_DELIVERY_DROPPED_OVERFLOW);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 3);
    CHECK(open_link(w, 100));
    step(w, 101);
    n = conn_frames(w->t, 1, g_frames, 64);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK(frame_is_text(&g_frames[0], "3"));
        CHECK(frame_is_text(&g_frames[1], "4"));
        CHECK(frame_is_text(&g_frames[2], "5"));
    }
    CHECK_EQ_INT(w->ndel, 5);
    for (i = 2; i < 5 && i < w->ndel; i++) {
        CHECK_EQ_INT(w->del_tag[i], i + 1);
        CHECK_EQ_INT(w->del_fate[i], WSR_DELIVERY_WRITTEN);
    }
    world_free(w);
}

TEST(queue_drop_oldest_by_bytes) {
    world *w = world_cfg(NULL);
    w->cfg.queue_max_bytes = 10;
    w->cfg.queue_overflow = WSR_OVERFLOW_DROP_OLDEST;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "aaaa", 4, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "bbbb", 4, 2), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "cc", 2, 3), WSR_OK);
    CHECK_EQ_INT(w->ndel, 0);
    /* 5 more bytes: 1 and 2 must go (dropping 1 alone leaves 6 + 5 > 10). */
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "ddddd", 5, 4), WSR_OK);
    CHECK_EQ_INT(w->ndel, 2);
    CHECK(w->del_tag[0] == 1 && w->del_fate[0] == WSR_DELIVERY_DROPPED_OVERFLOW);
    CHECK(w->del_tag[1] == 2 && w->del_fate[1] == WSR_DELIVERY_DROPPED_OVERFLOW);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 7);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 2);
    /* Bigger than the whole queue: refused, nothing dropped for it. */
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "0123456789x", 11, 5), WSR_ERR_QUEUE_FULL);
    CHECK_EQ_INT(w->ndel, 2);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 7);
    world_free(w);
}

TEST(queue_ttl_expiry_exact) {
    world *w = world_cfg(NULL);
    w->cfg.queue_ttl_ms = 1000;
    w->cfg.backoff.initial_ms = 100000;
    w->cfg.backoff.max_ms = 100000;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "old", 3, 11), WSR_OK);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 10), 0);        /* to give it its time */
    step(w, 10);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "young", 5, 12), WSR_OK);
    step(w, 500);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 500), 510);
    step(w, 1009);
    CHECK_EQ_INT(w->ndel, 0);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 2);
    step(w, 1010);
    CHECK_EQ_INT(w->ndel, 1);
    CHECK(w->del_tag[0] == 11 && w->del_fate[0] == WSR_DELIVERY_EXPIRED);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 1);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 5);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 1010), 490);
    step(w, 1499);
    CHECK_EQ_INT(w->ndel, 1);
    step(w, 1500);
    CHECK_EQ_INT(w->ndel, 2);
    CHECK(w->del_tag[1] == 12 && w->del_fate[1] == WSR_DELIVERY_EXPIRED);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    CHECK_EQ_INT(wsr_client_timeout_ms(w->c, 1500), 100000 - 1500);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    world_free(w);
}

/* Messages framed on a link that then drops (written not at all). */
static world *queue_then_drop(int drop_on_disconnect) {
    world *w = world_cfg(NULL);
    w->cfg.queue_drop_on_disconnect = drop_on_disconnect;
    if (!world_new(w)) { CHECK(0); return w; }
    CHECK(open_link(w, 0));
    w->t->write_block = 1;
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "one", 3, 21), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "two!", 4, 22), WSR_OK);
    step(w, 5);
    CHECK_EQ_INT(w->ndel, 0);
    CHECK_EQ_INT(wsr_client_clear_queue(w->c), 0);      /* being written: not cleared */
    w->t->read_err = WSR_ERR_EOF;
    step(w, 10);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    return w;
}

TEST(queue_drop_on_disconnect) {
    world *w = queue_then_drop(1);
    if (!w->c) { world_free(w); return; }
    CHECK_EQ_INT(w->ndel, 2);
    CHECK(w->del_tag[0] == 21 && w->del_fate[0] == WSR_DELIVERY_DISCONNECTED);
    CHECK(w->del_tag[1] == 22 && w->del_fate[1] == WSR_DELIVERY_DISCONNECTED);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 0);
    CHECK(open_link(w, 110));
    step(w, 111);
    CHECK_EQ_INT(conn_frames(w->t, 1, g_frames, 64), 0);
    world_free(w);
}

TEST(queue_kept_on_disconnect) {
    world *w = queue_then_drop(0);
    int n;
    if (!w->c) { world_free(w); return; }
    CHECK_EQ_INT(w->ndel, 0);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 2);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 7);
    CHECK(open_link(w, 110));
    step(w, 111);
    n = conn_frames(w->t, 1, g_frames, 64);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK(frame_is_text(&g_frames[0], "one"));
        CHECK(frame_is_text(&g_frames[1], "two!"));
    }
    CHECK_EQ_INT(w->ndel, 2);
    CHECK(w->del_tag[0] == 21 && w->del_fate[0] == WSR_DELIVERY_WRITTEN);
    CHECK(w->del_tag[1] == 22 && w->del_fate[1] == WSR_DELIVERY_WRITTEN);
    world_free(w);
}

TEST(clear_queue_reports_cleared) {
    world *w = world_cfg(NULL);
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "a", 1, 31), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, "bb", 2, 32), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "ccc", 3, 33), WSR_OK);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 6);
    CHECK_EQ_INT(wsr_client_clear_queue(w->c), 3);
    CHECK_EQ_INT(w->ndel, 3);
    CHECK(w->del_tag[0] == 31 && w->del_fate[0] == WSR_DELIVERY_CLEARED);
    CHECK(w->del_tag[1] == 32 && w->del_fate[1] == WSR_DELIVERY_CLEARED);
    CHECK(w->del_tag[2] == 33 && w->del_fate[2] == WSR_DELIVERY_CLEARED);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    CHECK_EQ_INT(wsr_client_queued_bytes(w->c), 0);
    CHECK_EQ_INT(wsr_client_clear_queue(w->c), 0);
    CHECK_EQ_INT(w->ndel, 3);
    world_free(w);
}

TEST(free_reports_closed) {
    world *w = world_cfg(NULL);
    fake_tr *t;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "a", 1, 41), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "b", 1, 42), WSR_OK);
    t = w->t;
    wsr_client_free(w->c);
    w->c = NULL;
    CHECK_EQ_INT(w->ndel, 2);
    CHECK(w->del_tag[0] == 41 && w->del_fate[0] == WSR_DELIVERY_CLOSED);
    CHECK(w->del_tag[1] == 42 && w->del_fate[1] == WSR_DELIVERY_CLOSED);
    CHECK_EQ_INT(w->ends, 0);
    CHECK_EQ_INT(t->close_calls, 1);          /* WAITING: nothing more to close */
    world_free(w);
}

/* wsr_client_reconnect on an open link with more queued than is framed at
   once: the link is dropped for the reason the application gave, the close
   frame goes out, and nothing is reported as an allocation failure. */
TEST(reconnect_with_big_queue_reports_its_cause) {
    world *w = world_cfg(NULL);
    unsigned char *big = (unsigned char *)calloc(1, 100000);
    int i, n;
    size_t fs, e, pos;
    if (!world_new(w)) { CHECK(0); free(big); return; }
    CHECK(open_link(w, 0));
    w->t->write_block = 1;
    for (i = 1; i <= 5; i++) CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, big, 100000, (uint64_t)i), WSR_OK);
    step(w, 5);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 5);
    w->t->write_block = 0;
    w->t->write_max = 4096;
    CHECK_EQ_INT(wsr_client_reconnect(w->c), WSR_OK);
    step(w, 10);
    CHECK_EQ_INT(w->closes, 1);
    CHECK_EQ_INT(w->why.code, WSR_ERR_CLOSED);
    CHECK(w->why.code != WSR_ERR_NOMEM);
    CHECK_EQ_INT(w->t->open_calls, 2);
    /* Connection 1 ends with the 1001 close frame. */
    fs = conn_frames_start(w->t, 0);
    e = conn_end(w->t, 0);
    pos = fs;
    n = 0;
    while (pos + 2 <= e) {           /* walk the frames by their headers */
        size_t h = 6, len = w->t->out[pos + 1] & 0x7F;
        if (len == 126) { len = (size_t)w->t->out[pos + 2] << 8 | w->t->out[pos + 3]; h = 8; }
        else if (len == 127) {
            int b;
            len = 0;
            for (b = 0; b < 8; b++) len = len << 8 | w->t->out[pos + 2 + b];
            h = 14;
        }
        if (pos + h + len > e) break;
        if (pos + h + len == e) n = split_frames(w->t->out + pos, h + len, g_frames, 1);
        pos += h + len;
    }
    CHECK_EQ_INT(pos, e);
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_EQ_INT(close_code_of(&g_frames[0]), 1001);
    free(big);
    world_free(w);
}

/* ---- 11. hours of simulated time ---------------------------------------------------------- */

TEST(six_hours_refused_never_gives_up) {
    world *w = world_cfg(NULL);
    const uint64_t end = (uint64_t)6 * 3600 * 1000;
    uint64_t now = 0;
    int k, bad_wait = 0, bad_bounds = 0, bad_attempt = 0, bad_timing = 0, longest = 0;
    wsr_client_config def;
    wsr_client_config_init(&def);
    w->cfg.backoff = def.backoff;                   /* 500 ms doubling to 30 s, EQUAL jitter, no limits */
    w->seed = 6;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(def.backoff.max_attempts, 0);
    CHECK_EQ_INT(def.backoff.max_elapsed_ms, 0);
    CHECK_EQ_INT(def.backoff.max_ms, 30000);
    step(w, 0);
    while (now < end && st(w) == WSR_STATE_WAITING) {
        int t = wsr_client_timeout_ms(w->c, now);
        if (t < 0 || t > 30000) { bad_wait++; break; }
        if (t > longest) longest = t;
        now += (uint64_t)t;
        step(w, now);
        if (w->t->open_calls > MAX_CONN - 1 || w->nrc > MAX_EV - 1) break;
    }
    CHECK_EQ_INT(bad_wait, 0);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(w->ends, 0);
    CHECK(now >= end);
    /* 6 h of waits of 15..30 s once past the start: between 720 and ~1450. */
    CHECK(w->t->open_calls > 720 && w->t->open_calls < 1450);
    CHECK_EQ_INT(w->nrc, w->t->open_calls);
    CHECK_EQ_INT(w->closes, w->t->open_calls);
    CHECK(longest > 29000 && longest <= 30000);      /* the cap was reached, never passed */
    for (k = 0; k < w->nrc && k < MAX_EV; k++) {
        int base = base_delay(500, 30000, k + 1), d = w->rc_delay[k];
        if (d < base - base / 2 || d > base || d > 30000) bad_bounds++;
        if (w->rc_attempt[k] != k + 1) bad_attempt++;
        if (k + 1 < w->t->open_calls && w->t->open_times[k + 1] - w->t->open_times[k] != (uint64_t)d) bad_timing++;
    }
    CHECK_EQ_INT(bad_bounds, 0);
    CHECK_EQ_INT(bad_attempt, 0);
    CHECK_EQ_INT(bad_timing, 0);
    CHECK_EQ_INT(wsr_client_error(w->c)->attempts, w->t->open_calls);
    CHECK_EQ_INT(wsr_client_error(w->c)->down_ms, w->t->open_times[w->t->open_calls - 1]);
    world_free(w);
}

TEST_MAIN()
