/* fuzz_handshake_response.c - the client's check of the server's answer.

   Byte 0 picks max_head, the offered subprotocols and the key; the rest is
   what the server sent. (The seeds hold valid 101s for these keys, whose
   Sec-WebSocket-Accept the fuzzer could not guess.) Checked:

   - the answer is WSR_OK, WSR_ERR_AGAIN (no blank line yet, under the
     limit) or WSR_ERR_HANDSHAKE, with err filled and its message ended;
   - an accepted answer is an HTTP/1.1 101 whose head holds the right
     Sec-WebSocket-Accept, and its subprotocol is empty or one offered;
   - a refusal names the HTTP status it read, if any, and is transient
     only for 408, 429 and 5xx; Retry-After is a number >= 0 or -1;
   - the verdict depends on the head alone, and a shorter prefix gives
     WSR_ERR_AGAIN. */
#include "fuzz_common.h"

static const size_t fuzz_heads[4] = { 0, 40, 300, 2000 };
static const char *const fuzz_offers[4] = { NULL, "chat", "chat, superchat", " v1 ,, v2.chat " };
static const char *const fuzz_keys[2] = { "dGhlIHNhbXBsZSBub25jZQ==", "AQIDBAUGBwgJCgsMDQ4PEA==" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t max_head, eff, len;
    const char *offer, *key;
    char *head, accept[29];
    wsr_handshake_result res, again;
    wsr_error err;
    wsr_err e;
    if (size < 1) return 0;
    max_head = fuzz_heads[data[0] & 3];
    offer = fuzz_offers[(data[0] >> 2) & 3];
    key = fuzz_keys[(data[0] >> 4) & 1];
    eff = max_head ? max_head : WSR_DEFAULT_MAX_HANDSHAKE;
    len = size - 1;
    head = (char *)malloc(len ? len : 1);
    FUZZ_CHECK(head != NULL);
    memcpy(head, data + 1, len);

    memset(&err, 0xA5, sizeof err);
    e = wsr_handshake_response_check(head, len, max_head, key, offer, &res, &err);
    FUZZ_CHECK(res.retry_after_s >= -1 && res.retry_after_date >= -1);
    if (e == WSR_ERR_AGAIN) {
        FUZZ_CHECK(len < eff);
        FUZZ_CHECK(!fuzz_has_head_end(head, len));
        free(head);
        return 0;
    }
    FUZZ_CHECK(e == WSR_OK || e == WSR_ERR_HANDSHAKE);
    FUZZ_CHECK(err.code == e && memchr(err.message, '\0', sizeof err.message) != NULL);
    FUZZ_CHECK(memchr(res.subprotocol, '\0', sizeof res.subprotocol) != NULL);
    if (res.head_len == 0) {                     /* no head within the limit */
        FUZZ_CHECK(e == WSR_ERR_HANDSHAKE && len >= eff);
        free(head);
        return 0;
    }
    FUZZ_CHECK(res.head_len >= 4 && res.head_len <= len && res.head_len <= eff);
    FUZZ_CHECK(memcmp(head + res.head_len - 4, "\r\n\r\n", 4) == 0);
    if (e == WSR_OK) {
        size_t i;
        int found = 0;
        FUZZ_CHECK(res.status == 101 && memcmp(head, "HTTP/1.1 101", 12) == 0);
        wsr_accept_key(key, strlen(key), accept);
        for (i = 0; i + 28 <= res.head_len; i++) found |= memcmp(head + i, accept, 28) == 0;
        FUZZ_CHECK(found);
        if (res.subprotocol[0]) {
            /* One of the items offered, exactly. */
            size_t pos = 0, il;
            const char *it;
            int offered = 0;
            FUZZ_CHECK(offer != NULL);
            while (wsr__list_next(offer, strlen(offer), &pos, &it, &il))
                offered |= il == strlen(res.subprotocol) && memcmp(it, res.subprotocol, il) == 0;
            FUZZ_CHECK(offered);
        }
    } else {
        FUZZ_CHECK(err.http_status == 0 || err.http_status == res.status);
        FUZZ_CHECK(res.status == 0 || (res.status >= 100 && res.status <= 599));
        if (err.transient)
            FUZZ_CHECK(err.http_status == 408 || err.http_status == 429 || err.http_status >= 500);
    }
    /* The same verdict from the head alone, AGAIN from a shorter prefix. */
    FUZZ_CHECK(wsr_handshake_response_check(head, res.head_len, max_head, key, offer, &again, NULL) == e);
    FUZZ_CHECK(again.status == res.status && again.head_len == res.head_len);
    FUZZ_CHECK(wsr_handshake_response_check(head, res.head_len - 1, max_head, key, offer, &again, NULL) ==
               WSR_ERR_AGAIN);
    free(head);
    return 0;
}
