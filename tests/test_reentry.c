/* test_reentry.c - callbacks that call back into the client, and the
   thread runner's promises about where callbacks run.

   Every callback may send, close, clear or reconnect. These tests do that
   from the awkward places: a delivery report in the middle of a drop loop,
   a state change in the middle of a connection's ending, an expiry report
   that sends again. Each one once crashed, lost a message or reported in
   the wrong order. The world is the scripted one of test_reconnect.c. */
#define _POSIX_C_SOURCE 200809L
#include "scripted_client.h"
#include <pthread.h>
#include <time.h>

static void sleep_ms(int ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* ---- re-entering the queue ------------------------------------------------ */

/* A message re-sent from on_delivery(EXPIRED) gets its own time to live:
   it has no time stamp yet when the expiry loop reaches it. */
static int resends;
static void del_resend(wsr_client *c, uint64_t tag, wsr_delivery fate, void *user) {
    cb_delivery(c, tag, fate, user);
    if (fate == WSR_DELIVERY_EXPIRED && resends < 5) {
        resends++;
        wsr_send_tracked(c, WSR_MSG_TEXT, "again", 5, tag + 100);
    }
}
TEST(resend_from_expiry_report_lives_its_own_ttl) {
    world *w = world_cfg(NULL);
    resends = 0;
    w->cfg.queue_ttl_ms = 1000;
    w->cfg.backoff.initial_ms = w->cfg.backoff.max_ms = 100000;
    w->cfg.on_delivery = del_resend;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 5000);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "old", 3, 1), WSR_OK);
    step(w, 5001);              /* stamped at 5001 */
    step(w, 6001);              /* expires; the re-send is stamped at the next step */
    CHECK_EQ_INT(w->ndel, 1);
    CHECK_EQ_INT(w->del_fate[0], WSR_DELIVERY_EXPIRED);
    CHECK_EQ_INT((int)w->del_tag[0], 1);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 1);
    step(w, 6002);
    step(w, 7001);
    CHECK_EQ_INT(w->ndel, 1);   /* 999 ms old: still waiting */
    step(w, 7002);
    CHECK_EQ_INT(w->ndel, 2);
    CHECK_EQ_INT((int)w->del_tag[1], 101);
    world_free(w);
}

/* on_delivery(DISCONNECTED) closes the client, which drops the rest of the
   queue from inside the outer drop loop: every message is reported once. */
static void del_close(wsr_client *c, uint64_t tag, wsr_delivery fate, void *user) {
    cb_delivery(c, tag, fate, user);
    if (fate == WSR_DELIVERY_DISCONNECTED || fate == WSR_DELIVERY_DROPPED_OVERFLOW) wsr_client_close(c, 1000, NULL);
}
TEST(close_from_a_report_inside_a_drop_loop) {
    world *w = world_cfg(NULL);
    w->cfg.queue_drop_on_disconnect = 1;
    w->cfg.on_delivery = del_close;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "one", 3, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "two", 3, 2), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "three", 5, 3), WSR_OK);
    step(w, 0);
    CHECK_EQ_INT(w->ndel, 3);
    CHECK_EQ_INT(w->del_fate[0], WSR_DELIVERY_DISCONNECTED);
    CHECK_EQ_INT((int)w->del_tag[1] + (int)w->del_tag[2], 5);   /* 2 and 3, each once */
    CHECK(w->del_tag[1] != w->del_tag[2]);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(w->ends, 1);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    world_free(w);
}

/* DROP_OLDEST while a slow socket holds framed messages: the report closes
   the client, which frames what was waiting; the new message is refused. */
static char big[200 * 1024];
TEST(close_from_an_overflow_report_refuses_the_new_message) {
    world *w = world_cfg(NULL);
    w->cfg.queue_overflow = WSR_OVERFLOW_DROP_OLDEST;
    w->cfg.queue_max_bytes = 2 * sizeof big + 20;
    w->cfg.on_delivery = del_close;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    w->t->write_block = 1;
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, big, sizeof big, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, big, sizeof big, 2), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, "0123456789", 10, 3), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, "0123456789", 10, 4), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, "012345678901234", 15, 5), WSR_ERR_STATE);
    CHECK_EQ_INT(w->ndel, 1);
    CHECK_EQ_INT((int)w->del_tag[0], 3);
    CHECK_EQ_INT(w->del_fate[0], WSR_DELIVERY_DROPPED_OVERFLOW);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSING);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 3);   /* 1, 2, 4 go out before the close frame */
    world_free(w);
}

/* The same while waiting: the client closes from the report, so the new
   message must not be left in a closed client. */
TEST(close_from_an_overflow_report_while_waiting) {
    world *w = world_cfg(NULL);
    w->cfg.queue_overflow = WSR_OVERFLOW_DROP_OLDEST;
    w->cfg.queue_max_messages = 1;
    w->cfg.on_delivery = del_close;
    w->t->open_result = WSR_ERR_REFUSED;
    if (!world_new(w)) { CHECK(0); return; }
    step(w, 0);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "a", 1, 1), WSR_OK);
    CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_TEXT, "b", 1, 2), WSR_ERR_STATE);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    CHECK_EQ_INT(w->ndel, 1);
    CHECK_EQ_INT(w->ends, 1);
    world_free(w);
}

/* ---- closing from the callbacks of a connection's end ---------------------- */

static int order[16], norder;
static void st_close(wsr_client *c, wsr_state f, wsr_state t, void *u) {
    cb_state(c, f, t, u);
    if (t == WSR_STATE_WAITING) wsr_client_close(c, 1000, NULL);
}
static void o_close(wsr_client *c, const wsr_error *e, void *u) { cb_close(c, e, u); if (norder < 16) order[norder++] = 'C'; }
static void o_end(wsr_client *c, const wsr_error *e, void *u) { cb_end(c, e, u); if (norder < 16) order[norder++] = 'E'; }
TEST(close_from_on_state_hears_on_close_before_on_end) {
    world *w = world_cfg(NULL);
    norder = 0;
    w->cfg.on_state = st_close;
    w->cfg.on_close = o_close;
    w->cfg.on_end = o_end;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    w->t->read_err = WSR_ERR_EOF;
    step(w, 10);
    CHECK_EQ_INT(norder, 2);
    CHECK(order[0] == 'C' && order[1] == 'E');
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_error(w->c)->code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(w->t->open_calls, 1);
    world_free(w);
}

/* A close that cannot frame the rest of the queue for lack of memory still
   closes: the messages it could not frame are reported, nothing hangs. */
static size_t limit = (size_t)-1;
static void *lim_alloc(size_t n, void *u) { (void)u; return n > limit ? NULL : malloc(n); }
static void lim_free(void *p, void *u) { (void)u; free(p); }
TEST(close_without_memory_for_the_queue_still_closes) {
    world *w = world_cfg(NULL);
    int i, closed = 0;
    w->cfg.allocator.alloc_fn = lim_alloc;
    w->cfg.allocator.free_fn = lim_free;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    w->t->write_block = 1;
    for (i = 1; i <= 3; i++) CHECK_EQ_INT(wsr_send_tracked(w->c, WSR_MSG_BINARY, big, sizeof big, (uint64_t)i), WSR_OK);
    limit = 600 * 1024;          /* the frame buffer cannot grow to hold the third one */
    CHECK_EQ_INT(wsr_client_close(w->c, 1000, NULL), WSR_OK);
    limit = (size_t)-1;
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSING);
    w->t->write_block = 0;
    step(w, 10);
    step(w, 20000);
    CHECK_EQ_INT(st(w), WSR_STATE_CLOSED);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 0);
    for (i = 0; i < w->ndel; i++) closed += w->del_fate[i] == WSR_DELIVERY_CLOSED;
    CHECK_EQ_INT(w->ndel, 3);
    CHECK_EQ_INT(closed, 1);
    world_free(w);
}

/* wsr_client_error() says why the last connection ended, also while the
   next attempt is under way. */
TEST(last_error_survives_the_next_attempt) {
    world *w = world_cfg(NULL);
    w->cfg.backoff.jitter = WSR_JITTER_NONE;
    w->cfg.backoff.initial_ms = 100;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_client_error(w->c)->code, WSR_OK);
    CHECK(open_link(w, 0));
    w->t->read_err = WSR_ERR_EOF;
    step(w, 10);
    CHECK_EQ_INT(st(w), WSR_STATE_WAITING);
    CHECK_EQ_INT(wsr_client_error(w->c)->code, WSR_ERR_EOF);
    w->t->connected = 1;
    step(w, 110);
    CHECK_EQ_INT(st(w), WSR_STATE_HANDSHAKE);
    CHECK_EQ_INT(wsr_client_error(w->c)->code, WSR_ERR_EOF);
    CHECK_EQ_INT(wsr_client_error(w->c)->close_code, 1006);
    world_free(w);
}

/* flush and wait_closed from a callback would wait for themselves. */
static wsr_err flush_in_cb, wait_in_cb;
static void open_flush(wsr_client *c, const char *sub, void *u) {
    cb_open(c, sub, u);
    flush_in_cb = wsr_client_flush(c, 10);
    wait_in_cb = wsr_client_wait_closed(c, 10);
}
TEST(flush_from_a_callback_is_refused) {
    world *w = world_cfg(NULL);
    flush_in_cb = wait_in_cb = WSR_OK;
    w->cfg.on_open = open_flush;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK(open_link(w, 0));
    CHECK_EQ_INT(flush_in_cb, WSR_ERR_STATE);
    CHECK_EQ_INT(wait_in_cb, WSR_ERR_STATE);
    world_free(w);
}

/* ---- the thread runner ----------------------------------------------------- */

static pthread_t main_tid;
static int on_main;
static void t_state(wsr_client *c, wsr_state f, wsr_state t, void *u) { (void)c; (void)f; (void)t; (void)u; on_main += pthread_equal(pthread_self(), main_tid) != 0; }
static void t_close(wsr_client *c, const wsr_error *e, void *u) { (void)c; (void)e; (void)u; on_main += pthread_equal(pthread_self(), main_tid) != 0; }
static void t_end(wsr_client *c, const wsr_error *e, void *u) { (void)c; (void)e; (void)u; on_main += pthread_equal(pthread_self(), main_tid) != 0; }
static void t_del(wsr_client *c, uint64_t tag, wsr_delivery f, void *u) { (void)c; (void)tag; (void)f; (void)u; on_main += pthread_equal(pthread_self(), main_tid) != 0; }

/* wsr_client_close from the main thread: every callback it causes runs on
   the client's thread, in every state it may find the client in. */
TEST(close_from_another_thread_runs_callbacks_on_the_clients_thread) {
    /* (OPEN is covered over real sockets in test_reconnect_live.c: the
       scripted transport has no socket for the thread to poll.) */
    wsr_state target[] = { WSR_STATE_HANDSHAKE, WSR_STATE_WAITING };
    size_t k;
    main_tid = pthread_self();
    for (k = 0; k < sizeof target / sizeof target[0]; k++) {
        world *w = world_cfg(NULL);
        int spins = 0;
        on_main = 0;
        w->cfg.on_state = t_state;
        w->cfg.on_close = t_close;
        w->cfg.on_end = t_end;
        w->cfg.on_delivery = t_del;
        w->cfg.on_reconnecting = NULL;
        w->cfg.close_timeout_ms = 50;
        if (target[k] == WSR_STATE_WAITING) w->t->open_result = WSR_ERR_REFUSED;
        if (!world_new(w)) { CHECK(0); return; }
        if (target[k] == WSR_STATE_HANDSHAKE) w->t->connected = 1;   /* before the thread reads it */
        wsr_send_text(w->c, "queued", 6);
        CHECK_EQ_INT(wsr_client_start_thread(w->c), WSR_OK);
        while (wsr_client_state(w->c) != target[k] && spins++ < 2000) sleep_ms(1);
        CHECK_EQ_INT(wsr_client_state(w->c), target[k]);
        CHECK_EQ_INT(wsr_client_close(w->c, 1000, NULL), WSR_OK);
        CHECK_EQ_INT(wsr_send_text(w->c, "late", 4), WSR_ERR_STATE);
        CHECK_EQ_INT(wsr_client_wait_closed(w->c, 2000), WSR_OK);
        CHECK_EQ_INT(on_main, 0);
        CHECK_EQ_INT(w->ends, 0);   /* the recording callbacks were replaced: nothing else counted */
        world_free(w);
    }
}

/* A slow name lookup runs without the lock: other threads can send. */
static wsr_err slow_open(void *self, const char *host, int port, uint64_t now, wsr_error *err) {
    sleep_ms(500);
    return ft_open(self, host, port, now, err);
}
TEST(slow_dns_does_not_hold_up_senders) {
    world *w = world_cfg(NULL);
    uint64_t t0, t1;
    w->tr.open_fn = slow_open;
    w->cfg.on_reconnecting = NULL;
    w->cfg.on_state = NULL;
    if (!world_new(w)) { CHECK(0); return; }
    CHECK_EQ_INT(wsr_client_start_thread(w->c), WSR_OK);
    sleep_ms(100);               /* the thread is inside open_fn now */
    t0 = wsr_now_ms();
    CHECK_EQ_INT(wsr_send_text(w->c, "hi", 2), WSR_OK);
    CHECK_EQ_INT(wsr_client_queued_messages(w->c), 1);
    t1 = wsr_now_ms();
    CHECK(t1 - t0 < 200);
    world_free(w);
}

TEST_MAIN()
