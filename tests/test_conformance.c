/* test_conformance.c - an RFC 6455 conformance suite in the spirit of
   Autobahn|Testsuite: a misbehaving peer of our own, on real sockets.

   Every case is one row of the table below: the bytes the peer writes (as a
   list of frames, or a builder function for the long ones) and the exact
   outcome. The same row usually runs twice:

     against our client: a raw TCP server on 127.0.0.1 (port 0) accepts our
       wsr_client (reconnect = 0, ping_interval_ms = 0: one connection per
       case), answers the upgrade (or botches it), then writes the frames
       unmasked, as a server does;
     against our server: a raw TCP client connects to our wsr_server (port 0,
       polled in this thread), asks for the upgrade, then writes the frames
       masked, as a client does.

   Outcomes are checked exactly, on both ends of the socket: the messages
   on_message delivered (types, bytes, order), every frame our side wrote
   (pongs with their payloads, then exactly one close frame with its code,
   masked if and only if our side is the client, nothing after it), and what
   on_close said (why->code, why->close_code, why->close_reason). A case
   that expects delivery ends with the peer's own close 1000, so "the link
   stayed open" is checked too. Failure cases send only what the case says
   (a header without its payload, a first fragment without the rest): our
   side must answer from what it has, or the case times out and fails.

   Where the RFC leaves a choice open the expectations follow README.md
   ("Choices the RFC leaves open"). Where the library disagrees with the RFC
   the case keeps asserting what the RFC says.

   The run ends with one line per category, "category <name>: <N> cases"
   (N counts runs: a row that runs against both our client and our server is
   two cases), then "total: <N> cases", a "failed cases:" line when some
   failed, and the harness's "N passed, N failed".
   `test_conformance conformance` runs it; WSR_CONF_ONLY=substring runs only
   the cases whose "category/name" contains it. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

#include "wsr_test_sock.h"
#include <stdarg.h>

/* Deadlines are upper bounds a passing case never reaches; WSR_TEST_TIME_SCALE
   stretches them for valgrind. */
static int time_scale(void) {
    const char *s = getenv("WSR_TEST_TIME_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* ==========================================================================
   The table's vocabulary
   ========================================================================== */

enum { FIN = 0x80, RSV1 = 0x40, RSV2 = 0x20, RSV3 = 0x10 };
enum { CONT = 0x0, TEXT = 0x1, BIN = 0x2, CLOSE = 0x8, PING = 0x9, PONG = 0xA };

/* Frame flags. */
enum {
    F_LEN16 = 1,       /* 16-bit length even when 7 bits would do (non-minimal) */
    F_LEN64 = 2,       /* 64-bit length even when fewer would do (non-minimal) */
    F_FLIPMASK = 4,    /* masked towards our client, unmasked towards our server */
    F_DECL = 8,        /* the header declares `decl` bytes; only `len` of them are sent */
    F_CODE = 16,       /* a 2-byte close code (`code`) goes before the data */
    F_BINPAT = 32      /* pattern payload with every byte value (else lower-case letters) */
};

typedef struct frame {
    int on;
    int b0;             /* first header byte: FIN, RSV1-3, opcode */
    const char *data;   /* payload; NULL: `len` pattern bytes from pattern index `off` */
    long len;           /* payload bytes; -1: strlen(data) */
    int flags;
    int code;
    uint64_t decl;
    long off;
} frame;

#define FR(b0_, s_)              { .on = 1, .b0 = (b0_), .data = (s_), .len = -1 }
#define FRB(b0_, s_, n_)         { .on = 1, .b0 = (b0_), .data = (s_), .len = (n_) }
#define FRF(b0_, s_, fl_)        { .on = 1, .b0 = (b0_), .data = (s_), .len = -1, .flags = (fl_) }
#define FRP(b0_, n_)             { .on = 1, .b0 = (b0_), .len = (n_) }
#define FRPB(b0_, n_)            { .on = 1, .b0 = (b0_), .len = (n_), .flags = F_BINPAT }
#define FRPF(b0_, n_, fl_)       { .on = 1, .b0 = (b0_), .len = (n_), .flags = (fl_) }
#define FRPO(b0_, n_, off_, fl_) { .on = 1, .b0 = (b0_), .len = (n_), .off = (off_), .flags = (fl_) }
/* Header declares decl_ bytes, then only the n_ bytes of s_ follow. */
#define FRD(b0_, s_, n_, decl_)  { .on = 1, .b0 = (b0_), .data = (s_), .len = (n_), .flags = F_DECL, .decl = (decl_) }
#define FRC(code_, reason_)      { .on = 1, .b0 = FIN | CLOSE, .data = (reason_), .len = -1, .flags = F_CODE, .code = (code_) }
#define FRCB(b0_, code_, reason_) { .on = 1, .b0 = (b0_), .data = (reason_), .len = -1, .flags = F_CODE, .code = (code_) }

/* An expected message. pat: 0 the bytes of data, 1 letters, 2 every byte value. */
typedef struct xmsg { int on, type; const char *data; long len; int pat; } xmsg;
#define MT(s_)      { .on = 1, .type = WSR_MSG_TEXT, .data = (s_), .len = -1 }
#define MTB(s_, n_) { .on = 1, .type = WSR_MSG_TEXT, .data = (s_), .len = (n_) }
#define MB(s_, n_)  { .on = 1, .type = WSR_MSG_BINARY, .data = (s_), .len = (n_) }
#define MTP(n_)     { .on = 1, .type = WSR_MSG_TEXT, .len = (n_), .pat = 1 }
#define MBP(n_)     { .on = 1, .type = WSR_MSG_BINARY, .len = (n_), .pat = 2 }

/* An expected pong (the only frames our side writes besides its close). */
typedef struct xrep { int on; const char *data; long len; int pat; } xrep;
#define PG(s_)      { .on = 1, .data = (s_), .len = -1 }
#define PGB(s_, n_) { .on = 1, .data = (s_), .len = (n_) }
#define PGP(n_)     { .on = 1, .len = (n_), .pat = 1 }

/* Outcomes. */
enum {
    OK = 0,       /* messages and pongs as listed; then the peer closes 1000 and our side echoes it */
    FAIL,         /* our side fails the connection: close `code` on the wire, why->code `err` */
    PEER,         /* the peer's close: our side echoes `code` (EMPTY: an empty close), why PEER_CLOSED */
    HS_FAIL,      /* our client refuses the upgrade: WSR_ERR_HANDSHAKE, http_status `http`, 1006 */
    HS_REFUSED    /* our server refuses the upgrade with the status line `status`, then hangs up */
};
#define EMPTY (-1)

/* Which of our endpoints faces the raw peer. */
enum { D_BOTH = 0, D_CLIENT = 1, D_SERVER = 2 };

typedef struct wire wire;

typedef struct conf_case {
    const char *cat, *name;
    int dirs;
    frame fr[12];
    void (*build)(wire *w, int to_server);   /* instead of fr */
    int repeat;          /* fr, msgs and reps all repeated this many times */
    int chunk;           /* bytes per write (1: every byte in its own write); 0: one write */
    int same_write;      /* frames in the same write as the upgrade request / 101 answer */
    size_t max_msg;      /* max_message_size of our side; 0: the default (16 MiB) */
    size_t max_hs;       /* max_handshake_size of our side; 0: the default (16 KiB) */
    int out;
    xmsg msgs[6];
    xrep reps[4];
    int code;            /* FAIL / PEER: the close code our side sends */
    wsr_err err;         /* FAIL: why->code */
    int why_close;       /* why->close_code when it is not `code` */
    const char *reason;  /* PEER: why->close_reason */
    /* handshake */
    const char *resp;    /* against our client: the 101 (or not) the raw server writes;
                            {A} is the right Sec-WebSocket-Accept, {a} it in lower case,
                            {P} padding up to pad_to bytes; NULL: a valid 101 */
    const char *req;     /* against our server: the request ({P} as above); NULL: a valid one */
    size_t pad_to;
    int hs_close;        /* against our client: hang up instead of answering */
    const char *offer;   /* our client's subprotocols */
    const char *protos;  /* our server's subprotocols */
    const char *sub;     /* the subprotocol on_open must report ("" when NULL) */
    int http;            /* HS_FAIL: why->http_status */
    const char *status;  /* against our server: the exact status line (101 when NULL) */
    const char *need;    /* against our server: a header line the answer must contain */
    const char *shun;    /* against our server: a header the answer must not have */
    int check_request;   /* against our client: check its upgrade request line by line */
} conf_case;

#define P1002 .out = FAIL, .code = 1002, .err = WSR_ERR_PROTOCOL
#define P1007 .out = FAIL, .code = 1007, .err = WSR_ERR_PROTOCOL
#define P1009 .out = FAIL, .code = 1009, .err = WSR_ERR_TOO_BIG
#define ECHO(c_) .out = PEER, .code = (c_)

/* Long close reasons: 123 bytes fit a control frame with the code, 124 do not. */
#define R10 "0123456789"
#define R120 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10
#define R123 R120 "abc"
#define R124 R120 "abcd"

/* Upgrade pieces. The request key is RFC 6455's own example, whose accept
   value the RFC gives (§1.3), so our server's answer is checked against a
   constant rather than against our own SHA-1. */
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define Q_LINE "GET /conf HTTP/1.1\r\n"
#define Q_HOST "Host: 127.0.0.1\r\n"
#define Q_UPG  "Upgrade: websocket\r\n"
#define Q_CONN "Connection: Upgrade\r\n"
#define Q_KEY  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define Q_VER  "Sec-WebSocket-Version: 13\r\n"
#define Q_OK   Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "\r\n"
#define S_101  "HTTP/1.1 101 Switching Protocols\r\n"
#define S_UPG  "Upgrade: websocket\r\n"
#define S_CONN "Connection: Upgrade\r\n"
#define S_ACC  "Sec-WebSocket-Accept: {A}\r\n"
#define S_UPGRADE_OK   S_101 S_UPG S_CONN S_ACC "\r\n"

/* ==========================================================================
   Writing frames
   ========================================================================== */

struct wire { unsigned char *b; size_t n, cap; unsigned seq; };

static void wire_put(wire *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        unsigned char *nb;
        while (cap < w->n + n) cap *= 2;
        nb = (unsigned char *)realloc(w->b, cap);
        if (!nb) { printf("out of memory\n"); exit(2); }
        w->b = nb;
        w->cap = cap;
    }
    if (n) memcpy(w->b + w->n, p, n);
    w->n += n;
}

static unsigned char pat_byte(long i, int kind) {
    return kind == 2 ? (unsigned char)((i * 167 + 13) & 0xFF) : (unsigned char)('a' + i % 26);
}

/* Encodes one frame as a peer would write it: masked towards our server,
   unmasked towards our client (the other way round with F_FLIPMASK). */
static void wire_frame(wire *w, int to_server, const frame *f) {
    unsigned char h[14], key[4], *payload;
    size_t hl = 2, len, plen, i;
    uint64_t decl;
    int masked = to_server ^ ((f->flags & F_FLIPMASK) != 0);
    len = f->len < 0 ? strlen(f->data) : (size_t)f->len;
    plen = len + ((f->flags & F_CODE) ? 2 : 0);
    decl = (f->flags & F_DECL) ? f->decl : (uint64_t)plen;
    h[0] = (unsigned char)f->b0;
    if ((f->flags & F_LEN64) || (!(f->flags & F_LEN16) && decl > 0xFFFF)) {
        h[1] = 127;
        for (i = 0; i < 8; i++) h[2 + i] = (unsigned char)(decl >> (56 - 8 * i));
        hl = 10;
    } else if ((f->flags & F_LEN16) || decl >= 126) {
        h[1] = 126;
        h[2] = (unsigned char)(decl >> 8);
        h[3] = (unsigned char)decl;
        hl = 4;
    } else {
        h[1] = (unsigned char)decl;
    }
    if (masked) {
        /* A different key every frame, never a zero byte: a zero key would
           let a receiver that forgets to unmask pass. */
        w->seq++;
        key[0] = (unsigned char)(0x5A + 7 * (w->seq & 15));
        key[1] = 0xC3;
        key[2] = (unsigned char)(0x11 + (w->seq & 63));
        key[3] = 0x9F;
        h[1] |= 0x80;
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    wire_put(w, h, hl);
    payload = (unsigned char *)malloc(plen ? plen : 1);
    if (!payload) { printf("out of memory\n"); exit(2); }
    i = 0;
    if (f->flags & F_CODE) {
        payload[0] = (unsigned char)(f->code >> 8);
        payload[1] = (unsigned char)f->code;
        i = 2;
    }
    {
        size_t k;
        int kind = (f->flags & F_BINPAT) ? 2 : 1;
        for (k = 0; k < len; k++)
            payload[i + k] = f->data ? (unsigned char)f->data[k] : pat_byte(f->off + (long)k, kind);
    }
    if (masked)
        for (i = 0; i < plen; i++) payload[i] ^= key[i & 3];
    wire_put(w, payload, plen);
    free(payload);
}

/* Short forms for builders. */
static void wf(wire *w, int ts, int b0, const char *s, long n) {
    frame f;
    memset(&f, 0, sizeof f);
    f.on = 1; f.b0 = b0; f.data = s; f.len = n;
    wire_frame(w, ts, &f);
}
static void wfp(wire *w, int ts, int b0, long n, long off, int flags) {
    frame f;
    memset(&f, 0, sizeof f);
    f.on = 1; f.b0 = b0; f.len = n; f.off = off; f.flags = flags;
    wire_frame(w, ts, &f);
}
static void wfd(wire *w, int ts, int b0, uint64_t decl) {   /* a header alone */
    frame f;
    memset(&f, 0, sizeof f);
    f.on = 1; f.b0 = b0; f.data = ""; f.len = 0; f.flags = F_DECL; f.decl = decl;
    wire_frame(w, ts, &f);
}
/* A text message with every byte of s in a fragment of its own. */
static void frag_each_byte(wire *w, int ts, const char *s) {
    size_t i, n = strlen(s);
    for (i = 0; i < n; i++)
        wf(w, ts, (i == 0 ? TEXT : CONT) | (i + 1 == n ? FIN : 0), s + i, 1);
}

/* ---- builders ------------------------------------------------------------ */

static void b_binary_100_fragments(wire *w, int ts) {
    long i;
    for (i = 0; i < 100; i++) wfp(w, ts, (i == 0 ? BIN : CONT) | (i == 99 ? FIN : 0), 1, i, F_BINPAT);
}
static void b_text_100_fragments(wire *w, int ts) {
    long i;
    for (i = 0; i < 100; i++) wfp(w, ts, (i == 0 ? TEXT : CONT) | (i == 99 ? FIN : 0), 1, i, 0);
}
static void b_fragments_each_with_ping(wire *w, int ts) {
    long i;
    for (i = 0; i < 5; i++) {
        wfp(w, ts, (i == 0 ? TEXT : CONT) | (i == 4 ? FIN : 0), 3, 3 * i, 0);
        if (i < 4) wf(w, ts, FIN | PING, "", 0);
    }
}
static void b_utf8_each_byte_kosme(wire *w, int ts) {
    frag_each_byte(w, ts, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5");
}
static void b_utf8_each_byte_10ffff(wire *w, int ts) { frag_each_byte(w, ts, "\xF4\x8F\xBF\xBF"); }
static void b_utf8_each_byte_mixed(wire *w, int ts) {
    frag_each_byte(w, ts, "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z");
}
/* 300 bytes of text, the 201st of which is impossible in UTF-8. */
static void b_utf8_bad_in_16bit_frame(wire *w, int ts) {
    char p[300];
    memset(p, 'a', sizeof p);
    p[200] = (char)0xFF;
    wf(w, ts, FIN | TEXT, p, (long)sizeof p);
}
/* A 70000-byte text frame whose 60001st byte breaks UTF-8; only 60010 bytes
   are sent, so our side must fail inside the frame. */
static void b_utf8_bad_in_64bit_frame_partial(wire *w, int ts) {
    static char p[60010];
    memset(p, 'b', sizeof p);
    p[60000] = (char)0xC0;
    {
        frame f;
        memset(&f, 0, sizeof f);
        f.on = 1; f.b0 = FIN | TEXT; f.data = p; f.len = (long)sizeof p; f.flags = F_DECL; f.decl = 70000;
        wire_frame(w, ts, &f);
    }
}
static void b_limit_256x4(wire *w, int ts) {
    long i;
    for (i = 0; i < 256; i++) wfp(w, ts, (i == 0 ? BIN : CONT) | (i == 255 ? FIN : 0), 4, 4 * i, F_BINPAT);
}
static void b_limit_256x4_then_1(wire *w, int ts) {
    long i;
    for (i = 0; i < 256; i++) wfp(w, ts, i == 0 ? BIN : CONT, 4, 4 * i, F_BINPAT);
    wfd(w, ts, FIN | CONT, 1);          /* one byte too many, declared and not sent */
}
static void b_limit_text_growing(wire *w, int ts) {
    wfp(w, ts, TEXT, 1000, 0, 0);
    wfp(w, ts, CONT, 24, 1000, 0);       /* exactly at the limit */
    wfd(w, ts, FIN | CONT, 1);           /* then over it */
}

/* ==========================================================================
   The cases
   ========================================================================== */

static const conf_case cases[] = {

/* ---- 1. framing ----------------------------------------------------------- */
{ .cat = "framing", .name = "text_len_0", .fr = { FR(FIN | TEXT, "") }, .msgs = { MT("") } },
{ .cat = "framing", .name = "binary_len_0", .fr = { FRB(FIN | BIN, "", 0) }, .msgs = { MB("", 0) } },
{ .cat = "framing", .name = "text_len_1", .fr = { FR(FIN | TEXT, "a") }, .msgs = { MT("a") } },
{ .cat = "framing", .name = "text_len_125", .fr = { FRP(FIN | TEXT, 125) }, .msgs = { MTP(125) } },
{ .cat = "framing", .name = "binary_len_125", .fr = { FRPB(FIN | BIN, 125) }, .msgs = { MBP(125) } },
{ .cat = "framing", .name = "text_len_126_16bit", .fr = { FRP(FIN | TEXT, 126) }, .msgs = { MTP(126) } },
{ .cat = "framing", .name = "binary_len_126_16bit", .fr = { FRPB(FIN | BIN, 126) }, .msgs = { MBP(126) } },
{ .cat = "framing", .name = "text_len_127_16bit", .fr = { FRP(FIN | TEXT, 127) }, .msgs = { MTP(127) } },
{ .cat = "framing", .name = "binary_len_127_16bit", .fr = { FRPB(FIN | BIN, 127) }, .msgs = { MBP(127) } },
{ .cat = "framing", .name = "text_len_65535_16bit", .fr = { FRP(FIN | TEXT, 65535) }, .msgs = { MTP(65535) } },
{ .cat = "framing", .name = "binary_len_65535_16bit", .fr = { FRPB(FIN | BIN, 65535) }, .msgs = { MBP(65535) } },
{ .cat = "framing", .name = "text_len_65536_64bit", .fr = { FRP(FIN | TEXT, 65536) }, .msgs = { MTP(65536) } },
{ .cat = "framing", .name = "binary_len_65536_64bit", .fr = { FRPB(FIN | BIN, 65536) }, .msgs = { MBP(65536) } },
{ .cat = "framing", .name = "binary_len_1MiB_64bit", .fr = { FRPB(FIN | BIN, 1048576) }, .msgs = { MBP(1048576) } },
/* Non-minimal lengths: refused with 1002 (README: our documented choice, §5.2 "MUST" minimal). */
{ .cat = "framing", .name = "len16_encoding_of_0", .fr = { FRF(FIN | TEXT, "", F_LEN16) }, P1002 },
{ .cat = "framing", .name = "len16_encoding_of_125", .fr = { FRPF(FIN | BIN, 125, F_LEN16) }, P1002 },
{ .cat = "framing", .name = "len64_encoding_of_0", .fr = { FRF(FIN | BIN, "", F_LEN64) }, P1002 },
{ .cat = "framing", .name = "len64_encoding_of_125", .fr = { FRPF(FIN | TEXT, 125, F_LEN64) }, P1002 },
{ .cat = "framing", .name = "len64_encoding_of_126", .fr = { FRPF(FIN | TEXT, 126, F_LEN64) }, P1002 },
{ .cat = "framing", .name = "len64_encoding_of_65535", .fr = { FRPF(FIN | BIN, 65535, F_LEN64) }, P1002 },
{ .cat = "framing", .name = "len64_non_minimal_after_message", .fr = { FR(FIN | TEXT, "ok"), FRPF(FIN | BIN, 10, F_LEN64) },
  .msgs = { MT("ok") }, P1002 },
/* Reserved bits: no extension is negotiated, so any set bit is 1002. */
{ .cat = "framing", .name = "rsv1_text", .fr = { FR(FIN | RSV1 | TEXT, "a") }, P1002 },
{ .cat = "framing", .name = "rsv2_text", .fr = { FR(FIN | RSV2 | TEXT, "a") }, P1002 },
{ .cat = "framing", .name = "rsv3_text", .fr = { FR(FIN | RSV3 | TEXT, "a") }, P1002 },
{ .cat = "framing", .name = "rsv123_binary", .fr = { FRB(FIN | RSV1 | RSV2 | RSV3 | BIN, "\x00\x01", 2) }, P1002 },
{ .cat = "framing", .name = "rsv1_empty_text", .fr = { FR(FIN | RSV1 | TEXT, "") }, P1002 },
{ .cat = "framing", .name = "rsv2_ping", .fr = { FR(FIN | RSV2 | PING, "p") }, P1002 },
{ .cat = "framing", .name = "rsv3_pong", .fr = { FR(FIN | RSV3 | PONG, "p") }, P1002 },
{ .cat = "framing", .name = "rsv1_close", .fr = { FRCB(FIN | RSV1 | CLOSE, 1000, "") }, P1002 },
{ .cat = "framing", .name = "rsv1_continuation", .fr = { FR(TEXT, "a"), FR(FIN | RSV1 | CONT, "b") }, P1002 },
{ .cat = "framing", .name = "rsv2_after_message", .fr = { FR(FIN | TEXT, "ok"), FR(FIN | RSV2 | TEXT, "x") },
  .msgs = { MT("ok") }, P1002 },
/* Reserved opcodes 3-7 (data) and 0xB-0xF (control). */
{ .cat = "framing", .name = "opcode_3", .fr = { FR(FIN | 0x3, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_4", .fr = { FR(FIN | 0x4, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_5", .fr = { FR(FIN | 0x5, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_6", .fr = { FR(FIN | 0x6, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_7", .fr = { FR(FIN | 0x7, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_b", .fr = { FR(FIN | 0xB, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_c", .fr = { FR(FIN | 0xC, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_d", .fr = { FR(FIN | 0xD, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_e", .fr = { FR(FIN | 0xE, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_f", .fr = { FR(FIN | 0xF, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_3_not_final", .fr = { FR(0x3, "x") }, P1002 },
{ .cat = "framing", .name = "opcode_7_empty", .fr = { FR(FIN | 0x7, "") }, P1002 },
{ .cat = "framing", .name = "opcode_b_empty", .fr = { FR(FIN | 0xB, "") }, P1002 },
{ .cat = "framing", .name = "opcode_5_after_message", .fr = { FR(FIN | TEXT, "ok"), FR(FIN | 0x5, "x") },
  .msgs = { MT("ok") }, P1002 },
{ .cat = "framing", .name = "opcode_d_inside_fragmented", .fr = { FR(TEXT, "a"), FR(FIN | 0xD, "x") }, P1002 },
/* Masking the wrong way round (§5.1): a masked frame to our client, an
   unmasked one to our server. */
{ .cat = "framing", .name = "wrong_masking_text", .fr = { FRF(FIN | TEXT, "hello", F_FLIPMASK) }, P1002 },
{ .cat = "framing", .name = "wrong_masking_empty", .fr = { FRF(FIN | TEXT, "", F_FLIPMASK) }, P1002 },
{ .cat = "framing", .name = "wrong_masking_binary_16bit", .fr = { FRPF(FIN | BIN, 300, F_FLIPMASK | F_BINPAT) }, P1002 },
{ .cat = "framing", .name = "wrong_masking_ping", .fr = { FRF(FIN | PING, "p", F_FLIPMASK) }, P1002 },
{ .cat = "framing", .name = "wrong_masking_pong", .fr = { FRF(FIN | PONG, "p", F_FLIPMASK) }, P1002 },
{ .cat = "framing", .name = "wrong_masking_close",
  .fr = { { .on = 1, .b0 = FIN | CLOSE, .data = "", .len = -1, .flags = F_CODE | F_FLIPMASK, .code = 1000 } }, P1002 },
{ .cat = "framing", .name = "wrong_masking_continuation", .fr = { FR(TEXT, "a"), FRF(FIN | CONT, "b", F_FLIPMASK) }, P1002 },
{ .cat = "framing", .name = "wrong_masking_after_message", .fr = { FR(FIN | TEXT, "ok"), FRF(FIN | TEXT, "x", F_FLIPMASK) },
  .msgs = { MT("ok") }, P1002 },
/* Zero-length frames of every kind. */
{ .cat = "framing", .name = "zero_length_frames", .fr = { FR(FIN | TEXT, ""), FRB(FIN | BIN, "", 0), FR(FIN | PING, ""),
  FR(FIN | PONG, ""), FR(FIN | TEXT, "") }, .msgs = { MT(""), MB("", 0), MT("") }, .reps = { PG("") } },
/* Frames split at every byte across writes, and many frames in one write. */
{ .cat = "framing", .name = "split_every_byte_7bit", .chunk = 1, .fr = { FR(FIN | TEXT, "Hello, split world") },
  .msgs = { MT("Hello, split world") } },
{ .cat = "framing", .name = "split_every_byte_16bit", .chunk = 1, .fr = { FRPB(FIN | BIN, 300) }, .msgs = { MBP(300) } },
{ .cat = "framing", .name = "split_every_byte_64bit", .chunk = 1, .fr = { FRPB(FIN | BIN, 65536) }, .msgs = { MBP(65536) } },
{ .cat = "framing", .name = "split_every_byte_mixed", .chunk = 1,
  .fr = { FR(FIN | TEXT, "a"), FR(FIN | PING, "p"), FRB(BIN, "x", 1), FR(FIN | PONG, "q"), FRB(FIN | CONT, "y", 1),
          FR(FIN | TEXT, "") },
  .msgs = { MT("a"), MB("xy", 2), MT("") }, .reps = { PG("p") } },
{ .cat = "framing", .name = "split_in_threes_mixed", .chunk = 3,
  .fr = { FRP(FIN | TEXT, 200), FR(FIN | PING, "ping"), FRPB(FIN | BIN, 70000), FR(FIN | TEXT, "end") },
  .msgs = { MTP(200), MBP(70000), MT("end") }, .reps = { PG("ping") } },
{ .cat = "framing", .name = "many_frames_one_write", .repeat = 200, .fr = { FR(FIN | TEXT, "m"), FRB(FIN | BIN, "\x00\xFF", 2) },
  .msgs = { MT("m"), MB("\x00\xFF", 2) } },
{ .cat = "framing", .name = "many_frames_and_pings_one_write", .repeat = 50, .fr = { FR(FIN | TEXT, "t"), FR(FIN | PING, "p") },
  .msgs = { MT("t") }, .reps = { PG("p") } },
{ .cat = "framing", .name = "every_length_form_one_write",
  .fr = { FR(FIN | TEXT, ""), FRP(FIN | TEXT, 125), FRP(FIN | TEXT, 126), FRPB(FIN | BIN, 65535), FRPB(FIN | BIN, 65536) },
  .msgs = { MT(""), MTP(125), MTP(126), MBP(65535), MBP(65536) } },

/* ---- 2. pings and pongs ----------------------------------------------------- */
{ .cat = "ping", .name = "ping_empty", .fr = { FR(FIN | PING, "") }, .reps = { PG("") } },
{ .cat = "ping", .name = "ping_1", .fr = { FR(FIN | PING, "x") }, .reps = { PG("x") } },
{ .cat = "ping", .name = "ping_125", .fr = { FRP(FIN | PING, 125) }, .reps = { PGP(125) } },
{ .cat = "ping", .name = "ping_binary_payload", .fr = { FRB(FIN | PING, "\x00\xFF\x80\x7F\x00", 5) },
  .reps = { PGB("\x00\xFF\x80\x7F\x00", 5) } },
{ .cat = "ping", .name = "ping_then_text", .fr = { FR(FIN | PING, "are you there"), FR(FIN | TEXT, "yes") },
  .msgs = { MT("yes") }, .reps = { PG("are you there") } },
{ .cat = "ping", .name = "three_pings_one_write", .fr = { FR(FIN | PING, "1"), FR(FIN | PING, "22"), FR(FIN | PING, "333") },
  .reps = { PG("1"), PG("22"), PG("333") } },
{ .cat = "ping", .name = "ping_125_split_every_byte", .chunk = 1, .fr = { FRP(FIN | PING, 125) }, .reps = { PGP(125) } },
{ .cat = "ping", .name = "ping_125_then_ping_0", .fr = { FRP(FIN | PING, 125), FR(FIN | PING, "") }, .reps = { PGP(125), PG("") } },
{ .cat = "ping", .name = "ping_126", .fr = { FRP(FIN | PING, 126) }, P1002 },
{ .cat = "ping", .name = "ping_126_header_only", .fr = { FRD(FIN | PING, "", 0, 126) }, P1002 },
{ .cat = "ping", .name = "ping_65536_header_only", .fr = { FRD(FIN | PING, "", 0, 65536) }, P1002 },
{ .cat = "ping", .name = "ping_fragmented", .fr = { FR(PING, "x"), FR(FIN | CONT, "y") }, P1002 },
{ .cat = "ping", .name = "ping_fragmented_alone", .fr = { FR(PING, "x") }, P1002 },
{ .cat = "ping", .name = "ping_fragmented_empty", .fr = { FR(PING, "") }, P1002 },
{ .cat = "ping", .name = "ping_answered_then_failure", .fr = { FR(FIN | PING, "first"), FR(FIN | 0x6, "x") },
  .reps = { PG("first") }, P1002 },
{ .cat = "ping", .name = "unsolicited_pong_empty", .fr = { FR(FIN | PONG, ""), FR(FIN | TEXT, "still here") },
  .msgs = { MT("still here") } },
{ .cat = "ping", .name = "unsolicited_pong_125", .fr = { FRP(FIN | PONG, 125), FR(FIN | TEXT, "still here") },
  .msgs = { MT("still here") } },
{ .cat = "ping", .name = "unsolicited_pong_binary", .fr = { FRB(FIN | PONG, "\x00\x00\x00\x01", 4), FRB(FIN | BIN, "b", 1) },
  .msgs = { MB("b", 1) } },
{ .cat = "ping", .name = "unsolicited_pongs_many", .repeat = 20, .fr = { FR(FIN | PONG, "u"), FR(FIN | TEXT, "v") },
  .msgs = { MT("v") } },
{ .cat = "ping", .name = "pong_126", .fr = { FRP(FIN | PONG, 126) }, P1002 },
{ .cat = "ping", .name = "pong_fragmented", .fr = { FR(PONG, "x") }, P1002 },
{ .cat = "ping", .name = "ping_between_fragments", .fr = { FR(TEXT, "Hel"), FR(FIN | PING, "mid"), FR(FIN | CONT, "lo") },
  .msgs = { MT("Hello") }, .reps = { PG("mid") } },
{ .cat = "ping", .name = "ping_between_every_fragment",
  .fr = { FR(TEXT, "a"), FR(FIN | PING, "1"), FR(CONT, "b"), FR(FIN | PING, "2"), FR(FIN | CONT, "c") },
  .msgs = { MT("abc") }, .reps = { PG("1"), PG("2") } },
{ .cat = "ping", .name = "ping_125_between_binary_fragments",
  .fr = { FRPO(BIN, 100, 0, F_BINPAT), FRP(FIN | PING, 125), FRPO(FIN | CONT, 100, 100, F_BINPAT) },
  .msgs = { MBP(200) }, .reps = { PGP(125) } },
{ .cat = "ping", .name = "pong_between_fragments", .fr = { FR(TEXT, "Hel"), FR(FIN | PONG, "mid"), FR(FIN | CONT, "lo") },
  .msgs = { MT("Hello") } },
{ .cat = "ping", .name = "ping_and_pong_between_fragments",
  .fr = { FR(BIN, "a"), FR(FIN | PONG, "x"), FR(FIN | PING, "y"), FR(FIN | CONT, "b") },
  .msgs = { MB("ab", 2) }, .reps = { PG("y") } },
{ .cat = "ping", .name = "ping_between_empty_fragments", .fr = { FR(TEXT, ""), FR(FIN | PING, "e"), FR(FIN | CONT, "") },
  .msgs = { MT("") }, .reps = { PG("e") } },
{ .cat = "ping", .name = "ping_between_fragments_split_every_byte", .chunk = 1,
  .fr = { FR(TEXT, "Hel"), FR(FIN | PING, "mid"), FR(FIN | CONT, "lo") }, .msgs = { MT("Hello") }, .reps = { PG("mid") } },

/* ---- 3. fragmentation -------------------------------------------------------- */
{ .cat = "fragmentation", .name = "text_2_fragments", .fr = { FR(TEXT, "Hello"), FR(FIN | CONT, ", world") },
  .msgs = { MT("Hello, world") } },
{ .cat = "fragmentation", .name = "text_3_fragments", .fr = { FR(TEXT, "one "), FR(CONT, "two "), FR(FIN | CONT, "three") },
  .msgs = { MT("one two three") } },
{ .cat = "fragmentation", .name = "text_10_fragments",
  .fr = { FR(TEXT, "f"), FR(CONT, "r"), FR(CONT, "a"), FR(CONT, "g"), FR(CONT, "m"), FR(CONT, "e"), FR(CONT, "n"),
          FR(CONT, "t"), FR(CONT, "e"), FR(FIN | CONT, "d") },
  .msgs = { MT("fragmented") } },
{ .cat = "fragmentation", .name = "text_100_fragments", .build = b_text_100_fragments, .msgs = { MTP(100) } },
{ .cat = "fragmentation", .name = "binary_2_fragments", .fr = { FRB(BIN, "\x00\x01", 2), FRB(FIN | CONT, "\x02\x03", 2) },
  .msgs = { MB("\x00\x01\x02\x03", 4) } },
{ .cat = "fragmentation", .name = "binary_5_fragments",
  .fr = { FRB(BIN, "\x00", 1), FRB(CONT, "\xFF", 1), FRB(CONT, "\x00", 1), FRB(CONT, "\x80", 1), FRB(FIN | CONT, "\x00", 1) },
  .msgs = { MB("\x00\xFF\x00\x80\x00", 5) } },
{ .cat = "fragmentation", .name = "binary_100_fragments", .build = b_binary_100_fragments, .msgs = { MBP(100) } },
{ .cat = "fragmentation", .name = "fragments_of_every_length_form",
  .fr = { FRPO(BIN, 125, 0, F_BINPAT), FRPO(CONT, 126, 125, F_BINPAT), FRPO(CONT, 65536, 251, F_BINPAT),
          FRPO(FIN | CONT, 1, 65787, F_BINPAT) },
  .msgs = { MBP(65788) } },
{ .cat = "fragmentation", .name = "empty_first_fragment", .fr = { FR(TEXT, ""), FR(FIN | CONT, "abc") }, .msgs = { MT("abc") } },
{ .cat = "fragmentation", .name = "empty_middle_fragment", .fr = { FR(TEXT, "ab"), FR(CONT, ""), FR(FIN | CONT, "c") },
  .msgs = { MT("abc") } },
{ .cat = "fragmentation", .name = "empty_last_fragment", .fr = { FR(TEXT, "abc"), FR(FIN | CONT, "") }, .msgs = { MT("abc") } },
{ .cat = "fragmentation", .name = "all_fragments_empty_text", .fr = { FR(TEXT, ""), FR(CONT, ""), FR(FIN | CONT, "") },
  .msgs = { MT("") } },
{ .cat = "fragmentation", .name = "all_fragments_empty_binary", .fr = { FRB(BIN, "", 0), FRB(FIN | CONT, "", 0) },
  .msgs = { MB("", 0) } },
{ .cat = "fragmentation", .name = "two_fragmented_messages", .fr = { FR(TEXT, "a"), FR(FIN | CONT, "b"), FRB(BIN, "c", 1),
  FRB(FIN | CONT, "d", 1) }, .msgs = { MT("ab"), MB("cd", 2) } },
{ .cat = "fragmentation", .name = "fragmented_single_fragmented",
  .fr = { FR(TEXT, "1"), FR(FIN | CONT, "2"), FR(FIN | TEXT, "3"), FR(TEXT, "4"), FR(CONT, "5"), FR(FIN | CONT, "6") },
  .msgs = { MT("12"), MT("3"), MT("456") } },
{ .cat = "fragmentation", .name = "fragmented_split_every_byte", .chunk = 1,
  .fr = { FR(TEXT, "frag"), FR(FIN | PING, "p"), FR(CONT, "men"), FR(FIN | CONT, "ted") },
  .msgs = { MT("fragmented") }, .reps = { PG("p") } },
{ .cat = "fragmentation", .name = "ping_after_every_fragment", .build = b_fragments_each_with_ping,
  .msgs = { MTP(15) }, .reps = { PG(""), PG(""), PG(""), PG("") } },
{ .cat = "fragmentation", .name = "continuation_without_start", .fr = { FR(FIN | CONT, "x") }, P1002 },
{ .cat = "fragmentation", .name = "continuation_without_start_not_final", .fr = { FR(CONT, "x") }, P1002 },
{ .cat = "fragmentation", .name = "continuation_without_start_empty", .fr = { FR(FIN | CONT, "") }, P1002 },
{ .cat = "fragmentation", .name = "continuation_after_whole_message", .fr = { FR(FIN | TEXT, "a"), FR(FIN | CONT, "b") },
  .msgs = { MT("a") }, P1002 },
{ .cat = "fragmentation", .name = "continuation_after_finished_fragments",
  .fr = { FR(TEXT, "a"), FR(FIN | CONT, "b"), FR(FIN | CONT, "c") }, .msgs = { MT("ab") }, P1002 },
{ .cat = "fragmentation", .name = "text_inside_fragmented_text", .fr = { FR(TEXT, "a"), FR(FIN | TEXT, "b") }, P1002 },
{ .cat = "fragmentation", .name = "binary_inside_fragmented_text", .fr = { FR(TEXT, "a"), FRB(FIN | BIN, "b", 1) }, P1002 },
{ .cat = "fragmentation", .name = "text_inside_fragmented_binary", .fr = { FRB(BIN, "a", 1), FR(FIN | TEXT, "b") }, P1002 },
{ .cat = "fragmentation", .name = "unfinished_text_inside_fragmented", .fr = { FR(TEXT, "a"), FR(TEXT, "b") }, P1002 },
{ .cat = "fragmentation", .name = "new_message_after_ping_inside_fragmented",
  .fr = { FR(TEXT, "a"), FR(FIN | PING, "p"), FRB(FIN | BIN, "b", 1) }, .reps = { PG("p") }, P1002 },
{ .cat = "fragmentation", .name = "close_between_fragments", .fr = { FR(TEXT, "Hel"), FRC(1000, "") }, ECHO(1000) },
{ .cat = "fragmentation", .name = "close_between_fragments_after_ping",
  .fr = { FRB(BIN, "x", 1), FR(FIN | PING, "p"), FRB(CONT, "y", 1), FRC(1001, "bye") },
  .reps = { PG("p") }, ECHO(1001), .reason = "bye" },

/* ---- 4. UTF-8 ------------------------------------------------------------- */
{ .cat = "utf8", .name = "ascii", .fr = { FR(FIN | TEXT, "Hello, world") }, .msgs = { MT("Hello, world") } },
{ .cat = "utf8", .name = "autobahn_6_2", .fr = { FR(FIN | TEXT, "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!") },
  .msgs = { MT("Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!") } },
{ .cat = "utf8", .name = "kosme", .fr = { FR(FIN | TEXT, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5") },
  .msgs = { MT("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5") } },
{ .cat = "utf8", .name = "nul_character", .fr = { FRB(FIN | TEXT, "a\x00" "b", 3) }, .msgs = { MTB("a\x00" "b", 3) } },
{ .cat = "utf8", .name = "2byte_first_U+0080", .fr = { FR(FIN | TEXT, "\xC2\x80") }, .msgs = { MT("\xC2\x80") } },
{ .cat = "utf8", .name = "2byte_last_U+07FF", .fr = { FR(FIN | TEXT, "\xDF\xBF") }, .msgs = { MT("\xDF\xBF") } },
{ .cat = "utf8", .name = "3byte_first_U+0800", .fr = { FR(FIN | TEXT, "\xE0\xA0\x80") }, .msgs = { MT("\xE0\xA0\x80") } },
{ .cat = "utf8", .name = "3byte_U+D7FF", .fr = { FR(FIN | TEXT, "\xED\x9F\xBF") }, .msgs = { MT("\xED\x9F\xBF") } },
{ .cat = "utf8", .name = "3byte_U+E000", .fr = { FR(FIN | TEXT, "\xEE\x80\x80") }, .msgs = { MT("\xEE\x80\x80") } },
{ .cat = "utf8", .name = "3byte_U+FFFD", .fr = { FR(FIN | TEXT, "\xEF\xBF\xBD") }, .msgs = { MT("\xEF\xBF\xBD") } },
{ .cat = "utf8", .name = "3byte_U+FFFE", .fr = { FR(FIN | TEXT, "\xEF\xBF\xBE") }, .msgs = { MT("\xEF\xBF\xBE") } },
{ .cat = "utf8", .name = "3byte_U+FFFF", .fr = { FR(FIN | TEXT, "\xEF\xBF\xBF") }, .msgs = { MT("\xEF\xBF\xBF") } },
{ .cat = "utf8", .name = "4byte_first_U+10000", .fr = { FR(FIN | TEXT, "\xF0\x90\x80\x80") }, .msgs = { MT("\xF0\x90\x80\x80") } },
{ .cat = "utf8", .name = "4byte_emoji_U+1F600", .fr = { FR(FIN | TEXT, "\xF0\x9F\x98\x80") }, .msgs = { MT("\xF0\x9F\x98\x80") } },
{ .cat = "utf8", .name = "4byte_last_U+10FFFF", .fr = { FR(FIN | TEXT, "\xF4\x8F\xBF\xBF") }, .msgs = { MT("\xF4\x8F\xBF\xBF") } },
{ .cat = "utf8", .name = "binary_is_not_checked", .fr = { FRB(FIN | BIN, "\xFF\xFE\xC0\x80\xED\xA0\x80", 7) },
  .msgs = { MB("\xFF\xFE\xC0\x80\xED\xA0\x80", 7) } },
/* Impossible sequences: 1007. */
{ .cat = "utf8", .name = "lone_continuation_80", .fr = { FR(FIN | TEXT, "\x80") }, P1007 },
{ .cat = "utf8", .name = "lone_continuation_bf", .fr = { FR(FIN | TEXT, "\xBF") }, P1007 },
{ .cat = "utf8", .name = "continuation_inside_ascii", .fr = { FR(FIN | TEXT, "a\x80" "b") }, P1007 },
{ .cat = "utf8", .name = "overlong_2byte_c0_80", .fr = { FR(FIN | TEXT, "\xC0\x80") }, P1007 },
{ .cat = "utf8", .name = "overlong_2byte_c1_bf", .fr = { FR(FIN | TEXT, "\xC1\xBF") }, P1007 },
{ .cat = "utf8", .name = "overlong_3byte_slash", .fr = { FR(FIN | TEXT, "\xE0\x80\xAF") }, P1007 },
{ .cat = "utf8", .name = "overlong_3byte_max", .fr = { FR(FIN | TEXT, "\xE0\x9F\xBF") }, P1007 },
{ .cat = "utf8", .name = "overlong_4byte_slash", .fr = { FR(FIN | TEXT, "\xF0\x80\x80\xAF") }, P1007 },
{ .cat = "utf8", .name = "overlong_4byte_max", .fr = { FR(FIN | TEXT, "\xF0\x8F\xBF\xBF") }, P1007 },
{ .cat = "utf8", .name = "surrogate_U+D800", .fr = { FR(FIN | TEXT, "\xED\xA0\x80") }, P1007 },
{ .cat = "utf8", .name = "surrogate_U+DBFF", .fr = { FR(FIN | TEXT, "\xED\xAF\xBF") }, P1007 },
{ .cat = "utf8", .name = "surrogate_U+DC00", .fr = { FR(FIN | TEXT, "\xED\xB0\x80") }, P1007 },
{ .cat = "utf8", .name = "surrogate_U+DFFF", .fr = { FR(FIN | TEXT, "\xED\xBF\xBF") }, P1007 },
{ .cat = "utf8", .name = "surrogate_pair", .fr = { FR(FIN | TEXT, "\xED\xA0\x80\xED\xB0\x80") }, P1007 },
{ .cat = "utf8", .name = "above_U+10FFFF_f4_90", .fr = { FR(FIN | TEXT, "\xF4\x90\x80\x80") }, P1007 },
{ .cat = "utf8", .name = "above_U+10FFFF_f5", .fr = { FR(FIN | TEXT, "\xF5\x80\x80\x80") }, P1007 },
{ .cat = "utf8", .name = "5byte_form_f8", .fr = { FR(FIN | TEXT, "\xF8\x88\x80\x80\x80") }, P1007 },
{ .cat = "utf8", .name = "6byte_form_fc", .fr = { FR(FIN | TEXT, "\xFC\x84\x80\x80\x80\x80") }, P1007 },
{ .cat = "utf8", .name = "byte_fe", .fr = { FR(FIN | TEXT, "\xFE") }, P1007 },
{ .cat = "utf8", .name = "byte_ff", .fr = { FR(FIN | TEXT, "\xFF") }, P1007 },
{ .cat = "utf8", .name = "truncated_2byte_at_end", .fr = { FR(FIN | TEXT, "ab\xC3") }, P1007 },
{ .cat = "utf8", .name = "truncated_3byte_at_end", .fr = { FR(FIN | TEXT, "ab\xE2\x82") }, P1007 },
{ .cat = "utf8", .name = "truncated_4byte_at_end", .fr = { FR(FIN | TEXT, "ab\xF0\x9F\x98") }, P1007 },
{ .cat = "utf8", .name = "truncated_3byte_then_ascii", .fr = { FR(FIN | TEXT, "\xE2\x82" "A") }, P1007 },
{ .cat = "utf8", .name = "truncated_4byte_then_ascii", .fr = { FR(FIN | TEXT, "\xF0\x9F" "A") }, P1007 },
{ .cat = "utf8", .name = "invalid_in_16bit_frame", .build = b_utf8_bad_in_16bit_frame, P1007 },
{ .cat = "utf8", .name = "valid_then_invalid_message", .fr = { FR(FIN | TEXT, "\xC3\xA9"), FR(FIN | TEXT, "\xC3") },
  .msgs = { MT("\xC3\xA9") }, P1007 },
/* Valid text split inside a code point across fragments. */
{ .cat = "utf8", .name = "split_2byte_1_1", .fr = { FR(TEXT, "\xC3"), FR(FIN | CONT, "\xA9") }, .msgs = { MT("\xC3\xA9") } },
{ .cat = "utf8", .name = "split_3byte_1_2", .fr = { FR(TEXT, "\xE2"), FR(FIN | CONT, "\x82\xAC") }, .msgs = { MT("\xE2\x82\xAC") } },
{ .cat = "utf8", .name = "split_3byte_2_1", .fr = { FR(TEXT, "\xE2\x82"), FR(FIN | CONT, "\xAC") }, .msgs = { MT("\xE2\x82\xAC") } },
{ .cat = "utf8", .name = "split_4byte_1_3", .fr = { FR(TEXT, "\xF0"), FR(FIN | CONT, "\x9F\x98\x80") },
  .msgs = { MT("\xF0\x9F\x98\x80") } },
{ .cat = "utf8", .name = "split_4byte_2_2", .fr = { FR(TEXT, "\xF0\x9F"), FR(FIN | CONT, "\x98\x80") },
  .msgs = { MT("\xF0\x9F\x98\x80") } },
{ .cat = "utf8", .name = "split_4byte_3_1", .fr = { FR(TEXT, "\xF0\x9F\x98"), FR(FIN | CONT, "\x80") },
  .msgs = { MT("\xF0\x9F\x98\x80") } },
{ .cat = "utf8", .name = "split_U+10FFFF_every_byte", .build = b_utf8_each_byte_10ffff, .msgs = { MT("\xF4\x8F\xBF\xBF") } },
{ .cat = "utf8", .name = "split_kosme_every_byte", .build = b_utf8_each_byte_kosme,
  .msgs = { MT("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5") } },
{ .cat = "utf8", .name = "split_mixed_every_byte", .build = b_utf8_each_byte_mixed,
  .msgs = { MT("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z") } },
{ .cat = "utf8", .name = "split_with_ping_inside_code_point",
  .fr = { FR(TEXT, "\xF0\x9F"), FR(FIN | PING, "p"), FR(FIN | CONT, "\x98\x80") },
  .msgs = { MT("\xF0\x9F\x98\x80") }, .reps = { PG("p") } },
{ .cat = "utf8", .name = "split_with_empty_fragment_inside_code_point",
  .fr = { FR(TEXT, "\xE2"), FR(CONT, ""), FR(CONT, "\x82"), FR(FIN | CONT, "\xAC") }, .msgs = { MT("\xE2\x82\xAC") } },
{ .cat = "utf8", .name = "binary_fragments_not_checked", .fr = { FRB(BIN, "\xED", 1), FRB(FIN | CONT, "\xA0\x80", 2) },
  .msgs = { MB("\xED\xA0\x80", 3) } },
/* Invalid across fragments; and fail-fast: the bad first fragment, not the rest. */
{ .cat = "utf8", .name = "surrogate_split_across_fragments", .fr = { FR(TEXT, "\xED"), FR(FIN | CONT, "\xA0\x80") }, P1007 },
{ .cat = "utf8", .name = "message_ends_inside_code_point", .fr = { FR(TEXT, "\xE2"), FR(FIN | CONT, "\x82") }, P1007 },
{ .cat = "utf8", .name = "message_ends_inside_code_point_empty_final",
  .fr = { FR(TEXT, "\xF0\x9F\x98"), FR(FIN | CONT, "") }, P1007 },
{ .cat = "utf8", .name = "fail_fast_first_fragment_ff", .fr = { FR(TEXT, "ok\xFF") }, P1007 },
{ .cat = "utf8", .name = "fail_fast_first_fragment_surrogate", .fr = { FR(TEXT, "\xED\xA0") }, P1007 },
{ .cat = "utf8", .name = "fail_fast_first_fragment_overlong", .fr = { FR(TEXT, "\xC0") }, P1007 },
{ .cat = "utf8", .name = "fail_fast_first_fragment_above_max", .fr = { FR(TEXT, "\xF4\x90") }, P1007 },
{ .cat = "utf8", .name = "fail_fast_middle_fragment", .fr = { FR(TEXT, "abc"), FR(CONT, "\x80") }, P1007 },
{ .cat = "utf8", .name = "fail_fast_after_ping", .fr = { FR(TEXT, "abc"), FR(FIN | PING, "p"), FR(CONT, "\xF5") },
  .reps = { PG("p") }, P1007 },
{ .cat = "utf8", .name = "fail_fast_inside_7bit_frame", .fr = { FRD(FIN | TEXT, "ab\xFF", 3, 100) }, P1007 },
{ .cat = "utf8", .name = "fail_fast_inside_16bit_frame", .fr = { FRD(FIN | TEXT, "\xED\xA0", 2, 1000) }, P1007 },
{ .cat = "utf8", .name = "fail_fast_inside_64bit_frame", .build = b_utf8_bad_in_64bit_frame_partial, P1007 },
{ .cat = "utf8", .name = "fail_fast_inside_continuation", .fr = { FR(TEXT, "abc"), FRD(FIN | CONT, "\xFF", 1, 500) }, P1007 },
{ .cat = "utf8", .name = "fail_fast_inside_unfinished_fragment", .fr = { FRD(TEXT, "x\xC1", 2, 50) }, P1007 },
/* Close reasons are UTF-8 too. */
{ .cat = "utf8", .name = "close_reason_valid", .fr = { FRC(1000, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5") },
  ECHO(1000), .reason = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5" },
{ .cat = "utf8", .name = "close_reason_ff", .fr = { FRC(1000, "bye\xFF") }, P1007 },
{ .cat = "utf8", .name = "close_reason_surrogate", .fr = { FRC(1000, "\xED\xA0\x80") }, P1007 },
{ .cat = "utf8", .name = "close_reason_truncated", .fr = { FRC(1001, "ab\xE2\x82") }, P1007 },
{ .cat = "utf8", .name = "close_reason_overlong", .fr = { FRC(1000, "\xC0\xAF") }, P1007 },

/* ---- 5. close handling ---------------------------------------------------- */
{ .cat = "close", .name = "code_1000", .fr = { FRC(1000, "") }, ECHO(1000) },
{ .cat = "close", .name = "code_1001", .fr = { FRC(1001, "") }, ECHO(1001) },
{ .cat = "close", .name = "code_1002", .fr = { FRC(1002, "") }, ECHO(1002) },
{ .cat = "close", .name = "code_1003", .fr = { FRC(1003, "") }, ECHO(1003) },
{ .cat = "close", .name = "code_1007", .fr = { FRC(1007, "") }, ECHO(1007) },
{ .cat = "close", .name = "code_1008", .fr = { FRC(1008, "") }, ECHO(1008) },
{ .cat = "close", .name = "code_1009", .fr = { FRC(1009, "") }, ECHO(1009) },
{ .cat = "close", .name = "code_1010", .fr = { FRC(1010, "") }, ECHO(1010) },
{ .cat = "close", .name = "code_1011", .fr = { FRC(1011, "") }, ECHO(1011) },
{ .cat = "close", .name = "code_1012", .fr = { FRC(1012, "") }, ECHO(1012) },
{ .cat = "close", .name = "code_1013", .fr = { FRC(1013, "") }, ECHO(1013) },
{ .cat = "close", .name = "code_1014", .fr = { FRC(1014, "") }, ECHO(1014) },
{ .cat = "close", .name = "code_3000", .fr = { FRC(3000, "") }, ECHO(3000) },
{ .cat = "close", .name = "code_3999", .fr = { FRC(3999, "") }, ECHO(3999) },
{ .cat = "close", .name = "code_4000", .fr = { FRC(4000, "") }, ECHO(4000) },
{ .cat = "close", .name = "code_4999", .fr = { FRC(4999, "") }, ECHO(4999) },
{ .cat = "close", .name = "code_1000_with_reason", .fr = { FRC(1000, "bye") }, ECHO(1000), .reason = "bye" },
{ .cat = "close", .name = "code_4000_with_reason", .fr = { FRC(4000, "app says so") }, ECHO(4000), .reason = "app says so" },
{ .cat = "close", .name = "reason_123_bytes", .fr = { FRC(1000, R123) }, ECHO(1000), .reason = R123 },
{ .cat = "close", .name = "reason_124_bytes", .fr = { FRC(1000, R124) }, P1002 },
{ .cat = "close", .name = "empty_close", .fr = { FRB(FIN | CLOSE, "", 0) }, ECHO(EMPTY), .why_close = 1005 },
{ .cat = "close", .name = "payload_1_byte", .fr = { FRB(FIN | CLOSE, "\x03", 1) }, P1002 },
{ .cat = "close", .name = "code_0", .fr = { FRC(0, "") }, P1002 },
{ .cat = "close", .name = "code_999", .fr = { FRC(999, "") }, P1002 },
{ .cat = "close", .name = "code_1004", .fr = { FRC(1004, "") }, P1002 },
{ .cat = "close", .name = "code_1005", .fr = { FRC(1005, "") }, P1002 },
{ .cat = "close", .name = "code_1006", .fr = { FRC(1006, "") }, P1002 },
{ .cat = "close", .name = "code_1015", .fr = { FRC(1015, "") }, P1002 },
{ .cat = "close", .name = "code_1016", .fr = { FRC(1016, "") }, P1002 },
{ .cat = "close", .name = "code_1100", .fr = { FRC(1100, "") }, P1002 },
{ .cat = "close", .name = "code_2000", .fr = { FRC(2000, "") }, P1002 },
{ .cat = "close", .name = "code_2999", .fr = { FRC(2999, "") }, P1002 },
{ .cat = "close", .name = "code_5000", .fr = { FRC(5000, "") }, P1002 },
{ .cat = "close", .name = "code_65535", .fr = { FRC(65535, "") }, P1002 },
{ .cat = "close", .name = "code_1005_with_reason", .fr = { FRC(1005, "no") }, P1002 },
{ .cat = "close", .name = "fragmented_close", .fr = { FRCB(CLOSE, 1000, "") }, P1002 },
{ .cat = "close", .name = "close_126_bytes", .fr = { FRCB(FIN | CLOSE, 1000, R124) }, P1002 },
{ .cat = "close", .name = "message_then_close", .fr = { FR(FIN | TEXT, "last"), FRC(1001, "") }, .msgs = { MT("last") },
  ECHO(1001) },
{ .cat = "close", .name = "data_after_close_ignored", .fr = { FRC(1000, ""), FR(FIN | TEXT, "late") }, ECHO(1000) },
{ .cat = "close", .name = "ping_after_close_not_answered", .fr = { FRC(1000, ""), FR(FIN | PING, "late") }, ECHO(1000) },
{ .cat = "close", .name = "second_close_ignored", .fr = { FRC(1000, ""), FRC(1001, "") }, ECHO(1000) },
{ .cat = "close", .name = "garbage_after_close_ignored", .fr = { FRC(1000, ""), FR(FIN | RSV1 | 0x3, "junk") }, ECHO(1000) },
{ .cat = "close", .name = "close_split_every_byte", .chunk = 1, .fr = { FRC(1000, "split") }, ECHO(1000), .reason = "split" },
{ .cat = "close", .name = "ping_then_close", .fr = { FR(FIN | PING, "p"), FRC(3000, "") }, .reps = { PG("p") }, ECHO(3000) },

/* ---- 6. limits (max_message_size 1024 unless said) ---------------------- */
{ .cat = "limits", .name = "binary_at_limit", .max_msg = 1024, .fr = { FRPB(FIN | BIN, 1024) }, .msgs = { MBP(1024) } },
{ .cat = "limits", .name = "text_at_limit", .max_msg = 1024, .fr = { FRP(FIN | TEXT, 1024) }, .msgs = { MTP(1024) } },
{ .cat = "limits", .name = "binary_over_by_one_header_only", .max_msg = 1024, .fr = { FRD(FIN | BIN, "", 0, 1025) }, P1009 },
{ .cat = "limits", .name = "text_over_by_one_header_only", .max_msg = 1024, .fr = { FRD(FIN | TEXT, "", 0, 1025) }, P1009 },
{ .cat = "limits", .name = "binary_over_by_one_whole", .max_msg = 1024, .fr = { FRPB(FIN | BIN, 1025) }, P1009 },
{ .cat = "limits", .name = "len16_65535_header_only", .max_msg = 1024, .fr = { FRD(FIN | BIN, "", 0, 65535) }, P1009 },
{ .cat = "limits", .name = "len64_65536_header_only", .max_msg = 1024, .fr = { FRD(FIN | BIN, "", 0, 65536) }, P1009 },
{ .cat = "limits", .name = "len64_4GiB_header_only", .max_msg = 1024, .fr = { FRD(FIN | BIN, "", 0, 0x100000000ull) }, P1009 },
{ .cat = "limits", .name = "len64_2^63-1_header_only", .max_msg = 1024, .fr = { FRD(FIN | TEXT, "", 0, 0x7FFFFFFFFFFFFFFFull) },
  P1009 },
{ .cat = "limits", .name = "len64_top_bit_set", .max_msg = 1024, .fr = { FRD(FIN | BIN, "", 0, 0x8000000000000000ull) }, P1002 },
{ .cat = "limits", .name = "len64_top_bit_plus_one", .max_msg = 1024, .fr = { FRD(FIN | BIN, "", 0, 0x8000000000000001ull) },
  P1002 },
{ .cat = "limits", .name = "len64_all_ones", .max_msg = 1024, .fr = { FRD(FIN | TEXT, "", 0, 0xFFFFFFFFFFFFFFFFull) }, P1002 },
{ .cat = "limits", .name = "len64_top_bit_set_default_limit", .fr = { FRD(FIN | BIN, "", 0, 0x8000000000000000ull) }, P1002 },
{ .cat = "limits", .name = "default_limit_16MiB_plus_1_header_only", .fr = { FRD(FIN | BIN, "", 0, 16777217) }, P1009 },
{ .cat = "limits", .name = "fragments_at_limit", .max_msg = 1024,
  .fr = { FRPO(BIN, 512, 0, F_BINPAT), FRPO(FIN | CONT, 512, 512, F_BINPAT) }, .msgs = { MBP(1024) } },
{ .cat = "limits", .name = "fragments_over_limit_header_only", .max_msg = 1024,
  .fr = { FRPO(BIN, 512, 0, F_BINPAT), FRD(FIN | CONT, "", 0, 513) }, P1009 },
{ .cat = "limits", .name = "fragments_growing_over_limit", .max_msg = 1024,
  .fr = { FRPO(TEXT, 300, 0, 0), FRPO(CONT, 300, 300, 0), FRPO(CONT, 300, 600, 0), FRD(FIN | CONT, "", 0, 300) }, P1009 },
{ .cat = "limits", .name = "text_fragments_to_limit_then_over", .max_msg = 1024, .build = b_limit_text_growing, P1009 },
{ .cat = "limits", .name = "256_fragments_of_4_at_limit", .max_msg = 1024, .build = b_limit_256x4, .msgs = { MBP(1024) } },
{ .cat = "limits", .name = "257th_fragment_over_limit", .max_msg = 1024, .build = b_limit_256x4_then_1, P1009 },
{ .cat = "limits", .name = "empty_fragment_after_limit", .max_msg = 1024,
  .fr = { FRPB(BIN, 1024), FRB(FIN | CONT, "", 0) }, .msgs = { MBP(1024) } },
{ .cat = "limits", .name = "pings_not_counted", .max_msg = 1024,
  .fr = { FRPO(BIN, 1000, 0, F_BINPAT), FRP(FIN | PING, 125), FRPO(FIN | CONT, 24, 1000, F_BINPAT) },
  .msgs = { MBP(1024) }, .reps = { PGP(125) } },
{ .cat = "limits", .name = "limit_is_per_message", .max_msg = 1024, .repeat = 3, .fr = { FRPB(FIN | BIN, 1024) },
  .msgs = { MBP(1024) } },
{ .cat = "limits", .name = "over_limit_after_message", .max_msg = 1024,
  .fr = { FRPB(FIN | BIN, 1024), FRD(FIN | TEXT, "", 0, 2000) }, .msgs = { MBP(1024) }, P1009 },

/* ---- 7. handshake: a raw server answers our client ----------------------- */
{ .cat = "handshake", .name = "valid_101", .dirs = D_CLIENT, .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "client_request_is_rfc6455", .dirs = D_CLIENT, .check_request = 1, .offer = "chat, superchat",
  .resp = S_101 S_UPG S_CONN S_ACC "Sec-WebSocket-Protocol: chat\r\n\r\n", .sub = "chat" },
{ .cat = "handshake", .name = "header_names_and_values_any_case", .dirs = D_CLIENT,
  .resp = S_101 "upgrade: WebSocket\r\nCONNECTION: UPGRADE\r\nsec-websocket-accept: {A}\r\n\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "connection_token_list", .dirs = D_CLIENT,
  .resp = S_101 S_UPG "Connection: keep-alive, Upgrade\r\n" S_ACC "\r\n", .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "connection_in_two_lines_upgrade_last", .dirs = D_CLIENT,
  .resp = S_101 S_UPG "Connection: keep-alive\r\nConnection: Upgrade\r\n" S_ACC "\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "connection_in_two_lines_upgrade_first", .dirs = D_CLIENT,
  .resp = S_101 S_UPG "Connection: Upgrade\r\nConnection: keep-alive\r\n" S_ACC "\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "missing_upgrade", .dirs = D_CLIENT, .resp = S_101 S_CONN S_ACC "\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "upgrade_not_websocket", .dirs = D_CLIENT, .resp = S_101 "Upgrade: h2c\r\n" S_CONN S_ACC "\r\n",
  .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "missing_connection", .dirs = D_CLIENT, .resp = S_101 S_UPG S_ACC "\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "connection_without_upgrade", .dirs = D_CLIENT,
  .resp = S_101 S_UPG "Connection: keep-alive\r\n" S_ACC "\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "missing_accept", .dirs = D_CLIENT, .resp = S_101 S_UPG S_CONN "\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "wrong_accept", .dirs = D_CLIENT,
  .resp = S_101 S_UPG S_CONN "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "accept_in_wrong_case", .dirs = D_CLIENT,
  .resp = S_101 S_UPG S_CONN "Sec-WebSocket-Accept: {a}\r\n\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "extension_not_offered", .dirs = D_CLIENT,
  .resp = S_101 S_UPG S_CONN S_ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "extension_with_params_not_offered", .dirs = D_CLIENT,
  .resp = S_101 S_UPG S_CONN S_ACC "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n",
  .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "subprotocol_none_offered", .dirs = D_CLIENT,
  .resp = S_101 S_UPG S_CONN S_ACC "Sec-WebSocket-Protocol: chat\r\n\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "subprotocol_not_in_offer", .dirs = D_CLIENT, .offer = "a, b",
  .resp = S_101 S_UPG S_CONN S_ACC "Sec-WebSocket-Protocol: c\r\n\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "subprotocol_list_answered", .dirs = D_CLIENT, .offer = "a, b",
  .resp = S_101 S_UPG S_CONN S_ACC "Sec-WebSocket-Protocol: a, b\r\n\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "subprotocol_chosen", .dirs = D_CLIENT, .offer = "a, b",
  .resp = S_101 S_UPG S_CONN S_ACC "Sec-WebSocket-Protocol: b\r\n\r\n", .sub = "b",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "subprotocol_offered_none_chosen", .dirs = D_CLIENT, .offer = "a, b", .sub = "",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "status_200", .dirs = D_CLIENT, .resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  .out = HS_FAIL, .http = 200 },
{ .cat = "handshake", .name = "status_302", .dirs = D_CLIENT,
  .resp = "HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n", .out = HS_FAIL, .http = 302 },
{ .cat = "handshake", .name = "status_400", .dirs = D_CLIENT, .resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
  .out = HS_FAIL, .http = 400 },
{ .cat = "handshake", .name = "status_401", .dirs = D_CLIENT, .resp = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
  .out = HS_FAIL, .http = 401 },
{ .cat = "handshake", .name = "status_403", .dirs = D_CLIENT, .resp = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
  .out = HS_FAIL, .http = 403 },
{ .cat = "handshake", .name = "status_404", .dirs = D_CLIENT, .resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
  .out = HS_FAIL, .http = 404 },
{ .cat = "handshake", .name = "status_426", .dirs = D_CLIENT,
  .resp = "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n", .out = HS_FAIL, .http = 426 },
{ .cat = "handshake", .name = "status_500", .dirs = D_CLIENT,
  .resp = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", .out = HS_FAIL, .http = 500 },
{ .cat = "handshake", .name = "status_503_retry_after", .dirs = D_CLIENT,
  .resp = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n", .out = HS_FAIL, .http = 503 },
{ .cat = "handshake", .name = "http_1_0_101", .dirs = D_CLIENT,
  .resp = "HTTP/1.0 101 Switching Protocols\r\n" S_UPG S_CONN S_ACC "\r\n", .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "http_1_0_200", .dirs = D_CLIENT, .resp = "HTTP/1.0 200 OK\r\n\r\n", .out = HS_FAIL, .http = 200 },
{ .cat = "handshake", .name = "not_http", .dirs = D_CLIENT, .resp = "SSH-2.0-OpenSSH_9.6\r\n\r\n", .out = HS_FAIL, .http = 0 },
{ .cat = "handshake", .name = "malformed_header_line", .dirs = D_CLIENT, .resp = S_101 "Upgrade websocket\r\n" S_CONN S_ACC "\r\n",
  .out = HS_FAIL, .http = 101 },
{ .cat = "handshake", .name = "head_at_max_handshake_size", .dirs = D_CLIENT, .max_hs = 1024, .pad_to = 1024,
  .resp = S_101 S_UPG S_CONN S_ACC "X-Pad: {P}\r\n\r\n", .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "head_over_max_handshake_size", .dirs = D_CLIENT, .max_hs = 1024, .pad_to = 1025,
  .resp = S_101 S_UPG S_CONN S_ACC "X-Pad: {P}\r\n\r\n", .out = HS_FAIL, .http = 0 },
{ .cat = "handshake", .name = "head_never_ends", .dirs = D_CLIENT, .max_hs = 1024, .pad_to = 4000,
  .resp = S_101 "X-Pad: {P}", .out = HS_FAIL, .http = 0 },
{ .cat = "handshake", .name = "server_hangs_up_during_upgrade", .dirs = D_CLIENT, .hs_close = 1, .out = HS_FAIL, .http = 0 },
{ .cat = "handshake", .name = "frames_in_same_write_as_101", .dirs = D_CLIENT, .same_write = 1,
  .fr = { FR(FIN | TEXT, "one"), FRB(FIN | BIN, "\x02", 1) }, .msgs = { MT("one"), MB("\x02", 1) } },
{ .cat = "handshake", .name = "ping_in_same_write_as_101", .dirs = D_CLIENT, .same_write = 1,
  .fr = { FR(FIN | PING, "early"), FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") }, .reps = { PG("early") } },
{ .cat = "handshake", .name = "101_and_frames_split_every_byte", .dirs = D_CLIENT, .same_write = 1, .chunk = 1,
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "close_in_same_write_as_101", .dirs = D_CLIENT, .same_write = 1,
  .fr = { FRC(1001, "") }, ECHO(1001) },

/* ---- 7. handshake: a raw client asks our server --------------------------- */
{ .cat = "handshake", .name = "valid_request", .dirs = D_SERVER, .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "request_any_case", .dirs = D_SERVER,
  .req = Q_LINE "host: 127.0.0.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
         "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "request_connection_in_two_lines_upgrade_last", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG "Connection: keep-alive\r\nConnection: Upgrade\r\n" Q_KEY Q_VER "\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "request_connection_in_two_lines_upgrade_first", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG "Connection: Upgrade\r\nConnection: keep-alive\r\n" Q_KEY Q_VER "\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "request_with_origin", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "Origin: http://example.com\r\n\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "subprotocol_chosen_by_server", .dirs = D_SERVER, .protos = "chat",
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "Sec-WebSocket-Protocol: superchat, chat\r\n\r\n", .sub = "chat",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "subprotocol_server_preference", .dirs = D_SERVER, .protos = "v2, v1",
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "Sec-WebSocket-Protocol: v1, v2\r\n\r\n", .sub = "v2" },
{ .cat = "handshake", .name = "subprotocol_none_supported", .dirs = D_SERVER, .protos = "chat",
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "Sec-WebSocket-Protocol: foo\r\n\r\n", .sub = "" },
{ .cat = "handshake", .name = "subprotocol_none_asked", .dirs = D_SERVER, .protos = "chat", .sub = "" },
{ .cat = "handshake", .name = "extension_asked_not_granted", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
  .shun = "Sec-WebSocket-Extensions", .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "absolute_uri_request", .dirs = D_SERVER,
  .req = "GET http://127.0.0.1/conf HTTP/1.1\r\n" Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "\r\n",
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "missing_key", .dirs = D_SERVER, .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_VER "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "key_not_16_bytes", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN "Sec-WebSocket-Key: c2hvcnQ=\r\n" Q_VER "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "key_not_base64", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n" Q_VER "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "version_8", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY "Sec-WebSocket-Version: 8\r\n\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 426 Upgrade Required", .need = "Sec-WebSocket-Version: 13" },
{ .cat = "handshake", .name = "version_14", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY "Sec-WebSocket-Version: 14\r\n\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 426 Upgrade Required", .need = "Sec-WebSocket-Version: 13" },
{ .cat = "handshake", .name = "version_missing", .dirs = D_SERVER, .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 426 Upgrade Required", .need = "Sec-WebSocket-Version: 13" },
{ .cat = "handshake", .name = "method_post", .dirs = D_SERVER,
  .req = "POST /conf HTTP/1.1\r\n" Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "Content-Length: 0\r\n\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "method_put", .dirs = D_SERVER,
  .req = "PUT /conf HTTP/1.1\r\n" Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "Content-Length: 0\r\n\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "http_1_0_request", .dirs = D_SERVER,
  .req = "GET /conf HTTP/1.0\r\n" Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "request_missing_upgrade", .dirs = D_SERVER, .req = Q_LINE Q_HOST Q_CONN Q_KEY Q_VER "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "request_upgrade_h2c", .dirs = D_SERVER,
  .req = Q_LINE Q_HOST "Upgrade: h2c\r\n" Q_CONN Q_KEY Q_VER "\r\n", .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "request_missing_connection", .dirs = D_SERVER, .req = Q_LINE Q_HOST Q_UPG Q_KEY Q_VER "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "request_missing_host", .dirs = D_SERVER, .req = Q_LINE Q_UPG Q_CONN Q_KEY Q_VER "\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 400 Bad Request" },
{ .cat = "handshake", .name = "request_head_at_max_handshake_size", .dirs = D_SERVER, .max_hs = 1024, .pad_to = 1024,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "X-Pad: {P}\r\n\r\n", .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "request_head_over_max_handshake_size", .dirs = D_SERVER, .max_hs = 1024, .pad_to = 1025,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "X-Pad: {P}\r\n\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 431 Request Header Fields Too Large" },
{ .cat = "handshake", .name = "request_head_over_default_16KiB", .dirs = D_SERVER, .pad_to = 20000,
  .req = Q_LINE Q_HOST Q_UPG Q_CONN Q_KEY Q_VER "X-Pad: {P}\r\n\r\n",
  .out = HS_REFUSED, .status = "HTTP/1.1 431 Request Header Fields Too Large" },
{ .cat = "handshake", .name = "request_split_every_byte", .dirs = D_SERVER, .chunk = 1, .same_write = 1,
  .fr = { FR(FIN | TEXT, "hi") }, .msgs = { MT("hi") } },
{ .cat = "handshake", .name = "frames_in_same_write_as_request", .dirs = D_SERVER, .same_write = 1,
  .fr = { FR(FIN | TEXT, "one"), FR(FIN | PING, "p"), FRB(FIN | BIN, "\x02", 1) }, .msgs = { MT("one"), MB("\x02", 1) },
  .reps = { PG("p") } },
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ==========================================================================
   Recording what our side did
   ========================================================================== */

typedef struct got_msg { int type; unsigned char *data; size_t len; } got_msg;

typedef struct rec {
    int opens, closes;
    got_msg *msgs;
    int nmsgs, cap;
    wsr_error why;
    char sub[64];
} rec;

static void rec_msg(rec *r, int type, const void *data, size_t len) {
    if (r->nmsgs == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        got_msg *m = (got_msg *)realloc(r->msgs, (size_t)cap * sizeof *m);
        if (!m) { printf("out of memory\n"); exit(2); }
        r->msgs = m;
        r->cap = cap;
    }
    r->msgs[r->nmsgs].type = type;
    r->msgs[r->nmsgs].len = len;
    r->msgs[r->nmsgs].data = (unsigned char *)malloc(len ? len : 1);
    if (!r->msgs[r->nmsgs].data) { printf("out of memory\n"); exit(2); }
    if (len) memcpy(r->msgs[r->nmsgs].data, data, len);
    r->nmsgs++;
}

static void rec_free(rec *r) {
    int i;
    for (i = 0; i < r->nmsgs; i++) free(r->msgs[i].data);
    free(r->msgs);
    memset(r, 0, sizeof *r);
}

static void c_open(wsr_client *c, const char *sub, void *u) {
    rec *r = (rec *)u;
    (void)c;
    r->opens++;
    snprintf(r->sub, sizeof r->sub, "%s", sub ? sub : "(null)");
}
static void c_close(wsr_client *c, const wsr_error *why, void *u) {
    rec *r = (rec *)u;
    (void)c;
    r->closes++;
    r->why = *why;
}
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *u) {
    (void)c;
    rec_msg((rec *)u, (int)type, data, len);
}
static void s_open(wsr_conn *conn, void *u) {
    rec *r = (rec *)u;
    r->opens++;
    snprintf(r->sub, sizeof r->sub, "%s", wsr_conn_subprotocol(conn));
}
static void s_close(wsr_conn *conn, const wsr_error *why, void *u) {
    rec *r = (rec *)u;
    (void)conn;
    r->closes++;
    r->why = *why;
}
static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *u) {
    (void)conn;
    rec_msg((rec *)u, (int)type, data, len);
}

/* ==========================================================================
   The raw peer
   ========================================================================== */

/* A frame our side wrote, as the peer decoded it. */
typedef struct rframe { int b0, masked; size_t len; unsigned char p[125]; } rframe;
#define MAX_RFRAMES 600

typedef struct peer {
    int fd;
    unsigned char *in;
    size_t len, cap;
    size_t parsed;        /* bytes of `in` decoded into frames */
    int parsing;          /* the HTTP head is behind us: decode frames */
    int eof, err;
    rframe *fr;
    int nfr;
    int big;              /* frames from our side over 125 bytes (never expected here) */
} peer;

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}
static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int raw_listen(int *port) {
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    set_nonblock(fd);
    *port = ntohs(a.sin_port);
    return fd;
}

static int raw_connect(int port) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    set_nonblock(fd);
    set_nodelay(fd);
    return fd;
}

static void peer_drain(peer *p) {
    while (p->fd >= 0 && !p->eof && !p->err) {
        ssize_t k;
        if (p->cap - p->len < 4096) {
            size_t cap = p->cap ? p->cap * 2 : 16384;
            unsigned char *n = (unsigned char *)realloc(p->in, cap);
            if (!n) { printf("out of memory\n"); exit(2); }
            p->in = n;
            p->cap = cap;
        }
        k = recv(p->fd, p->in + p->len, p->cap - p->len, 0);
        if (k > 0) { p->len += (size_t)k; continue; }
        if (k == 0) { p->eof = 1; break; }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) p->err = errno;
        break;
    }
}

/* Decodes the frames our side wrote. */
static void peer_parse(peer *p) {
    while (p->parsing) {
        const unsigned char *b = p->in + p->parsed;
        size_t n = p->len - p->parsed, h = 2, i;
        uint64_t len;
        unsigned char key[4] = { 0, 0, 0, 0 };
        int masked;
        if (n < 2) return;
        masked = (b[1] & 0x80) != 0;
        len = b[1] & 0x7F;
        if (len == 126) {
            if (n < 4) return;
            len = (uint64_t)b[2] << 8 | b[3];
            h = 4;
        } else if (len == 127) {
            if (n < 10) return;
            len = 0;
            for (i = 0; i < 8; i++) len = len << 8 | b[2 + i];
            h = 10;
        }
        if (masked) {
            if (n < h + 4) return;
            memcpy(key, b + h, 4);
            h += 4;
        }
        if (n - h < len) return;
        if (p->nfr < MAX_RFRAMES) {
            rframe *f = &p->fr[p->nfr];
            f->b0 = b[0];
            f->masked = masked;
            f->len = (size_t)len;
            for (i = 0; i < len && i < sizeof f->p; i++) f->p[i] = b[h + i] ^ key[i & 3];
        }
        if (len > 125) p->big++;
        p->nfr++;
        p->parsed += h + (size_t)len;
    }
}

static size_t head_end(const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i + 4 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return i + 4;
    return 0;
}

/* Finds header `name` (any case) in an HTTP head; value trimmed. */
static int hdr_find(const char *head, size_t n, const char *name, const char **val, size_t *vlen) {
    size_t pos = 0, nl = strlen(name);
    while (pos < n && head[pos] != '\n') pos++;      /* skip the start line */
    pos++;
    while (pos < n) {
        size_t end = pos, i;
        while (end < n && head[end] != '\n') end++;
        if (end - pos > nl && head[pos + nl] == ':') {
            for (i = 0; i < nl; i++) {
                int a = head[pos + i], b = name[i];
                if (a >= 'A' && a <= 'Z') a += 32;
                if (b >= 'A' && b <= 'Z') b += 32;
                if (a != b) break;
            }
            if (i == nl) {
                size_t s = pos + nl + 1, e = end;
                while (s < e && (head[s] == ' ' || head[s] == '\t')) s++;
                while (e > s && (head[e - 1] == '\r' || head[e - 1] == ' ' || head[e - 1] == '\t')) e--;
                *val = head + s;
                *vlen = e - s;
                return 1;
            }
        }
        pos = end + 1;
    }
    return 0;
}

/* ==========================================================================
   One run: one case against one of our endpoints
   ========================================================================== */

typedef struct run {
    const conf_case *cs;
    int to_server;         /* 1: the raw peer is a client, facing our server */
    wsr_client *c;
    wsr_server *s;
    int lfd, accepted;
    int port;              /* the raw server's port (against our client) */
    peer p;
    rec r;
} run;

static const conf_case *cur_case;
static int cur_to_server, cur_bad;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void fail_note(int line, const char *fmt, ...) {
    va_list ap;
    wsr_test_failed++;
    cur_bad = 1;
    printf("FAIL %s/%s against our %s (line %d): ", cur_case->cat, cur_case->name,
           cur_to_server ? "server" : "client", line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (cond) wsr_test_passed++;                                          \
        else fail_note(__LINE__, __VA_ARGS__);                                \
    } while (0)
#define EXPECT_INT(what, got, want)                                           \
    do {                                                                      \
        long long g_ = (long long)(got), w_ = (long long)(want);              \
        EXPECT(g_ == w_, "%s is %lld, expected %lld", what, g_, w_);          \
    } while (0)

/* Polls our side once (waiting up to ms), accepts our client's connection,
   and reads and decodes what our side wrote. */
static void pump(run *R, int ms) {
    int waited = 0;
    if (R->c && wsr_client_state(R->c) != WSR_STATE_CLOSED) {
        wsr_client_poll(R->c, ms);
        waited = 1;
    }
    if (R->s) {
        wsr_server_poll(R->s, ms);
        waited = 1;
    }
    if (R->lfd >= 0 && !R->accepted) {
        int fd = accept(R->lfd, NULL, NULL);
        if (fd >= 0) {
            set_nonblock(fd);
            set_nodelay(fd);
            R->p.fd = fd;
            R->accepted = 1;
        }
    }
    if (!waited && ms > 0) {
        struct pollfd pf;
        pf.fd = R->p.fd;
        pf.events = POLLIN;
        pf.revents = 0;
        poll(&pf, R->p.fd >= 0 ? 1 : 0, ms);
    }
    if (R->p.fd >= 0) {
        peer_drain(&R->p);
        peer_parse(&R->p);
    }
}

#define PUMP_UNTIL(R, cond, ms)                                               \
    do {                                                                      \
        uint64_t pu_dl_ = wsr_now_ms() + (uint64_t)(ms) * (uint64_t)time_scale(); \
        while (!(cond) && wsr_now_ms() < pu_dl_) pump(R, 1);                  \
    } while (0)

/* Writes bytes as the case says: in one go, or `chunk` bytes per write with
   our side polled between writes (so it reads them piece by piece). Our side
   is polled while the socket is full, too. Returns 0 if our side hung up
   first, which failure cases may well do. */
static int peer_send(run *R, const unsigned char *b, size_t n, int chunk) {
    uint64_t dl = wsr_now_ms() + 10000u * (uint64_t)time_scale();
    while (n > 0) {
        size_t piece = chunk > 0 && (size_t)chunk < n ? (size_t)chunk : n;
        while (piece > 0) {
            ssize_t k;
            if (R->p.fd < 0) return 0;
            k = send(R->p.fd, b, piece, MSG_NOSIGNAL);
            if (k > 0) { b += k; n -= (size_t)k; piece -= (size_t)k; continue; }
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                if (wsr_now_ms() > dl) return 0;
                pump(R, 1);
                continue;
            }
            return 0;
        }
        if (chunk > 0) pump(R, 0);
    }
    return 1;
}

static void put_case_frames(wire *w, const conf_case *cs, int to_server) {
    int rep, i, reps = cs->repeat > 0 ? cs->repeat : 1;
    for (rep = 0; rep < reps; rep++) {
        if (cs->build) cs->build(w, to_server);
        for (i = 0; i < 12 && cs->fr[i].on; i++) wire_frame(w, to_server, &cs->fr[i]);
    }
}

/* Expands {A}, {a} and {P} in a handshake template. */
static int is_slot(const char *t) {
    return t[0] == '{' && (t[1] == 'A' || t[1] == 'a' || t[1] == 'P') && t[2] == '}';
}
static char *expand(const char *t, const char *accept, size_t pad_to) {
    size_t n = 0, pad, i, k;
    char *out;
    for (i = 0; t[i]; i++) {             /* the length without padding */
        if (is_slot(t + i)) { n += t[i + 1] == 'P' ? 0 : 28; i += 2; }
        else n++;
    }
    pad = pad_to > n ? pad_to - n : 0;
    out = (char *)malloc(n + pad + 1);
    if (!out) { printf("out of memory\n"); exit(2); }
    for (i = 0, k = 0; t[i]; i++) {
        if (!is_slot(t + i)) { out[k++] = t[i]; continue; }
        if (t[i + 1] == 'P') {
            memset(out + k, 'x', pad);
            k += pad;
        } else {
            size_t j;
            for (j = 0; j < 28; j++) {
                char ch = accept[j];
                if (t[i + 1] == 'a' && ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
                out[k++] = ch;
            }
        }
        i += 2;
    }
    out[k] = '\0';
    return out;
}

/* Expected bytes of a message or pong. */
static unsigned char *x_bytes(const char *data, long len, int pat, size_t *n) {
    unsigned char *b;
    size_t i;
    *n = len < 0 ? strlen(data) : (size_t)len;
    b = (unsigned char *)malloc(*n ? *n : 1);
    if (!b) { printf("out of memory\n"); exit(2); }
    for (i = 0; i < *n; i++) b[i] = pat ? pat_byte((long)i, pat) : (unsigned char)data[i];
    return b;
}

static int count_xmsgs(const conf_case *cs) {
    int i = 0;
    while (i < 6 && cs->msgs[i].on) i++;
    return i;
}
static int count_xreps(const conf_case *cs) {
    int i = 0;
    while (i < 4 && cs->reps[i].on) i++;
    return i;
}

/* Frames our side wrote before its first close, and where that close is. */
static int replies_before_close(const peer *p, int *close_at) {
    int i, n = p->nfr < MAX_RFRAMES ? p->nfr : MAX_RFRAMES;
    *close_at = -1;
    for (i = 0; i < n; i++)
        if ((p->fr[i].b0 & 0x0F) == CLOSE) { *close_at = i; return i; }
    return n;
}

/* Checks our client's upgrade request against RFC 6455 §4.1. */
static void check_client_request(const char *head, size_t n, int port, const char *offer) {
    const char *v;
    size_t vl;
    char want[64];
    snprintf(want, sizeof want, "GET /conf?q=1 HTTP/1.1\r\n");
    EXPECT(n > strlen(want) && memcmp(head, want, strlen(want)) == 0, "request line is not '%s'", "GET /conf?q=1 HTTP/1.1");
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    EXPECT(hdr_find(head, n, "Host", &v, &vl) && vl == strlen(want) && memcmp(v, want, vl) == 0, "Host is not %s", want);
    EXPECT(hdr_find(head, n, "Upgrade", &v, &vl) && vl == 9 && memcmp(v, "websocket", 9) == 0, "no 'Upgrade: websocket'");
    EXPECT(hdr_find(head, n, "Connection", &v, &vl) && vl == 7 && memcmp(v, "Upgrade", 7) == 0, "no 'Connection: Upgrade'");
    EXPECT(hdr_find(head, n, "Sec-WebSocket-Version", &v, &vl) && vl == 2 && memcmp(v, "13", 2) == 0,
           "no 'Sec-WebSocket-Version: 13'");
    {
        int ok = hdr_find(head, n, "Sec-WebSocket-Key", &v, &vl) && vl == 24 && v[22] == '=' && v[23] == '=';
        size_t i;
        for (i = 0; ok && i < 22; i++) {
            char ch = v[i];
            ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        }
        /* 16 bytes: the last data character carries 2 bits, its low 4 are zero */
        if (ok) ok = strchr("AQgw", v[21]) != NULL;
        EXPECT(ok, "Sec-WebSocket-Key is not 16 bytes in base64");
    }
    if (offer)
        EXPECT(hdr_find(head, n, "Sec-WebSocket-Protocol", &v, &vl) && vl == strlen(offer) && memcmp(v, offer, vl) == 0,
               "Sec-WebSocket-Protocol is not '%s'", offer);
    EXPECT(!hdr_find(head, n, "Sec-WebSocket-Extensions", &v, &vl), "the request offers an extension");
}

static void run_case(const conf_case *cs, int to_server) {
    run R;
    wire w;
    char url[96];
    size_t hl = 0;
    int nx = count_xmsgs(cs), nr = count_xreps(cs), reps = cs->repeat > 0 ? cs->repeat : 1;
    int want_msgs = nx * reps, want_reps = nr * reps;
    int i;
    memset(&R, 0, sizeof R);
    memset(&w, 0, sizeof w);
    R.cs = cs;
    R.to_server = to_server;
    R.lfd = -1;
    R.p.fd = -1;
    R.p.fr = (rframe *)calloc(MAX_RFRAMES, sizeof *R.p.fr);
    if (!R.p.fr) { printf("out of memory\n"); exit(2); }

    /* ---- set up our endpoint and the raw peer ---- */
    if (to_server) {
        wsr_server_config sc;
        wsr_error err;
        wsr_server_config_init(&sc);
        sc.host = "127.0.0.1";
        sc.port = 0;
        if (cs->max_msg) sc.max_message_size = cs->max_msg;
        if (cs->max_hs) sc.max_handshake_size = cs->max_hs;
        sc.subprotocols = cs->protos;
        sc.close_timeout_ms = 2000;
        sc.on_open = s_open;
        sc.on_close = s_close;
        sc.on_message = s_message;
        sc.user = &R.r;
        R.s = wsr_server_new(&sc, &err);
        EXPECT(R.s != NULL, "wsr_server_new: %s", err.message);
        if (!R.s) goto done;
        R.p.fd = raw_connect(wsr_server_port(R.s));
        EXPECT(R.p.fd >= 0, "cannot connect to our server");
        if (R.p.fd < 0) goto done;
    } else {
        wsr_client_config cc;
        wsr_error err;
        R.lfd = raw_listen(&R.port);
        EXPECT(R.lfd >= 0, "cannot listen on 127.0.0.1 port 0");
        if (R.lfd < 0) goto done;
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/conf?q=1", R.port);
        wsr_client_config_init(&cc);
        cc.url = url;
        cc.reconnect = 0;
        cc.ping_interval_ms = 0;
        cc.connect_timeout_ms = 3000 * time_scale();
        cc.close_timeout_ms = 2000 * time_scale();
        if (cs->max_msg) cc.max_message_size = cs->max_msg;
        if (cs->max_hs) cc.max_handshake_size = cs->max_hs;
        cc.subprotocols = cs->offer;
        cc.on_open = c_open;
        cc.on_close = c_close;
        cc.on_message = c_message;
        cc.user = &R.r;
        R.c = wsr_client_new(&cc, &err);
        EXPECT(R.c != NULL, "wsr_client_new: %s", err.message);
        if (!R.c) goto done;
    }

    /* ---- the upgrade ---- */
    if (!to_server) {
        const char *key;
        size_t kl;
        char accept[29], keybuf[64];
        char *resp;
        PUMP_UNTIL(&R, (R.p.fd >= 0 && head_end(R.p.in, R.p.len)) || R.r.closes, 3000);
        hl = R.p.fd >= 0 ? head_end(R.p.in, R.p.len) : 0;
        EXPECT(hl > 0, "no upgrade request from our client");
        if (!hl) goto done;
        if (cs->check_request) check_client_request((const char *)R.p.in, hl, R.port, cs->offer);
        if (!hdr_find((const char *)R.p.in, hl, "Sec-WebSocket-Key", &key, &kl) || kl >= sizeof keybuf) {
            EXPECT(0, "no Sec-WebSocket-Key in our client's request");
            goto done;
        }
        memcpy(keybuf, key, kl);
        keybuf[kl] = '\0';
        wsr_accept_key(keybuf, kl, accept);
        R.p.parsed = hl;
        R.p.parsing = 1;
        if (cs->hs_close) {
            close(R.p.fd);
            R.p.fd = -1;
        } else {
            resp = expand(cs->resp ? cs->resp : S_UPGRADE_OK, accept, cs->pad_to);
            wire_put(&w, resp, strlen(resp));
            free(resp);
            if (cs->same_write) put_case_frames(&w, cs, 0);
            peer_send(&R, w.b, w.n, cs->chunk);
            w.n = 0;
        }
        if (cs->out == HS_FAIL) {
            PUMP_UNTIL(&R, R.r.closes || R.r.opens, 3000);
            PUMP_UNTIL(&R, R.p.fd < 0 || R.p.eof || R.p.err || R.r.opens, 1000);
            EXPECT_INT("on_open calls", R.r.opens, 0);
            EXPECT_INT("on_close calls", R.r.closes, 1);
            EXPECT_INT("why->code", R.r.why.code, WSR_ERR_HANDSHAKE);
            EXPECT_INT("why->http_status", R.r.why.http_status, cs->http);
            EXPECT_INT("why->close_code", R.r.why.close_code, 1006);
            EXPECT_INT("client state", wsr_client_state(R.c), WSR_STATE_CLOSED);
            EXPECT_INT("bytes our client wrote after its request", R.p.len - hl, 0);
            EXPECT(R.r.opens || R.p.fd < 0 || R.p.eof || R.p.err, "our client did not hang up");
            goto done;
        }
        PUMP_UNTIL(&R, R.r.opens || R.r.closes, 3000);
        EXPECT_INT("on_open calls", R.r.opens, 1);
        if (!R.r.opens) {
            if (R.r.closes) printf("  our client said: %s\n", R.r.why.message);
            goto done;
        }
        EXPECT(strcmp(R.r.sub, cs->sub ? cs->sub : "") == 0, "subprotocol is '%s', expected '%s'", R.r.sub,
               cs->sub ? cs->sub : "");
    } else {
        char *req = expand(cs->req ? cs->req : Q_OK, "", cs->pad_to);
        const char *v;
        size_t vl;
        const char *want = cs->status ? cs->status : "HTTP/1.1 101 Switching Protocols";
        size_t sl;
        wire_put(&w, req, strlen(req));
        free(req);
        if (cs->same_write) put_case_frames(&w, cs, 1);
        peer_send(&R, w.b, w.n, cs->chunk);
        w.n = 0;
        PUMP_UNTIL(&R, head_end(R.p.in, R.p.len) || R.p.eof || R.p.err, 3000);
        hl = head_end(R.p.in, R.p.len);
        EXPECT(hl > 0, "no answer to the upgrade request");
        if (!hl) goto done;
        sl = 0;
        while (sl < hl && R.p.in[sl] != '\r') sl++;
        EXPECT(sl == strlen(want) && memcmp(R.p.in, want, sl) == 0, "status line is '%.*s', expected '%s'", (int)sl,
               (const char *)R.p.in, want);
        if (cs->need) {
            const char *colon = strchr(cs->need, ':');
            size_t nlen = (size_t)(colon - cs->need);
            char name[64];
            memcpy(name, cs->need, nlen);
            name[nlen] = '\0';
            EXPECT(hdr_find((const char *)R.p.in, hl, name, &v, &vl) && vl == strlen(colon + 2) &&
                   memcmp(v, colon + 2, vl) == 0, "the answer lacks '%s'", cs->need);
        }
        if (cs->shun) EXPECT(!hdr_find((const char *)R.p.in, hl, cs->shun, &v, &vl), "the answer has %s", cs->shun);
        if (cs->out == HS_REFUSED) {
            PUMP_UNTIL(&R, R.p.eof || R.p.err, 2000);
            EXPECT(R.p.eof || R.p.err, "our server did not hang up after refusing");
            EXPECT_INT("on_open calls", R.r.opens, 0);
            EXPECT_INT("on_close calls", R.r.closes, 0);
            EXPECT_INT("bytes after the refusal", R.p.len - hl, 0);
            /* Our server stops sending (FIN) and waits for the client to
               close, so the request it never read cannot turn the close
               into a reset that destroys the answer. Once we close, it is
               gone. */
            close(R.p.fd);
            R.p.fd = -1;
            PUMP_UNTIL(&R, wsr_server_conn_count(R.s) == 0, 1500);
            EXPECT_INT("connections left", wsr_server_conn_count(R.s), 0);
            goto done;
        }
        if (!(sl == 32 && memcmp(R.p.in, "HTTP/1.1 101 ", 13) == 0)) goto done;
        EXPECT(hdr_find((const char *)R.p.in, hl, "Sec-WebSocket-Accept", &v, &vl) && vl == 28 &&
               memcmp(v, SAMPLE_ACCEPT, 28) == 0, "Sec-WebSocket-Accept is not " SAMPLE_ACCEPT);
        EXPECT(hdr_find((const char *)R.p.in, hl, "Upgrade", &v, &vl) && vl == 9 && memcmp(v, "websocket", 9) == 0,
               "no 'Upgrade: websocket' in the 101");
        EXPECT(hdr_find((const char *)R.p.in, hl, "Connection", &v, &vl) && vl == 7 && memcmp(v, "Upgrade", 7) == 0,
               "no 'Connection: Upgrade' in the 101");
        if (cs->sub && cs->sub[0])
            EXPECT(hdr_find((const char *)R.p.in, hl, "Sec-WebSocket-Protocol", &v, &vl) && vl == strlen(cs->sub) &&
                   memcmp(v, cs->sub, vl) == 0, "the 101 does not choose '%s'", cs->sub);
        else
            EXPECT(!hdr_find((const char *)R.p.in, hl, "Sec-WebSocket-Protocol", &v, &vl), "the 101 chooses a subprotocol");
        R.p.parsed = hl;
        R.p.parsing = 1;
        peer_parse(&R.p);
        PUMP_UNTIL(&R, R.r.opens || R.p.eof || R.p.err, 3000);
        EXPECT_INT("on_open calls", R.r.opens, 1);
        if (!R.r.opens) goto done;
        EXPECT(strcmp(R.r.sub, cs->sub ? cs->sub : "") == 0, "subprotocol is '%s', expected '%s'", R.r.sub,
               cs->sub ? cs->sub : "");
    }

    /* ---- the frames ---- */
    if (!cs->same_write) {
        put_case_frames(&w, cs, to_server);
        peer_send(&R, w.b, w.n, cs->chunk);
        w.n = 0;
    }
    {
        uint64_t now = wsr_now_ms();
        uint64_t expect_dl = now + 2000u * (uint64_t)time_scale();
        uint64_t dl = now + 4000u * (uint64_t)time_scale();
        int sent_close = 0;
        for (;;) {
            int close_at, nrep = replies_before_close(&R.p, &close_at);
            now = wsr_now_ms();
            if (cs->out == OK && !sent_close &&
                ((R.r.nmsgs >= want_msgs && nrep >= want_reps) || R.r.closes || close_at >= 0 || now > expect_dl)) {
                /* Everything arrived: the peer closes, and our side must echo it. */
                frame f;
                memset(&f, 0, sizeof f);
                f.on = 1; f.b0 = FIN | CLOSE; f.data = ""; f.len = 0; f.flags = F_CODE; f.code = 1000;
                wire_frame(&w, to_server, &f);
                peer_send(&R, w.b, w.n, 0);
                w.n = 0;
                sent_close = 1;
            }
            /* A server closes the TCP connection once the close handshake is
               done (§7.1.1); the raw server does so as soon as it has our
               client's close frame. */
            if (!to_server && close_at >= 0 && R.p.fd >= 0) {
                peer_drain(&R.p);
                peer_parse(&R.p);
                close(R.p.fd);
                R.p.fd = -1;
            }
            if (R.r.closes && (R.p.fd < 0 || R.p.eof || R.p.err)) break;
            if (now > dl) break;
            pump(&R, 1);
        }
        for (i = 0; i < 3; i++) pump(&R, 0);
    }

    /* ---- the verdict ---- */
    {
        int want_code = cs->out == OK ? 1000 : cs->code;
        int want_why_close = cs->why_close ? cs->why_close : want_code;
        wsr_err want_err = cs->out == FAIL ? cs->err : WSR_ERR_PEER_CLOSED;
        int close_at, nrep = replies_before_close(&R.p, &close_at), n = R.p.nfr < MAX_RFRAMES ? R.p.nfr : MAX_RFRAMES;
        int mask_bad = 0, rsv_bad = 0, closes_seen = 0;

        /* messages: exact count, types, bytes and order */
        EXPECT_INT("messages delivered", R.r.nmsgs, want_msgs);
        for (i = 0; i < R.r.nmsgs && i < want_msgs; i++) {
            const xmsg *x = &cs->msgs[i % nx];
            size_t xl;
            unsigned char *xb = x_bytes(x->data, x->len, x->pat, &xl);
            const got_msg *g = &R.r.msgs[i];
            int same = g->type == x->type && g->len == xl && (xl == 0 || memcmp(g->data, xb, xl) == 0);
            EXPECT(same, "message %d is type %d, %lu bytes; expected type %d, %lu bytes%s", i, g->type,
                   (unsigned long)g->len, x->type, (unsigned long)xl,
                   g->type == x->type && g->len == xl ? " (contents differ)" : "");
            free(xb);
            if (!same) break;
        }

        /* frames our side wrote: all masked iff our side is the client, no RSV */
        for (i = 0; i < n; i++) {
            if (R.p.fr[i].masked != !to_server) mask_bad++;
            if (R.p.fr[i].b0 & 0x70 || !(R.p.fr[i].b0 & 0x80)) rsv_bad++;
            if ((R.p.fr[i].b0 & 0x0F) == CLOSE) closes_seen++;
        }
        EXPECT_INT(to_server ? "masked frames from our server" : "unmasked frames from our client", mask_bad, 0);
        EXPECT_INT("frames from our side with RSV set or FIN clear", rsv_bad, 0);
        EXPECT_INT("frames from our side over 125 bytes", R.p.big, 0);

        /* pongs, in order, with the ping's payload */
        EXPECT_INT("frames (pongs) before our close", nrep, want_reps);
        for (i = 0; i < nrep && i < want_reps; i++) {
            const xrep *x = &cs->reps[i % nr];
            size_t xl;
            unsigned char *xb = x_bytes(x->data, x->len, x->pat, &xl);
            const rframe *f = &R.p.fr[i];
            int same = (f->b0 & 0x0F) == PONG && f->len == xl && (xl == 0 || memcmp(f->p, xb, xl) == 0);
            EXPECT(same, "reply %d is opcode %d with %lu bytes; expected a pong with %lu bytes", i, f->b0 & 0x0F,
                   (unsigned long)f->len, (unsigned long)xl);
            free(xb);
            if (!same) break;
        }

        /* exactly one close frame, with the expected code, and nothing after it */
        EXPECT_INT("close frames from our side", closes_seen, 1);
        if (close_at >= 0) {
            const rframe *f = &R.p.fr[close_at];
            int code = f->len == 0 ? EMPTY : f->len == 1 ? -2 : (f->p[0] << 8 | f->p[1]);
            if (want_code == EMPTY) EXPECT(code == EMPTY, "our close has code %d, expected an empty close", code);
            else EXPECT_INT("close code on the wire", code, want_code);
            if (f->len > 2) {
                uint32_t st = 0;
                EXPECT(wsr_utf8_feed(&st, f->p + 2, f->len - 2) && st == 0, "our close reason is not UTF-8");
            }
            EXPECT_INT("frames after our close", n - close_at - 1, 0);
        }

        /* what on_close said */
        EXPECT_INT("on_close calls", R.r.closes, 1);
        EXPECT_INT("why->code", R.r.why.code, want_err);
        EXPECT_INT("why->close_code", R.r.why.close_code, want_why_close == EMPTY ? 1005 : want_why_close);
        if (cs->out != FAIL)
            EXPECT(strcmp(R.r.why.close_reason, cs->reason ? cs->reason : "") == 0, "why->close_reason is '%s'",
                   R.r.why.close_reason);
        if (R.c) EXPECT_INT("client state", wsr_client_state(R.c), WSR_STATE_CLOSED);
        if (R.s) EXPECT_INT("connections left", wsr_server_conn_count(R.s), 0);
    }

done:
    if (cur_bad && R.r.closes) printf("  (our side said: %s)\n", R.r.why.message);
    if (R.c) wsr_client_free(R.c);
    if (R.s) wsr_server_free(R.s);
    if (R.p.fd >= 0) close(R.p.fd);
    if (R.lfd >= 0) close(R.lfd);
    free(R.p.in);
    free(R.p.fr);
    free(w.b);
    rec_free(&R.r);
}

/* ==========================================================================
   The run
   ========================================================================== */

static const char *const categories[] = { "framing", "ping", "fragmentation", "utf8", "close", "limits", "handshake" };
#define NCATS (sizeof categories / sizeof categories[0])

TEST(conformance) {
    int counts[NCATS], failed[NCATS], total = 0, total_failed = 0;
    const char *only = getenv("WSR_CONF_ONLY");
    size_t i, k;
    char accept[29];
    int fd_before = dup(0), fd_after;   /* the lowest free descriptor, to find leaks */
    if (fd_before >= 0) close(fd_before);
    memset(counts, 0, sizeof counts);
    memset(failed, 0, sizeof failed);
    /* The one thing the client side borrows from the library: the accept
       value. Anchor it to the RFC's own example first. */
    wsr_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    CHECK_EQ_STR(accept, SAMPLE_ACCEPT);
    for (i = 0; i < NCASES; i++) {
        const conf_case *cs = &cases[i];
        int d;
        for (k = 0; k < NCATS; k++)
            if (strcmp(categories[k], cs->cat) == 0) break;
        CHECK(k < NCATS);
        if (k == NCATS) continue;
        for (d = 0; d < 2; d++) {
            int to_server = d == 1;
            char full[128];
            if (cs->dirs == D_CLIENT && to_server) continue;
            if (cs->dirs == D_SERVER && !to_server) continue;
            snprintf(full, sizeof full, "%s/%s", cs->cat, cs->name);
            if (only && !strstr(full, only)) continue;
            cur_case = cs;
            cur_to_server = to_server;
            cur_bad = 0;
            run_case(cs, to_server);
            counts[k]++;
            total++;
            if (cur_bad) { failed[k]++; total_failed++; }
        }
    }
    /* Every socket is closed, the failed cases' too. */
#if !defined(_WIN32)   /* the lowest-free-descriptor check is POSIX only (sockets are not CRT fds) */
    fd_after = dup(0);
    if (fd_after >= 0) close(fd_after);
    CHECK_EQ_INT(fd_after, fd_before);
#else
    fd_after = fd_before;
    (void)fd_after;
#endif
    for (k = 0; k < NCATS; k++) printf("category %s: %d cases\n", categories[k], counts[k]);
    printf("total: %d cases\n", total);
    if (total_failed) {
        printf("failed cases: %d (", total_failed);
        for (k = 0, i = 0; k < NCATS; k++)
            if (failed[k]) printf("%s%s %d", i++ ? ", " : "", categories[k], failed[k]);
        printf(")\n");
    }
}

TEST_MAIN()
