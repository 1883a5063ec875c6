/* fuzz_url.c - wsr_url_parse, and the upgrade request built from its result.

   The input is a URL, then (after a NUL, if there is one) extra header
   lines as a client would pass in cfg.headers. Checked:

   - a parsed URL points into the string given: a host of 1..253 bytes
     with no character the parser refuses, a port 1..65535 (80 or 443 when
     none was given), a path starting with '/' or '?'; no URL with a
     '#fragment', a space or a control character is accepted;
   - the request wsr_handshake_request builds from it parses with the
     server's wsr_handshake_request_parse, which finds the same path
     ("/?q" for "ws://h?q"), Host and key, and every extra header;
     extra header lines that are not "Name: value" are refused before
     anything is sent. */
#include "fuzz_common.h"

static const char *const fuzz_key = "dGhlIHNhbXBsZSBub25jZQ==";

/* Does the header block name one of the headers the upgrade itself uses? */
static int fuzz_names_upgrade_header(const char *h) {
    static const char *const names[] = { "host", "upgrade", "connection", "sec-websocket-key",
                                         "sec-websocket-version", "sec-websocket-protocol" };
    while (*h) {
        const char *colon = strchr(h, ':'), *eol = strchr(h, '\n');
        size_t i;
        if (colon && (!eol || colon < eol))
            for (i = 0; i < sizeof names / sizeof names[0]; i++)
                if (wsr__ieq(h, (size_t)(colon - h), names[i])) return 1;
        if (!eol) break;
        h = eol + 1;
    }
    return 0;
}

/* Header lines with text in them, as wsr__put_extra_headers counts them. */
static int fuzz_count_lines(const char *h) {
    int lines = 0;
    while (*h) {
        const char *eol = strchr(h, '\n');
        size_t n = eol ? (size_t)(eol - h) : strlen(h);
        if (n && h[n - 1] == '\r') n--;
        if (n) lines++;
        if (!eol) break;
        h = eol + 1;
    }
    return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *url = (char *)malloc(size + 2), *headers, *out;
    const char *p;
    size_t url_len, len;
    wsr_url u;
    wsr_error err;
    wsr_err e;
    FUZZ_CHECK(url != NULL);
    memcpy(url, data, size);
    url[size] = url[size + 1] = '\0';
    url_len = strlen(url);
    headers = url + url_len + 1;        /* "" when there was no NUL in the input */

    e = wsr_url_parse(url, &u, &err);
    FUZZ_CHECK(e == WSR_OK || e == WSR_ERR_INVALID);
    FUZZ_CHECK(err.code == e && memchr(err.message, '\0', sizeof err.message) != NULL);
    if (e != WSR_OK) { free(url); return 0; }

    /* The pieces point into the string and keep to the rules. */
    FUZZ_CHECK(strncmp(url, "ws://", 5) == 0 || strncmp(url, "wss://", 6) == 0 ||
               strncmp(url, "WS://", 5) == 0 || strncmp(url, "WSS://", 6) == 0);
    FUZZ_CHECK(u.secure == (url[2] == 's' || url[2] == 'S'));
    FUZZ_CHECK(fuzz_within(u.host, u.host_len, url, url_len) && u.host_len >= 1 && u.host_len <= 253);
    FUZZ_CHECK(u.port >= 1 && u.port <= 65535);
    if (!u.port_given) FUZZ_CHECK(u.port == (u.secure ? 443 : 80));
    FUZZ_CHECK(u.path_len >= 1 && (u.path[0] == '/' || u.path[0] == '?'));
    FUZZ_CHECK(fuzz_within(u.path, u.path_len, url, url_len) || (u.path_len == 1 && u.path[0] == '/'));
    for (p = url; *p; p++) FUZZ_CHECK(*p != '#' && (unsigned char)*p > ' ' && *p != 0x7F);
    for (len = 0; len < u.host_len; len++) {
        unsigned char ch = (unsigned char)u.host[len];
        FUZZ_CHECK(ch != '/' && ch != '?' && ch != '@' && ch != '[' && ch != ']' && ch != '\\');
        if (!u.ipv6) FUZZ_CHECK(ch != ':');
    }

    /* Client request from it, read by the server's parser. */
    out = (char *)malloc(20000);
    FUZZ_CHECK(out != NULL);
    e = wsr_handshake_request(out, 20000, &len, &u, fuzz_key, NULL, "chat", headers);
    if (e == WSR_OK) {
        wsr_request req;
        int lines = fuzz_count_lines(headers);
        FUZZ_CHECK(len < 20000 && out[len] == '\0' && strlen(out) == len);
        e = wsr_handshake_request_parse(out, len, 20000, &req, &err);
        if (lines > WSR_MAX_HEADERS - 6) {
            FUZZ_CHECK(e == WSR_ERR_HANDSHAKE && req.status == 431);
        } else if (!fuzz_names_upgrade_header(headers)) {
            char host[300];
            FUZZ_CHECK(e == WSR_OK && req.status == 101 && req.head_len == len);
            /* The same path: "/?x" for a bare query. */
            if (u.path[0] == '?')
                FUZZ_CHECK(req.path_len == u.path_len + 1 && req.path[0] == '/' &&
                           memcmp(req.path + 1, u.path, u.path_len) == 0);
            else
                FUZZ_CHECK(req.path_len == u.path_len && memcmp(req.path, u.path, u.path_len) == 0);
            /* Host names the port only when it is not the default. */
            snprintf(host, sizeof host, "%s%.*s%s", u.ipv6 ? "[" : "", (int)u.host_len, u.host, u.ipv6 ? "]" : "");
            if (u.port != (u.secure ? 443 : 80)) snprintf(host + strlen(host), sizeof host - strlen(host), ":%d", u.port);
            FUZZ_CHECK(req.host_len == strlen(host) && memcmp(req.host, host, req.host_len) == 0);
            FUZZ_CHECK(req.key_len == 24 && memcmp(req.key, fuzz_key, 24) == 0 && req.version == 13);
            FUZZ_CHECK(req.protocols_len == 4 && memcmp(req.protocols, "chat", 4) == 0);
            /* Every extra header is there to be found. */
            {
                const char *h = headers;
                while (*h) {
                    const char *colon = strchr(h, ':'), *eol = strchr(h, '\n');
                    char name[256];
                    size_t vl;
                    if (colon && (!eol || colon < eol) && (size_t)(colon - h) < sizeof name) {
                        memcpy(name, h, (size_t)(colon - h));
                        name[colon - h] = '\0';
                        FUZZ_CHECK(wsr_request_header(&req, name, &vl) != NULL);
                    }
                    if (!eol) break;
                    h = eol + 1;
                }
            }
        } else {
            FUZZ_CHECK(e == WSR_OK || e == WSR_ERR_HANDSHAKE);
        }
    } else {
        /* Refused: a bad extra header line, or more than fits. */
        FUZZ_CHECK(e == WSR_ERR_INVALID || e == WSR_ERR_TOO_BIG);
        if (e == WSR_ERR_TOO_BIG) FUZZ_CHECK(strlen(headers) + u.path_len + u.host_len > 19000);
    }
    free(out);
    free(url);
    return 0;
}
