/* fuzz_handshake_request.c - the server's parser of upgrade requests.

   Byte 0 picks max_head (the default, or a small limit so that 431 is
   met); the rest is what a client sent. Checked:

   - the answer is WSR_OK (status 101), WSR_ERR_AGAIN (no blank line yet,
     and still under the limit) or WSR_ERR_HANDSHAKE with status 400, 426
     or 431 in both req->status and err->http_status;
   - everything req points to lies inside the head; an accepted request
     has a path starting with '/', a Host, version 13 and a 24-character
     key that is 16 bytes in base64;
   - the verdict depends on the head alone: the head by itself gives the
     same answer, and every shorter prefix gives WSR_ERR_AGAIN;
   - wsr_request_header finds values inside the head;
   - for an accepted request, the 101 that wsr_handshake_response writes
     (with the subprotocol wsr_subprotocol_choose picks) passes the client's
     wsr_handshake_response_check for that key and offer. */
#include "fuzz_common.h"

static const size_t fuzz_heads[4] = { 0, 40, 300, 2000 };

/* Is a pointer either unset or inside the head? */
static int fuzz_in_head(const char *p, size_t n, const wsr_request *req) {
    return !p || fuzz_within(p, n, req->head, req->head_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t max_head, eff, len, cut;
    char *head;
    wsr_request req, again;
    wsr_error err;
    wsr_err e, e2;
    if (size < 1) return 0;
    max_head = fuzz_heads[data[0] & 3];
    eff = max_head ? max_head : WSR_DEFAULT_MAX_HANDSHAKE;
    len = size - 1;
    head = (char *)malloc(len ? len : 1);       /* exactly the bytes: ASan sees any read past them */
    FUZZ_CHECK(head != NULL);
    memcpy(head, data + 1, len);

    memset(&err, 0xA5, sizeof err);
    e = wsr_handshake_request_parse(head, len, max_head, &req, &err);
    if (e == WSR_ERR_AGAIN) {
        FUZZ_CHECK(len < eff);
        FUZZ_CHECK(!fuzz_has_head_end(head, len));
        free(head);
        return 0;
    }
    FUZZ_CHECK(e == WSR_OK || e == WSR_ERR_HANDSHAKE);
    FUZZ_CHECK(err.code == e && memchr(err.message, '\0', sizeof err.message) != NULL);
    if (e == WSR_ERR_HANDSHAKE) {
        FUZZ_CHECK(req.status == 400 || req.status == 426 || req.status == 431);
        FUZZ_CHECK(err.http_status == req.status);
        if (req.status == 431 && !req.head) { free(head); return 0; }   /* no blank line within the limit */
    } else {
        FUZZ_CHECK(req.status == 101);
    }
    /* A head was found: it ends with the blank line, within the limit. */
    FUZZ_CHECK(req.head == head && req.head_len >= 4 && req.head_len <= len && req.head_len <= eff);
    FUZZ_CHECK(memcmp(head + req.head_len - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(fuzz_in_head(req.host, req.host_len, &req) && fuzz_in_head(req.key, req.key_len, &req));
    FUZZ_CHECK(fuzz_in_head(req.origin, req.origin_len, &req));
    FUZZ_CHECK(fuzz_in_head(req.protocols, req.protocols_len, &req));
    FUZZ_CHECK(fuzz_in_head(req.path, req.path_len, &req) || (req.path_len == 1 && req.path[0] == '/'));

    /* The same verdict from the head alone, and AGAIN from any shorter prefix. */
    e2 = wsr_handshake_request_parse(head, req.head_len, max_head, &again, NULL);
    FUZZ_CHECK(e2 == e && again.status == req.status && again.head_len == req.head_len);
    cut = req.head_len - 1 - (size_t)(data[0] >> 2) % req.head_len;
    FUZZ_CHECK(wsr_handshake_request_parse(head, cut, max_head, &again, NULL) == WSR_ERR_AGAIN);

    {
        static const char *const names[] = { "host", "Sec-WebSocket-Key", "origin", "X-Anything", "" };
        size_t i, vl;
        for (i = 0; i < sizeof names / sizeof names[0]; i++) {
            const char *v = wsr_request_header(&req, names[i], &vl);
            if (v) FUZZ_CHECK(fuzz_within(v, vl, head, req.head_len));
        }
    }

    if (e == WSR_OK) {
        char key[25], *offer, chosen[64], resp[512];
        size_t rlen;
        wsr_handshake_result res;
        /* The path starts with '/' even from an absolute URI ("GET
           http://h?q" once gave "?q": corpus absolute-uri-query-...). */
        FUZZ_CHECK(req.path_len >= 1 && req.path[0] == '/' && req.host && req.version == 13);
        FUZZ_CHECK(req.key_len == 24 && wsr__base64_decoded_len(req.key, req.key_len) == 16);
        memcpy(key, req.key, 24);
        key[24] = '\0';
        /* The server supports what the client offered, so it picks the first. */
        offer = (char *)malloc(req.protocols_len + 1);
        FUZZ_CHECK(offer != NULL);
        if (req.protocols_len) memcpy(offer, req.protocols, req.protocols_len);
        offer[req.protocols_len] = '\0';
        if (wsr_subprotocol_choose(offer, req.protocols, req.protocols_len, chosen, sizeof chosen))
            FUZZ_CHECK(strlen(chosen) > 0 && strlen(chosen) < sizeof chosen);
        else
            chosen[0] = '\0';
        FUZZ_CHECK(wsr_handshake_response(resp, sizeof resp, &rlen, key, 24, chosen) == WSR_OK);
        e2 = wsr_handshake_response_check(resp, rlen, 0, key, offer, &res, &err);
        FUZZ_CHECK(e2 == WSR_OK && res.status == 101 && res.head_len == rlen);
        FUZZ_CHECK(strcmp(res.subprotocol, chosen) == 0);
        free(offer);
    }
    free(head);
    return 0;
}
