/* fuzz_roundtrip.c - what one proto encodes, the other decodes unchanged.

   The input is a script. Its first bytes choose the direction (client to
   server, masked, or server to client), the receiver's max_message_size and
   how the bytes are cut on the way; then each step sends a text or binary
   message (fragmented or whole), a ping, a pong or a close, with lengths and
   payloads from the input. The sender's output goes to the receiver in
   chunks; the receiver's output (pongs, the answer to a close) goes back.
   Checked, at every step:

   - the receiver's events are exactly what was sent, in order: messages
     byte for byte and with their type, pings and pongs with their payload,
     the close with its code and reason; the sender gets the pong for each
     ping, and the close echoed;
   - a text that is not UTF-8 fails the receiver with 1007, a message over
     the receiver's limit with 1009, and nothing else fails;
   - what the API refuses it refuses cleanly: a close code that may not be
     sent, a reason over 123 bytes, a control payload over 125 bytes, and
     anything after our close (WSR_ERR_STATE);
   - wsr_frame_header writes the shortest length form, which decodes back,
     and wsr_mask in pieces at any offset equals a byte-wise XOR. */
#include "fuzz_common.h"

/* A sender and a receiver, and the bytes on the way between them. */
typedef struct fuzz_link {
    wsr_proto *tx, *rx;
    fuzz_reader *rd;
    int rx_failed;               /* the receiver refused the stream (expected) */
    int tx_closed_by_peer;       /* the sender has seen the echoed close */
} fuzz_link;

/* Takes what `from` has to write, in pieces of input-chosen sizes, and
   parses it with `to`. Returns the events through *evs. */
typedef struct fuzz_got {
    int type, msg_type, close_code;
    unsigned char data[1 << 17];
    size_t len;
    int count;
    wsr_err err;
    int err_close;
} fuzz_got;

/* Moves every pending byte from `from` to `to`, in chunks, and records the
   events `to` reports (at most one message of interest is in flight). */
static void fuzz_move(wsr_proto *from, wsr_proto *to, fuzz_reader *rd, fuzz_got *got) {
    const unsigned char *d;
    size_t n;
    got->count = 0;
    got->err = WSR_OK;
    while ((n = wsr_proto_pending(from, &d)) > 0) {
        size_t take = 1 + (size_t)fuzz_byte(rd) * 7, off = 0;   /* (WSR__MIN would read twice) */
        unsigned char *chunk;
        if (take > n) take = n;
        chunk = (unsigned char *)malloc(take);
        FUZZ_CHECK(chunk != NULL);
        memcpy(chunk, d, take);
        wsr_proto_written(from, take);
        while (got->err == WSR_OK) {
            wsr_event ev;
            wsr_error err;
            size_t used;
            wsr_err e = wsr_proto_parse(to, chunk + off, take - off, &used, &ev, &err);
            FUZZ_CHECK(used <= take - off);
            off += used;
            if (e != WSR_OK) {
                FUZZ_CHECK(err.code == e);
                got->err = e;
                got->err_close = err.close_code;
                break;
            }
            if (ev.type == WSR_EVENT_NONE) { FUZZ_CHECK(off == take); break; }
            FUZZ_CHECK(got->count == 0);        /* one event per step */
            FUZZ_CHECK(ev.len <= sizeof got->data);
            got->count++;
            got->type = ev.type;
            got->msg_type = ev.msg_type;
            got->close_code = ev.close_code;
            got->len = ev.len;
            if (ev.len) memcpy(got->data, ev.data, ev.len);
        }
        free(chunk);
        if (got->err != WSR_OK) break;
    }
}

/* wsr_frame_header and wsr_mask on values from the input. */
static void fuzz_header_and_mask(fuzz_reader *rd) {
    unsigned char hdr[WSR_MAX_FRAME_HEADER], key[4], buf[300], want[300];
    uint64_t len = 0;
    size_t i, n, hl, split, offset;
    int shape = (int)fuzz_byte(rd), fin = shape & 1, op = (shape >> 1) & 15, masked = (shape >> 5) & 1;
    for (i = 0; i < 8; i++) len = len << 8 | fuzz_byte(rd);
    len >>= (shape >> 6) * 16;               /* all sizes of length, not only huge ones */
    for (i = 0; i < 4; i++) key[i] = (unsigned char)fuzz_byte(rd);
    hl = wsr_frame_header(hdr, fin, op, len, masked ? key : NULL);
    FUZZ_CHECK(hl == (len < 126 ? 2u : len <= 0xFFFF ? 4u : 10u) + (masked ? 4u : 0u));
    FUZZ_CHECK(hdr[0] == ((fin ? 0x80 : 0) | op) && (hdr[1] >> 7) == masked);
    {
        unsigned len7 = hdr[1] & 0x7F;
        uint64_t back = len7;
        if (len7 == 126) back = (uint64_t)hdr[2] << 8 | hdr[3];
        if (len7 == 127) for (back = 0, i = 0; i < 8; i++) back = back << 8 | hdr[2 + i];
        FUZZ_CHECK(back == len);
        if (masked) FUZZ_CHECK(memcmp(hdr + hl - 4, key, 4) == 0);
    }
    /* Masking in two pieces from any offset is the plain XOR, and twice is nothing. */
    n = fuzz_byte(rd) + (size_t)(fuzz_byte(rd) & 1) * 44;
    offset = fuzz_byte(rd);
    split = n ? fuzz_byte(rd) % (n + 1) : 0;
    for (i = 0; i < n; i++) buf[i] = want[i] = (unsigned char)fuzz_byte(rd);
    wsr_mask(buf, split, key, offset);
    wsr_mask(buf + split, n - split, key, offset + split);
    for (i = 0; i < n; i++) FUZZ_CHECK(buf[i] == (want[i] ^ key[(offset + i) & 3]));
    wsr_mask(buf, n, key, offset);
    FUZZ_CHECK(n == 0 || memcmp(buf, want, n) == 0);
}

/* Where a text first becomes impossible: the length of the shortest prefix
   no continuation can make valid, or 0 if there is none. Binary search:
   once a prefix is impossible, so is every longer one. */
static size_t fuzz_utf8_fail_at(const unsigned char *s, size_t n) {
    size_t lo = 1, hi = n;
    if (n == 0 || fuzz_utf8_ref(s, n) != 0) return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fuzz_utf8_ref(s, mid) == 0) hi = mid; else lo = mid + 1;
    }
    return lo;
}

static const size_t fuzz_limits[4] = { 125, 1000, 65536, 100000 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fuzz_got got, back;                 /* large: not on the stack */
    fuzz_reader rd;
    uint32_t seed_a = 1, seed_b = 2;
    unsigned setup;
    wsr_role tx_role;
    size_t limit;
    wsr_proto *tx, *rx;
    int steps = 0, closed = 0;

    rd.p = data; rd.n = size; rd.pos = 0;
    got.err = back.err = WSR_OK;
    fuzz_header_and_mask(&rd);
    setup = fuzz_byte(&rd);
    tx_role = setup & 1 ? WSR_ROLE_SERVER : WSR_ROLE_CLIENT;
    limit = fuzz_limits[(setup >> 1) & 3];
    tx = wsr_proto_new(tx_role, 1 << 17, fuzz_rand, &seed_a, NULL);
    rx = wsr_proto_new(tx_role == WSR_ROLE_CLIENT ? WSR_ROLE_SERVER : WSR_ROLE_CLIENT, limit, fuzz_rand, &seed_b, NULL);
    FUZZ_CHECK(tx && rx);

    while (rd.pos < rd.n && steps++ < 64) {
        unsigned what = fuzz_byte(&rd);
        size_t len = fuzz_u16(&rd) % (what & 0x80 ? 70000 : 300), avail;
        const uint8_t *payload = fuzz_bytes(&rd, len, &avail);
        unsigned char *msg;
        size_t frag = (what >> 3) & 0x0F;
        wsr_err e;
        /* Payloads are taken from the input, then repeated to the length. */
        msg = (unsigned char *)malloc(len ? len : 1);
        FUZZ_CHECK(msg != NULL);
        {
            size_t i;
            for (i = 0; i < len; i++) msg[i] = avail ? payload[i % avail] : (unsigned char)i;
        }
        if (frag) frag = frag * frag * 3;   /* 3 .. 675 bytes per frame */
        switch (what & 7) {
        case 0: case 1: case 2: {               /* a message: text (if it is UTF-8) or binary */
            /* Kind 0 sends text only when it is UTF-8; kind 2 sends any bytes as text. */
            int op = (what & 7) == 1 || ((what & 7) == 0 && fuzz_utf8_ref(msg, len) != 1) ? WSR_OP_BINARY
                                                                                            : WSR_OP_TEXT;
            int bad_text = op == WSR_OP_TEXT && fuzz_utf8_ref(msg, len) != 1;
            e = wsr_proto_send(tx, op, msg, len, frag);
            if (closed) { FUZZ_CHECK(e == WSR_ERR_STATE); break; }
            FUZZ_CHECK(e == WSR_OK);
            fuzz_move(tx, rx, &rd, &got);
            if (len > limit) {
                /* The receiver refuses the first frame that takes the message
                   over its limit, from the header, unless a bad byte in an
                   earlier frame has failed the text already. */
                size_t step = frag && len > frag ? frag : len, start = 0, bad = fuzz_utf8_fail_at(msg, len);
                while (start + step <= limit) start += step;
                if (op == WSR_OP_TEXT && bad && bad - 1 < start)
                    FUZZ_CHECK(got.err == WSR_ERR_PROTOCOL && got.err_close == 1007 && got.count == 0);
                else
                    FUZZ_CHECK(got.err == WSR_ERR_TOO_BIG && got.err_close == 1009 && got.count == 0);
            } else if (bad_text) {
                FUZZ_CHECK(got.err == WSR_ERR_PROTOCOL && got.err_close == 1007 && got.count == 0);
            } else {
                FUZZ_CHECK(got.err == WSR_OK && got.count == 1);
                FUZZ_CHECK(got.type == WSR_EVENT_MESSAGE && got.msg_type == op);
                FUZZ_CHECK(got.len == len && (len == 0 || memcmp(got.data, msg, len) == 0));
            }
            break;
        }
        case 3: case 4: {                       /* ping (answered) or pong */
            int op = (what & 7) == 3 ? WSR_OP_PING : WSR_OP_PONG;
            e = wsr_proto_send(tx, op, msg, len, 0);
            if (closed) { FUZZ_CHECK(e == WSR_ERR_STATE); break; }
            if (len > WSR_MAX_CONTROL_PAYLOAD) { FUZZ_CHECK(e == WSR_ERR_INVALID); break; }
            FUZZ_CHECK(e == WSR_OK);
            fuzz_move(tx, rx, &rd, &got);
            FUZZ_CHECK(got.err == WSR_OK && got.count == 1 && got.len == len);
            FUZZ_CHECK(got.type == (op == WSR_OP_PING ? WSR_EVENT_PING : WSR_EVENT_PONG));
            FUZZ_CHECK(len == 0 || memcmp(got.data, msg, len) == 0);
            fuzz_move(rx, tx, &rd, &back);      /* the pong, if it was a ping */
            FUZZ_CHECK(back.err == WSR_OK && back.count == (op == WSR_OP_PING));
            if (op == WSR_OP_PING)
                FUZZ_CHECK(back.type == WSR_EVENT_PONG && back.len == len &&
                           (len == 0 || memcmp(back.data, msg, len) == 0));
            break;
        }
        case 5: {                               /* close with a code from the input */
            int code = (int)(fuzz_u16(&rd) % 5100);
            size_t rlen = len % 130;
            int ok_code = code == 0 ? rlen == 0
                        : (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                          (code >= 3000 && code <= 4999);
            int ok = ok_code && rlen <= WSR_MAX_CLOSE_REASON && fuzz_utf8_ref(msg, rlen) == 1;
            e = wsr_proto_close(tx, code, (const char *)msg, rlen);
            if (closed) { FUZZ_CHECK(e == WSR_ERR_STATE); break; }
            if (!ok) { FUZZ_CHECK(e == WSR_ERR_INVALID); FUZZ_CHECK(wsr_proto_pending(tx, NULL) == 0); break; }
            FUZZ_CHECK(e == WSR_OK && wsr_proto_close_sent(tx));
            closed = 1;
            fuzz_move(tx, rx, &rd, &got);
            FUZZ_CHECK(got.err == WSR_OK && got.count == 1 && got.type == WSR_EVENT_CLOSE);
            FUZZ_CHECK(got.close_code == (code ? code : 1005));
            FUZZ_CHECK(got.len == (code ? rlen : 0) && (got.len == 0 || memcmp(got.data, msg, rlen) == 0));
            FUZZ_CHECK(wsr_proto_close_received(rx) && wsr_proto_close_sent(rx));
            fuzz_move(rx, tx, &rd, &back);      /* the echo: same code, no reason */
            FUZZ_CHECK(back.err == WSR_OK && back.count == 1 && back.type == WSR_EVENT_CLOSE);
            FUZZ_CHECK(back.close_code == (code ? code : 1005) && back.len == 0);
            FUZZ_CHECK(wsr_proto_close_received(tx));
            break;
        }
        default:                                /* pending/written in odd pieces, nothing sent */
            FUZZ_CHECK(wsr_proto_pending(tx, NULL) == 0 && wsr_proto_pending(rx, NULL) == 0);
            break;
        }
        free(msg);
        if (got.err != WSR_OK) break;           /* the receiver failed the link, as expected */
    }
    wsr_proto_free(tx);
    wsr_proto_free(rx);
    return 0;
}
