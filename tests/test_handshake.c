/* test_handshake.c - the HTTP/1.1 upgrade of RFC 6455 §4 for both roles:
   building and checking requests and responses, no sockets. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

/* ---- helpers ------------------------------------------------------------- */

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(const char *a, size_t an, const char *b)
{
    size_t i;
    if (an != strlen(b)) return 0;
    for (i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
    return 1;
}

/* Position of needle in hay[0..n), or -1. */
static long find(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle), i;
    if (k > n) return -1;
    for (i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return (long)i;
    return -1;
}

/* Looks up a header (name case-insensitive) in a head; copies the value with
   leading and trailing blanks removed. Returns how many times it occurs. */
static int hdr(const char *head, size_t n, const char *name, char *val, size_t cap)
{
    long end = find(head, n, "\r\n\r\n");
    size_t pos, lim = end < 0 ? n : (size_t)end + 2;
    int count = 0;
    long first = find(head, n, "\r\n");
    if (val && cap) val[0] = 0;
    if (first < 0) return 0;
    pos = (size_t)first + 2;
    while (pos < lim) {
        long eol = find(head + pos, lim - pos, "\r\n");
        size_t len = eol < 0 ? lim - pos : (size_t)eol, c;
        for (c = 0; c < len && head[pos + c] != ':'; c++) {}
        if (c < len && ieq(head + pos, c, name)) {
            size_t a = c + 1, b = len;
            while (a < b && (head[pos + a] == ' ' || head[pos + a] == '\t')) a++;
            while (b > a && (head[pos + b - 1] == ' ' || head[pos + b - 1] == '\t')) b--;
            if (val && cap) {
                size_t k = b - a < cap - 1 ? b - a : cap - 1;
                memcpy(val, head + pos + a, k);
                val[k] = 0;
            }
            count++;
        }
        pos += len + 2;
    }
    return count;
}

/* The header occurs once with exactly this value (value compared exactly). */
static int has_hdr(const char *head, size_t n, const char *name, const char *want)
{
    char v[512];
    return hdr(head, n, name, v, sizeof v) == 1 && strcmp(v, want) == 0;
}
/* ... with the value compared case-insensitively. */
static int has_hdr_ci(const char *head, size_t n, const char *name, const char *want)
{
    char v[512];
    return hdr(head, n, name, v, sizeof v) == 1 && ieq(v, strlen(v), want);
}

static wsr_url parse_url(const char *s)
{
    wsr_url u;
    wsr_error err;
    memset(&u, 0, sizeof u);
    memset(&err, 0, sizeof err);
    if (wsr_url_parse(s, &u, &err) != WSR_OK) printf("  url \"%s\" refused: %s\n", s, err.message);
    return u;
}

/* ---- client request (RFC 6455 §4.1) -------------------------------------- */

TEST(request_basic)
{
    char out[4096];
    size_t len = 0;
    wsr_url u = parse_url("ws://host:9001/path?q");
    wsr_err r;
    memset(out, 0, sizeof out);
    r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL, NULL, NULL);
    CHECK_EQ_INT(r, WSR_OK);
    CHECK(len > 0 && len < sizeof out);
    CHECK_EQ_INT(find(out, len, "GET /path?q HTTP/1.1\r\n"), 0);
    CHECK(has_hdr(out, len, "Host", "host:9001"));
    CHECK(has_hdr_ci(out, len, "Upgrade", "websocket"));
    CHECK(has_hdr_ci(out, len, "Connection", "Upgrade"));
    CHECK(has_hdr(out, len, "Sec-WebSocket-Key", RFC_KEY));
    CHECK(has_hdr(out, len, "Sec-WebSocket-Version", "13"));
    CHECK_EQ_INT(hdr(out, len, "Origin", NULL, 0), 0);
    CHECK_EQ_INT(hdr(out, len, "Sec-WebSocket-Protocol", NULL, 0), 0);
    CHECK_EQ_INT(hdr(out, len, "Sec-WebSocket-Extensions", NULL, 0), 0);
    /* ends with the one blank line */
    CHECK(len >= 4 && memcmp(out + len - 4, "\r\n\r\n", 4) == 0);
    CHECK_EQ_INT(find(out, len, "\r\n\r\n"), (long)len - 4);
}

TEST(request_host_header)
{
    static const struct { const char *url, *host, *line; } v[] = {
        { "ws://host/p", "host", "GET /p HTTP/1.1\r\n" },
        { "wss://host/", "host", "GET / HTTP/1.1\r\n" },
        { "wss://host:8443/", "host:8443", "GET / HTTP/1.1\r\n" },
        { "ws://127.0.0.1:9001/", "127.0.0.1:9001", "GET / HTTP/1.1\r\n" },
        { "ws://[::1]:9001/x", "[::1]:9001", "GET /x HTTP/1.1\r\n" },
        { "ws://[::1]/", "[::1]", "GET / HTTP/1.1\r\n" },
        { "ws://h?x=1", "h", "GET /?x=1 HTTP/1.1\r\n" },     /* RFC 6455 §3: empty path is "/" */
    };
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[2048];
        size_t len = 0;
        wsr_url u = parse_url(v[i].url);
        wsr_err r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL, NULL, NULL);
        CHECK_EQ_INT(r, WSR_OK);
        if (r != WSR_OK) continue;
        if (!has_hdr(out, len, "Host", v[i].host) || find(out, len, v[i].line) != 0)
            printf("  request for %s:\n%.*s", v[i].url, (int)len, out);
        CHECK(has_hdr(out, len, "Host", v[i].host));
        CHECK_EQ_INT(find(out, len, v[i].line), 0);
    }
}

TEST(request_optional_headers)
{
    char out[4096];
    size_t len = 0;
    wsr_url u = parse_url("ws://example.com/chat");
    wsr_err r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, "http://example.com",
                                      "chat, superchat",
                                      "Authorization: Bearer abc\r\nX-Trace: 1\r\n");
    CHECK_EQ_INT(r, WSR_OK);
    CHECK(has_hdr(out, len, "Origin", "http://example.com"));
    CHECK(has_hdr(out, len, "Sec-WebSocket-Protocol", "chat, superchat"));
    CHECK(has_hdr(out, len, "Authorization", "Bearer abc"));
    CHECK(has_hdr(out, len, "X-Trace", "1"));
    CHECK(has_hdr(out, len, "Host", "example.com"));
    CHECK_EQ_INT(find(out, len, "\r\n\r\n"), (long)len - 4);
    /* empty strings count as not given */
    r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL, NULL, "");
    CHECK_EQ_INT(r, WSR_OK);
    CHECK_EQ_INT(find(out, len, "\r\n\r\n"), (long)len - 4);
    /* a last header line without CRLF is accepted and terminated */
    r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL, NULL, "X-A: 1");
    CHECK_EQ_INT(r, WSR_OK);
    CHECK(has_hdr(out, len, "X-A", "1"));
    CHECK_EQ_INT(find(out, len, "\r\n\r\n"), (long)len - 4);
}

/* Header injection and malformed lines (RFC 7230 §3.2: field = name ":" value;
   CR and LF only end a line). */
TEST(request_invalid_headers)
{
    static const char *bad[] = {
        "BadHeader\r\n",
        ": value\r\n",
        "X-A: 1\r\nNoColon\r\n",
        "X-A: 1\rX-B: 2\r\n",              /* bare CR */
        "X-A: a\nb\r\n",                    /* bare LF */
        "X-A: 1\r\nX A: 2\r\n",              /* a space in the name */
    };
    size_t i, len;
    char out[4096];
    wsr_url u = parse_url("ws://h/");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wsr_err r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL, NULL, bad[i]);
        if (r != WSR_ERR_INVALID) printf("  headers case %u gave %d\n", (unsigned)i, (int)r);
        CHECK_EQ_INT(r, WSR_ERR_INVALID);
    }
    /* an empty line must not end the head early: it is skipped */
    {
        wsr_err r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL, NULL,
                                          "X-A: 1\r\n\r\nX-B: 2\r\n");
        CHECK_EQ_INT(r, WSR_OK);
        CHECK_EQ_INT(find(out, len, "\r\n\r\n"), (long)len - 4);
        CHECK(has_hdr(out, len, "X-B", "2"));
    }
    /* a bare LF between lines: refused, or taken as a line end and sent as CRLF */
    {
        wsr_err r = wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL, NULL,
                                          "X-A: 1\r\nX-B: 2\nX-C: 3\r\n");
        CHECK(r == WSR_OK || r == WSR_ERR_INVALID);
        if (r == WSR_OK) {
            CHECK(has_hdr(out, len, "X-B", "2"));
            CHECK(has_hdr(out, len, "X-C", "3"));
            CHECK(memchr(out, '\n', len) != NULL && find(out, len, "2\nX-C") < 0);
        }
    }
    /* CR/LF in origin or protocols would inject headers too */
    CHECK_EQ_INT(wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, "http://a\r\nX-Evil: 1",
                                       NULL, NULL), WSR_ERR_INVALID);
    CHECK_EQ_INT(wsr_handshake_request(out, sizeof out, &len, &u, RFC_KEY, NULL,
                                       "chat\r\nX-Evil: 1", NULL), WSR_ERR_INVALID);
}

TEST(request_small_cap)
{
    char out[2048];
    size_t full = 0, len, cap;
    int bad_rc = 0, overrun = 0;
    wsr_url u = parse_url("ws://example.com:9001/chat");
    const char *hdrs = "X-Long: 0123456789012345678901234567890123456789\r\n";
    CHECK_EQ_INT(wsr_handshake_request(out, sizeof out, &full, &u, RFC_KEY, "http://o", "chat", hdrs),
                 WSR_OK);
    for (cap = 0; cap < full; cap++) {
        wsr_err r;
        memset(out, 0x5a, sizeof out);
        len = 12345;
        r = wsr_handshake_request(out, cap, &len, &u, RFC_KEY, "http://o", "chat", hdrs);
        if (r != WSR_ERR_TOO_BIG) bad_rc++;
        if (out[cap] != 0x5a) overrun++;
    }
    CHECK_EQ_INT(bad_rc, 0);
    CHECK_EQ_INT(overrun, 0);
    memset(out, 0x5a, sizeof out);
    CHECK_EQ_INT(wsr_handshake_request(out, full + 1, &len, &u, RFC_KEY, "http://o", "chat", hdrs),
                 WSR_OK);
    CHECK_EQ_INT(len, full);
    CHECK(out[full + 1] == 0x5a);
}

/* ---- server response check (RFC 6455 §4.1, steps 1-6 of the client) ----- */

static const char valid_resp[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
    "\r\n";

static wsr_err check_resp(const char *head, size_t len, size_t max, const char *offered,
                          wsr_handshake_result *res, wsr_error *err)
{
    memset(res, 0, sizeof *res);
    memset(err, 0, sizeof *err);
    return wsr_handshake_response_check(head, len, max, RFC_KEY, offered, res, err);
}

TEST(response_valid)
{
    char buf[512], copy[512];
    size_t hl = strlen(valid_resp), n;
    wsr_handshake_result res;
    wsr_error err;
    memcpy(buf, valid_resp, hl);
    memcpy(buf + hl, "\x81\x05Hello", 7);
    n = hl + 7;
    memcpy(copy, buf, n);
    CHECK_EQ_INT(check_resp(buf, n, 16384, NULL, &res, &err), WSR_OK);
    CHECK_EQ_INT(res.status, 101);
    CHECK_EQ_INT(res.head_len, hl);
    CHECK_EQ_STR(res.subprotocol, "");
    CHECK_EQ_INT(res.retry_after_s, -1);
    CHECK_EQ_INT(err.code, WSR_OK);
    CHECK_MEM(buf, copy, n);
    /* exactly the head, nothing after */
    CHECK_EQ_INT(check_resp(buf, hl, 16384, NULL, &res, &err), WSR_OK);
    CHECK_EQ_INT(res.head_len, hl);
}

/* Header names and the tokens are case-insensitive (RFC 7230 §3.2, RFC 6455
   §4.1 items 2-3); Connection is a list; values lose their blanks. */
TEST(response_case_insensitive)
{
    static const char *v[] = {
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
        "sec-websocket-accept: " RFC_ACCEPT "\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WEBSOCKET\r\nCONNECTION: UPGRADE\r\n"
        "SEC-WEBSOCKET-ACCEPT: " RFC_ACCEPT "\r\n\r\n",
        "HTTP/1.1 101 OK\r\nServer: x\r\nUpgrade:websocket\r\nConnection:upgrade\r\n"
        "Sec-WebSocket-Accept:   " RFC_ACCEPT "  \r\nDate: today\r\n\r\n",
    };
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        wsr_handshake_result res;
        wsr_error err;
        wsr_err r = check_resp(v[i], strlen(v[i]), 16384, NULL, &res, &err);
        if (r != WSR_OK) printf("  response case %u refused: %s\n", (unsigned)i, err.message);
        CHECK_EQ_INT(r, WSR_OK);
        CHECK_EQ_INT(res.head_len, strlen(v[i]));
    }
}

TEST(response_incomplete)
{
    size_t hl = strlen(valid_resp), k;
    int bad = 0;
    for (k = 0; k < hl; k++) {
        wsr_handshake_result res;
        wsr_error err;
        wsr_err r = check_resp(valid_resp, k, 16384, NULL, &res, &err);
        if (r != WSR_ERR_AGAIN) {
            if (bad < 3) printf("  prefix of %u bytes gave %d\n", (unsigned)k, (int)r);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* A refusal keeps the HTTP status (RFC 6455 §4.1: anything but 101 fails). */
TEST(response_http_status)
{
    static const int codes[] = { 200, 302, 400, 401, 403, 404, 500, 503 };
    size_t i;
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char head[256];
        wsr_handshake_result res;
        wsr_error err;
        wsr_err r;
        sprintf(head, "HTTP/1.1 %d Nope\r\nContent-Length: 0\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n", codes[i]);
        r = check_resp(head, strlen(head), 16384, NULL, &res, &err);
        CHECK_EQ_INT(r, WSR_ERR_HANDSHAKE);
        CHECK_EQ_INT(err.code, WSR_ERR_HANDSHAKE);
        CHECK_EQ_INT(err.http_status, codes[i]);
        CHECK_EQ_INT(res.status, codes[i]);
        CHECK(err.message[0] != 0);
    }
}

TEST(response_retry_after)
{
    static const char h503[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n\r\n";
    static const char h429[] = "HTTP/1.1 429 Too Many Requests\r\nretry-after: 120\r\n\r\n";
    static const char hdate[] =
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n\r\n";
    static const char hnone[] = "HTTP/1.1 503 Service Unavailable\r\n\r\n";
    wsr_handshake_result res;
    wsr_error err;
    CHECK_EQ_INT(check_resp(h503, strlen(h503), 16384, NULL, &res, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(err.http_status, 503);
    CHECK_EQ_INT(res.retry_after_s, 2);
    CHECK_EQ_INT(check_resp(h429, strlen(h429), 16384, NULL, &res, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(err.http_status, 429);
    CHECK_EQ_INT(res.retry_after_s, 120);
    CHECK_EQ_INT(res.retry_after_date, -1);
    CHECK_EQ_INT(check_resp(hdate, strlen(hdate), 16384, NULL, &res, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(res.retry_after_s, -1);
    CHECK_EQ_INT(check_resp(hnone, strlen(hnone), 16384, NULL, &res, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(res.retry_after_s, -1);
    CHECK_EQ_INT(res.retry_after_date, -1);
}

/* Retry-After as an IMF-fixdate (RFC 9110 §5.6.7, §10.2.3) gives Unix time.
   Expected values from Python's calendar.timegm. */
TEST(response_retry_after_dates)
{
    static const struct { const char *date; long long t; } v[] = {
        { "Sun, 06 Nov 1994 08:49:37 GMT", 784111777LL },     /* the RFC 9110 example */
        { "Fri, 31 Dec 1999 23:59:59 GMT", 946684799LL },
        { "Sat, 01 Jan 2000 00:00:00 GMT", 946684800LL },
        { "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000LL },
        { "Fri, 01 Mar 2024 00:00:00 GMT", 1709251200LL },
    };
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        char head[256];
        wsr_handshake_result res;
        wsr_error err;
        sprintf(head, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n\r\n", v[i].date);
        CHECK_EQ_INT(check_resp(head, strlen(head), 16384, NULL, &res, &err), WSR_ERR_HANDSHAKE);
        if (res.retry_after_date != v[i].t)
            printf("  Retry-After: %s -> %lld, expected %lld\n", v[i].date, res.retry_after_date, v[i].t);
        CHECK_EQ_INT(res.retry_after_date, v[i].t);
        CHECK_EQ_INT(res.retry_after_s, -1);
    }
}

/* RFC 6455 §4.1 items 2-4 of the client's checks. */
TEST(response_bad_headers)
{
    static const char *bad[] = {
        /* missing Upgrade */
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        /* wrong Upgrade */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        /* missing Connection */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        /* wrong Connection */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: close\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        /* wrong Accept (the key's own base64, not the hash) */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_KEY "\r\n\r\n",
        /* Accept with one character changed */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n\r\n",
        /* Accept truncated */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n\r\n",
        /* missing Accept */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        /* an extension nobody asked for (RFC 6455 §4.1 item 5) */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "sec-websocket-extensions: x-custom; a=1\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        /* a subprotocol that was not offered (offer is NULL here; item 6) */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wsr_handshake_result res;
        wsr_error err;
        wsr_err r = check_resp(bad[i], strlen(bad[i]), 16384, NULL, &res, &err);
        if (r != WSR_ERR_HANDSHAKE) printf("  bad response case %u gave %d\n", (unsigned)i, (int)r);
        CHECK_EQ_INT(r, WSR_ERR_HANDSHAKE);
        CHECK(err.message[0] != 0);
    }
}

/* RFC 6455 §4.1 item 6: the server picks one of the offered subprotocols. */
TEST(response_subprotocol)
{
    static const char base[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n";
    char head[512];
    wsr_handshake_result res;
    wsr_error err;

    sprintf(head, "%sSec-WebSocket-Protocol: superchat\r\n\r\n", base);
    CHECK_EQ_INT(check_resp(head, strlen(head), 16384, "chat, superchat", &res, &err), WSR_OK);
    CHECK_EQ_STR(res.subprotocol, "superchat");
    sprintf(head, "%sSec-WebSocket-Protocol: chat\r\n\r\n", base);
    CHECK_EQ_INT(check_resp(head, strlen(head), 16384, "chat, superchat", &res, &err), WSR_OK);
    CHECK_EQ_STR(res.subprotocol, "chat");
    sprintf(head, "%sSec-WebSocket-Protocol: mqtt\r\n\r\n", base);
    CHECK_EQ_INT(check_resp(head, strlen(head), 16384, "chat, superchat", &res, &err),
                 WSR_ERR_HANDSHAKE);
    /* not a substring match */
    sprintf(head, "%sSec-WebSocket-Protocol: chat\r\n\r\n", base);
    CHECK_EQ_INT(check_resp(head, strlen(head), 16384, "superchat", &res, &err), WSR_ERR_HANDSHAKE);
    sprintf(head, "%sSec-WebSocket-Protocol: super\r\n\r\n", base);
    CHECK_EQ_INT(check_resp(head, strlen(head), 16384, "superchat", &res, &err), WSR_ERR_HANDSHAKE);
    /* offered but none chosen: fine, "" */
    CHECK_EQ_INT(check_resp(valid_resp, strlen(valid_resp), 16384, "chat", &res, &err), WSR_OK);
    CHECK_EQ_STR(res.subprotocol, "");
}

/* A head longer than max_head fails, it does not wait forever. */
TEST(response_too_long)
{
    char *big = (char *)malloc(20000);
    size_t hl = strlen(valid_resp);
    wsr_handshake_result res;
    wsr_error err;
    strcpy(big, "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ");
    memset(big + strlen(big), 'a', 20000 - strlen(big));
    CHECK_EQ_INT(check_resp(big, 300, 256, NULL, &res, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(check_resp(big, 20000, 16384, NULL, &res, &err), WSR_ERR_HANDSHAKE);
    CHECK(err.message[0] != 0);
    /* a complete head: exactly max_head is fine, one byte more is not */
    CHECK_EQ_INT(check_resp(valid_resp, hl, hl, NULL, &res, &err), WSR_OK);
    CHECK_EQ_INT(check_resp(valid_resp, hl, hl - 1, NULL, &res, &err), WSR_ERR_HANDSHAKE);
    free(big);
}

TEST(response_garbage_status_line)
{
    static const char *bad[] = {
        "SSH-2.0-OpenSSH_8.9\r\n\r\n",
        "\r\n\r\n",
        "HTTP/1.1 abc Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "HTTP/1.1 1010 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        "HTTP/1.1101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
        "<html>\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nno colon here\r\n\r\n",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wsr_handshake_result res;
        wsr_error err;
        wsr_err r = check_resp(bad[i], strlen(bad[i]), 16384, NULL, &res, &err);
        if (r != WSR_ERR_HANDSHAKE) printf("  garbage case %u gave %d\n", (unsigned)i, (int)r);
        CHECK_EQ_INT(r, WSR_ERR_HANDSHAKE);
    }
}

/* ---- server side: request parse (RFC 6455 §4.2.1) ------------------------- */

/* Builds a request; NULL leaves a header out. */
static size_t mkreq(char *out, const char *line, const char *host, const char *upgrade,
                    const char *connection, const char *key, const char *version, const char *extra)
{
    char *p = out;
    p += sprintf(p, "%s\r\n", line);
    if (host) p += sprintf(p, "Host: %s\r\n", host);
    if (upgrade) p += sprintf(p, "Upgrade: %s\r\n", upgrade);
    if (connection) p += sprintf(p, "Connection: %s\r\n", connection);
    if (key) p += sprintf(p, "Sec-WebSocket-Key: %s\r\n", key);
    if (version) p += sprintf(p, "Sec-WebSocket-Version: %s\r\n", version);
    if (extra) p += sprintf(p, "%s", extra);
    p += sprintf(p, "\r\n");
    return (size_t)(p - out);
}

static wsr_err parse_req(const char *head, size_t len, size_t max, wsr_request *req, wsr_error *err)
{
    memset(req, 0, sizeof *req);
    memset(err, 0, sizeof *err);
    return wsr_handshake_request_parse(head, len, max, req, err);
}

static int span_eq(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* The RFC 6455 §1.3 example request. */
static const char rfc_req[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: " RFC_KEY "\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

TEST(request_parse_valid)
{
    char buf[1024];
    size_t hl = strlen(rfc_req);
    wsr_request req;
    wsr_error err;
    memcpy(buf, rfc_req, hl);
    memcpy(buf + hl, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    CHECK_EQ_INT(parse_req(buf, hl + 11, 16384, &req, &err), WSR_OK);
    CHECK_EQ_INT(req.status, 101);
    CHECK_EQ_INT(req.head_len, hl);
    CHECK(span_eq(req.path, req.path_len, "/chat"));
    CHECK(span_eq(req.key, req.key_len, RFC_KEY));
    CHECK(span_eq(req.protocols, req.protocols_len, "chat, superchat"));
    CHECK(span_eq(req.origin, req.origin_len, "http://example.com"));
    CHECK(span_eq(req.host, req.host_len, "server.example.com"));
    CHECK_EQ_INT(req.version, 13);
}

TEST(request_parse_variants_ok)
{
    char buf[1024];
    size_t n;
    wsr_request req;
    wsr_error err;
    /* lower-case names, mixed-case tokens, Connection as a list (Firefox) */
    n = mkreq(buf, "GET /a?b=c HTTP/1.1", "h:9001", "WebSocket", "keep-alive, Upgrade",
              "AQIDBAUGBwgJCgsMDQ4PEA==", "13", "user-agent: t\r\n");
    CHECK_EQ_INT(parse_req(buf, n, 16384, &req, &err), WSR_OK);
    CHECK(span_eq(req.path, req.path_len, "/a?b=c"));
    CHECK(span_eq(req.key, req.key_len, "AQIDBAUGBwgJCgsMDQ4PEA=="));
    CHECK_EQ_INT(req.protocols_len, 0);
    CHECK_EQ_INT(req.origin_len, 0);
    strcpy(buf, "GET / HTTP/1.1\r\nhost: h\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
                "sec-websocket-key: " RFC_KEY "\r\nsec-websocket-version: 13\r\n\r\n");
    CHECK_EQ_INT(parse_req(buf, strlen(buf), 16384, &req, &err), WSR_OK);
    CHECK_EQ_INT(req.version, 13);
}

static void req_refused(const char *label, const char *head, size_t n, size_t max, int status1,
                        int status2)
{
    wsr_request req;
    wsr_error err;
    wsr_err r = parse_req(head, n, max, &req, &err);
    if (r != WSR_ERR_HANDSHAKE || (req.status != status1 && req.status != status2))
        printf("  request \"%s\": rc %d status %d (want %d)\n", label, (int)r, req.status, status1);
    CHECK_EQ_INT(r, WSR_ERR_HANDSHAKE);
    CHECK(req.status == status1 || req.status == status2);
    CHECK(err.message[0] != 0);
}

TEST(request_parse_refused)
{
    static const char *bad_keys[] = {
        "abc",
        "dGhlIHNhbXBsZSBub25jZQ",        /* no padding: 22 chars */
        "dGhlIHNhbXBsZSBub25jZQ=",       /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZXg=",      /* 17 bytes */
        "!GhlIHNhbXBsZSBub25jZQ==",      /* not base64 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* 21 bytes */
        "dGhlIHNhbXBsZSBub25j",          /* 15 bytes */
        "",
    };
    char buf[1024];
    size_t n, i;
    n = mkreq(buf, "POST / HTTP/1.1", "h", "websocket", "Upgrade", RFC_KEY, "13", NULL);
    req_refused("POST", buf, n, 16384, 400, 400);
    n = mkreq(buf, "GET / HTTP/1.0", "h", "websocket", "Upgrade", RFC_KEY, "13", NULL);
    req_refused("HTTP/1.0", buf, n, 16384, 400, 400);
    n = mkreq(buf, "GET / HTTP/1.1", NULL, "websocket", "Upgrade", RFC_KEY, "13", NULL);
    req_refused("no Host", buf, n, 16384, 400, 400);
    n = mkreq(buf, "GET / HTTP/1.1", "h", NULL, "Upgrade", RFC_KEY, "13", NULL);
    req_refused("no Upgrade", buf, n, 16384, 400, 400);
    n = mkreq(buf, "GET / HTTP/1.1", "h", "h2c", "Upgrade", RFC_KEY, "13", NULL);
    req_refused("Upgrade: h2c", buf, n, 16384, 400, 400);
    n = mkreq(buf, "GET / HTTP/1.1", "h", "websocket", NULL, RFC_KEY, "13", NULL);
    req_refused("no Connection", buf, n, 16384, 400, 400);
    n = mkreq(buf, "GET / HTTP/1.1", "h", "websocket", "keep-alive", RFC_KEY, "13", NULL);
    req_refused("Connection: keep-alive", buf, n, 16384, 400, 400);
    n = mkreq(buf, "GET / HTTP/1.1", "h", "websocket", "Upgrade", NULL, "13", NULL);
    req_refused("no key", buf, n, 16384, 400, 400);
    for (i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        n = mkreq(buf, "GET / HTTP/1.1", "h", "websocket", "Upgrade", bad_keys[i], "13", NULL);
        req_refused(bad_keys[i], buf, n, 16384, 400, 400);
    }
    n = mkreq(buf, "GARBAGE", "h", "websocket", "Upgrade", RFC_KEY, "13", NULL);
    req_refused("garbage request line", buf, n, 16384, 400, 400);
}

/* RFC 6455 §4.2.2 / §4.4: an unsupported version gets 426 with the versions
   we speak. */
TEST(request_parse_version)
{
    char buf[1024], out[1024];
    size_t n, len = 0;
    wsr_request req;
    wsr_error err;
    n = mkreq(buf, "GET / HTTP/1.1", "h", "websocket", "Upgrade", RFC_KEY, "8", NULL);
    req_refused("version 8", buf, n, 16384, 426, 426);
    CHECK_EQ_INT(parse_req(buf, n, 16384, &req, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(req.version, 8);
    n = mkreq(buf, "GET / HTTP/1.1", "h", "websocket", "Upgrade", RFC_KEY, NULL, NULL);
    req_refused("no version", buf, n, 16384, 426, 426);
    CHECK_EQ_INT(parse_req(buf, n, 16384, &req, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(req.version, -1);

    CHECK_EQ_INT(wsr_handshake_refusal(out, sizeof out, &len, 426), WSR_OK);
    CHECK_EQ_INT(find(out, len, "HTTP/1.1 426"), 0);
    CHECK(has_hdr(out, len, "Sec-WebSocket-Version", "13"));
    CHECK(len >= 4 && find(out, len, "\r\n\r\n") == (long)len - 4);
    CHECK_EQ_INT(wsr_handshake_refusal(out, sizeof out, &len, 400), WSR_OK);
    CHECK_EQ_INT(find(out, len, "HTTP/1.1 400"), 0);
    CHECK(len >= 4 && find(out, len, "\r\n\r\n") == (long)len - 4);
    CHECK_EQ_INT(wsr_handshake_refusal(out, sizeof out, &len, 431), WSR_OK);
    CHECK_EQ_INT(find(out, len, "HTTP/1.1 431"), 0);
    CHECK_EQ_INT(wsr_handshake_refusal(out, 5, &len, 426), WSR_ERR_TOO_BIG);
}

TEST(request_parse_incomplete_and_oversized)
{
    size_t hl = strlen(rfc_req), k;
    int bad = 0;
    char *big;
    for (k = 0; k < hl; k++) {
        wsr_request req;
        wsr_error err;
        if (parse_req(rfc_req, k, 16384, &req, &err) != WSR_ERR_AGAIN) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* no blank line within max_head */
    big = (char *)malloc(3000);
    strcpy(big, "GET / HTTP/1.1\r\nX-Pad: ");
    memset(big + strlen(big), 'a', 3000 - strlen(big));
    req_refused("2000 bytes, no end", big, 2000, 512, 431, 400);
    req_refused("3000 bytes, no end", big, 3000, 2048, 431, 400);
    /* complete but over max_head */
    req_refused("complete, over max", rfc_req, hl, hl - 1, 431, 400);
    {
        wsr_request req;
        wsr_error err;
        CHECK_EQ_INT(parse_req(rfc_req, hl, hl, &req, &err), WSR_OK);
    }
    free(big);
}

/* ---- server response (RFC 6455 §4.2.2) ----------------------------------- */

TEST(response_build)
{
    char out[1024];
    size_t len = 0, full, cap;
    int bad = 0;
    wsr_handshake_result res;
    wsr_error err;
    CHECK_EQ_INT(wsr_handshake_response(out, sizeof out, &len, RFC_KEY, 24, NULL), WSR_OK);
    CHECK_EQ_INT(find(out, len, "HTTP/1.1 101"), 0);
    CHECK(has_hdr_ci(out, len, "Upgrade", "websocket"));
    CHECK(has_hdr_ci(out, len, "Connection", "Upgrade"));
    CHECK(has_hdr(out, len, "Sec-WebSocket-Accept", RFC_ACCEPT));
    CHECK_EQ_INT(hdr(out, len, "Sec-WebSocket-Protocol", NULL, 0), 0);
    CHECK_EQ_INT(hdr(out, len, "Sec-WebSocket-Extensions", NULL, 0), 0);
    CHECK(len >= 4 && find(out, len, "\r\n\r\n") == (long)len - 4);
    CHECK_EQ_INT(check_resp(out, len, 16384, NULL, &res, &err), WSR_OK);

    CHECK_EQ_INT(wsr_handshake_response(out, sizeof out, &len, RFC_KEY, 24, ""), WSR_OK);
    CHECK_EQ_INT(hdr(out, len, "Sec-WebSocket-Protocol", NULL, 0), 0);

    CHECK_EQ_INT(wsr_handshake_response(out, sizeof out, &len, RFC_KEY, 24, "chat"), WSR_OK);
    CHECK(has_hdr(out, len, "Sec-WebSocket-Protocol", "chat"));
    CHECK_EQ_INT(check_resp(out, len, 16384, "superchat, chat", &res, &err), WSR_OK);
    CHECK_EQ_STR(res.subprotocol, "chat");
    full = len;
    for (cap = 0; cap < full; cap++) {
        memset(out, 0x5a, sizeof out);
        if (wsr_handshake_response(out, cap, &len, RFC_KEY, 24, "chat") != WSR_ERR_TOO_BIG) bad++;
        if (out[cap] != 0x5a) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- both sides together ------------------------------------------------- */

static void round_trip(const char *url_s, const char *want_host, const char *want_path)
{
    static const char *key = "AQIDBAUGBwgJCgsMDQ4PEA==";
    char reqb[2048], resb[1024], chosen[64];
    size_t rl = 0, sl = 0;
    wsr_url u = parse_url(url_s);
    wsr_request req;
    wsr_handshake_result res;
    wsr_error err;
    CHECK_EQ_INT(wsr_handshake_request(reqb, sizeof reqb, &rl, &u, key, "http://example.com",
                                       "chat, superchat", "X-Token: t0k3n\r\n"), WSR_OK);
    CHECK_EQ_INT(parse_req(reqb, rl, 16384, &req, &err), WSR_OK);
    CHECK_EQ_INT(req.status, 101);
    CHECK_EQ_INT(req.head_len, rl);
    CHECK(span_eq(req.path, req.path_len, want_path));
    CHECK(span_eq(req.host, req.host_len, want_host));
    CHECK(span_eq(req.key, req.key_len, key));
    CHECK(span_eq(req.origin, req.origin_len, "http://example.com"));
    CHECK(span_eq(req.protocols, req.protocols_len, "chat, superchat"));
    CHECK_EQ_INT(wsr_subprotocol_choose("superchat, chat", req.protocols, req.protocols_len,
                                        chosen, sizeof chosen), 1);
    CHECK_EQ_STR(chosen, "superchat");
    CHECK_EQ_INT(wsr_handshake_response(resb, sizeof resb, &sl, req.key, req.key_len, chosen), WSR_OK);
    memset(&res, 0, sizeof res);
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(wsr_handshake_response_check(resb, sl, 16384, key, "chat, superchat", &res, &err),
                 WSR_OK);
    CHECK_EQ_INT(res.head_len, sl);
    CHECK_EQ_STR(res.subprotocol, "superchat");
}

TEST(round_trip_both_sides)
{
    round_trip("ws://localhost:9001/chat?room=1", "localhost:9001", "/chat?room=1");
    round_trip("ws://example.com/", "example.com", "/");
    round_trip("ws://[::1]:8080/x", "[::1]:8080", "/x");
}

/* Server preference wins; names match whole, not as substrings. */
TEST(subprotocol_choose)
{
    char out[64];
    const char *offer = "chat, superchat";
    CHECK_EQ_INT(wsr_subprotocol_choose("superchat, chat", offer, strlen(offer), out, sizeof out), 1);
    CHECK_EQ_STR(out, "superchat");
    CHECK_EQ_INT(wsr_subprotocol_choose("chat, superchat", offer, strlen(offer), out, sizeof out), 1);
    CHECK_EQ_STR(out, "chat");
    CHECK_EQ_INT(wsr_subprotocol_choose("mqtt, superchat", offer, strlen(offer), out, sizeof out), 1);
    CHECK_EQ_STR(out, "superchat");
    CHECK_EQ_INT(wsr_subprotocol_choose("x, y", offer, strlen(offer), out, sizeof out), 0);
    CHECK_EQ_INT(wsr_subprotocol_choose("chat", "superchat", 9, out, sizeof out), 0);
    CHECK_EQ_INT(wsr_subprotocol_choose("superchat", "chat", 4, out, sizeof out), 0);
    CHECK_EQ_INT(wsr_subprotocol_choose("super", "superchat", 9, out, sizeof out), 0);
    CHECK_EQ_INT(wsr_subprotocol_choose("b", "a,b", 3, out, sizeof out), 1);
    CHECK_EQ_STR(out, "b");
    CHECK_EQ_INT(wsr_subprotocol_choose("b", "a ,  b  ", 8, out, sizeof out), 1);
    CHECK_EQ_STR(out, "b");
    CHECK_EQ_INT(wsr_subprotocol_choose("a , b", "b", 1, out, sizeof out), 1);
    CHECK_EQ_STR(out, "b");
    /* offered_len is honoured: only "chat" is offered here */
    CHECK_EQ_INT(wsr_subprotocol_choose("superchat", offer, 4, out, sizeof out), 0);
    CHECK_EQ_INT(wsr_subprotocol_choose("", offer, strlen(offer), out, sizeof out), 0);
    CHECK_EQ_INT(wsr_subprotocol_choose(NULL, offer, strlen(offer), out, sizeof out), 0);
    CHECK_EQ_INT(wsr_subprotocol_choose("chat", "", 0, out, sizeof out), 0);
    /* cap too small: no overrun */
    memset(out, 0x5a, sizeof out);
    wsr_subprotocol_choose("superchat", "superchat", 9, out, 5);
    CHECK(out[5] == 0x5a);
}

/* Heads are counted, not NUL-terminated: error messages that quote them must
   stop at the head's end. Exact-size heap copies let ASan catch an overread. */
static wsr_err check_exact(const char *text, int request, wsr_error *err) {
    size_t n = strlen(text);
    char *copy = (char *)malloc(n);
    wsr_err r;
    memcpy(copy, text, n);
    if (request) {
        wsr_request req;
        r = wsr_handshake_request_parse(copy, n, 0, &req, err);
    } else {
        wsr_handshake_result res;
        r = wsr_handshake_response_check(copy, n, 0, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &res, err);
    }
    free(copy);
    return r;
}

TEST(error_messages_stay_inside_the_head) {
    wsr_error err;
    CHECK_EQ_INT(check_exact("XXXX\r\n\r\n", 1, &err), WSR_ERR_HANDSHAKE);
    CHECK(strstr(err.message, "'XXXX'") != NULL);
    CHECK_EQ_INT(check_exact("HTTPX\r\n\r\n", 0, &err), WSR_ERR_HANDSHAKE);
    CHECK(strstr(err.message, "'HTTPX'") != NULL);
    CHECK_EQ_INT(check_exact("HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: x\r\n\r\n", 0, &err), WSR_ERR_HANDSHAKE);
    CHECK(strstr(err.message, "'x'") != NULL);
    CHECK_EQ_INT(check_exact("HTTP/1.1 101 OK\r\nSec-WebSocket-Protocol: p\r\n\r\n", 0, &err), WSR_ERR_HANDSHAKE);
    CHECK(strstr(err.message, "'p'") != NULL);
    /* A bare CR inside the request line is not a line end. */
    CHECK_EQ_INT(check_exact("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 1, &err), WSR_ERR_HANDSHAKE);
    CHECK_EQ_INT(err.http_status, 400);
}

/* Retry-After dates: the IMF-fixdate layout only, digits only. */
TEST(retry_after_date_strict) {
    static const char *bad[] = {
        "Sun, 06 Nov 1994 -1:-1:-1 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun,  6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char head[256];
        wsr_handshake_result res;
        wsr_error err;
        snprintf(head, sizeof head, "HTTP/1.1 503 Busy\r\nRetry-After: %s\r\n\r\n", bad[i]);
        CHECK_EQ_INT(wsr_handshake_response_check(head, strlen(head), 0, "k", NULL, &res, &err), WSR_ERR_HANDSHAKE);
        CHECK_EQ_INT(res.retry_after_date, -1);
        CHECK_EQ_INT(res.retry_after_s, -1);
    }
}

TEST_MAIN()
