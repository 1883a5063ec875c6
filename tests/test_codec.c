/* test_codec.c - the RFC 6455 frame codec (wsr_frame_header, wsr_mask,
   wsr_proto_*) driven with byte arrays: no sockets, no clock. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

/* ---- helpers ------------------------------------------------------------- */

/* The RFC 6455 §5.7 mask key, repeated: any 4 aligned bytes are 37 fa 21 3d. */
static const unsigned char rfc_key[4] = { 0x37, 0xfa, 0x21, 0x3d };
static void fixed_rand(void *buf, size_t n, void *user)
{
    unsigned char *b = (unsigned char *)buf;
    size_t i;
    for (i = 0; i < n; i++) b[i] = rfc_key[i & 3];
    if (user) (*(int *)user)++;
}

/* The key our scripted peers use. */
static const unsigned char peer_key[4] = { 0x11, 0x22, 0x33, 0x44 };

/* Counting allocator, to see the largest single allocation and leaks. */
typedef struct { long live; size_t max_size; long calls; } alloc_stats;
static void *cnt_alloc(size_t n, void *user)
{
    alloc_stats *s = (alloc_stats *)user;
    void *p = malloc(n ? n : 1);
    s->calls++;
    if (n > s->max_size) s->max_size = n;
    if (p) s->live++;
    return p;
}
static void cnt_free(void *p, void *user)
{
    alloc_stats *s = (alloc_stats *)user;
    if (p) s->live--;
    free(p);
}

static wsr_proto *new_proto(wsr_role role, size_t max)
{
    return wsr_proto_new(role, max, role == WSR_ROLE_CLIENT ? fixed_rand : NULL, NULL, NULL);
}

/* Writes a header with an explicit declared length. lenform 0: minimal,
   16: force the 16-bit form, 64: force the 64-bit form. */
static size_t mkhdr(unsigned char *out, int byte0, int masked, int lenform, uint64_t len)
{
    size_t h = 0;
    int i;
    unsigned char mb = (unsigned char)(masked ? 0x80 : 0);
    out[h++] = (unsigned char)byte0;
    if (lenform == 0 && len < 126) {
        out[h++] = (unsigned char)(mb | len);
    } else if ((lenform == 0 && len < 65536) || lenform == 16) {
        out[h++] = (unsigned char)(mb | 126);
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    } else {
        out[h++] = (unsigned char)(mb | 127);
        for (i = 0; i < 8; i++) out[h++] = (unsigned char)(len >> (56 - 8 * i));
    }
    if (masked) {
        memcpy(out + h, peer_key, 4);
        h += 4;
    }
    return h;
}

/* A whole frame as a peer would send it (masked iff masked). */
static size_t mkframe_x(unsigned char *out, int fin, int rsv, int op, const void *pl, size_t n,
                        int masked, int lenform)
{
    size_t h = mkhdr(out, (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (op & 15), masked, lenform, n), i;
    if (n) memcpy(out + h, pl, n);
    if (masked)
        for (i = 0; i < n; i++) out[h + i] ^= peer_key[i & 3];
    return h + n;
}
static size_t mkframe(unsigned char *out, int fin, int op, const void *pl, size_t n, int masked)
{
    return mkframe_x(out, fin, 0, op, pl, n, masked, 0);
}

/* A close payload: 2-byte code then reason. */
static size_t close_payload(unsigned char *out, int code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    out[0] = (unsigned char)(code >> 8);
    out[1] = (unsigned char)code;
    if (n) memcpy(out + 2, reason, n);
    return 2 + n;
}

/* Recorded events; data copied out of the borrowed pointer at once. */
typedef struct { int type, msg_type, close_code; size_t len; unsigned char *data; } rec_ev;
typedef struct {
    rec_ev ev[32];
    int n;
    int overflow;        /* more than 32 events */
    int stuck;           /* NONE while bytes were left, or used > len */
    wsr_err err;
    wsr_error e;
} rec;

static void rec_init(rec *r) { memset(r, 0, sizeof *r); }
static void rec_free(rec *r)
{
    int i;
    for (i = 0; i < r->n; i++) free(r->ev[i].data);
    r->n = 0;
}

/* Feeds buf[0..n) (modified in place, as the contract allows) and records
   every event until all is consumed or an error. */
static wsr_err feed(wsr_proto *p, unsigned char *buf, size_t n, rec *r)
{
    size_t off = 0;
    int idle = 0;           /* events in a row that consumed nothing */
    if (r->err != WSR_OK) return r->err;
    for (;;) {
        size_t used = 0;
        wsr_event ev;
        wsr_error e;
        wsr_err rc;
        memset(&ev, 0, sizeof ev);
        memset(&e, 0, sizeof e);
        rc = wsr_proto_parse(p, buf + off, n - off, &used, &ev, &e);
        if (used > n - off) { r->stuck = 1; return r->err = WSR_ERR_STATE; }
        off += used;
        if (rc != WSR_OK) {
            r->err = rc;
            r->e = e;
            return rc;
        }
        if (ev.type == WSR_EVENT_NONE) {
            if (off != n) r->stuck = 1;
            return WSR_OK;
        }
        if (r->n < 32) {
            rec_ev *x = &r->ev[r->n++];
            x->type = (int)ev.type;
            x->msg_type = (int)ev.msg_type;
            x->close_code = ev.close_code;
            x->len = ev.len;
            x->data = (unsigned char *)malloc(ev.len ? ev.len : 1);
            if (ev.len) memcpy(x->data, ev.data, ev.len);
        } else {
            r->overflow = 1;
        }
        if (used == 0 && ++idle > 64) { r->stuck = 1; return r->err = WSR_ERR_STATE; }
        if (used) idle = 0;
    }
}

/* Feeds a stream in one of three ways: 0 whole, 1 byte by byte, 2 split at k. */
static wsr_err feed_mode(wsr_proto *p, const unsigned char *s, size_t n, int mode, size_t k, rec *r)
{
    unsigned char *buf = (unsigned char *)malloc(n ? n : 1);
    size_t i;
    memcpy(buf, s, n);
    if (mode == 0) {
        feed(p, buf, n, r);
    } else if (mode == 1) {
        for (i = 0; i < n && r->err == WSR_OK; i++) feed(p, buf + i, 1, r);
    } else {
        feed(p, buf, k, r);
        feed(p, buf + k, n - k, r);
    }
    free(buf);
    return r->err;
}

static int rec_same(const rec *a, const rec *b)
{
    int i;
    if (a->n != b->n || a->err != b->err || a->stuck != b->stuck) return 0;
    for (i = 0; i < a->n; i++) {
        const rec_ev *x = &a->ev[i], *y = &b->ev[i];
        if (x->type != y->type || x->len != y->len) return 0;
        if (x->type == WSR_EVENT_MESSAGE && x->msg_type != y->msg_type) return 0;
        if (x->type == WSR_EVENT_CLOSE && x->close_code != y->close_code) return 0;
        if (x->len && memcmp(x->data, y->data, x->len) != 0) return 0;
    }
    return 1;
}

/* Drains everything the proto wants to write into a malloc'd buffer. */
static unsigned char *drain(wsr_proto *p, size_t *len)
{
    size_t cap = 256, n = 0;
    unsigned char *out = (unsigned char *)malloc(cap);
    int guard = 0;
    for (;;) {
        const unsigned char *d = NULL;
        size_t k = wsr_proto_pending(p, &d);
        if (k == 0 || ++guard > 100000) break;
        while (n + k > cap) cap *= 2;
        out = (unsigned char *)realloc(out, cap);
        memcpy(out + n, d, k);
        n += k;
        wsr_proto_written(p, k);
    }
    *len = n;
    return out;
}

/* Frames decoded from our own output. Payload copied and unmasked. */
typedef struct { int fin, rsv, op, masked; unsigned char key[4]; size_t len; unsigned char *pl; } dframe;

/* Returns the number of frames, -1 if truncated, -2 if a length is not in
   its minimal form (RFC 6455 §5.2 requires the minimal form). */
static int decode_frames(const unsigned char *d, size_t n, dframe *out, int max)
{
    size_t off = 0;
    int count = 0;
    while (off < n && count < max) {
        size_t h = 2, i;
        uint64_t len;
        dframe *f = &out[count];
        if (n - off < 2) return -1;
        f->fin = d[off] >> 7;
        f->rsv = (d[off] >> 4) & 7;
        f->op = d[off] & 15;
        f->masked = d[off + 1] >> 7;
        len = d[off + 1] & 127;
        if (len == 126) {
            if (n - off < 4) return -1;
            len = ((uint64_t)d[off + 2] << 8) | d[off + 3];
            if (len < 126) return -2;
            h = 4;
        } else if (len == 127) {
            if (n - off < 10) return -1;
            len = 0;
            for (i = 0; i < 8; i++) len = (len << 8) | d[off + 2 + i];
            if (len < 65536) return -2;
            h = 10;
        }
        if (f->masked) {
            if (n - off < h + 4) return -1;
            memcpy(f->key, d + off + h, 4);
            h += 4;
        }
        if ((uint64_t)(n - off - h) < len) return -1;
        f->len = (size_t)len;
        f->pl = (unsigned char *)malloc(f->len ? f->len : 1);
        memcpy(f->pl, d + off + h, f->len);
        if (f->masked)
            for (i = 0; i < f->len; i++) f->pl[i] ^= f->key[i & 3];
        off += h + f->len;
        count++;
    }
    return count;
}
static void free_frames(dframe *f, int n)
{
    int i;
    for (i = 0; i < n; i++) free(f[i].pl);
}

/* Drains p and returns the close code of the last frame if it is a close
   frame (0 for an empty close, -1 if the last frame is not a close). */
static int last_close_code(wsr_proto *p, int *masked)
{
    size_t n;
    unsigned char *out = drain(p, &n);
    dframe f[64];
    int k = decode_frames(out, n, f, 64), code = -1;
    if (k > 0 && f[k - 1].op == WSR_OP_CLOSE) {
        code = f[k - 1].len >= 2 ? (f[k - 1].pl[0] << 8) | f[k - 1].pl[1] : 0;
        if (masked) *masked = f[k - 1].masked;
    }
    if (k > 0) free_frames(f, k);
    free(out);
    return code;
}

static unsigned char *pattern(size_t n)
{
    unsigned char *p = (unsigned char *)malloc(n ? n : 1);
    size_t i;
    for (i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + 3 + (i >> 8));
    return p;
}

static const char *hello = "Hello";

/* ---- frame header and masking: RFC 6455 §5.2, §5.3, examples §5.7 -------- */

TEST(frame_header_rfc_examples)
{
    unsigned char h[16], buf[16];
    size_t n;

    /* single-frame unmasked text "Hello" */
    n = wsr_frame_header(h, 1, WSR_OP_TEXT, 5, NULL);
    CHECK_EQ_INT(n, 2);
    CHECK_MEM(h, "\x81\x05", 2);

    /* single-frame masked text "Hello" */
    n = wsr_frame_header(h, 1, WSR_OP_TEXT, 5, rfc_key);
    CHECK_EQ_INT(n, 6);
    CHECK_MEM(h, "\x81\x85\x37\xfa\x21\x3d", 6);
    memcpy(buf, hello, 5);
    wsr_mask(buf, 5, rfc_key, 0);
    CHECK_MEM(buf, "\x7f\x9f\x4d\x51\x58", 5);

    /* fragmented unmasked text: "Hel" then "lo" */
    n = wsr_frame_header(h, 0, WSR_OP_TEXT, 3, NULL);
    CHECK_EQ_INT(n, 2);
    CHECK_MEM(h, "\x01\x03", 2);
    n = wsr_frame_header(h, 1, WSR_OP_CONTINUATION, 2, NULL);
    CHECK_EQ_INT(n, 2);
    CHECK_MEM(h, "\x80\x02", 2);

    /* unmasked ping, masked pong */
    n = wsr_frame_header(h, 1, WSR_OP_PING, 5, NULL);
    CHECK_EQ_INT(n, 2);
    CHECK_MEM(h, "\x89\x05", 2);
    n = wsr_frame_header(h, 1, WSR_OP_PONG, 5, rfc_key);
    CHECK_EQ_INT(n, 6);
    CHECK_MEM(h, "\x8a\x85\x37\xfa\x21\x3d", 6);

    /* 256 bytes binary: 16-bit length */
    n = wsr_frame_header(h, 1, WSR_OP_BINARY, 256, NULL);
    CHECK_EQ_INT(n, 4);
    CHECK_MEM(h, "\x82\x7e\x01\x00", 4);

    /* 64 KiB binary: 64-bit length */
    n = wsr_frame_header(h, 1, WSR_OP_BINARY, 65536, NULL);
    CHECK_EQ_INT(n, 10);
    CHECK_MEM(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

/* Length boundaries: the minimal form is used (RFC 6455 §5.2). */
TEST(frame_header_length_boundaries)
{
    unsigned char h[16];
    CHECK_EQ_INT(wsr_frame_header(h, 1, WSR_OP_BINARY, 0, NULL), 2);
    CHECK_MEM(h, "\x82\x00", 2);
    CHECK_EQ_INT(wsr_frame_header(h, 1, WSR_OP_BINARY, 125, NULL), 2);
    CHECK_MEM(h, "\x82\x7d", 2);
    CHECK_EQ_INT(wsr_frame_header(h, 1, WSR_OP_BINARY, 126, NULL), 4);
    CHECK_MEM(h, "\x82\x7e\x00\x7e", 4);
    CHECK_EQ_INT(wsr_frame_header(h, 1, WSR_OP_BINARY, 65535, NULL), 4);
    CHECK_MEM(h, "\x82\x7e\xff\xff", 4);
    CHECK_EQ_INT(wsr_frame_header(h, 1, WSR_OP_BINARY, 65536, rfc_key), 14);
    CHECK_MEM(h, "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x37\xfa\x21\x3d", 14);
    CHECK_EQ_INT(wsr_frame_header(h, 1, WSR_OP_BINARY, (uint64_t)0x0123456789abcdefULL, NULL), 10);
    CHECK_MEM(h, "\x82\x7f\x01\x23\x45\x67\x89\xab\xcd\xef", 10);
    CHECK_EQ_INT(wsr_frame_header(h, 0, WSR_OP_CONTINUATION, 126, rfc_key), 8);
    CHECK_MEM(h, "\x00\xfe\x00\x7e\x37\xfa\x21\x3d", 8);
    CHECK_EQ_INT(wsr_frame_header(h, 1, WSR_OP_CLOSE, 0, NULL), 2);
    CHECK_MEM(h, "\x88\x00", 2);
}

/* Masking (RFC 6455 §5.3): j-th byte XOR key[j mod 4], resumable at an offset. */
TEST(mask_matches_naive_loop)
{
    static const unsigned char key[4] = { 0xa5, 0x01, 0x7e, 0xc3 };
    unsigned char src[256], a[272], b[272];
    size_t len, i;
    int off, align, bad = 0;
    for (i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i * 31 + 7);
    for (len = 0; len <= 200; len++)
        for (off = 0; off < 8; off++)
            for (align = 0; align < 8; align++) {
                memset(a, 0xee, sizeof a);
                memcpy(a + align, src, len);
                memcpy(b, a, sizeof a);
                wsr_mask(a + align, len, key, (size_t)off);
                for (i = 0; i < len; i++) b[align + i] ^= key[(i + (size_t)off) & 3];
                if (memcmp(a, b, sizeof a) != 0) bad++;   /* also nothing outside touched */
            }
    CHECK_EQ_INT(bad, 0);
}

TEST(mask_in_pieces)
{
    unsigned char whole[1000], pieces[1000], orig[1000];
    size_t i, pos, step;
    int bad = 0;
    for (i = 0; i < sizeof whole; i++) orig[i] = (unsigned char)(i ^ (i >> 3));
    memcpy(whole, orig, sizeof whole);
    wsr_mask(whole, sizeof whole, rfc_key, 0);
    for (step = 1; step <= 70; step++) {
        memcpy(pieces, orig, sizeof pieces);
        for (pos = 0; pos < sizeof pieces; pos += step) {
            size_t k = sizeof pieces - pos < step ? sizeof pieces - pos : step;
            wsr_mask(pieces + pos, k, rfc_key, pos);
        }
        if (memcmp(pieces, whole, sizeof whole) != 0) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* pieces of growing size 1,2,3,... */
    memcpy(pieces, orig, sizeof pieces);
    for (pos = 0, step = 1; pos < sizeof pieces; pos += step, step++) {
        size_t k = sizeof pieces - pos < step ? sizeof pieces - pos : step;
        wsr_mask(pieces + pos, k, rfc_key, pos);
    }
    CHECK_MEM(pieces, whole, sizeof whole);
    /* masking twice restores */
    wsr_mask(whole, sizeof whole, rfc_key, 0);
    CHECK_MEM(whole, orig, sizeof whole);
    /* offset is taken mod 4 */
    memcpy(pieces, orig, 16);
    wsr_mask(pieces, 16, rfc_key, 4001);
    memcpy(whole, orig, 16);
    wsr_mask(whole, 16, rfc_key, 1);
    CHECK_MEM(pieces, whole, 16);
}

/* ---- parsing: every length encoding, any chunking (RFC 6455 §5.2) -------- */

/* Feeds a stream of one binary frame of length len then a text frame "end",
   whole, byte by byte, and split at positions; checks the same events. */
static void check_length(wsr_role role, size_t len, int all_splits, int bytewise)
{
    int masked = role == WSR_ROLE_SERVER;       /* a server parses masked client frames */
    unsigned char *pl = pattern(len);
    unsigned char *s = (unsigned char *)malloc(len + 32);
    size_t n, k, hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
    size_t step = len > 100000 ? 65537 : 4099;
    rec whole, other;
    wsr_proto *p;
    int bad = 0;

    hdr += masked ? 4 : 0;
    n = mkframe(s, 1, WSR_OP_BINARY, pl, len, masked);
    n += mkframe(s + n, 1, WSR_OP_TEXT, "end", 3, masked);

    rec_init(&whole);
    p = new_proto(role, 2 * 1024 * 1024);
    CHECK(p != NULL);
    if (!p) { free(pl); free(s); return; }
    feed_mode(p, s, n, 0, 0, &whole);
    wsr_proto_free(p);
    CHECK_EQ_INT(whole.err, WSR_OK);
    CHECK_EQ_INT(whole.stuck, 0);
    CHECK_EQ_INT(whole.n, 2);
    if (whole.n == 2) {
        CHECK_EQ_INT(whole.ev[0].type, WSR_EVENT_MESSAGE);
        CHECK_EQ_INT(whole.ev[0].msg_type, WSR_MSG_BINARY);
        CHECK_EQ_INT(whole.ev[0].len, len);
        CHECK(whole.ev[0].len == len && (len == 0 || memcmp(whole.ev[0].data, pl, len) == 0));
        CHECK_EQ_INT(whole.ev[1].type, WSR_EVENT_MESSAGE);
        CHECK_EQ_INT(whole.ev[1].msg_type, WSR_MSG_TEXT);
        CHECK(whole.ev[1].len == 3 && memcmp(whole.ev[1].data, "end", 3) == 0);
    }

    if (bytewise) {
        rec_init(&other);
        p = new_proto(role, 2 * 1024 * 1024);
        feed_mode(p, s, n, 1, 0, &other);
        wsr_proto_free(p);
        if (!rec_same(&whole, &other)) {
            printf("  length %u role %d: byte-by-byte feed differs\n", (unsigned)len, (int)role);
            bad++;
        }
        rec_free(&other);
    }
    for (k = 0; k <= n; k++) {
        if (!all_splits && !(k <= hdr + 8 || k + 16 >= n || k % step == 0 || k == n / 2)) continue;
        rec_init(&other);
        p = new_proto(role, 2 * 1024 * 1024);
        feed_mode(p, s, n, 2, k, &other);
        wsr_proto_free(p);
        if (!rec_same(&whole, &other)) {
            if (bad < 5)
                printf("  length %u role %d: split at %u differs\n", (unsigned)len, (int)role,
                       (unsigned)k);
            bad++;
        }
        rec_free(&other);
    }
    CHECK_EQ_INT(bad, 0);
    rec_free(&whole);
    free(pl);
    free(s);
}

TEST(parse_lengths_server_role)
{
    check_length(WSR_ROLE_SERVER, 0, 1, 1);
    check_length(WSR_ROLE_SERVER, 1, 1, 1);
    check_length(WSR_ROLE_SERVER, 125, 1, 1);
    check_length(WSR_ROLE_SERVER, 126, 1, 1);
    check_length(WSR_ROLE_SERVER, 127, 1, 1);
    check_length(WSR_ROLE_SERVER, 65535, 0, 1);
    check_length(WSR_ROLE_SERVER, 65536, 0, 1);
    check_length(WSR_ROLE_SERVER, 1024 * 1024, 0, 1);
}

TEST(parse_lengths_client_role)
{
    check_length(WSR_ROLE_CLIENT, 0, 1, 1);
    check_length(WSR_ROLE_CLIENT, 1, 1, 1);
    check_length(WSR_ROLE_CLIENT, 125, 1, 1);
    check_length(WSR_ROLE_CLIENT, 126, 1, 1);
    check_length(WSR_ROLE_CLIENT, 127, 1, 1);
    check_length(WSR_ROLE_CLIENT, 65535, 0, 1);
    check_length(WSR_ROLE_CLIENT, 65536, 0, 1);
    check_length(WSR_ROLE_CLIENT, 1024 * 1024, 0, 1);
}

/* A mixed stream split at every position: fragments with a ping between,
   an empty binary, a 126-byte text and a close (RFC 6455 §5.4, §5.5). */
static void check_mixed_stream(wsr_role role)
{
    int masked = role == WSR_ROLE_SERVER;
    unsigned char s[1024], pl[200], text126[126];
    size_t n = 0, k;
    rec whole, other;
    wsr_proto *p;
    int bad = 0;

    memset(text126, 'T', sizeof text126);
    n += mkframe(s + n, 0, WSR_OP_TEXT, "Hel", 3, masked);
    n += mkframe(s + n, 1, WSR_OP_PING, "pp", 2, masked);
    n += mkframe(s + n, 1, WSR_OP_CONTINUATION, "lo", 2, masked);
    n += mkframe(s + n, 1, WSR_OP_BINARY, "", 0, masked);
    n += mkframe(s + n, 1, WSR_OP_TEXT, text126, 126, masked);
    n += mkframe(s + n, 1, WSR_OP_CLOSE, pl, close_payload(pl, 1000, "bye"), masked);

    rec_init(&whole);
    p = new_proto(role, 1 << 20);
    feed_mode(p, s, n, 0, 0, &whole);
    wsr_proto_free(p);
    CHECK_EQ_INT(whole.err, WSR_OK);
    CHECK_EQ_INT(whole.stuck, 0);
    CHECK_EQ_INT(whole.n, 5);
    if (whole.n == 5) {
        CHECK_EQ_INT(whole.ev[0].type, WSR_EVENT_PING);
        CHECK(whole.ev[0].len == 2 && memcmp(whole.ev[0].data, "pp", 2) == 0);
        CHECK_EQ_INT(whole.ev[1].type, WSR_EVENT_MESSAGE);
        CHECK(whole.ev[1].len == 5 && memcmp(whole.ev[1].data, hello, 5) == 0);
        CHECK_EQ_INT(whole.ev[2].type, WSR_EVENT_MESSAGE);
        CHECK_EQ_INT(whole.ev[2].msg_type, WSR_MSG_BINARY);
        CHECK_EQ_INT(whole.ev[2].len, 0);
        CHECK_EQ_INT(whole.ev[3].len, 126);
        CHECK_EQ_INT(whole.ev[4].type, WSR_EVENT_CLOSE);
        CHECK_EQ_INT(whole.ev[4].close_code, 1000);
        CHECK(whole.ev[4].len == 3 && memcmp(whole.ev[4].data, "bye", 3) == 0);
    }
    rec_init(&other);
    p = new_proto(role, 1 << 20);
    feed_mode(p, s, n, 1, 0, &other);
    wsr_proto_free(p);
    if (!rec_same(&whole, &other)) { printf("  mixed role %d: byte-by-byte differs\n", (int)role); bad++; }
    rec_free(&other);
    for (k = 0; k <= n; k++) {
        rec_init(&other);
        p = new_proto(role, 1 << 20);
        feed_mode(p, s, n, 2, k, &other);
        wsr_proto_free(p);
        if (!rec_same(&whole, &other)) {
            if (bad < 5) printf("  mixed role %d: split at %u differs\n", (int)role, (unsigned)k);
            bad++;
        }
        rec_free(&other);
    }
    CHECK_EQ_INT(bad, 0);
    rec_free(&whole);
}

TEST(parse_mixed_stream_any_split)
{
    check_mixed_stream(WSR_ROLE_SERVER);
    check_mixed_stream(WSR_ROLE_CLIENT);
}

/* The proto frees everything it allocated. */
TEST(proto_no_leak)
{
    alloc_stats st;
    wsr_allocator al;
    wsr_proto *p;
    unsigned char s[300], *big = pattern(100000), *bs = (unsigned char *)malloc(100020);
    size_t n;
    rec r;
    memset(&st, 0, sizeof st);
    al.alloc_fn = cnt_alloc;
    al.free_fn = cnt_free;
    al.user = &st;
    p = wsr_proto_new(WSR_ROLE_SERVER, 1 << 20, NULL, NULL, &al);
    CHECK(p != NULL);
    rec_init(&r);
    n = mkframe(s, 0, WSR_OP_TEXT, "abc", 3, 1);
    feed_mode(p, s, n, 0, 0, &r);
    /* the continuation of a text message: ASCII */
    {
        unsigned char *asc = (unsigned char *)malloc(100000);
        memset(asc, 'z', 100000);
        n = mkframe(bs, 1, WSR_OP_CONTINUATION, asc, 100000, 1);
        free(asc);
    }
    feed_mode(p, bs, n, 1, 0, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(wsr_proto_send(p, WSR_OP_BINARY, big, 100000, 1000), WSR_OK);
    wsr_proto_free(p);
    CHECK(st.calls > 0);                  /* the allocator given was used */
    CHECK_EQ_INT(st.live, 0);
    wsr_proto_free(NULL);                 /* a no-op */
    rec_free(&r);
    free(big);
    free(bs);
}

/* A client proto needs a rand_fn (its contract); a server ignores it. */
TEST(proto_new_rand_fn)
{
    wsr_proto *p = wsr_proto_new(WSR_ROLE_CLIENT, 0, NULL, NULL, NULL);
    CHECK(p == NULL);
    wsr_proto_free(p);
    p = wsr_proto_new(WSR_ROLE_SERVER, 0, NULL, NULL, NULL);
    CHECK(p != NULL);
    wsr_proto_free(p);
}

/* ---- output: masking by role, fragmentation (RFC 6455 §5.1, §5.3, §5.4) -- */

TEST(client_output_masked_rfc_example)
{
    int calls = 0;
    wsr_proto *c = wsr_proto_new(WSR_ROLE_CLIENT, 1 << 20, fixed_rand, &calls, NULL);
    wsr_proto *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    const unsigned char *d = NULL;
    unsigned char buf[64];
    size_t n;
    rec r;

    CHECK_EQ_INT(wsr_proto_send(c, WSR_OP_TEXT, hello, 5, 0), WSR_OK);
    n = wsr_proto_pending(c, &d);
    CHECK_EQ_INT(n, 11);
    CHECK(calls > 0);
    if (n == 11) CHECK_MEM(d, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    if (n > sizeof buf) n = sizeof buf;
    memcpy(buf, d, n);
    wsr_proto_written(c, n);
    CHECK_EQ_INT(wsr_proto_pending(c, &d), 0);

    rec_init(&r);
    feed(s, buf, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_EQ_INT(r.ev[0].msg_type, WSR_MSG_TEXT);
        CHECK(r.ev[0].len == 5 && memcmp(r.ev[0].data, hello, 5) == 0);
    }
    rec_free(&r);
    wsr_proto_free(c);
    wsr_proto_free(s);
}

TEST(server_output_unmasked)
{
    wsr_proto *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    unsigned char *pl = pattern(256), *out;
    size_t n;
    CHECK_EQ_INT(wsr_proto_send(s, WSR_OP_TEXT, hello, 5, 0), WSR_OK);
    out = drain(s, &n);
    CHECK_EQ_INT(n, 7);
    CHECK_MEM(out, "\x81\x05Hello", 7);
    free(out);
    CHECK_EQ_INT(wsr_proto_send(s, WSR_OP_BINARY, pl, 256, 0), WSR_OK);
    out = drain(s, &n);
    CHECK_EQ_INT(n, 260);
    CHECK_MEM(out, "\x82\x7e\x01\x00", 4);
    if (n == 260) CHECK_MEM(out + 4, pl, 256);
    free(out);
    free(pl);
    wsr_proto_free(s);
}

/* Client to server and server to client, all three length forms. */
static void roundtrip(wsr_role from, size_t len, size_t frag)
{
    wsr_proto *a = new_proto(from, 1 << 22);
    wsr_proto *b = new_proto(from == WSR_ROLE_CLIENT ? WSR_ROLE_SERVER : WSR_ROLE_CLIENT, 1 << 22);
    unsigned char *pl = pattern(len), *out;
    size_t n, total = 0;
    dframe *f = (dframe *)malloc(1024 * sizeof *f);
    int k, i, ok = 1;
    rec r;

    CHECK_EQ_INT(wsr_proto_send(a, WSR_OP_BINARY, pl, len, frag), WSR_OK);
    out = drain(a, &n);
    k = decode_frames(out, n, f, 1024);
    CHECK(k >= 1);
    for (i = 0; i < k; i++) {
        if (f[i].masked != (from == WSR_ROLE_CLIENT)) ok = 0;
        if (f[i].masked && !(f[i].key[0] | f[i].key[1] | f[i].key[2] | f[i].key[3])) ok = 0;
        if (f[i].rsv) ok = 0;
        if (f[i].op != (i == 0 ? WSR_OP_BINARY : WSR_OP_CONTINUATION)) ok = 0;
        if (f[i].fin != (i == k - 1)) ok = 0;
        if (frag && f[i].len > frag) ok = 0;
        if (total + f[i].len <= len && memcmp(f[i].pl, pl + total, f[i].len) != 0) ok = 0;
        total += f[i].len;
    }
    if (!ok) printf("  roundtrip role %d len %u frag %u: bad frames\n", (int)from, (unsigned)len,
                    (unsigned)frag);
    CHECK(ok);
    CHECK_EQ_INT(total, len);
    if (frag && len) CHECK_EQ_INT(k, (int)((len + frag - 1) / frag));
    if (!frag) CHECK_EQ_INT(k, 1);
    rec_init(&r);
    feed(b, out, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_EQ_INT(r.ev[0].type, WSR_EVENT_MESSAGE);
        CHECK_EQ_INT(r.ev[0].msg_type, WSR_MSG_BINARY);
        CHECK(r.ev[0].len == len && (len == 0 || memcmp(r.ev[0].data, pl, len) == 0));
    }
    if (k > 0) free_frames(f, k);
    if (k == -2) printf("  roundtrip: our output uses a non-minimal length (RFC 6455 §5.2)\n");
    free(f);
    rec_free(&r);
    free(out);
    free(pl);
    wsr_proto_free(a);
    wsr_proto_free(b);
}

TEST(roundtrip_client_server)
{
    static const size_t lens[] = { 0, 1, 125, 126, 65535, 65536, 300000 };
    size_t i;
    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        roundtrip(WSR_ROLE_CLIENT, lens[i], 0);
        roundtrip(WSR_ROLE_SERVER, lens[i], 0);
    }
}

TEST(roundtrip_fragmented)
{
    roundtrip(WSR_ROLE_CLIENT, 10, 3);      /* 3+3+3+1 */
    roundtrip(WSR_ROLE_SERVER, 10, 3);
    roundtrip(WSR_ROLE_CLIENT, 9, 3);       /* exact multiple: 3 frames */
    roundtrip(WSR_ROLE_CLIENT, 70000, 1000);
    roundtrip(WSR_ROLE_SERVER, 200000, 65536);
    roundtrip(WSR_ROLE_CLIENT, 5, 100);     /* fits in one frame */
}

/* Text fragmented by our encoder in the middle of multi-byte characters is
   still accepted by the peer (validation spans fragments, RFC 6455 §5.6). */
TEST(roundtrip_fragmented_utf8_text)
{
    static const char txt[] = "\xc3\xa9\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    wsr_proto *c = new_proto(WSR_ROLE_CLIENT, 1 << 20), *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    unsigned char *out;
    size_t n, len = sizeof txt - 1;
    dframe f[16];
    int k;
    rec r;
    CHECK_EQ_INT(wsr_proto_send(c, WSR_OP_TEXT, txt, len, 3), WSR_OK);
    out = drain(c, &n);
    k = decode_frames(out, n, f, 16);
    CHECK_EQ_INT(k, 4);                     /* 12 bytes in frames of 3 */
    if (k > 0) {
        CHECK_EQ_INT(f[0].op, WSR_OP_TEXT);
        CHECK_EQ_INT(f[0].fin, 0);
        CHECK_EQ_INT(f[k - 1].op, WSR_OP_CONTINUATION);
        CHECK_EQ_INT(f[k - 1].fin, 1);
        free_frames(f, k);
    }
    rec_init(&r);
    feed(s, out, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_EQ_INT(r.ev[0].msg_type, WSR_MSG_TEXT);
        CHECK(r.ev[0].len == len && memcmp(r.ev[0].data, txt, len) == 0);
    }
    rec_free(&r);
    free(out);
    wsr_proto_free(c);
    wsr_proto_free(s);
}

/* Pending output can be written in pieces. */
TEST(pending_written_in_pieces)
{
    wsr_proto *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    const unsigned char *d = NULL;
    unsigned char got[64];
    size_t n, total = 0;
    CHECK_EQ_INT(wsr_proto_pending(s, &d), 0);
    CHECK_EQ_INT(wsr_proto_send(s, WSR_OP_TEXT, hello, 5, 0), WSR_OK);
    n = wsr_proto_pending(s, &d);
    CHECK_EQ_INT(n, 7);
    memcpy(got, d, 3);
    wsr_proto_written(s, 3);
    total = 3;
    CHECK_EQ_INT(wsr_proto_send(s, WSR_OP_BINARY, "xy", 2, 0), WSR_OK);
    for (;;) {
        n = wsr_proto_pending(s, &d);
        if (!n || total + n > sizeof got) break;
        if (n > 2) n = 2;                  /* write two bytes at a time */
        memcpy(got + total, d, n);
        total += n;
        wsr_proto_written(s, n);
    }
    CHECK_EQ_INT(total, 11);
    CHECK_MEM(got, "\x81\x05Hello\x82\x02xy", 11);
    wsr_proto_free(s);
}

/* ---- control frames between fragments (RFC 6455 §5.4, §5.5.2, §5.5.3) ---- */

TEST(ping_pong_between_fragments)
{
    wsr_proto *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    unsigned char b[256], *out;
    size_t n = 0, on;
    rec r;
    n += mkframe(b + n, 0, WSR_OP_TEXT, "Hel", 3, 1);
    n += mkframe(b + n, 1, WSR_OP_PING, "pp", 2, 1);
    n += mkframe(b + n, 0, WSR_OP_CONTINUATION, "lo, ", 4, 1);
    n += mkframe(b + n, 1, WSR_OP_PONG, "qq", 2, 1);
    n += mkframe(b + n, 1, WSR_OP_CONTINUATION, "world", 5, 1);
    rec_init(&r);
    feed(s, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 3);
    if (r.n == 3) {
        CHECK_EQ_INT(r.ev[0].type, WSR_EVENT_PING);
        CHECK(r.ev[0].len == 2 && memcmp(r.ev[0].data, "pp", 2) == 0);
        CHECK_EQ_INT(r.ev[1].type, WSR_EVENT_PONG);
        CHECK(r.ev[1].len == 2 && memcmp(r.ev[1].data, "qq", 2) == 0);
        CHECK_EQ_INT(r.ev[2].type, WSR_EVENT_MESSAGE);
        CHECK_EQ_INT(r.ev[2].msg_type, WSR_MSG_TEXT);
        CHECK(r.ev[2].len == 12 && memcmp(r.ev[2].data, "Hello, world", 12) == 0);
    }
    /* the pong answering "pp", unmasked from a server; nothing for the pong */
    out = drain(s, &on);
    CHECK_EQ_INT(on, 4);
    CHECK_MEM(out, "\x8a\x02pp", on < 4 ? on : 4);
    free(out);
    rec_free(&r);
    wsr_proto_free(s);
}

/* The pong is already queued when the PING event comes out. */
TEST(ping_answered_at_event)
{
    wsr_proto *c = new_proto(WSR_ROLE_CLIENT, 1 << 20);
    unsigned char b[256], big[125], *out;
    size_t n, used = 0, on;
    wsr_event ev;
    wsr_error e;
    dframe f[4];
    int k;
    memset(&ev, 0, sizeof ev);
    memset(&e, 0, sizeof e);
    n = mkframe(b, 1, WSR_OP_PING, "pp", 2, 0);
    CHECK_EQ_INT(wsr_proto_parse(c, b, n, &used, &ev, &e), WSR_OK);
    CHECK_EQ_INT(ev.type, WSR_EVENT_PING);
    CHECK_EQ_INT(used, n);
    /* a client's pong is masked with the rand_fn key */
    out = drain(c, &on);
    CHECK_EQ_INT(on, 8);
    CHECK_MEM(out, "\x8a\x82\x37\xfa\x21\x3d\x47\x8a", on < 8 ? on : 8);
    free(out);
    /* an empty ping and a 125-byte ping */
    n = mkframe(b, 1, WSR_OP_PING, "", 0, 0);
    memset(&ev, 0, sizeof ev);
    CHECK_EQ_INT(wsr_proto_parse(c, b, n, &used, &ev, &e), WSR_OK);
    CHECK_EQ_INT(ev.type, WSR_EVENT_PING);
    CHECK_EQ_INT(ev.len, 0);
    memset(big, 'P', sizeof big);
    n = mkframe(b, 1, WSR_OP_PING, big, 125, 0);
    memset(&ev, 0, sizeof ev);
    CHECK_EQ_INT(wsr_proto_parse(c, b, n, &used, &ev, &e), WSR_OK);
    CHECK_EQ_INT(ev.type, WSR_EVENT_PING);
    CHECK_EQ_INT(ev.len, 125);
    out = drain(c, &on);
    k = decode_frames(out, on, f, 4);
    CHECK_EQ_INT(k, 2);
    if (k == 2) {
        CHECK(f[0].op == WSR_OP_PONG && f[0].len == 0 && f[0].masked);
        CHECK(f[1].op == WSR_OP_PONG && f[1].len == 125 && memcmp(f[1].pl, big, 125) == 0);
    }
    if (k > 0) free_frames(f, k);
    free(out);
    wsr_proto_free(c);
}

/* A character split across fragments is fine (RFC 6455 §5.6: the whole
   message must be valid UTF-8, not each fragment). */
TEST(utf8_char_split_across_fragments)
{
    wsr_proto *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    unsigned char b[256];
    size_t n = 0;
    rec r;
    n += mkframe(b + n, 0, WSR_OP_TEXT, "caf\xc3", 4, 1);
    n += mkframe(b + n, 1, WSR_OP_CONTINUATION, "\xa9", 1, 1);
    n += mkframe(b + n, 0, WSR_OP_TEXT, "\xf0", 1, 1);
    n += mkframe(b + n, 0, WSR_OP_CONTINUATION, "\x9f", 1, 1);
    n += mkframe(b + n, 1, WSR_OP_PING, "", 0, 1);
    n += mkframe(b + n, 0, WSR_OP_CONTINUATION, "", 0, 1);
    n += mkframe(b + n, 1, WSR_OP_CONTINUATION, "\x98\x80", 2, 1);
    rec_init(&r);
    feed(s, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 3);
    if (r.n == 3) {
        CHECK(r.ev[0].len == 5 && memcmp(r.ev[0].data, "caf\xc3\xa9", 5) == 0);
        CHECK_EQ_INT(r.ev[1].type, WSR_EVENT_PING);
        CHECK(r.ev[2].len == 4 && memcmp(r.ev[2].data, "\xf0\x9f\x98\x80", 4) == 0);
    }
    rec_free(&r);
    wsr_proto_free(s);
}

/* ---- close handshake (RFC 6455 §5.5.1, §7.1.5, §7.4) ---------------------- */

TEST(close_peer_first)
{
    wsr_proto *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    unsigned char b[64], pl[32], *out;
    const unsigned char *d;
    size_t n, on;
    dframe f[4];
    int k;
    rec r;
    n = mkframe(b, 1, WSR_OP_CLOSE, pl, close_payload(pl, 1000, "bye"), 1);
    rec_init(&r);
    feed(s, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_EQ_INT(r.ev[0].type, WSR_EVENT_CLOSE);
        CHECK_EQ_INT(r.ev[0].close_code, 1000);
        CHECK(r.ev[0].len == 3 && memcmp(r.ev[0].data, "bye", 3) == 0);
    }
    CHECK_EQ_INT(wsr_proto_close_received(s), 1);
    CHECK_EQ_INT(wsr_proto_close_sent(s), 1);
    out = drain(s, &on);
    k = decode_frames(out, on, f, 4);
    CHECK_EQ_INT(k, 1);
    if (k == 1) {
        CHECK_EQ_INT(f[0].op, WSR_OP_CLOSE);
        CHECK_EQ_INT(f[0].fin, 1);
        CHECK_EQ_INT(f[0].masked, 0);
        CHECK(f[0].len >= 2 && ((f[0].pl[0] << 8) | f[0].pl[1]) == 1000);
        free_frames(f, k);
    }
    free(out);
    /* nothing more may be sent (RFC 6455 §5.5.1) */
    CHECK_EQ_INT(wsr_proto_send(s, WSR_OP_TEXT, "x", 1, 0), WSR_ERR_STATE);
    CHECK_EQ_INT(wsr_proto_pending(s, &d), 0);
    rec_free(&r);
    wsr_proto_free(s);
}

TEST(close_we_first)
{
    wsr_proto *c = new_proto(WSR_ROLE_CLIENT, 1 << 20);
    unsigned char b[64], pl[32], *out;
    const unsigned char *d;
    size_t n, on;
    dframe f[4];
    int k;
    rec r;
    CHECK_EQ_INT(wsr_proto_close(c, 1000, "done", 4), WSR_OK);
    CHECK_EQ_INT(wsr_proto_close_sent(c), 1);
    CHECK_EQ_INT(wsr_proto_close_received(c), 0);
    out = drain(c, &on);
    k = decode_frames(out, on, f, 4);
    CHECK_EQ_INT(k, 1);
    if (k == 1) {
        CHECK_EQ_INT(f[0].op, WSR_OP_CLOSE);
        CHECK_EQ_INT(f[0].masked, 1);
        CHECK(f[0].len == 6 && memcmp(f[0].pl, "\x03\xe8" "done", 6) == 0);
        free_frames(f, k);
    }
    free(out);
    CHECK_EQ_INT(wsr_proto_send(c, WSR_OP_TEXT, "x", 1, 0), WSR_ERR_STATE);
    /* the peer's answer: an event, and no second close frame */
    n = mkframe(b, 1, WSR_OP_CLOSE, pl, close_payload(pl, 1000, ""), 0);
    rec_init(&r);
    feed(c, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_EQ_INT(r.ev[0].type, WSR_EVENT_CLOSE);
        CHECK_EQ_INT(r.ev[0].close_code, 1000);
        CHECK_EQ_INT(r.ev[0].len, 0);
    }
    CHECK_EQ_INT(wsr_proto_close_received(c), 1);
    CHECK_EQ_INT(wsr_proto_pending(c, &d), 0);
    rec_free(&r);
    wsr_proto_free(c);
}

/* An empty close frame: code 1005 reported, never sent on the wire (§7.4.1). */
TEST(close_empty)
{
    wsr_proto *s = new_proto(WSR_ROLE_SERVER, 1 << 20);
    unsigned char b[16], *out;
    size_t n, on;
    dframe f[4];
    int k;
    rec r;
    n = mkframe(b, 1, WSR_OP_CLOSE, "", 0, 1);
    rec_init(&r);
    feed(s, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_EQ_INT(r.ev[0].type, WSR_EVENT_CLOSE);
        CHECK_EQ_INT(r.ev[0].close_code, 1005);
        CHECK_EQ_INT(r.ev[0].len, 0);
    }
    out = drain(s, &on);
    k = decode_frames(out, on, f, 4);
    CHECK_EQ_INT(k, 1);
    if (k == 1) {
        CHECK_EQ_INT(f[0].op, WSR_OP_CLOSE);
        CHECK_EQ_INT(f[0].len, 0);   /* an empty close is answered by an empty close (README) */
        free_frames(f, k);
    }
    free(out);
    rec_free(&r);
    wsr_proto_free(s);
}

/* wsr_proto_close argument checks (its contract, RFC 6455 §7.4, §5.5). */
TEST(close_arguments)
{
    static const int bad_codes[] = { 1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, -1 };
    char reason[200];
    size_t i;
    wsr_proto *p;
    const unsigned char *d;
    unsigned char *out;
    size_t on;
    for (i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        p = new_proto(WSR_ROLE_SERVER, 1 << 20);
        CHECK_EQ_INT(wsr_proto_close(p, bad_codes[i], NULL, 0), WSR_ERR_INVALID);
        CHECK_EQ_INT(wsr_proto_close_sent(p), 0);
        CHECK_EQ_INT(wsr_proto_pending(p, &d), 0);
        wsr_proto_free(p);
    }
    memset(reason, 'r', sizeof reason);
    p = new_proto(WSR_ROLE_SERVER, 1 << 20);
    CHECK_EQ_INT(wsr_proto_close(p, 1000, reason, 124), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_proto_close(p, 1000, "\xff", 1), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_proto_close(p, 1000, "ab\xe2\x82", 4), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_proto_close_sent(p), 0);
    CHECK_EQ_INT(wsr_proto_close(p, 4000, reason, 123), WSR_OK);
    out = drain(p, &on);
    CHECK_EQ_INT(on, 127);
    CHECK_MEM(out, "\x88\x7d\x0f\xa0", 4);
    free(out);
    wsr_proto_free(p);
    /* code 0: a close frame with no payload */
    p = new_proto(WSR_ROLE_SERVER, 1 << 20);
    CHECK_EQ_INT(wsr_proto_close(p, 0, NULL, 0), WSR_OK);
    out = drain(p, &on);
    CHECK_EQ_INT(on, 2);
    CHECK_MEM(out, "\x88\x00", 2);
    free(out);
    wsr_proto_free(p);
}

/* ---- violations: each must fail with the right code and a queued close --- */

/* Feeds bytes to a fresh proto; expects error want_rc, close code want_code,
   and a close frame with that code at the end of the output (§7.1.7). */
static void expect_violation(const char *label, wsr_role role, size_t max, const unsigned char *s,
                             size_t n, wsr_err want_rc, int want_code)
{
    wsr_proto *p = new_proto(role, max);
    unsigned char *buf = (unsigned char *)malloc(n ? n : 1);
    int code, masked = -1;
    int ok;
    rec r;
    memcpy(buf, s, n);
    rec_init(&r);
    feed(p, buf, n, &r);
    code = last_close_code(p, &masked);
    ok = r.err == want_rc && r.e.close_code == want_code && code == want_code &&
         r.e.code == want_rc && masked == (role == WSR_ROLE_CLIENT) && wsr_proto_close_sent(p);
    if (!ok)
        printf("  violation \"%s\": rc %d (want %d), err.close_code %d, err.code %d, queued close %d "
               "(want %d), masked %d\n", label, (int)r.err, (int)want_rc, r.e.close_code,
               (int)r.e.code, code, want_code, masked);
    CHECK_EQ_INT(r.err, want_rc);
    CHECK_EQ_INT(r.e.code, want_rc);
    CHECK_EQ_INT(r.e.close_code, want_code);
    CHECK_EQ_INT(code, want_code);
    CHECK_EQ_INT(masked, role == WSR_ROLE_CLIENT);
    CHECK(r.e.message[0] != 0);
    CHECK_EQ_INT(wsr_proto_close_sent(p), 1);
    CHECK_EQ_INT(wsr_proto_send(p, WSR_OP_TEXT, "x", 1, 0), WSR_ERR_STATE);
    rec_free(&r);
    free(buf);
    wsr_proto_free(p);
}

#define PROTO WSR_ERR_PROTOCOL
#define MAXM (1u << 20)

/* RFC 6455 §5.2: RSV bits must be 0 without a negotiated extension. */
TEST(violation_rsv_bits)
{
    unsigned char b[32];
    size_t n;
    int rsv;
    for (rsv = 1; rsv <= 4; rsv <<= 1) {
        n = mkframe_x(b, 1, rsv, WSR_OP_TEXT, "Hi", 2, 0, 0);
        expect_violation("rsv (client)", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
        n = mkframe_x(b, 1, rsv, WSR_OP_BINARY, "Hi", 2, 1, 0);
        expect_violation("rsv (server)", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
        n = mkframe_x(b, 1, rsv, WSR_OP_PING, "", 0, 0, 0);
        expect_violation("rsv on ping", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    }
}

/* RFC 6455 §5.2: opcodes 3-7 and 0xB-0xF are reserved. */
TEST(violation_reserved_opcodes)
{
    unsigned char b[32];
    size_t n;
    int op;
    char label[32];
    for (op = 3; op <= 15; op++) {
        if (op >= 8 && op <= 10) continue;
        sprintf(label, "opcode %d", op);
        n = mkframe(b, 1, op, "", 0, 0);
        expect_violation(label, WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
        n = mkframe(b, 1, op, "ab", 2, 1);
        expect_violation(label, WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    }
}

/* RFC 6455 §5.5: control frames carry at most 125 bytes and are not fragmented. */
TEST(violation_control_frames)
{
    unsigned char b[300], pl[130];
    size_t n;
    memset(pl, 'c', sizeof pl);
    pl[0] = 0x03; pl[1] = 0xe8;                  /* a close code, for the close case */
    n = mkframe(b, 1, WSR_OP_PING, pl, 126, 0);  /* uses the 126 form, whole frame */
    expect_violation("ping 126 bytes", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 1, WSR_OP_PONG, pl, 126, 1);
    expect_violation("pong 126 bytes", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 1, WSR_OP_CLOSE, pl, 126, 0);
    expect_violation("close 126 bytes", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    /* the declared length alone must fail (header only) */
    n = mkhdr(b, 0x89, 0, 0, 126);
    expect_violation("ping header declaring 126", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkhdr(b, 0x89, 1, 64, 70000);
    expect_violation("ping header declaring 70000", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    /* fragmented control frames */
    n = mkframe(b, 0, WSR_OP_PING, "x", 1, 0);
    expect_violation("ping fin=0", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 0, WSR_OP_PONG, "", 0, 1);
    expect_violation("pong fin=0", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 0, WSR_OP_CLOSE, "\x03\xe8", 2, 0);
    expect_violation("close fin=0", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
}

/* RFC 6455 §5.4: continuation only continues, and no new message starts
   before the fragmented one ends. */
TEST(violation_fragmentation_order)
{
    unsigned char b[64];
    size_t n;
    n = mkframe(b, 1, WSR_OP_CONTINUATION, "ab", 2, 0);
    expect_violation("continuation first", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 0, WSR_OP_CONTINUATION, "ab", 2, 1);
    expect_violation("continuation fin=0 first", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 1, WSR_OP_TEXT, "a", 1, 0);
    n += mkframe(b + n, 1, WSR_OP_CONTINUATION, "b", 1, 0);
    expect_violation("continuation after a whole message", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 0, WSR_OP_TEXT, "a", 1, 0);
    n += mkframe(b + n, 1, WSR_OP_TEXT, "b", 1, 0);
    expect_violation("text during fragmented text", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 0, WSR_OP_TEXT, "a", 1, 1);
    n += mkframe(b + n, 1, WSR_OP_BINARY, "b", 1, 1);
    expect_violation("binary during fragmented text", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 0, WSR_OP_BINARY, "a", 1, 0);
    n += mkframe(b + n, 1, WSR_OP_PING, "", 0, 0);
    n += mkframe(b + n, 0, WSR_OP_BINARY, "b", 1, 0);
    expect_violation("binary during fragmented binary", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
}

/* RFC 6455 §5.1: a server masks nothing, a client masks everything. */
TEST(violation_masking)
{
    unsigned char b[64];
    size_t n;
    n = mkframe(b, 1, WSR_OP_TEXT, hello, 5, 1);
    expect_violation("masked frame to client", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 1, WSR_OP_TEXT, hello, 5, 0);
    expect_violation("unmasked frame to server", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 1, WSR_OP_PING, "", 0, 0);
    expect_violation("unmasked ping to server", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    /* the header alone decides: fail before the payload */
    n = mkhdr(b, 0x82, 0, 0, 100);
    expect_violation("unmasked header to server", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
}

/* RFC 6455 §5.6 and §8.1: text must be UTF-8, else fail with 1007. */
TEST(violation_utf8)
{
    unsigned char b[128], pl[16];
    size_t n;
    n = mkframe(b, 1, WSR_OP_TEXT, "ab\xff", 3, 0);
    expect_violation("invalid text", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1007);
    n = mkframe(b, 1, WSR_OP_TEXT, "\xed\xa0\x80", 3, 1);
    expect_violation("surrogate in text", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1007);
    n = mkframe(b, 1, WSR_OP_TEXT, "abc\xe2\x82", 5, 0);
    expect_violation("text ends in a truncated sequence", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1007);
    n = mkframe(b, 0, WSR_OP_TEXT, "ab", 2, 0);
    n += mkframe(b + n, 1, WSR_OP_CONTINUATION, "\xe2", 1, 0);
    expect_violation("fragmented text ends truncated", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1007);
    /* only the first fragment is fed: it already cannot be valid */
    n = mkframe(b, 0, WSR_OP_TEXT, "a\xc0\x80z", 4, 0);
    expect_violation("invalid first fragment alone", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1007);
    n = mkframe(b, 0, WSR_OP_TEXT, "a\xf5", 2, 1);
    expect_violation("invalid first fragment alone (server)", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1007);
    /* valid alone, impossible once the next fragment comes */
    n = mkframe(b, 0, WSR_OP_TEXT, "ok\xed", 3, 0);
    n += mkframe(b + n, 0, WSR_OP_CONTINUATION, "\xa0\x80", 2, 0);
    expect_violation("invalid across fragments", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1007);
    n = mkframe(b, 0, WSR_OP_TEXT, "\xf4", 1, 1);
    n += mkframe(b + n, 1, WSR_OP_PING, "", 0, 1);
    n += mkframe(b + n, 0, WSR_OP_CONTINUATION, "\x90", 1, 1);
    expect_violation("invalid across fragments, ping between", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1007);
    /* close reason (RFC 6455 §5.5.1, §7.1.6) */
    n = mkframe(b, 1, WSR_OP_CLOSE, pl, close_payload(pl, 1000, "a\xff"), 0);
    expect_violation("invalid close reason", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1007);
    n = mkframe(b, 1, WSR_OP_CLOSE, pl, close_payload(pl, 1001, "\xe2\x82"), 1);
    expect_violation("truncated close reason", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1007);
}

/* The first fragment's validity is known before the next one arrives: no
   error, and no event, for a valid prefix. */
TEST(utf8_valid_prefix_not_refused)
{
    wsr_proto *c = new_proto(WSR_ROLE_CLIENT, MAXM);
    unsigned char b[64];
    size_t n;
    rec r;
    rec_init(&r);
    n = mkframe(b, 0, WSR_OP_TEXT, "ok\xed", 3, 0);
    feed(c, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 0);
    n = mkframe(b, 1, WSR_OP_CONTINUATION, "\x9f\xbf", 2, 0);    /* U+D7FF */
    feed(c, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    rec_free(&r);
    wsr_proto_free(c);
}

/* Fail fast inside one frame (Autobahn 6.4.3/6.4.4): the invalid byte is
   refused while the rest of the frame's payload has not arrived yet. */
TEST(utf8_fail_fast_inside_frame)
{
    unsigned char b[64];
    size_t n;
    n = mkhdr(b, 0x81, 0, 0, 20);
    memcpy(b + n, "ab\xf4\x90", 4);          /* 4 of 20 bytes; U+110000 is impossible */
    expect_violation("partial frame with invalid UTF-8", WSR_ROLE_CLIENT, MAXM, b, n + 4, PROTO, 1007);
}

/* RFC 6455 §5.5.1: a close payload of 1 byte is malformed; §7.4: codes that
   may not be on the wire. */
TEST(violation_close_payload)
{
    static const int bad_codes[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
                                     65535 };
    static const int good_codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                      1013, 1014, 3000, 3999, 4000, 4999 };
    unsigned char b[64], pl[8];
    char label[40];
    size_t n, i;
    n = mkframe(b, 1, WSR_OP_CLOSE, "\x03", 1, 0);
    expect_violation("close with 1 byte", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkframe(b, 1, WSR_OP_CLOSE, "\x03", 1, 1);
    expect_violation("close with 1 byte (server)", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
    for (i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        sprintf(label, "close code %d", bad_codes[i]);
        n = mkframe(b, 1, WSR_OP_CLOSE, pl, close_payload(pl, bad_codes[i], NULL), i & 1);
        expect_violation(label, (i & 1) ? WSR_ROLE_SERVER : WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    }
    for (i = 0; i < sizeof good_codes / sizeof good_codes[0]; i++) {
        wsr_proto *p = new_proto(WSR_ROLE_CLIENT, MAXM);
        rec r;
        int code;
        rec_init(&r);
        n = mkframe(b, 1, WSR_OP_CLOSE, pl, close_payload(pl, good_codes[i], "ok"), 0);
        feed(p, b, n, &r);
        if (r.err != WSR_OK) printf("  valid close code %d refused\n", good_codes[i]);
        CHECK_EQ_INT(r.err, WSR_OK);
        CHECK_EQ_INT(r.n, 1);
        if (r.n == 1) {
            CHECK_EQ_INT(r.ev[0].type, WSR_EVENT_CLOSE);
            CHECK_EQ_INT(r.ev[0].close_code, good_codes[i]);
        }
        code = last_close_code(p, NULL);
        CHECK(code != -1 && code != 1005 && code != 1006 && code != 1015);
        rec_free(&r);
        wsr_proto_free(p);
    }
}

/* RFC 6455 §10.4 and the contract: over max_message_size is 1009 / TOO_BIG,
   decided from the declared length, before anything is allocated. */
TEST(violation_too_big)
{
    unsigned char b[2100], *pl = pattern(1000);
    size_t n;
    alloc_stats st;
    wsr_allocator al;
    wsr_proto *p;
    rec r;

    /* one frame declaring 2^40 bytes, header only */
    n = mkhdr(b, 0x82, 0, 0, (uint64_t)1 << 40);
    expect_violation("declared 2^40", WSR_ROLE_CLIENT, 1000, b, n, WSR_ERR_TOO_BIG, 1009);
    n = mkhdr(b, 0x82, 1, 0, 1001);
    expect_violation("declared 1001 > 1000", WSR_ROLE_SERVER, 1000, b, n, WSR_ERR_TOO_BIG, 1009);
    n = mkhdr(b, 0x81, 0, 0, 100000000);
    expect_violation("declared 100 MB text", WSR_ROLE_CLIENT, 1000, b, n, WSR_ERR_TOO_BIG, 1009);

    /* nothing big was allocated for a declared 100 MB with a 1000 limit */
    memset(&st, 0, sizeof st);
    al.alloc_fn = cnt_alloc;
    al.free_fn = cnt_free;
    al.user = &st;
    p = wsr_proto_new(WSR_ROLE_CLIENT, 1000, fixed_rand, NULL, &al);
    CHECK(p != NULL);
    n = mkhdr(b, 0x82, 0, 0, 100000000);
    rec_init(&r);
    feed(p, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_ERR_TOO_BIG);
    CHECK(st.max_size < 1000000);
    wsr_proto_free(p);
    CHECK_EQ_INT(st.live, 0);

    /* exactly the limit is fine, whole or in fragments */
    p = new_proto(WSR_ROLE_CLIENT, 1000);
    rec_init(&r);
    n = mkframe(b, 1, WSR_OP_BINARY, pl, 1000, 0);
    feed(p, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 1);
    n = mkframe(b, 0, WSR_OP_BINARY, pl, 500, 0);
    n += mkframe(b + n, 1, WSR_OP_CONTINUATION, pl + 500, 500, 0);
    feed(p, b, n, &r);
    CHECK_EQ_INT(r.err, WSR_OK);
    CHECK_EQ_INT(r.n, 2);
    rec_free(&r);
    wsr_proto_free(p);

    /* fragments adding up to too much */
    n = mkframe(b, 0, WSR_OP_BINARY, pl, 400, 0);
    n += mkframe(b + n, 0, WSR_OP_CONTINUATION, pl, 400, 0);
    n += mkframe(b + n, 1, WSR_OP_CONTINUATION, pl, 400, 0);
    expect_violation("fragments 3x400 > 1000", WSR_ROLE_CLIENT, 1000, b, n, WSR_ERR_TOO_BIG, 1009);
    /* the third header alone is enough */
    n = mkframe(b, 0, WSR_OP_BINARY, pl, 400, 1);
    n += mkframe(b + n, 0, WSR_OP_CONTINUATION, pl, 400, 1);
    n += mkhdr(b + n, 0x80, 1, 0, 400);
    expect_violation("third fragment header", WSR_ROLE_SERVER, 1000, b, n, WSR_ERR_TOO_BIG, 1009);
    /* many small fragments */
    {
        size_t i;
        n = mkframe(b, 0, WSR_OP_TEXT, "aaaaaaaaaa", 10, 0);
        for (i = 0; i < 110; i++)
            n += mkframe(b + n, 0, WSR_OP_CONTINUATION, "aaaaaaaaaa", 10, 0);
        expect_violation("111 fragments of 10", WSR_ROLE_CLIENT, 1000, b, n, WSR_ERR_TOO_BIG, 1009);
    }
    free(pl);
}

/* RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0. */
TEST(violation_length_msb)
{
    unsigned char b[32];
    size_t n;
    n = mkhdr(b, 0x82, 0, 64, (uint64_t)1 << 63 | 5);
    expect_violation("64-bit length with MSB set", WSR_ROLE_CLIENT, MAXM, b, n, PROTO, 1002);
    n = mkhdr(b, 0x82, 1, 64, ~(uint64_t)0);
    expect_violation("64-bit length all ones", WSR_ROLE_SERVER, MAXM, b, n, PROTO, 1002);
}

/* RFC 6455 §5.2: "the minimal number of bytes MUST be used". We hold peers
   to it (README, "Choices the RFC leaves open"): a clean 1002. */
static void non_minimal(int lenform, const char *what)
{
    unsigned char b[32];
    size_t n = mkframe_x(b, 1, 0, WSR_OP_BINARY, "12345", 5, 0, lenform);
    wsr_proto *p = new_proto(WSR_ROLE_CLIENT, MAXM);
    rec r;
    (void)what;
    rec_init(&r);
    feed(p, b, n, &r);
    CHECK_EQ_INT(r.err, PROTO);
    CHECK_EQ_INT(r.e.close_code, 1002);
    CHECK_EQ_INT(last_close_code(p, NULL), 1002);
    CHECK_EQ_INT(r.n, 0);
    rec_free(&r);
    wsr_proto_free(p);
}

TEST(non_minimal_length)
{
    non_minimal(16, "16-bit");
    non_minimal(64, "64-bit");
}

/* ---- wsr_close_code_valid (RFC 6455 §7.4.1, §7.4.2, IANA registry) ------- */

TEST(close_code_valid_ranges)
{
    int code, bad = 0;
    for (code = -2; code <= 70000; code++) {
        int want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                   (code >= 3000 && code <= 4999);
        if (!!wsr_close_code_valid(code) != want) {
            if (bad < 10) printf("  wsr_close_code_valid(%d) != %d\n", code, want);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(wsr_close_code_valid(1000));
    CHECK(!wsr_close_code_valid(1005));
    CHECK(!wsr_close_code_valid(1006));
    CHECK(!wsr_close_code_valid(1015));
}

TEST_MAIN()
