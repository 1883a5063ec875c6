/* test_tls_win.c - wss:// through mbedTLS where tests/test_tls.c cannot go:
   on Windows (mingw-w64, run under wine by tools/test-windows.sh). It
   builds and runs on POSIX too.

   No fork, no openssl here: the certificates are made beforehand (by
   tools/test-windows.sh, with openssl on the build machine) in the
   directory WSR_TLS_PKI names (default build/win/pki, relative to the
   current directory):
     ca.crt                   an EC P-256 CA
     server.crt, server.key   CN=localhost, SAN DNS:localhost, IP:127.0.0.1, by ca
     ca2.crt                  an unrelated CA
     cadir/ca.crt             a directory for tls.ca_dir
   Our client and our server run in this one thread, polled in turn; the
   server binds 127.0.0.1 port 0. What it covers on Windows: the mbedTLS
   I/O over non-blocking Winsock (WSAEWOULDBLOCK as WANT_READ/WANT_WRITE,
   records larger than the socket buffers), IP-SAN and host-name
   verification, ca_file/ca_dir/ca_pem, a wrong CA, and, with no CA
   configured, the trusted roots of the Windows certificate store. */
#define WSR_USE_MBEDTLS
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

static const char *pki_dir(void) {
    const char *d = getenv("WSR_TLS_PKI");
    return d && *d ? d : "build/win/pki";
}
static const char *P(const char *name) {   /* a path in the PKI directory */
    static char slots[16][512];
    static int next;
    char *s = slots[next++ % 16];
    snprintf(s, 512, "%s/%s", pki_dir(), name);
    return s;
}
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *b;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (n >= 0) ? (char *)malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = '\0';
    fclose(f);
    return b;
}
static int pki_ready(void) {
    static int ok = -1;
    if (ok < 0) {
        char *ca = slurp(P("ca.crt"));
        ok = ca != NULL;
        if (!ok) printf("FAIL: no %s: make the test PKI first (tools/test-windows.sh does)\n", P("ca.crt"));
        free(ca);
        CHECK(ok);
    }
    return ok;
}

#define PUMP_UNTIL(cond, ms, POLLS)                                          \
    do {                                                                     \
        uint64_t pu_deadline_ = wsr_now_ms() + (uint64_t)(ms);               \
        while (!(cond) && wsr_now_ms() < pu_deadline_) { POLLS; }            \
    } while (0)
#define BOTH(s, c) do { wsr_server_poll((s), 0); wsr_client_poll((c), 1); } while (0)

/* ---- our server: echoes everything ---------------------------------------- */
typedef struct srec { int opens, closes, errors, messages; wsr_error first_error, close_why; } srec;
static void s_open(wsr_conn *conn, void *user) { (void)conn; ((srec *)user)->opens++; }
static void s_close(wsr_conn *conn, const wsr_error *why, void *user) {
    (void)conn; ((srec *)user)->closes++; ((srec *)user)->close_why = *why;
}
static void s_error(wsr_server *s, wsr_conn *conn, const wsr_error *why, void *user) {
    srec *r = (srec *)user;
    (void)s; (void)conn;
    if (r->errors++ == 0) r->first_error = *why;
}
static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    ((srec *)user)->messages++;
    CHECK_EQ_INT(wsr_conn_send(conn, type, data, len), WSR_OK);
}
static wsr_server *server_new(srec *r, const wsr_tls_config *tls) {
    wsr_server_config cfg;
    wsr_error err;
    wsr_server *s;
    memset(r, 0, sizeof *r);
    wsr_server_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.max_message_size = 32u << 20;
    cfg.ping_interval_ms = 0;
    cfg.handshake_timeout_ms = 10000;
    if (tls) cfg.tls = *tls;
    else { cfg.tls.cert_file = P("server.crt"); cfg.tls.key_file = P("server.key"); }
    cfg.on_open = s_open;
    cfg.on_close = s_close;
    cfg.on_error = s_error;
    cfg.on_message = s_message;
    cfg.user = r;
    s = wsr_server_new(&cfg, &err);
    if (!s) printf("wsr_server_new: %s (%s)\n", err.message, wsr_strerror(err.code));
    return s;
}

/* ---- our client ------------------------------------------------------------ */
#define MAXM 16
typedef struct crec {
    int opens, closes, ends, messages, nexpect;
    wsr_error first_close, end_why;
    const unsigned char *expect[MAXM];
    size_t expect_len[MAXM];
    int ok[MAXM];
} crec;
static void c_open(wsr_client *c, const char *sub, void *user) { (void)c; (void)sub; ((crec *)user)->opens++; }
static void c_close(wsr_client *c, const wsr_error *why, void *user) {
    crec *r = (crec *)user;
    (void)c;
    if (r->closes++ == 0) r->first_close = *why;
}
static void c_end(wsr_client *c, const wsr_error *why, void *user) {
    (void)c; ((crec *)user)->ends++; ((crec *)user)->end_why = *why;
}
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    crec *r = (crec *)user;
    int i = r->messages++;
    (void)c; (void)type;
    if (i < MAXM && i < r->nexpect)
        r->ok[i] = len == r->expect_len[i] && (len == 0 || memcmp(data, r->expect[i], len) == 0);
}
static void client_cfg(wsr_client_config *cfg, crec *r, const char *url, const wsr_tls_config *tls) {
    memset(r, 0, sizeof *r);
    wsr_client_config_init(cfg);
    cfg->url = url;
    cfg->reconnect = 0;
    cfg->ping_interval_ms = 0;
    cfg->connect_timeout_ms = 10000;
    cfg->max_message_size = 32u << 20;
    cfg->tls = *tls;
    cfg->on_open = c_open;
    cfg->on_close = c_close;
    cfg->on_end = c_end;
    cfg->on_message = c_message;
    cfg->user = r;
}

static unsigned char *pattern(size_t n, unsigned seed) {
    unsigned char *p = (unsigned char *)malloc(n ? n : 1);
    size_t i;
    if (p) for (i = 0; i < n; i++) p[i] = (unsigned char)(((i % 251) * 7 + 3 + seed * 13) & 255);
    return p;
}

static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, (size_t)1 << 20, (size_t)16 << 20};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

/* Every size, echoed byte for byte and in order, then the close handshake. */
static void echo_case(const char *name, const char *host, const wsr_tls_config *ctls, const wsr_tls_config *stls) {
    srec sr;
    crec cr;
    wsr_client_config ccfg;
    wsr_server *s;
    wsr_client *c;
    wsr_error err;
    unsigned char *pl[NSIZES];
    char url[128];
    int i;
    uint64_t t0 = wsr_now_ms();
    if (!pki_ready()) return;
    s = server_new(&sr, stls);
    CHECK(s != NULL);
    if (!s) return;
    snprintf(url, sizeof url, "wss://%s:%d/echo", host, wsr_server_port(s));
    client_cfg(&ccfg, &cr, url, ctls);
    c = wsr_client_new(&ccfg, &err);
    if (!c) printf("%s: wsr_client_new: %s\n", name, err.message);
    CHECK(c != NULL);
    if (c) {
        for (i = 0; i < NSIZES; i++) {
            pl[i] = pattern(sizes[i], (unsigned)i);
            cr.expect[i] = pl[i];
            cr.expect_len[i] = sizes[i];
            CHECK_EQ_INT(wsr_send_binary(c, pl[i], sizes[i]), WSR_OK);
        }
        cr.nexpect = NSIZES;
        PUMP_UNTIL(cr.messages >= NSIZES || wsr_client_state(c) == WSR_STATE_CLOSED, 60000, BOTH(s, c));
        CHECK_EQ_INT(cr.opens, 1);
        CHECK_EQ_INT(sr.opens, 1);
        CHECK_EQ_INT(cr.messages, NSIZES);
        for (i = 0; i < NSIZES; i++) CHECK(cr.ok[i]);
        if (cr.closes) printf("%s: client closed: %s\n", name, cr.first_close.message);
        if (sr.errors) printf("%s: server error: %s\n", name, sr.first_error.message);
        CHECK_EQ_INT(sr.errors, 0);
        CHECK_EQ_INT(wsr_client_close(c, 1000, "done"), WSR_OK);
        PUMP_UNTIL(wsr_client_state(c) == WSR_STATE_CLOSED && sr.closes == 1, 10000, BOTH(s, c));
        CHECK_EQ_INT(cr.end_why.code, WSR_ERR_CLOSED);
        CHECK_EQ_INT(cr.end_why.close_code, 1000);
        CHECK_EQ_INT(sr.close_why.close_code, 1000);
        for (i = 0; i < NSIZES; i++) free(pl[i]);
    }
    wsr_client_free(c);
    wsr_server_free(s);
    if (getenv("WSR_TEST_TIMES")) printf("time %-40s %6lld ms\n", name, (long long)(wsr_now_ms() - t0));
}

TEST(echo_ip_san) {
    wsr_tls_config tls;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = P("ca.crt");
    echo_case("echo wss://127.0.0.1 (ca_file)", "127.0.0.1", &tls, NULL);
}

TEST(echo_localhost) {
    wsr_tls_config tls;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = P("ca.crt");
    echo_case("echo wss://localhost (ca_file)", "localhost", &tls, NULL);
}

TEST(echo_ca_dir) {
    wsr_tls_config tls;
    memset(&tls, 0, sizeof tls);
    tls.ca_dir = P("cadir");
    echo_case("echo wss://127.0.0.1 (ca_dir)", "127.0.0.1", &tls, NULL);
}

TEST(echo_pem) {
    wsr_tls_config ctls, stls;
    char *ca = slurp(P("ca.crt")), *crt = slurp(P("server.crt")), *key = slurp(P("server.key"));
    if (pki_ready()) {
        CHECK(ca && crt && key);
        if (ca && crt && key) {
            memset(&ctls, 0, sizeof ctls);
            memset(&stls, 0, sizeof stls);
            ctls.ca_pem = ca;
            stls.cert_pem = crt;
            stls.key_pem = key;
            echo_case("echo wss://localhost (ca_pem, cert_pem)", "localhost", &ctls, &stls);
        }
    }
    free(ca); free(crt); free(key);
}

TEST(echo_insecure) {
    wsr_tls_config tls;
    memset(&tls, 0, sizeof tls);
    tls.insecure_skip_verify = 1;
    echo_case("echo wss://127.0.0.1 (insecure_skip_verify)", "127.0.0.1", &tls, NULL);
}

/* Our server's certificate meets a client that does not trust its CA:
   refused, permanently ("unknown CA"), and never opened. */
static void unknown_ca_case(const char *name, const char *host, const wsr_tls_config *tls) {
    srec sr;
    crec cr;
    wsr_client_config ccfg;
    wsr_server *s;
    wsr_client *c;
    wsr_error err;
    char url[128];
    if (!pki_ready()) return;
    s = server_new(&sr, NULL);
    CHECK(s != NULL);
    if (!s) return;
    snprintf(url, sizeof url, "wss://%s:%d/x", host, wsr_server_port(s));
    client_cfg(&ccfg, &cr, url, tls);
    c = wsr_client_new(&ccfg, &err);
    if (!c) printf("%s: wsr_client_new: %s\n", name, err.message);
    CHECK(c != NULL);
    if (c) {
        PUMP_UNTIL(wsr_client_state(c) == WSR_STATE_CLOSED, 10000, BOTH(s, c));
        CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
        CHECK_EQ_INT(cr.opens, 0);
        CHECK_EQ_INT(cr.end_why.code, WSR_ERR_TLS_CERT);
        CHECK(strstr(cr.end_why.message, "unknown CA") != NULL);
        if (getenv("WSR_TLS_SHOW")) printf("%s: %s\n", name, cr.end_why.message);
    }
    wsr_client_free(c);
    wsr_server_free(s);
}

/* A certificate by a CA we do not trust. */
TEST(wrong_ca) {
    wsr_tls_config tls;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = P("ca2.crt");
    unknown_ca_case("wrong CA", "127.0.0.1", &tls);
}

/* A wrong path: a clear error at wsr_client_new. */
TEST(missing_ca_file) {
    wsr_client_config ccfg;
    wsr_tls_config tls;
    crec cr;
    wsr_error err;
    wsr_client *c;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = P("no-such-ca.crt");
    client_cfg(&ccfg, &cr, "wss://127.0.0.1:1/x", &tls);
    c = wsr_client_new(&ccfg, &err);
    CHECK(c == NULL);
    if (!c) {
        CHECK_EQ_INT(err.code, WSR_ERR_TLS);
        CHECK(strstr(err.message, "no-such-ca.crt") != NULL);
    }
    wsr_client_free(c);
}

#ifdef _WIN32
#include <wincrypt.h>

/* No ca_file/ca_dir/ca_pem on Windows: the client trusts the certificate
   store's roots (wine fills its store from the host's CA bundle). Our test
   CA is not among them, so verification is on and refuses it. */
TEST(system_roots_refuse_an_unknown_ca) {
    wsr_tls_config tls;
    memset(&tls, 0, sizeof tls);
    unknown_ca_case("no CA configured", "localhost", &tls);
}

/* The roots the library reads are the store's: counted here independently
   through CryptoAPI. (Wine fills its ROOT store from the host's CA bundle
   and, unlike Windows, shows no root added at run time, so a handshake
   trusted through the store alone cannot be staged offline; this and the
   refusal above are what can be checked.) */
TEST(system_roots_are_the_stores_own) {
    HCERTSTORE store = CertOpenSystemStoreW(0, L"ROOT");
    PCCERT_CONTEXT cert = NULL;
    mbedtls_x509_crt ca;
    int in_store = 0, loaded;
    CHECK(store != NULL);
    if (!store) return;
    while ((cert = CertEnumCertificatesInStore(store, cert)) != NULL) in_store++;
    CertCloseStore(store, 0);
    mbedtls_x509_crt_init(&ca);
    loaded = wsr__tls_load_system_roots(&ca);
    if (getenv("WSR_TLS_SHOW")) printf("ROOT store: %d certificates, %d loaded\n", in_store, loaded);
    CHECK(in_store > 0);                 /* tools/test-windows.sh installs ca-certificates */
    CHECK(loaded > 0);
    CHECK(loaded <= in_store);
    CHECK(loaded * 10 >= in_store * 9);  /* mbedTLS parses (nearly) all of them */
    mbedtls_x509_crt_free(&ca);
}
#endif

TEST_MAIN()
