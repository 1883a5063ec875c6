/* fuzz_frames.h - the frame decoder under fuzzing, for one role.

   fuzz_frames_server.c and fuzz_frames_client.c define FUZZ_ROLE and
   include this file. The input is read as:

       byte 0      settings: bits 0-2 pick max_message_size from a table of
                   edges (1 B ... 64 KiB); bits 3-4 pick how the wire bytes
                   are cut into chunks; bit 5 sends a close of our own and
                   bit 6 small messages of our own between chunks; bit 7
                   makes the allocator fail from some allocation on
       bytes 1-3   seeds for the chunk sizes, for when to act (its bit 7:
                   read the rest of data frames straight into place, as
                   the drivers do) and for how much output to drain
       byte 4      with bit 7 of byte 0: the allocation that fails first
       the rest    the bytes from the peer

   The wire bytes go to wsr_proto_parse in chunks (so every state of the
   resumable decoder is met), and a second decoder, written here from RFC
   6455 on the whole input at once, says what must come out. Checked:

   - the events, in order, byte for byte, and the final outcome (error code
     and close code) are the model's;
   - *used never exceeds the bytes given, and event data is readable (ASan
     checks the reads) and, where it points into the caller's buffer,
     inside the bytes consumed;
   - text messages and close reasons are valid UTF-8, by the reference
     decoder; reported close codes are ones that may be sent, or 1005;
   - after an error, every later call returns the same error and consumes
     nothing;
   - memory stays bounded: the reassembly buffer never holds more than
     2 * max_message_size, whatever lengths the peer declares;
   - everything the proto wrote (pongs, the answer to a close, the close
     that fails the connection, our own messages) parses cleanly with a
     proto of the other role, as exactly the frames expected, and nothing
     follows the close frame. */
#ifndef WSR_FUZZ_FRAMES_H
#define WSR_FUZZ_FRAMES_H

#include "fuzz_common.h"

/* ---- expected events ----------------------------------------------------- */

typedef struct fuzz_ev {
    int type, msg_type, close_code;
    unsigned char *data;
    size_t len;
} fuzz_ev;

typedef struct fuzz_evlist { fuzz_ev *v; size_t n, cap; } fuzz_evlist;

FUZZ_FN void fuzz_ev_push(fuzz_evlist *l, int type, int msg_type, int close_code, const void *data, size_t len) {
    fuzz_ev *e;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = (fuzz_ev *)realloc(l->v, l->cap * sizeof *l->v);
        FUZZ_CHECK(l->v != NULL);
    }
    e = &l->v[l->n++];
    e->type = type;
    e->msg_type = msg_type;
    e->close_code = close_code;
    e->len = len;
    e->data = (unsigned char *)malloc(len ? len : 1);
    FUZZ_CHECK(e->data != NULL);
    if (len) memcpy(e->data, data, len);
}

FUZZ_FN void fuzz_ev_free(fuzz_evlist *l) {
    size_t i;
    for (i = 0; i < l->n; i++) free(l->v[i].data);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Does a library event equal the expected one? */
FUZZ_FN int fuzz_ev_same(const fuzz_ev *want, const wsr_event *ev) {
    if ((int)ev->type != want->type || ev->len != want->len) return 0;
    if (ev->type == WSR_EVENT_MESSAGE && (int)ev->msg_type != want->msg_type) return 0;
    if (ev->type == WSR_EVENT_CLOSE && ev->close_code != want->close_code) return 0;
    return ev->len == 0 || memcmp(ev->data, want->data, ev->len) == 0;
}

/* RFC 6455 §7.4.1 and the IANA registry: the close codes a frame may carry. */
FUZZ_FN int fuzz_close_code_ok(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* ---- the model ----------------------------------------------------------
   RFC 6455 §5 read straight, on the whole input, with no state kept
   between calls: frame by frame, each checked in the order the library
   documents (header bits, then lengths, then the size limit, then the
   payload). A text payload is judged on every byte present, so a bad byte
   fails the connection even when the frame is not all there (§8.1 "fail
   fast"). Returns the outcome; the events go to evs. */
typedef struct fuzz_outcome { wsr_err code; int close_code; } fuzz_outcome;

FUZZ_FN fuzz_outcome fuzz_model(const unsigned char *in, size_t n, wsr_role role, size_t max_message,
                               fuzz_evlist *evs) {
    fuzz_outcome r;
    size_t pos = 0, msg_len = 0;
    unsigned char *msg = NULL, *payload = NULL;
    int msg_type = 0;
    r.code = WSR_OK;
    r.close_code = 0;
#define FUZZ_MODEL_FAIL(c, cc) do { r.code = (c); r.close_code = (cc); goto done; } while (0)
    for (;;) {
        unsigned b0, b1, op, len7;
        int fin, masked, type;
        uint64_t plen;
        size_t hlen, avail, i;
        unsigned char key[4] = { 0, 0, 0, 0 };
        if (n - pos < 2) break;
        b0 = in[pos];
        b1 = in[pos + 1];
        fin = b0 >> 7;
        op = b0 & 0x0F;
        masked = b1 >> 7;
        len7 = b1 & 0x7F;
        if (b0 & 0x70) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002);
        if (op == 0) { if (!msg_type) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002); }
        else if (op == 1 || op == 2) { if (msg_type) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002); }
        else if (op == 8 || op == 9 || op == 10) { if (!fin || len7 > 125) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002); }
        else FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002);
        if (masked != (role == WSR_ROLE_SERVER)) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002);
        hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (n - pos < hlen) break;
        if (len7 == 126) {
            plen = (uint64_t)in[pos + 2] << 8 | in[pos + 3];
            if (plen < 126) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002);
        } else if (len7 == 127) {
            plen = 0;
            for (i = 0; i < 8; i++) plen = plen << 8 | in[pos + 2 + i];
            if (plen > 0x7FFFFFFFFFFFFFFFull || plen <= 0xFFFF) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002);
        } else {
            plen = len7;
        }
        if (masked) memcpy(key, in + pos + hlen - 4, 4);
        if (op < 8 && (plen > max_message || msg_len + plen > max_message)) FUZZ_MODEL_FAIL(WSR_ERR_TOO_BIG, 1009);
        pos += hlen;
        avail = (uint64_t)(n - pos) < plen ? n - pos : (size_t)plen;
        payload = (unsigned char *)malloc(avail + 1);
        FUZZ_CHECK(payload != NULL);
        for (i = 0; i < avail; i++) payload[i] = in[pos + i] ^ key[i & 3];
        if (op < 8) {
            type = op ? (int)op : msg_type;
            msg = (unsigned char *)realloc(msg, msg_len + avail + 1);
            FUZZ_CHECK(msg != NULL);
            memcpy(msg + msg_len, payload, avail);
            msg_len += avail;
            free(payload);
            payload = NULL;
            if (type == WSR_OP_TEXT && fuzz_utf8_ref(msg, msg_len) == 0) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1007);
            if (avail < plen) break;
            pos += avail;
            if (fin) {
                if (type == WSR_OP_TEXT && fuzz_utf8_ref(msg, msg_len) != 1) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1007);
                fuzz_ev_push(evs, WSR_EVENT_MESSAGE, type, 0, msg, msg_len);
                msg_len = 0;
                msg_type = 0;
            } else {
                msg_type = type;
            }
        } else {
            if (avail < plen) break;
            pos += avail;
            if (op == WSR_OP_PING) fuzz_ev_push(evs, WSR_EVENT_PING, 0, 0, payload, avail);
            else if (op == WSR_OP_PONG) fuzz_ev_push(evs, WSR_EVENT_PONG, 0, 0, payload, avail);
            else {
                int code = 1005;
                if (avail == 1) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002);
                if (avail >= 2) {
                    code = payload[0] << 8 | payload[1];
                    if (!fuzz_close_code_ok(code)) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1002);
                    if (fuzz_utf8_ref(payload + 2, avail - 2) != 1) FUZZ_MODEL_FAIL(WSR_ERR_PROTOCOL, 1007);
                    fuzz_ev_push(evs, WSR_EVENT_CLOSE, 0, code, payload + 2, avail - 2);
                } else {
                    fuzz_ev_push(evs, WSR_EVENT_CLOSE, 0, code, NULL, 0);
                }
                goto done;                  /* §5.5.1: whatever follows a close is ignored */
            }
            free(payload);
            payload = NULL;
        }
    }
done:
#undef FUZZ_MODEL_FAIL
    free(payload);
    free(msg);
    return r;
}

/* ---- the run ------------------------------------------------------------ */

static const size_t fuzz_max_messages[8] = { 1, 125, 126, 1000, 4096, 65535, 65536, 65536 };

/* The next chunk size, by the mode in settings bits 3-4. */
FUZZ_FN size_t fuzz_chunk(int mode, uint32_t *seed, const unsigned char *wire, size_t pos, size_t left) {
    size_t c;
    switch (mode) {
    case 0: c = left; break;                                   /* all at once */
    case 1: c = 1; break;                                      /* byte by byte */
    case 2: *seed = *seed * 1103515245u + 12345u;              /* sizes from the seed */
            c = 1 + (*seed >> 16) % 37; break;
    default: c = 1 + wire[pos] % 23; break;                    /* sizes from the data itself */
    }
    return WSR__MIN(c, left);
}

/* Drains the proto's output into *log (some now, some later, so that
   wsr_proto_written meets partial writes). */
FUZZ_FN void fuzz_drain(wsr_proto *p, unsigned char **log, size_t *log_len, int all, uint32_t *seed) {
    const unsigned char *d;
    size_t n = wsr_proto_pending(p, &d), take;
    if (!n) return;
    *seed = *seed * 1103515245u + 12345u;
    take = all ? n : (*seed >> 16) % (n + 1);
    if (!take) return;
    *log = (unsigned char *)realloc(*log, *log_len + take);
    FUZZ_CHECK(*log != NULL);
    memcpy(*log + *log_len, d, take);
    *log_len += take;
    wsr_proto_written(p, take);
}

/* Parses what our proto wrote with a proto of the other role: it must be
   exactly the expected frames, then nothing. */
FUZZ_FN void fuzz_check_output(wsr_role role, unsigned char *out, size_t n, const fuzz_evlist *want) {
    uint32_t seed = 7;
    wsr_proto *peer = wsr_proto_new(role == WSR_ROLE_SERVER ? WSR_ROLE_CLIENT : WSR_ROLE_SERVER, 0,
                                    fuzz_rand, &seed, NULL);
    size_t pos = 0, k = 0;
    static unsigned char nothing[1];
    FUZZ_CHECK(peer != NULL);
    if (!out) out = nothing;                 /* nothing was written */
    for (;;) {
        wsr_event ev;
        wsr_error err;
        size_t used;
        wsr_err e = wsr_proto_parse(peer, out + pos, n - pos, &used, &ev, &err);
        FUZZ_CHECK(e == WSR_OK);
        pos += used;
        if (ev.type == WSR_EVENT_NONE) break;
        FUZZ_CHECK(k < want->n);
        FUZZ_CHECK(fuzz_ev_same(&want->v[k], &ev));
        k++;
        if (ev.type == WSR_EVENT_CLOSE) { FUZZ_CHECK(pos == n); break; }
    }
    FUZZ_CHECK(k == want->n);
    FUZZ_CHECK(pos == n && peer->hdr_have == 0 && !peer->in_payload);   /* no frame cut short */
    wsr_proto_free(peer);
}

/* One step of the decoder on buf[0..len): wsr_proto_parse, or, when
   `direct` is set and the proto is inside a data frame's payload, the way
   the drivers read the rest of a big frame straight to where it is
   gathered (wsr__proto_direct, in a header that has it): the bytes are
   copied to where the proto asks, as a read() would put them there. */
FUZZ_FN wsr_err fuzz_step(wsr_proto *p, int direct, unsigned char *buf, size_t len, size_t *used,
                          wsr_event *ev, wsr_error *err) {
#ifdef WSR__DIRECT_MIN
    unsigned char *dst = NULL;
    size_t room;
    if (direct && len > 0 && (room = wsr__proto_direct(p, &dst)) > 0) {
        size_t k = room < len ? room : len;
        wsr_err e;
        memcpy(dst, buf, k);
        e = wsr__proto_direct_done(p, k, ev, err);
        if (e != WSR_OK || ev->type != WSR_EVENT_NONE || k == len) { *used = k; return e; }
        /* The frame is done and more bytes follow: they are parsed as usual. */
        e = wsr_proto_parse(p, buf + k, len - k, used, ev, err);
        *used += k;
        return e;
    }
#else
    (void)direct;
#endif
    return wsr_proto_parse(p, buf, len, used, ev, err);
}

FUZZ_FN int fuzz_frames_run(wsr_role role, const uint8_t *data, size_t size) {
    fuzz_reader rd;
    unsigned settings;
    uint32_t split_seed, act_seed, drain_seed, mask_seed = 1;
    size_t max_message, wire_len, pos = 0, k = 0, max_pending = 0, out_len = 0, chunk_no = 0;
    int split_mode, own_close, own_msgs, faults, direct, failed = 0, done = 0;
    unsigned char *wire, *out = NULL;
    fuzz_evlist model = { NULL, 0, 0 }, sent = { NULL, 0, 0 };
    fuzz_outcome want;
    fuzz_heap heap;
    wsr_allocator alloc = fuzz_allocator(&heap);
    wsr_error err;
    wsr_err last = WSR_OK;
    wsr_proto *p;

    rd.p = data; rd.n = size; rd.pos = 0;
    settings = fuzz_byte(&rd);
    max_message = fuzz_max_messages[settings & 7];
    split_mode = (settings >> 3) & 3;
    own_close = (settings >> 5) & 1;
    own_msgs = 0;
    faults = (settings >> 7) & 1;
    split_seed = fuzz_byte(&rd);
    act_seed = fuzz_byte(&rd);
    direct = (act_seed & 0x80) != 0;
    drain_seed = fuzz_byte(&rd);
    own_msgs = (settings >> 6) & 1;
    if (faults) heap.fail_after = 1 + fuzz_byte(&rd) % 8;
    wire_len = size - rd.pos;
    /* Our own copy: the parser unmasks in place, and the model needs the original. */
    wire = (unsigned char *)malloc(wire_len ? wire_len : 1);
    FUZZ_CHECK(wire != NULL);
    if (wire_len) memcpy(wire, data + rd.pos, wire_len);

    p = wsr_proto_new(role, max_message, fuzz_rand, &mask_seed, &alloc);
    if (!p) {                                  /* only an injected failure may refuse */
        FUZZ_CHECK(faults);
        free(wire);
        return 0;
    }
    if (!faults) want = fuzz_model(data + rd.pos, wire_len, role, max_message, &model);
    else { want.code = WSR_OK; want.close_code = 0; }

    while (!done) {
        size_t clen = fuzz_chunk(split_mode, &split_seed, wire, pos, wire_len - pos), off = 0;
        unsigned char *chunk = wire + pos;
        int calls = 0;
        /* Between chunks: maybe a message or a close of our own. */
        act_seed = act_seed * 1103515245u + 12345u;
        if (own_msgs && (act_seed >> 16) % 4 == 0) {
            char text[32];
            int n = snprintf(text, sizeof text, "own message %u", (unsigned)chunk_no);
            int op = chunk_no & 1 ? WSR_OP_BINARY : WSR_OP_TEXT;
            wsr_err e = wsr_proto_send(p, op, text, (size_t)n, (act_seed >> 20) % 6);
            if (wsr_proto_close_sent(p) || p->failed) FUZZ_CHECK(e == WSR_ERR_STATE);
            else if (e == WSR_OK) fuzz_ev_push(&sent, WSR_EVENT_MESSAGE, op, 0, text, (size_t)n);
            else FUZZ_CHECK(faults && e == WSR_ERR_NOMEM);
        }
        if (own_close && (act_seed >> 24) % 8 == 0 && !wsr_proto_close_sent(p)) {
            wsr_err e = wsr_proto_close(p, 1000, "bye", 3);
            if (e == WSR_OK) fuzz_ev_push(&sent, WSR_EVENT_CLOSE, 0, 1000, "bye", 3);
            else FUZZ_CHECK(faults && e == WSR_ERR_NOMEM);
        }
        chunk_no++;
        for (;;) {
            wsr_event ev;
            size_t used = (size_t)-1;
            int close_was_sent = wsr_proto_close_sent(p);
            wsr_err e;
            memset(&err, 0xA5, sizeof err);                  /* so that a record left unfilled shows */
            e = fuzz_step(p, direct, chunk + off, clen - off, &used, &ev, &err);
            FUZZ_CHECK(++calls <= (int)clen + 2);            /* progress on every call */
            if (failed) {                                    /* sticky: the same error, nothing taken */
                FUZZ_CHECK(e == last && used == 0 && ev.type == WSR_EVENT_NONE && err.code == last);
                done = 1;
                break;
            }
            FUZZ_CHECK(used <= clen - off);
            if (e != WSR_OK) {
                FUZZ_CHECK(ev.type == WSR_EVENT_NONE);       /* a refused frame is no event */
                if (e == WSR_ERR_NOMEM) {
                    FUZZ_CHECK(faults);
                    /* Every error is described in *err, out of memory too
                       (corpus: nomem-*-leaves-err-unset). */
                    FUZZ_CHECK(err.code == e);
                    done = 1;
                    break;
                }
                /* (ev is not looked at: a refused close frame comes back
                   with ev->type CLOSE as well as the error.) */
                FUZZ_CHECK(err.code == e);
                FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message) != NULL);
                FUZZ_CHECK(e == WSR_ERR_PROTOCOL || e == WSR_ERR_TOO_BIG);
                FUZZ_CHECK(err.close_code == (e == WSR_ERR_TOO_BIG ? 1009 : err.close_code));
                FUZZ_CHECK(err.close_code == 1002 || err.close_code == 1007 || err.close_code == 1009);
                if (!faults) {
                    FUZZ_CHECK(e == want.code && err.close_code == want.close_code);
                    FUZZ_CHECK(k == model.n);               /* every expected event came first */
                    if (!close_was_sent) {
                        const char *why = err.close_code == 1007 ? "invalid UTF-8"
                                        : err.close_code == 1009 ? "message too big" : "protocol error";
                        fuzz_ev_push(&sent, WSR_EVENT_CLOSE, 0, err.close_code, why, strlen(why));
                    }
                }
                failed = 1;
                last = e;
                off += used;
                continue;                                    /* once more, to see it stick */
            }
            off += used;
            if (ev.type == WSR_EVENT_NONE) {
                FUZZ_CHECK(off == clen);
                break;
            }
            /* An event: its data must be readable and, when it lies in our
               buffer, inside what this call consumed. */
            FUZZ_CHECK(ev.len == 0 || ev.data != NULL);
            if (ev.data >= wire && ev.data < wire + wire_len)
                FUZZ_CHECK(fuzz_within(ev.data, ev.len, chunk + off - used, used));
            if (ev.type == WSR_EVENT_MESSAGE) {
                FUZZ_CHECK(ev.msg_type == WSR_MSG_TEXT || ev.msg_type == WSR_MSG_BINARY);
                FUZZ_CHECK(ev.len <= max_message);
                if (ev.msg_type == WSR_MSG_TEXT) FUZZ_CHECK(fuzz_utf8_ref(ev.data, ev.len) == 1);
            } else if (ev.type == WSR_EVENT_PING || ev.type == WSR_EVENT_PONG) {
                FUZZ_CHECK(ev.len <= WSR_MAX_CONTROL_PAYLOAD);
                if (ev.type == WSR_EVENT_PING && !close_was_sent)   /* answered with a pong */
                    fuzz_ev_push(&sent, WSR_EVENT_PONG, 0, 0, ev.data, ev.len);
            } else {
                FUZZ_CHECK(ev.type == WSR_EVENT_CLOSE);
                FUZZ_CHECK(ev.close_code == 1005 ? ev.len == 0 : fuzz_close_code_ok(ev.close_code));
                FUZZ_CHECK(ev.len <= WSR_MAX_CLOSE_REASON && fuzz_utf8_ref(ev.data, ev.len) == 1);
                FUZZ_CHECK(wsr_proto_close_received(p));
                if (!close_was_sent && !faults)                 /* echoed, without the reason */
                    fuzz_ev_push(&sent, WSR_EVENT_CLOSE, 0, ev.close_code, NULL, 0);
            }
            if (!faults) {
                FUZZ_CHECK(k < model.n);
                FUZZ_CHECK(fuzz_ev_same(&model.v[k], &ev));
            }
            k++;
            {
                /* Memory: the reassembly buffer is bounded by the limit,
                   whatever the peer declared, and so is the heap. */
                size_t pending = wsr_proto_pending(p, NULL);
                if (pending > max_pending) max_pending = pending;
                FUZZ_CHECK(p->msg.cap <= WSR__MAX((size_t)256, 2 * max_message));
                FUZZ_CHECK(heap.held <= 2 * max_message + 65536 + 4 * max_pending);
                FUZZ_CHECK(heap.peak <= 3 * max_message + 65536 + 6 * max_pending);
            }
            fuzz_drain(p, &out, &out_len, 0, &drain_seed);
        }
        if (!failed) {
            size_t pending = wsr_proto_pending(p, NULL);
            if (pending > max_pending) max_pending = pending;
            FUZZ_CHECK(p->msg.cap <= WSR__MAX((size_t)256, 2 * max_message));
            FUZZ_CHECK(heap.held <= 2 * max_message + 65536 + 4 * max_pending);
            FUZZ_CHECK(heap.peak <= 3 * max_message + 65536 + 6 * max_pending);
        }
        fuzz_drain(p, &out, &out_len, 1, &drain_seed);
        pos += clen;
        if (pos >= wire_len) done = 1;
    }
    fuzz_drain(p, &out, &out_len, 1, &drain_seed);
    if (!faults) {
        if (!failed) FUZZ_CHECK(want.code == WSR_OK && k == model.n);
        fuzz_check_output(role, out, out_len, &sent);
    }
    wsr_proto_free(p);
    FUZZ_CHECK(heap.held == 0);                               /* everything given back */
    fuzz_ev_free(&model);
    fuzz_ev_free(&sent);
    free(out);
    free(wire);
    return 0;
}

#endif /* WSR_FUZZ_FRAMES_H */
