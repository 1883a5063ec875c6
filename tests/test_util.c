/* test_util.c - the pure-C utilities: SHA-1, base64, the accept key, the
   incremental UTF-8 validator and the URL parser. No sockets, no clock. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

/* ---- helpers ------------------------------------------------------------- */

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = 0;
}

static void sha1_hex(const void *data, size_t len, char out[41])
{
    unsigned char d[20];
    wsr_sha1(data, len, d);
    to_hex(d, 20, out);
}

/* A run of n 'a' bytes, malloc'd. */
static unsigned char *run_of_a(size_t n)
{
    unsigned char *p = (unsigned char *)malloc(n ? n : 1);
    memset(p, 'a', n);
    return p;
}

/* ---- SHA-1 (FIPS 180-4; vectors from FIPS 180 appendix / NIST examples) --- */

TEST(sha1_fips_vectors)
{
    char hex[41];
    unsigned char *a;
    sha1_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1_hex("", 0, hex);
    CHECK_EQ_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    CHECK_EQ_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    sha1_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
             "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", 112, hex);
    CHECK_EQ_STR(hex, "a49b2446a02c645bf419f995b67091253a04a259");
    a = run_of_a(1000000);
    sha1_hex(a, 1000000, hex);
    CHECK_EQ_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);
}

/* Lengths around the 64-byte block and the 55/56-byte padding boundary
   (FIPS 180-4 §5.1.1). Expected digests computed with
   `head -c N /dev/zero | tr '\0' a | sha1sum`. */
TEST(sha1_padding_boundaries)
{
    static const struct { size_t n; const char *hex; } v[] = {
        { 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a" },
        { 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699" },
        { 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5" },
        { 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d" },
        { 65, "11655326c708d70319be2610e8a57d9a5b959d3b" },
        { 119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56" },
        { 120, "f34c1488385346a55709ba056ddd08280dd4c6d6" },
    };
    size_t i;
    char hex[41];
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char *a = run_of_a(v[i].n);
        sha1_hex(a, v[i].n, hex);
        CHECK_EQ_STR(hex, v[i].hex);
        free(a);
    }
}

/* All byte values; expected from
   `python3 -c "import sys;sys.stdout.buffer.write(bytes(range(256)))" | sha1sum`. */
TEST(sha1_binary)
{
    unsigned char b[256];
    char hex[41];
    int i;
    for (i = 0; i < 256; i++) b[i] = (unsigned char)i;
    sha1_hex(b, 256, hex);
    CHECK_EQ_STR(hex, "4916d6bdb7f78e6803698cab32d1586ea457dfc8");
}

/* ---- base64 (RFC 4648 §4, test vectors §10) ------------------------------ */

static void b64_check(const char *in, size_t n, const char *want)
{
    char out[512];
    size_t wl = strlen(want);
    memset(out, 0x5a, sizeof out);
    wsr_base64_encode((const unsigned char *)in, n, out);
    CHECK_EQ_STR(out, want);
    CHECK_EQ_INT(wl, 4 * ((n + 2) / 3));
    CHECK(out[wl + 1] == 0x5a);             /* nothing written past the NUL */
}

TEST(base64_rfc4648_vectors)
{
    b64_check("", 0, "");
    b64_check("f", 1, "Zg==");
    b64_check("fo", 2, "Zm8=");
    b64_check("foo", 3, "Zm9v");
    b64_check("foob", 4, "Zm9vYg==");
    b64_check("fooba", 5, "Zm9vYmE=");
    b64_check("foobar", 6, "Zm9vYmFy");
}

/* Expected from `python3 ... bytes(range(256)) | base64 -w0`. */
TEST(base64_binary)
{
    static const char want[] =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4"
        "OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx"
        "cnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmq"
        "q6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj"
        "5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==";
    char b[256];
    int i;
    for (i = 0; i < 256; i++) b[i] = (char)i;
    b64_check(b, 256, want);
    /* the high bytes alone use '+' and '/' */
    b64_check("\xfb\xff", 2, "+/8=");
    b64_check("\x00\x00\x00", 3, "AAAA");
}

/* ---- Sec-WebSocket-Accept (RFC 6455 §1.3 and §4.2.2) --------------------- */

TEST(accept_key_rfc_example)
{
    char out[40];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    memset(out, 0x5a, sizeof out);
    wsr_accept_key(key, strlen(key), out);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(out[29] == 0x5a);
    /* key_len is honoured: the key need not be NUL-terminated */
    {
        char buf[64], out2[29];
        memcpy(buf, key, 24);
        memcpy(buf + 24, "garbage", 8);
        wsr_accept_key(buf, 24, out2);
        CHECK_EQ_STR(out2, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}

/* ---- UTF-8 (RFC 3629 §3/§4, as RFC 6455 §8.1 requires) -------------------- */

/* Whole-input verdict: 1 if valid and complete. */
static int utf8_whole(const char *s, size_t n)
{
    uint32_t st = 0;
    if (!wsr_utf8_feed(&st, (const unsigned char *)s, n)) return 0;
    return st == 0;
}

/* Index of the first byte at which a byte-by-byte feed returns 0, or -1. */
static long utf8_fail_index(const char *s, size_t n)
{
    uint32_t st = 0;
    size_t i;
    for (i = 0; i < n; i++)
        if (!wsr_utf8_feed(&st, (const unsigned char *)s + i, 1)) return (long)i;
    return -1;
}

/* Verdict of two feeds split at k. */
static int utf8_split(const char *s, size_t n, size_t k)
{
    uint32_t st = 0;
    if (!wsr_utf8_feed(&st, (const unsigned char *)s, k)) return 0;
    if (!wsr_utf8_feed(&st, (const unsigned char *)s + k, n - k)) return 0;
    return st == 0;
}

#define S(lit) lit, sizeof(lit) - 1

static const struct { const char *s; size_t n; } utf8_valid[] = {
    { S("") },
    { S("Hello, world") },
    { S("\x00") },                              /* U+0000 is valid */
    { S("\x7f") },
    { S("\xc2\x80") },                          /* U+0080 */
    { S("\xdf\xbf") },                          /* U+07FF */
    { S("\xe0\xa0\x80") },                      /* U+0800 */
    { S("\xed\x9f\xbf") },                      /* U+D7FF, last before surrogates */
    { S("\xee\x80\x80") },                      /* U+E000, first after surrogates */
    { S("\xef\xbf\xbd") },                      /* U+FFFD */
    { S("\xef\xbf\xbe") },                      /* U+FFFE noncharacter: valid UTF-8 */
    { S("\xef\xbf\xbf") },                      /* U+FFFF */
    { S("\xef\xbb\xbf" "bom") },
    { S("\xf0\x90\x80\x80") },                  /* U+10000 */
    { S("\xf0\x9f\x98\x80") },                  /* U+1F600 */
    { S("\xf4\x8f\xbf\xbf") },                  /* U+10FFFF */
    { S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5") },   /* "kosme" (Autobahn 6.2) */
    { S("a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!") },
};

TEST(utf8_valid_strings)
{
    size_t i;
    for (i = 0; i < sizeof utf8_valid / sizeof utf8_valid[0]; i++) {
        uint32_t st = 0;
        int r = wsr_utf8_feed(&st, (const unsigned char *)utf8_valid[i].s, utf8_valid[i].n);
        CHECK_EQ_INT(r, 1);
        CHECK_EQ_INT(st, 0);
        CHECK_EQ_INT(utf8_fail_index(utf8_valid[i].s, utf8_valid[i].n), -1);
    }
}

TEST(utf8_empty_feed_keeps_state)
{
    uint32_t st = 0, before;
    CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)"", 0), 1);
    CHECK_EQ_INT(st, 0);
    CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)"\xe2", 1), 1);
    before = st;
    CHECK(st != 0);
    CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)"", 0), 1);
    CHECK_EQ_INT(st, before);
    CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)"\x82\xac", 2), 1);
    CHECK_EQ_INT(st, 0);
}

/* Invalid inputs with the index of the first byte that makes them impossible
   (RFC 3629 §4 syntax: E0 needs A0-BF, ED needs 80-9F, F0 needs 90-BF,
   F4 needs 80-8F; C0, C1, F5-FF never appear). */
static const struct { const char *s; size_t n; long at; } utf8_invalid[] = {
    { S("\x80"), 0 },                           /* lone continuation */
    { S("\xbf"), 0 },
    { S("a\x80"), 1 },
    { S("\xc0\x80"), 0 },                       /* overlong NUL */
    { S("\xc1\xbf"), 0 },                       /* overlong */
    { S("\xe0\x80\x80"), 1 },                   /* overlong 3-byte */
    { S("\xe0\x9f\xbf"), 1 },
    { S("\xf0\x80\x80\x80"), 1 },               /* overlong 4-byte */
    { S("\xf0\x8f\xbf\xbf"), 1 },
    { S("\xed\xa0\x80"), 1 },                   /* U+D800 surrogate */
    { S("\xed\xbf\xbf"), 1 },                   /* U+DFFF surrogate */
    { S("\xf4\x90\x80\x80"), 1 },               /* U+110000 */
    { S("\xf5\x80\x80\x80"), 0 },
    { S("\xf7\xbf\xbf\xbf"), 0 },
    { S("\xf8\x88\x80\x80\x80"), 0 },
    { S("\xfc\x84\x80\x80\x80\x80"), 0 },
    { S("\xfe"), 0 },
    { S("\xff"), 0 },
    { S("\xc3\x28"), 1 },                       /* lead then non-continuation */
    { S("\xe2\x82\x28"), 2 },
    { S("\xf0\x9f\x98\x41"), 3 },
    { S("\xe2\x82\xac\x80"), 3 },               /* one continuation too many */
    { S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited"), 12 },
};

TEST(utf8_invalid_fail_fast)
{
    size_t i;
    for (i = 0; i < sizeof utf8_invalid / sizeof utf8_invalid[0]; i++) {
        long got = utf8_fail_index(utf8_invalid[i].s, utf8_invalid[i].n);
        CHECK_EQ_INT(utf8_whole(utf8_invalid[i].s, utf8_invalid[i].n), 0);
        if (got != utf8_invalid[i].at)
            printf("  utf8 case %u: failed at byte %ld, expected %ld\n", (unsigned)i, got,
                   utf8_invalid[i].at);
        CHECK_EQ_INT(got, utf8_invalid[i].at);
        /* and one whole feed returns 0 too (not just a non-zero state) */
        {
            uint32_t st = 0;
            CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)utf8_invalid[i].s,
                                       utf8_invalid[i].n), 0);
        }
    }
}

/* Truncated sequences are not errors yet (more may come) but leave state != 0. */
TEST(utf8_truncated)
{
    static const struct { const char *s; size_t n; } t[] = {
        { S("\xc3") }, { S("\xe2") }, { S("\xe2\x82") }, { S("\xf0") },
        { S("\xf0\x9f") }, { S("\xf0\x9f\x98") }, { S("abc\xf4\x8f\xbf") },
        { S("\xed\x9f") }, { S("\xce\xba\xe1\xbd") },
    };
    size_t i;
    for (i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint32_t st = 0;
        CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)t[i].s, t[i].n), 1);
        CHECK(st != 0);
        CHECK_EQ_INT(utf8_whole(t[i].s, t[i].n), 0);
    }
}

/* Every split of a valid string into two feeds gives the same verdict;
   likewise for invalid strings. */
TEST(utf8_split_everywhere)
{
    size_t i, k;
    int bad = 0;
    for (i = 0; i < sizeof utf8_valid / sizeof utf8_valid[0]; i++)
        for (k = 0; k <= utf8_valid[i].n; k++)
            if (utf8_split(utf8_valid[i].s, utf8_valid[i].n, k) != 1) {
                bad++;
                printf("  valid utf8 case %u split at %u refused\n", (unsigned)i, (unsigned)k);
            }
    CHECK_EQ_INT(bad, 0);
    bad = 0;
    for (i = 0; i < sizeof utf8_invalid / sizeof utf8_invalid[0]; i++)
        for (k = 0; k <= utf8_invalid[i].n; k++)
            if (utf8_split(utf8_invalid[i].s, utf8_invalid[i].n, k) != 0) {
                bad++;
                printf("  invalid utf8 case %u split at %u accepted\n", (unsigned)i, (unsigned)k);
            }
    CHECK_EQ_INT(bad, 0);
}

/* Long ASCII runs, in case of a word-at-a-time fast path. */
TEST(utf8_long_ascii_runs)
{
    char buf[300];
    size_t pos, n;
    int bad;
    uint32_t st;

    /* 100 ASCII bytes then an invalid byte */
    memset(buf, 'a', 100);
    buf[100] = (char)0x80;
    CHECK_EQ_INT(utf8_whole(buf, 101), 0);
    CHECK_EQ_INT(utf8_fail_index(buf, 101), 100);
    buf[100] = (char)0xff;
    CHECK_EQ_INT(utf8_whole(buf, 101), 0);

    /* a run then a truncated sequence: state must not be lost */
    memset(buf, 'a', 100);
    buf[100] = (char)0xe2; buf[101] = (char)0x82;
    st = 0;
    CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)buf, 102), 1);
    CHECK(st != 0);

    /* a pending lead byte followed by a long ASCII run: fails at the first 'a' */
    buf[0] = (char)0xe2;
    memset(buf + 1, 'a', 150);
    CHECK_EQ_INT(utf8_whole(buf, 151), 0);
    st = 0;
    CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)buf, 1), 1);
    CHECK_EQ_INT(wsr_utf8_feed(&st, (const unsigned char *)buf + 1, 150), 0);

    /* runs around a multi-byte character */
    memset(buf, 'b', 70);
    memcpy(buf + 70, "\xf0\x9f\x98\x80", 4);
    memset(buf + 74, 'c', 70);
    CHECK_EQ_INT(utf8_whole(buf, 144), 1);

    /* 0x80 / 0xff at every position of a 200-byte ASCII buffer, every alignment */
    bad = 0;
    for (pos = 0; pos < 200; pos++) {
        memset(buf, 'x', 200);
        buf[pos] = (char)0x80;
        if (utf8_whole(buf, 200)) bad++;
        buf[pos] = (char)0xff;
        if (utf8_whole(buf, 200)) bad++;
        /* a lone lead byte ending a run of pos ASCII bytes: truncated */
        buf[pos] = (char)0xc3;
        st = 0;
        if (!wsr_utf8_feed(&st, (const unsigned char *)buf, pos + 1) || st == 0) bad++;
    }
    CHECK_EQ_INT(bad, 0);

    /* pure ASCII of every length up to 200, from every start offset 0..7 */
    bad = 0;
    memset(buf, 'y', sizeof buf);
    for (pos = 0; pos < 8; pos++)
        for (n = 0; n <= 200; n++)
            if (!utf8_whole(buf + pos, n)) bad++;
    CHECK_EQ_INT(bad, 0);
}

/* ---- URL parser (RFC 6455 §3) -------------------------------------------- */

static int span_eq(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

static void url_ok(const char *s, int secure, int port, int port_given, int ipv6,
                   const char *host, const char *path)
{
    wsr_url u;
    wsr_error err;
    wsr_err r;
    memset(&u, 0, sizeof u);
    memset(&err, 0, sizeof err);
    r = wsr_url_parse(s, &u, &err);
    if (r != WSR_OK) printf("  url \"%s\" refused: %s\n", s, err.message);
    CHECK_EQ_INT(r, WSR_OK);
    if (r != WSR_OK) return;
    CHECK_EQ_INT(u.secure, secure);
    CHECK_EQ_INT(u.port, port);
    CHECK_EQ_INT(u.port_given, port_given);
    CHECK_EQ_INT(u.ipv6, ipv6);
    if (!span_eq(u.host, u.host_len, host))
        printf("  url \"%s\": host \"%.*s\", expected \"%s\"\n", s, (int)u.host_len,
               u.host ? u.host : "", host);
    CHECK(span_eq(u.host, u.host_len, host));
    if (!span_eq(u.path, u.path_len, path))
        printf("  url \"%s\": path \"%.*s\", expected \"%s\"\n", s, (int)u.path_len,
               u.path ? u.path : "", path);
    CHECK(span_eq(u.path, u.path_len, path));
}

static void url_bad(const char *s)
{
    wsr_url u;
    wsr_error err;
    wsr_err r;
    memset(&u, 0, sizeof u);
    memset(&err, 0, sizeof err);
    r = wsr_url_parse(s, &u, &err);
    if (r != WSR_ERR_INVALID) printf("  url \"%s\" gave %d, expected WSR_ERR_INVALID\n", s, (int)r);
    CHECK_EQ_INT(r, WSR_ERR_INVALID);
    CHECK(err.message[0] != 0);
}

TEST(url_valid)
{
    url_ok("ws://host", 0, 80, 0, 0, "host", "/");
    url_ok("ws://host/", 0, 80, 0, 0, "host", "/");
    url_ok("ws://host:9001/path?q=1", 0, 9001, 1, 0, "host", "/path?q=1");
    url_ok("wss://example.com", 1, 443, 0, 0, "example.com", "/");
    url_ok("wss://example.com:8443/a/b", 1, 8443, 1, 0, "example.com", "/a/b");
    url_ok("ws://example.com/chat", 0, 80, 0, 0, "example.com", "/chat");
    url_ok("ws://127.0.0.1:8080/x", 0, 8080, 1, 0, "127.0.0.1", "/x");
    url_ok("ws://[::1]:8080", 0, 8080, 1, 1, "::1", "/");
    url_ok("ws://[::1]:8080/p", 0, 8080, 1, 1, "::1", "/p");
    url_ok("wss://[2001:db8::1]/", 1, 443, 0, 1, "2001:db8::1", "/");
    url_ok("ws://h:1/", 0, 1, 1, 0, "h", "/");
    url_ok("ws://h:65535/", 0, 65535, 1, 0, "h", "/");
    url_ok("ws://h:80/", 0, 80, 1, 0, "h", "/");
}

/* A bare query: the contract keeps path "?x=1" (borrowed from the URL) and
   wsr_handshake_request() sends "GET /?x=1" (RFC 6455 §3: an empty path is
   "/"); test_handshake.c checks the request line. */
TEST(url_query_only)
{
    url_ok("ws://h?x=1", 0, 80, 0, 0, "h", "?x=1");
    url_ok("ws://h:81?x=1", 0, 81, 1, 0, "h", "?x=1");
    url_ok("ws://h/?x=1", 0, 80, 0, 0, "h", "/?x=1");
}

TEST(url_ipv6_zone_no_crash)
{
    wsr_url u;
    wsr_error err;
    wsr_err r;
    memset(&err, 0, sizeof err);
    r = wsr_url_parse("ws://[fe80::1%25eth0]:9000/", &u, &err);
    /* Zone ids are refused: they name a local interface, meaningless in Host. */
    CHECK_EQ_INT(r, WSR_ERR_INVALID);
    CHECK(err.message[0] != 0);
}

TEST(url_invalid)
{
    url_bad("http://host/");
    url_bad("https://host/");
    url_bad("ftp://host/");
    url_bad("ws://");
    url_bad("wss://");
    url_bad("ws:///path");
    url_bad("ws://:80/");
    url_bad("ws://h:0/");
    url_bad("ws://h:65536/");
    url_bad("ws://h:99999999999999999999/");
    url_bad("ws://h:-1/");
    url_bad("ws://h:12a/");
    url_bad("ws://h:+80/");
    url_bad("ws://h/p#frag");
    url_bad("ws://h#frag");
    url_bad("ws://ho st/");
    url_bad("ws://h/pa th");
    url_bad("ws:/x");
    url_bad("wss//x");
    url_bad("ws:x");
    url_bad("ws://[::1:80/");
    url_bad("ws://[::1");
    url_bad("ws://[]/");
    url_bad("");
    url_bad("host:80");
    url_bad("ws");
}

TEST_MAIN()
