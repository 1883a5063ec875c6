/* test_tls.c - wss:// through mbedTLS (WSR_USE_MBEDTLS), client and server.

   The certificates are made at run time with the `openssl` command in a
   fresh mkdtemp directory, removed at the end (a missing openssl is a
   failure, never a skip; tools/deps.sh installs it):
     ca.crt        an EC P-256 CA                      (ca.key)
     server.crt    CN=localhost, SAN DNS:localhost, IP:127.0.0.1, by ca
     expired.crt   the same names and key, valid Jan 2020 only (openssl ca
                   -startdate/-enddate: openssl 3.0 has no -not_after)
     future.crt    the same, valid only from 2070
     other.crt     SAN DNS:other.example only, by ca
     ca2.crt       an unrelated CA; rogue.crt: server.crt's names by ca2
     client.crt    a client certificate by ca (mutual TLS); client2.crt by ca2
     cadir/        a directory holding ca.crt (tls.ca_dir)
     server-enc.key  server.key encrypted with a password

   Our client and our server run in this one thread, polled in turn. Two
   cases run `openssl s_server` (a TLS server we did not write) and play the
   WebSocket server through its stdin/stdout: without -quiet it bridges the
   decrypted stream to them. One case runs build/examples/wss_client (make
   run-tests builds it; WSR_EXAMPLES_DIR overrides the directory; a missing
   binary is a failure) against our server, as a reader would run it. Every
   child is killed and reaped by its pid at the end of its case, on every
   path, and dies with us (PR_SET_PDEATHSIG). Every server binds 127.0.0.1
   port 0.

   WSR_TEST_TIMES=1 prints each case's time; WSR_TLS_SHOW=1 the errors the
   refusals produced; WSR_TEST_TIME_SCALE stretches the deadlines (valgrind). */
#define WSR_USE_MBEDTLS
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static int time_scale(void) {
    const char *s = getenv("WSR_TEST_TIME_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* WSR_TLS_SHOW=1 prints the errors the cases meet. */
static int show(void) {
    const char *s = getenv("WSR_TLS_SHOW");
    return s && *s && *s != '0';
}

static int pumped;
#define PUMP_UNTIL(cond, ms, POLLS)                                          \
    do {                                                                     \
        uint64_t pu_deadline_ = wsr_now_ms() + (uint64_t)(ms) * (uint64_t)time_scale(); \
        pumped = 0;                                                          \
        while (!(pumped = !!(cond)) && wsr_now_ms() < pu_deadline_) { POLLS; } \
    } while (0)
#define PUMP_FOR(ms, POLLS)                                                  \
    do {                                                                     \
        uint64_t pf_until_ = wsr_now_ms() + (uint64_t)(ms);                  \
        while (wsr_now_ms() < pf_until_) { POLLS; }                          \
    } while (0)

static void nap_ms(int ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* ---- child processes ----------------------------------------------------- */

#define CHILD_KEEP ((size_t)8 << 20)   /* output kept per stream */

typedef struct child {
    const char *what;
    pid_t pid;
    int running;
    int group;               /* it leads its own process group */
    int status;
    int in;                  /* write end of its stdin, or -1 */
    int fd[2];               /* read ends of its stdout and stderr, -1 at EOF */
    char *buf[2];
    size_t len[2];
    unsigned char *out;      /* bytes for its stdin not yet written */
    size_t out_len, out_pos;
} child;

static child *g_live[8];     /* running children, killed at exit whatever happens */

static void child_init(child *p, const char *what) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->in = p->fd[0] = p->fd[1] = -1;
}

static void live_add(child *p) {
    int i;
    for (i = 0; i < 8; i++) if (!g_live[i]) { g_live[i] = p; return; }
}
static void live_del(child *p) {
    int i;
    for (i = 0; i < 8; i++) if (g_live[i] == p) g_live[i] = NULL;
}

/* Starts argv (argv[0] an absolute path) in dir. Its stdin is a pipe we
   write (with_stdin) or /dev/null; stdout and stderr are pipes we read.
   With own_group it leads its own process group, so a shell and what it
   started can be killed together. */
static int child_spawn(child *p, char *const argv[], const char *dir, int with_stdin, int own_group) {
    int o[2], e[2], in[2] = {-1, -1}, i;
    pid_t parent = getpid(), pid;
    if (pipe(o) != 0) return 0;
    if (pipe(e) != 0) { close(o[0]); close(o[1]); return 0; }
    if (with_stdin && pipe(in) != 0) { close(o[0]); close(o[1]); close(e[0]); close(e[1]); return 0; }
    pid = fork();
    if (pid < 0) {
        close(o[0]); close(o[1]); close(e[0]); close(e[1]);
        if (with_stdin) { close(in[0]); close(in[1]); }
        return 0;
    }
    if (pid == 0) {
        int fd, nul = with_stdin ? in[0] : open("/dev/null", O_RDONLY);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126);
#endif
        signal(SIGPIPE, SIG_DFL);           /* we ignore it; exec would pass that on */
        if (own_group) setpgid(0, 0);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0) _exit(126);
        for (fd = 3; fd < 1024; fd++) close(fd);
        if (dir && chdir(dir) != 0) _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    if (own_group) setpgid(pid, pid);   /* also here: no race with a kill */
    close(o[1]);
    close(e[1]);
    if (with_stdin) {
        close(in[0]);
        p->in = in[1];
        fcntl(p->in, F_SETFL, fcntl(p->in, F_GETFL) | O_NONBLOCK);
        fcntl(p->in, F_SETFD, FD_CLOEXEC);
    }
    p->pid = pid;
    p->running = 1;
    p->group = own_group;
    p->fd[0] = o[0];
    p->fd[1] = e[0];
    for (i = 0; i < 2; i++) {
        fcntl(p->fd[i], F_SETFL, fcntl(p->fd[i], F_GETFL) | O_NONBLOCK);
        fcntl(p->fd[i], F_SETFD, FD_CLOEXEC);
    }
    live_add(p);
    return 1;
}

/* Writes what is pending for its stdin, reads its output, reaps it if it
   exited. Never blocks. */
static void child_drain(child *p) {
    int i;
    while (p->in >= 0 && p->out_pos < p->out_len) {
        ssize_t n = write(p->in, p->out + p->out_pos, p->out_len - p->out_pos);
        if (n > 0) p->out_pos += (size_t)n;
        else break;                              /* EAGAIN (or EPIPE: it is gone) */
    }
    for (i = 0; i < 2; i++) {
        while (p->fd[i] >= 0) {
            char tmp[65536];
            ssize_t n = read(p->fd[i], tmp, sizeof tmp);
            if (n > 0) {
                size_t take = p->len[i] + (size_t)n > CHILD_KEEP ? CHILD_KEEP - p->len[i] : (size_t)n;
                char *nb = (char *)realloc(p->buf[i], p->len[i] + take + 1);
                if (!nb) break;
                p->buf[i] = nb;
                memcpy(nb + p->len[i], tmp, take);
                p->len[i] += take;
                nb[p->len[i]] = '\0';
            } else if (n == 0) {
                close(p->fd[i]);
                p->fd[i] = -1;
            } else if (errno != EINTR) {
                break;
            }
        }
    }
    if (p->running && waitpid(p->pid, &p->status, WNOHANG) == p->pid) { p->running = 0; live_del(p); }
}

/* Queues bytes for its stdin (written by child_drain, in order). */
static void child_write(child *p, const void *data, size_t n) {
    unsigned char *nb;
    if (p->out_pos == p->out_len) p->out_pos = p->out_len = 0;
    nb = (unsigned char *)realloc(p->out, p->out_len + n + 1);
    if (!nb) return;
    p->out = nb;
    memcpy(p->out + p->out_len, data, n);
    p->out_len += n;
    child_drain(p);
}

static void child_close_stdin(child *p) {
    if (p->in >= 0) { close(p->in); p->in = -1; }
}

/* Kills it by its pid (its group, when it leads one) if it still runs,
   reaps it, reads the rest of its output. Safe to call twice. */
static void child_stop(child *p) {
    int i;
    if (p->running && p->pid > 0) {
        if (p->group) kill(-p->pid, SIGKILL);   /* it and what it started */
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR) {}
        p->running = 0;
        live_del(p);
    }
    child_close_stdin(p);
    child_drain(p);
    for (i = 0; i < 2; i++)
        if (p->fd[i] >= 0) { close(p->fd[i]); p->fd[i] = -1; }
}

static void child_free(child *p) {
    child_stop(p);
    free(p->buf[0]);
    free(p->buf[1]);
    free(p->out);
    p->buf[0] = p->buf[1] = NULL;
    p->out = NULL;
}

static void child_dump(const child *p) {
    static const char *names[2] = {"stdout", "stderr"};
    int i;
    if (!p->pid) return;
    printf("---- %s (pid %d", p->what, (int)p->pid);
    if (p->running) printf(", running");
    else if (WIFEXITED(p->status)) printf(", exit %d", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status)) printf(", signal %d", WTERMSIG(p->status));
    printf(")\n");
    for (i = 0; i < 2; i++) {
        const char *s = p->buf[i] ? p->buf[i] : "";
        size_t n = p->len[i], j;
        if (!n) continue;
        if (n > 3000) { printf("  [%s, first 3000 of %zu bytes]\n", names[i], n); n = 3000; }
        else printf("  [%s]\n", names[i]);
        for (j = 0; j < n; j++) {
            unsigned char ch = (unsigned char)s[j];
            if (ch == '\n' || ch == '\t' || (ch >= 32 && ch < 127)) putchar(ch);
            else printf("\\x%02x", ch);
        }
        putchar('\n');
    }
}

static void kill_live_children(void) {
    int i;
    for (i = 0; i < 8; i++) if (g_live[i]) child_stop(g_live[i]);
}

/* Runs argv to the end (at most ms), output kept in p. 1 if it exited 0. */
static int child_run(child *p, char *const argv[], const char *dir, int ms) {
    if (!child_spawn(p, argv, dir, 0, 1)) return 0;
    PUMP_UNTIL(!p->running, ms, { child_drain(p); if (p->running) nap_ms(2); });
    if (p->running) printf("%s: still running after %d ms: killed\n", p->what, ms * time_scale());
    child_stop(p);
    return p->pid > 0 && WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0;
}

/* ---- the test PKI ---------------------------------------------------------- */

static char g_dir[256];              /* the mkdtemp directory, "" until made */
static char g_openssl[1100];         /* the openssl binary */
static int g_pki = 0;                /* 0 not tried, 1 made, -1 failed */

static const char *P(const char *name) {   /* a path in the PKI directory */
    static char slots[16][512];
    static int next;
    char *s = slots[next++ % 16];
    snprintf(s, sizeof slots[0], "%s/%s", g_dir, name);
    return s;
}

/* Reads a whole file (NUL-terminated), or NULL. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = (char *)malloc((size_t)n + 1)) != NULL) {
        if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
        else b[n] = '\0';
    }
    fclose(f);
    return b;
}

static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        char sub[1024];
        while (d && (de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void at_exit_cleanup(void) {
    kill_live_children();
    if (g_dir[0]) rm_tree(g_dir);
    g_dir[0] = '\0';
}

/* Killed (run.sh's timeout sends SIGTERM; ^C): the same cleanup, best
   effort, then die of the signal. */
static void on_fatal_signal(int sig) {
    at_exit_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int find_openssl(void) {
    const char *path = getenv("PATH");
    char dir[1024];
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
            snprintf(g_openssl, sizeof g_openssl, "%s/openssl", dir);
            if (access(g_openssl, X_OK) == 0) return 1;
        }
        path += n;
        if (*path == ':') path++;
    }
    g_openssl[0] = '\0';
    return 0;
}

static const char pki_script[] =
    "set -eu\n"
    "O=\"$1\"\n"
    "key() { \"$O\" ecparam -name prime256v1 -genkey -noout -out \"$1\"; }\n"
    "cat > ext.cnf <<'EOF'\n"
    "[ca]\n"
    "basicConstraints=critical,CA:TRUE\n"
    "keyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\n"
    "[srv]\n"
    "basicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth\n"
    "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    "[other]\n"
    "basicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth\n"
    "subjectAltName=DNS:other.example\n"
    "[cli]\n"
    "basicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=clientAuth\n"
    "EOF\n"
    "cat > ca.cnf <<'EOF'\n"
    "[ca]\n"
    "default_ca=test_ca\n"
    "[test_ca]\n"
    "database=db/index.txt\n"
    "serial=db/serial\n"
    "new_certs_dir=db\n"
    "default_md=sha256\n"
    "policy=pol\n"
    "unique_subject=no\n"
    "email_in_dn=no\n"
    "[pol]\n"
    "commonName=supplied\n"
    "EOF\n"
    "key ca.key\n"
    "\"$O\" req -x509 -new -key ca.key -subj '/CN=wsr test CA' -days 3650 -sha256 -config ext.cnf -extensions ca -out ca.crt\n"
    "key ca2.key\n"
    "\"$O\" req -x509 -new -key ca2.key -subj '/CN=wsr unrelated CA' -days 3650 -sha256 -config ext.cnf -extensions ca -out ca2.crt\n"
    "sign() {  # csr issuer serial section out\n"
    "  \"$O\" x509 -req -in \"$1\" -CA \"$2.crt\" -CAkey \"$2.key\" -set_serial \"$3\" -days 30 -sha256 "
    "-extfile ext.cnf -extensions \"$4\" -out \"$5\"\n"
    "}\n"
    "key server.key\n"
    "\"$O\" req -new -key server.key -subj /CN=localhost -out server.csr\n"
    "sign server.csr ca 2 srv server.crt\n"
    "sign server.csr ca2 3 srv rogue.crt\n"
    "key other.key\n"
    "\"$O\" req -new -key other.key -subj /CN=other.example -out other.csr\n"
    "sign other.csr ca 4 other other.crt\n"
    "key client.key\n"
    "\"$O\" req -new -key client.key -subj '/CN=wsr test client' -out client.csr\n"
    "sign client.csr ca 5 cli client.crt\n"
    "sign client.csr ca2 6 cli client2.crt\n"
    "mkdir db && : > db/index.txt && echo 10 > db/serial\n"
    "\"$O\" ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in server.csr -notext "
    "-startdate 20200101000000Z -enddate 20200201000000Z -extfile ext.cnf -extensions srv -out expired.crt\n"
    "\"$O\" ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in server.csr -notext "
    "-startdate 20700101000000Z -enddate 20710101000000Z -extfile ext.cnf -extensions srv -out future.crt\n"
    "\"$O\" ec -in server.key -aes256 -passout pass:wsr-secret -out server-enc.key\n"
    "mkdir cadir && cp ca.crt cadir/ca.crt\n"
    "\"$O\" verify -CAfile ca.crt server.crt other.crt client.crt\n";

/* Makes the PKI once; later calls say whether it is there. */
static int pki_ready(void) {
    child sh;
    char *argv[6];
    int ok;
    if (g_pki) return g_pki > 0;
    g_pki = -1;
    atexit(at_exit_cleanup);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGINT, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);        /* a dead child or a closed stdout must not kill us silently */
    if (!find_openssl()) {
        printf("FAIL: the openssl command is not on PATH: it makes the test certificates "
               "(tools/deps.sh installs it; Debian package openssl)\n");
        CHECK(!"openssl missing");
        return 0;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/wsr-tls-XXXXXX");
    if (!mkdtemp(g_dir)) {
        printf("FAIL: mkdtemp: %s\n", strerror(errno));
        g_dir[0] = '\0';
        CHECK(!"mkdtemp");
        return 0;
    }
    argv[0] = (char *)"/bin/sh";
    argv[1] = (char *)"-c";
    argv[2] = (char *)pki_script;
    argv[3] = (char *)"pki";
    argv[4] = g_openssl;
    argv[5] = NULL;
    child_init(&sh, "openssl (making the test PKI)");
    ok = child_run(&sh, argv, g_dir, 60000);
    if (!ok) {
        printf("FAIL: making the test certificates with %s failed\n", g_openssl);
        child_dump(&sh);
    }
    child_free(&sh);
    CHECK(ok);
    if (ok) g_pki = 1;
    return ok;
}

/* ---- our server ------------------------------------------------------------ */

typedef struct srec {
    int opens, closes, errors, messages;
    int echo;                    /* echo every message back */
    wsr_error first_error, close_why;
    char text[16][64];           /* the first text messages */
    size_t bytes;
} srec;

static void s_open(wsr_conn *conn, void *user) { (void)conn; ((srec *)user)->opens++; }
static void s_close(wsr_conn *conn, const wsr_error *why, void *user) {
    srec *r = (srec *)user;
    (void)conn;
    r->closes++;
    r->close_why = *why;
}
static void s_error(wsr_server *s, wsr_conn *conn, const wsr_error *why, void *user) {
    srec *r = (srec *)user;
    (void)s; (void)conn;
    if (r->errors++ == 0) r->first_error = *why;
}
static void s_message(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    srec *r = (srec *)user;
    int i = r->messages++;
    r->bytes += len;
    if (type == WSR_MSG_TEXT && i < 16) {
        size_t n = len < 63 ? len : 63;
        memcpy(r->text[i], data, n);
        r->text[i][n] = '\0';
    }
    if (r->echo) CHECK_EQ_INT(wsr_conn_send(conn, type, data, len), WSR_OK);
}

static void server_cfg(wsr_server_config *cfg, srec *r, const char *cert, const char *key) {
    memset(r, 0, sizeof *r);
    r->echo = 1;
    wsr_server_config_init(cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 0;
    cfg->max_message_size = 32u << 20;
    cfg->ping_interval_ms = 0;
    cfg->handshake_timeout_ms = 5000;
    cfg->tls.cert_file = cert;
    cfg->tls.key_file = key;
    cfg->on_open = s_open;
    cfg->on_close = s_close;
    cfg->on_error = s_error;
    cfg->on_message = s_message;
    cfg->user = r;
}

static wsr_server *server_new(const wsr_server_config *cfg) {
    wsr_error err;
    wsr_server *s = wsr_server_new(cfg, &err);
    if (!s) printf("wsr_server_new: %s (%s)\n", err.message, wsr_strerror(err.code));
    return s;
}

/* ---- our client ------------------------------------------------------------ */

#define MAXM 16
typedef struct crec {
    int opens, closes, ends, reconnecting, messages;
    int warnings;                /* warnings about insecure_skip_verify */
    wsr_error first_close, end_why, first_cause;
    int max_attempt;
    /* the echoes we expect, in order */
    int nexpect;
    const unsigned char *expect[MAXM];
    size_t expect_len[MAXM];
    wsr_msg_type expect_type[MAXM];
    int ok[MAXM];
    size_t got_len[MAXM];
    char log[256];
} crec;

static void c_open(wsr_client *c, const char *sub, void *user) { (void)c; (void)sub; ((crec *)user)->opens++; }
static void c_close(wsr_client *c, const wsr_error *why, void *user) {
    crec *r = (crec *)user;
    (void)c;
    if (r->closes++ == 0) r->first_close = *why;
}
static void c_end(wsr_client *c, const wsr_error *why, void *user) {
    crec *r = (crec *)user;
    (void)c;
    r->ends++;
    r->end_why = *why;
}
static int c_reconnecting(wsr_client *c, int attempt, int delay_ms, const wsr_error *cause, void *user) {
    crec *r = (crec *)user;
    (void)c; (void)delay_ms;
    if (r->reconnecting++ == 0) r->first_cause = *cause;
    if (attempt > r->max_attempt) r->max_attempt = attempt;
    return 1;
}
static void c_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    crec *r = (crec *)user;
    int i = r->messages++;
    (void)c;
    if (i >= MAXM) return;
    r->got_len[i] = len;
    r->ok[i] = i < r->nexpect && type == r->expect_type[i] && len == r->expect_len[i] &&
               (len == 0 || memcmp(data, r->expect[i], len) == 0);
}
static void c_log(int level, const char *msg, void *user) {
    crec *r = (crec *)user;
    if (level == WSR_LOG_WARN && strstr(msg, "insecure_skip_verify")) {
        r->warnings++;
        snprintf(r->log, sizeof r->log, "%s", msg);
    }
}

/* One connection, no keepalive; messages up to 32 MiB. */
static void client_cfg(wsr_client_config *cfg, crec *r, const char *url) {
    memset(r, 0, sizeof *r);
    wsr_client_config_init(cfg);
    cfg->url = url;
    cfg->reconnect = 0;
    cfg->ping_interval_ms = 0;
    cfg->connect_timeout_ms = 10000;
    cfg->max_message_size = 32u << 20;
    cfg->backoff.initial_ms = 40;
    cfg->backoff.max_ms = 200;
    cfg->backoff.jitter = WSR_JITTER_NONE;
    cfg->on_open = c_open;
    cfg->on_close = c_close;
    cfg->on_end = c_end;
    cfg->on_reconnecting = c_reconnecting;
    cfg->on_message = c_message;
    cfg->log_fn = c_log;
    cfg->user = r;
}

static wsr_client *client_new(const wsr_client_config *cfg) {
    wsr_error err;
    wsr_client *c = wsr_client_new(cfg, &err);
    if (!c) printf("wsr_client_new(%s): %s (%s)\n", cfg->url, err.message, wsr_strerror(err.code));
    return c;
}

/* One poll of each; the client waits (up to 1 ms) when nothing is ready. */
#define BOTH(s, c) do { wsr_server_poll((s), 0); wsr_client_poll((c), 1); } while (0)

/* ---- per-case bookkeeping ------------------------------------------------- */

typedef struct tcase { const char *name; uint64_t t0; int failed_before; } tcase;
static tcase case_begin(const char *name) {
    tcase t;
    t.name = name;
    t.t0 = wsr_now_ms();
    t.failed_before = wsr_test_failed;
    return t;
}
static void case_end(const tcase *t) {
    const char *times = getenv("WSR_TEST_TIMES");
    if (times && *times && *times != '0')
        printf("time %-36s %6lld ms%s\n", t->name, (long long)(wsr_now_ms() - t->t0),
               wsr_test_failed != t->failed_before ? "  FAILED" : "");
}

/* ---- payloads -------------------------------------------------------------- */

/* A different pattern per size (a swapped or shifted echo shows). */
static unsigned char *pattern(size_t n, unsigned seed) {
    unsigned char *p = (unsigned char *)malloc(n ? n : 1);
    size_t i;
    if (p) for (i = 0; i < n; i++) p[i] = (unsigned char)(((i % 251) * 7 + 3 + seed * 13) & 255);
    return p;
}

static const size_t echo_sizes[] = {0, 1, 125, 126, 65535, 65536, (size_t)1 << 20, (size_t)16 << 20};
#define NSIZES (int)(sizeof echo_sizes / sizeof echo_sizes[0])
static const char echo_text[] = "wss: h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80";

/* Our client against our TLS server: every size of echo_sizes (binary),
   then a text, byte for byte, in order; then the close handshake. */
static void echo_case(const char *name, const char *host, const wsr_tls_config *ctls, const wsr_tls_config *stls) {
    tcase t = case_begin(name);
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr;
    crec cr;
    wsr_server *s;
    wsr_client *c = NULL;
    unsigned char *pl[MAXM];
    char url[128];
    int i, n = 0;
    memset(pl, 0, sizeof pl);
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg(&scfg, &sr, P("server.crt"), P("server.key"));
    if (stls) scfg.tls = *stls;
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { case_end(&t); return; }
    snprintf(url, sizeof url, "wss://%s:%d/echo", host, wsr_server_port(s));
    client_cfg(&ccfg, &cr, url);
    ccfg.tls = *ctls;
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        for (i = 0; i < NSIZES; i++) {
            pl[n] = pattern(echo_sizes[i], (unsigned)i);
            CHECK(pl[n] != NULL);
            if (!pl[n]) break;
            cr.expect[n] = pl[n];
            cr.expect_len[n] = echo_sizes[i];
            cr.expect_type[n] = WSR_MSG_BINARY;
            CHECK_EQ_INT(wsr_send_binary(c, pl[n], echo_sizes[i]), WSR_OK);
            n++;
        }
        cr.expect[n] = (const unsigned char *)echo_text;
        cr.expect_len[n] = strlen(echo_text);
        cr.expect_type[n] = WSR_MSG_TEXT;
        CHECK_EQ_INT(wsr_send_text(c, echo_text, strlen(echo_text)), WSR_OK);
        n++;
        cr.nexpect = n;
        PUMP_UNTIL(cr.messages >= n || wsr_client_state(c) == WSR_STATE_CLOSED, 60000, BOTH(s, c));
        CHECK_EQ_INT(cr.opens, 1);
        CHECK_EQ_INT(cr.closes, 0);
        CHECK_EQ_INT(sr.opens, 1);
        CHECK_EQ_INT(sr.errors, 0);
        CHECK_EQ_INT(cr.messages, n);
        CHECK_EQ_INT(sr.messages, n);
        for (i = 0; i < n && i < cr.messages; i++) {
            if (!cr.ok[i])
                printf("%s: echo %d (%zu bytes sent) came back as %zu bytes that differ\n", name, i, cr.expect_len[i],
                       cr.got_len[i]);
            CHECK(cr.ok[i]);
        }
        if (cr.closes) printf("%s: client closed: %s\n", name, cr.first_close.message);
        if (sr.errors) printf("%s: server error: %s\n", name, sr.first_error.message);
        CHECK_EQ_INT(wsr_client_close(c, 1000, "done"), WSR_OK);
        PUMP_UNTIL(wsr_client_state(c) == WSR_STATE_CLOSED && sr.closes == 1, 10000, BOTH(s, c));
        CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
        CHECK_EQ_INT(cr.end_why.code, WSR_ERR_CLOSED);
        CHECK_EQ_INT(cr.end_why.close_code, 1000);
        CHECK_EQ_INT(sr.closes, 1);
        CHECK_EQ_INT(sr.close_why.close_code, 1000);
        CHECK_EQ_INT(cr.warnings, 0);
    }
    wsr_client_free(c);
    wsr_server_free(s);
    for (i = 0; i < n; i++) free(pl[i]);
    case_end(&t);
}

TEST(echo_ip_san) {
    wsr_tls_config tls;
    if (!pki_ready()) return;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = P("ca.crt");
    echo_case("echo wss://127.0.0.1 (ca_file)", "127.0.0.1", &tls, NULL);
}

TEST(echo_hostname_sni) {
    wsr_tls_config tls;
    if (!pki_ready()) return;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = P("ca.crt");
    echo_case("echo wss://localhost (ca_file)", "localhost", &tls, NULL);
}

/* The CA as PEM text; the server's certificate and key as PEM text too. */
TEST(echo_ca_pem) {
    wsr_tls_config ctls, stls;
    char *ca, *crt, *key;
    if (!pki_ready()) return;
    ca = slurp(P("ca.crt"));
    crt = slurp(P("server.crt"));
    key = slurp(P("server.key"));
    CHECK(ca && crt && key);
    if (ca && crt && key) {
        memset(&ctls, 0, sizeof ctls);
        memset(&stls, 0, sizeof stls);
        ctls.ca_pem = ca;
        stls.cert_pem = crt;
        stls.key_pem = key;
        echo_case("echo wss://localhost (ca_pem, cert_pem)", "localhost", &ctls, &stls);
    }
    free(ca);
    free(crt);
    free(key);
}

TEST(echo_ca_dir) {
    wsr_tls_config tls;
    if (!pki_ready()) return;
    memset(&tls, 0, sizeof tls);
    tls.ca_dir = P("cadir");
    echo_case("echo wss://127.0.0.1 (ca_dir)", "127.0.0.1", &tls, NULL);
}

/* The server's key encrypted, opened with key_password. */
TEST(echo_encrypted_key) {
    wsr_tls_config ctls, stls;
    if (!pki_ready()) return;
    memset(&ctls, 0, sizeof ctls);
    memset(&stls, 0, sizeof stls);
    ctls.ca_file = P("ca.crt");
    stls.cert_file = P("server.crt");
    stls.key_file = P("server-enc.key");
    stls.key_password = "wsr-secret";
    echo_case("echo, server key with a password", "127.0.0.1", &ctls, &stls);
}

/* ---- certificates refused ------------------------------------------------- */

/* Our client (reconnect on, a short backoff) against our server with
   cert/key. The certificate must be refused: WSR_ERR_TLS_CERT whose
   message names every reason in `want` and none in `not`, permanent,
   on_end once, no retry, and exactly one connection reached the server. */
static void refuse_case(const char *name, const char *cert, const char *key, const char *host,
                        const char *server_name, const char *const *want, const char *const *not) {
    tcase t = case_begin(name);
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr;
    crec cr;
    wsr_server *s;
    wsr_client *c = NULL;
    char url[128];
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg(&scfg, &sr, cert, key);
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { case_end(&t); return; }
    snprintf(url, sizeof url, "wss://%s:%d/refused", host, wsr_server_port(s));
    client_cfg(&ccfg, &cr, url);
    ccfg.reconnect = 1;                  /* it must still not retry */
    ccfg.tls.ca_file = P("ca.crt");
    ccfg.tls.server_name = server_name;
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        const wsr_error *e;
        CHECK_EQ_INT(wsr_send_text(c, "never", 5), WSR_OK);
        PUMP_UNTIL(cr.ends > 0, 10000, BOTH(s, c));
        /* Long enough for several retries at this backoff, had there been any. */
        PUMP_FOR(300, BOTH(s, c));
        e = wsr_client_error(c);
        CHECK_EQ_INT(cr.ends, 1);
        CHECK_EQ_INT(cr.opens, 0);
        CHECK_EQ_INT(cr.reconnecting, 0);
        CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
        CHECK_EQ_INT(cr.end_why.code, WSR_ERR_TLS_CERT);
        CHECK_EQ_INT(e->code, WSR_ERR_TLS_CERT);
        CHECK_EQ_INT(cr.end_why.transient, 0);
        CHECK_EQ_INT(wsr_error_retryable(&cr.end_why), 0);
        if (show()) printf("  %s: client: %s; server: %s\n", name, cr.end_why.message, sr.first_error.message);
        for (; want && *want; want++) {
            if (!strstr(cr.end_why.message, *want))
                printf("%s: \"%s\" does not say \"%s\"\n", name, cr.end_why.message, *want);
            CHECK(strstr(cr.end_why.message, *want) != NULL);
        }
        for (; not && *not; not++) {
            if (strstr(cr.end_why.message, *not))
                printf("%s: \"%s\" should not say \"%s\"\n", name, cr.end_why.message, *not);
            CHECK(strstr(cr.end_why.message, *not) == NULL);
        }
        /* One TCP connection, which the server saw fail in its TLS handshake. */
        CHECK_EQ_INT(sr.opens, 0);
        CHECK_EQ_INT(sr.errors, 1);
        CHECK(sr.first_error.code == WSR_ERR_TLS || sr.first_error.code == WSR_ERR_EOF);
        CHECK_EQ_INT(sr.messages, 0);
        CHECK_EQ_INT(wsr_server_conn_count(s), 0);
    }
    wsr_client_free(c);
    wsr_server_free(s);
    case_end(&t);
}

static const char *const k_unknown[] = {"unknown CA", NULL};
static const char *const k_wrong_host[] = {"wrong host", NULL};
static const char *const k_expired[] = {"expired", NULL};
static const char *const k_future[] = {"not valid yet", NULL};
static const char *const k_not_ca[] = {"unknown CA", "expired", NULL};
static const char *const k_not_host[] = {"wrong host", "unknown CA", NULL};
static const char *const k_not_date[] = {"expired", "not valid yet", NULL};

TEST(refuse_unknown_ca) {
    if (!pki_ready()) return;
    refuse_case("wrong CA (rogue.crt by ca2), by IP", P("rogue.crt"), P("server.key"), "127.0.0.1", NULL, k_unknown,
                k_not_date);
    refuse_case("wrong CA (rogue.crt by ca2), by name", P("rogue.crt"), P("server.key"), "localhost", NULL, k_unknown,
                k_not_date);
}

TEST(refuse_wrong_host) {
    if (!pki_ready()) return;
    /* The right certificate, but we ask for another name. */
    refuse_case("wrong host: server_name other.example", P("server.crt"), P("server.key"), "127.0.0.1",
                "other.example", k_wrong_host, k_not_ca);
    /* A certificate for other.example only, reached by IP and by name. */
    refuse_case("wrong host: other.crt by IP", P("other.crt"), P("other.key"), "127.0.0.1", NULL, k_wrong_host,
                k_not_ca);
    refuse_case("wrong host: other.crt by localhost", P("other.crt"), P("other.key"), "localhost", NULL,
                k_wrong_host, k_not_ca);
}

TEST(refuse_expired) {
    if (!pki_ready()) return;
    refuse_case("expired, by name", P("expired.crt"), P("server.key"), "localhost", NULL, k_expired, k_not_host);
    refuse_case("expired, by IP", P("expired.crt"), P("server.key"), "127.0.0.1", NULL, k_expired, k_not_host);
    refuse_case("not valid yet", P("future.crt"), P("server.key"), "localhost", NULL, k_future, k_not_host);
}

/* Connects once (no reconnect) and exchanges one message. */
static void accept_case(const char *name, const char *cert, const char *key, const char *host,
                        const wsr_tls_config *ctls, int want_warning) {
    tcase t = case_begin(name);
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr;
    crec cr;
    wsr_server *s;
    wsr_client *c = NULL;
    char url[128];
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg(&scfg, &sr, cert, key);
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { case_end(&t); return; }
    snprintf(url, sizeof url, "wss://%s:%d/ok", host, wsr_server_port(s));
    client_cfg(&ccfg, &cr, url);
    ccfg.tls = *ctls;
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        cr.expect[0] = (const unsigned char *)"ping?";
        cr.expect_len[0] = 5;
        cr.expect_type[0] = WSR_MSG_TEXT;
        cr.nexpect = 1;
        CHECK_EQ_INT(wsr_send_text(c, "ping?", 5), WSR_OK);
        PUMP_UNTIL(cr.messages >= 1 || cr.ends, 10000, BOTH(s, c));
        if (cr.ends) printf("%s: client ended: %s\n", name, cr.end_why.message);
        CHECK_EQ_INT(cr.opens, 1);
        CHECK_EQ_INT(cr.messages, 1);
        CHECK(cr.ok[0]);
        CHECK_EQ_INT(sr.opens, 1);
        CHECK_EQ_INT(sr.errors, 0);
        if (want_warning) {
            CHECK(cr.warnings >= 1);
            CHECK(strstr(cr.log, "insecure_skip_verify") != NULL);
        } else {
            CHECK_EQ_INT(cr.warnings, 0);
        }
    }
    wsr_client_free(c);
    wsr_server_free(s);
    case_end(&t);
}

/* insecure_skip_verify accepts what verification refuses (with a warning). */
TEST(insecure_skip_verify) {
    wsr_tls_config tls;
    if (!pki_ready()) return;
    memset(&tls, 0, sizeof tls);
    tls.insecure_skip_verify = 1;
    accept_case("insecure_skip_verify: wrong CA", P("rogue.crt"), P("server.key"), "127.0.0.1", &tls, 1);
    accept_case("insecure_skip_verify: wrong host", P("other.crt"), P("other.key"), "127.0.0.1", &tls, 1);
    accept_case("insecure_skip_verify: expired", P("expired.crt"), P("server.key"), "localhost", &tls, 1);
    /* Even with a CA given that does not match. */
    tls.ca_file = P("ca2.crt");
    accept_case("insecure_skip_verify: ca2 given", P("server.crt"), P("server.key"), "localhost", &tls, 1);
}

/* tls.server_name is the name verified instead of the URL's host: other.crt
   reached by IP as other.example, server.crt by IP as localhost. */
TEST(server_name_override) {
    wsr_tls_config tls;
    if (!pki_ready()) return;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = P("ca.crt");
    tls.server_name = "other.example";
    accept_case("server_name other.example on other.crt", P("other.crt"), P("other.key"), "127.0.0.1", &tls, 0);
    tls.server_name = "localhost";
    accept_case("server_name localhost on server.crt", P("server.crt"), P("server.key"), "127.0.0.1", &tls, 0);
}

/* ---- openssl s_server: a TLS server we did not write ------------------------
   We play the WebSocket server through s_server's stdin/stdout. Without
   -quiet, s_server reads certain letters at the start of a chunk of its
   stdin as commands (Q, q: quit; P: cleartext into the stream; S: stats),
   so what we write starts with 'H' (the 101) or a frame header (0x81,
   0x82, 0x88), is written one frame at a time, and binary payloads use
   only bytes >= 0x80. */

typedef struct bridge {
    child ss;
    int port;
    size_t at;                   /* where in its stdout the next client bytes start */
} bridge;

static int bridge_start(bridge *b, const char *const *extra) {
    char *argv[24];
    int n = 0;
    const char *a;
    memset(b, 0, sizeof *b);
    child_init(&b->ss, "openssl s_server");
    b->port = -1;
    if (!pki_ready()) return 0;
    /* s_server prints its notes (the SNI name among them) through stdio,
       fully buffered into a pipe, but the session data with write(): line
       buffering (coreutils' stdbuf) makes each note arrive when printed. */
    if (access("/usr/bin/stdbuf", X_OK) == 0) {
        argv[n++] = (char *)"/usr/bin/stdbuf";
        argv[n++] = (char *)"-oL";
    }
    argv[n++] = g_openssl;
    argv[n++] = (char *)"s_server";
    argv[n++] = (char *)"-accept";
    argv[n++] = (char *)"127.0.0.1:0";
    while (extra && *extra && n < 23) argv[n++] = (char *)*extra++;
    argv[n] = NULL;
    if (!child_spawn(&b->ss, argv, g_dir, 1, 0)) {
        printf("could not start %s: %s\n", g_openssl, strerror(errno));
        return 0;
    }
    PUMP_UNTIL((b->ss.buf[0] && strstr(b->ss.buf[0], "ACCEPT 127.0.0.1:") && strchr(strstr(b->ss.buf[0], "ACCEPT"), '\n')) ||
                   !b->ss.running,
               20000, { child_drain(&b->ss); nap_ms(2); });
    if (b->ss.buf[0] && (a = strstr(b->ss.buf[0], "ACCEPT 127.0.0.1:")) != NULL) b->port = atoi(a + 17);
    if (b->port <= 0) {
        printf("openssl s_server printed no \"ACCEPT 127.0.0.1:<port>\"\n");
        child_stop(&b->ss);
        child_dump(&b->ss);
        return 0;
    }
    return 1;
}

static const char *mem_find(const char *hay, size_t n, const char *needle) {
    size_t k = strlen(needle), i;
    for (i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return hay + i;
    return NULL;
}

/* Once the upgrade request is in: answers 101. 1 when done. */
static int bridge_upgrade(bridge *b) {
    const char *s = b->ss.buf[0], *get, *end, *line;
    char key[64], accept[29], resp[256];
    size_t klen = 0;
    if (!s) return 0;
    get = mem_find(s + b->at, b->ss.len[0] - b->at, "GET /");
    if (!get) return 0;
    end = mem_find(get, b->ss.len[0] - (size_t)(get - s), "\r\n\r\n");
    if (!end) return 0;
    for (line = get; line < end; line = strstr(line, "\r\n") + 2) {
        static const char name[] = "sec-websocket-key:";
        size_t i;
        for (i = 0; i < sizeof name - 1 && tolower((unsigned char)line[i]) == name[i]; i++) {}
        if (i == sizeof name - 1) {
            const char *v = line + i, *e = strstr(v, "\r\n");
            while (*v == ' ') v++;
            klen = (size_t)(e - v);
            if (klen >= sizeof key) klen = 0;
            else memcpy(key, v, klen);
            break;
        }
    }
    CHECK_EQ_INT(klen, 24);
    if (klen != 24) return 0;
    key[klen] = '\0';
    wsr_accept_key(key, klen, accept);
    snprintf(resp, sizeof resp,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    child_write(&b->ss, resp, strlen(resp));
    b->at = (size_t)(end - s) + 4;
    return 1;
}

/* A whole client frame at b->at: checks the mask bit, unmasks. 1 when one
   was taken (payload malloc'ed into *data). */
static int bridge_frame(bridge *b, int *opcode, unsigned char **data, size_t *len) {
    const unsigned char *p = (const unsigned char *)b->ss.buf[0] + b->at;
    size_t avail = b->ss.len[0] - b->at, hl = 2, n, i;
    unsigned char key[4];
    if (!b->ss.buf[0] || avail < 2) return 0;
    n = p[1] & 0x7f;
    if (n == 126) hl += 2;
    if (n == 127) hl += 8;
    hl += 4;
    if (avail < hl) return 0;
    if (n == 126) n = (size_t)p[2] << 8 | p[3];
    else if (n == 127) for (n = 0, i = 2; i < 10; i++) n = n << 8 | p[i];
    if (avail - hl < n) return 0;
    CHECK(p[1] & 0x80);                 /* a client masks */
    CHECK(p[0] & 0x80);                 /* FIN: we never fragment */
    *opcode = p[0] & 0x0f;
    memcpy(key, p + hl - 4, 4);
    *data = (unsigned char *)malloc(n ? n : 1);
    if (!*data) return 0;
    for (i = 0; i < n; i++) (*data)[i] = p[hl + i] ^ key[i & 3];
    *len = n;
    b->at += hl + n;
    return 1;
}

/* An unmasked server frame, written in one piece. */
static void bridge_send(bridge *b, int opcode, const unsigned char *data, size_t len) {
    unsigned char *f = (unsigned char *)malloc(len + WSR_MAX_FRAME_HEADER);
    size_t h;
    if (!f) return;
    h = wsr_frame_header(f, 1, opcode, len, NULL);
    if (len) memcpy(f + h, data, len);
    child_write(&b->ss, f, h + len);
    free(f);
}

#define BPOLL(c, b) do { wsr_client_poll((c), 1); child_drain(&(b)->ss); } while (0)

/* The upgrade through s_server: 1 once our client is open. */
static int bridge_open(bridge *b, wsr_client *c, crec *cr, const char *name) {
    int upgraded = 0;
    PUMP_UNTIL((upgraded = bridge_upgrade(b)) != 0 || wsr_client_state(c) == WSR_STATE_CLOSED, 10000, BPOLL(c, b));
    CHECK(upgraded);
    PUMP_UNTIL(cr->opens == 1 || wsr_client_state(c) == WSR_STATE_CLOSED, 10000, BPOLL(c, b));
    CHECK_EQ_INT(cr->opens, 1);
    if (cr->opens != 1) printf("%s: client did not open: %s\n", name, wsr_client_error(c)->message);
    return cr->opens == 1;
}

/* Our client sends p (message number i); we check what s_server hands us
   and echo it; the client must get it back unchanged. 1 if all went well. */
static int bridge_echo(bridge *b, wsr_client *c, crec *cr, int i, wsr_msg_type type, const unsigned char *p,
                       size_t sz, const char *name) {
    unsigned char *got = NULL;
    size_t glen = 0;
    int op = 0, framed = 0;
    cr->expect[i] = p;
    cr->expect_len[i] = sz;
    cr->expect_type[i] = type;
    cr->nexpect = i + 1;
    CHECK_EQ_INT(wsr_send(c, type, p, sz), WSR_OK);
    PUMP_UNTIL((framed = bridge_frame(b, &op, &got, &glen)) != 0 || wsr_client_state(c) == WSR_STATE_CLOSED,
               10000, BPOLL(c, b));
    CHECK(framed);
    if (!framed) return 0;
    CHECK_EQ_INT(op, type == WSR_MSG_TEXT ? WSR_OP_TEXT : WSR_OP_BINARY);
    CHECK_EQ_INT(glen, sz);
    CHECK(glen == sz && (sz == 0 || memcmp(got, p, sz) == 0));
    bridge_send(b, op, got, glen);
    free(got);
    PUMP_UNTIL(cr->messages > i || wsr_client_state(c) == WSR_STATE_CLOSED, 10000, BPOLL(c, b));
    CHECK_EQ_INT(cr->messages, i + 1);
    if (cr->messages > i && !cr->ok[i]) printf("%s: echo of %zu bytes differs\n", name, sz);
    CHECK(cr->messages > i && cr->ok[i]);
    return cr->messages > i && cr->ok[i];
}

/* Our close; we answer it as a server does, then end s_server's input: it
   sends close_notify, closes the TCP connection, and exits. */
static void bridge_close(bridge *b, wsr_client *c, crec *cr) {
    unsigned char *got = NULL;
    size_t glen = 0;
    int op = 0, framed = 0;
    CHECK_EQ_INT(wsr_client_close(c, 1000, "bye"), WSR_OK);
    PUMP_UNTIL((framed = bridge_frame(b, &op, &got, &glen)) != 0 || wsr_client_state(c) == WSR_STATE_CLOSED,
               10000, BPOLL(c, b));
    CHECK(framed);
    if (framed) {
        CHECK_EQ_INT(op, WSR_OP_CLOSE);
        CHECK(glen == 5 && got[0] == 0x03 && got[1] == 0xe8 && memcmp(got + 2, "bye", 3) == 0);
        free(got);
        bridge_send(b, WSR_OP_CLOSE, (const unsigned char *)"\x03\xe8", 2);
        PUMP_UNTIL(b->ss.out_pos == b->ss.out_len, 5000, BPOLL(c, b));
        child_close_stdin(&b->ss);
    }
    PUMP_UNTIL(wsr_client_state(c) == WSR_STATE_CLOSED, 10000, BPOLL(c, b));
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_CLOSED);
    CHECK_EQ_INT(cr->end_why.code, WSR_ERR_CLOSED);
    CHECK_EQ_INT(cr->end_why.close_code, 1000);
}

/* Binary payloads of these sizes (bytes >= 0x80), then a text. */
static void bridge_session(bridge *b, wsr_client *c, crec *cr, const char *name) {
    static const size_t sizes[] = {0, 1, 125, 126, 4000, 65535, 65536, 70000};
    int i, n = (int)(sizeof sizes / sizeof sizes[0]);
    unsigned char *pl[MAXM];
    memset(pl, 0, sizeof pl);
    if (!bridge_open(b, c, cr, name)) return;
    for (i = 0; i < n; i++) {
        size_t k;
        if (!(pl[i] = (unsigned char *)malloc(sizes[i] ? sizes[i] : 1))) break;
        for (k = 0; k < sizes[i]; k++) pl[i][k] = (unsigned char)(0x80 | ((k * 7 + (size_t)i) & 0x7f));
        if (!bridge_echo(b, c, cr, i, WSR_MSG_BINARY, pl[i], sizes[i], name)) break;
    }
    if (i == n) bridge_echo(b, c, cr, n, WSR_MSG_TEXT, (const unsigned char *)"hello", 5, name);
    bridge_close(b, c, cr);
    for (i = 0; i < n; i++) free(pl[i]);
}

static int count_in(const char *hay, const char *needle) {
    int n = 0;
    while (hay && (hay = strstr(hay, needle)) != NULL) { n++; hay++; }
    return n;
}

TEST(openssl_s_server_echo) {
    tcase t = case_begin("openssl s_server: echo wss://127.0.0.1");
    static const char *const args[] = {"-cert", "server.crt", "-key", "server.key", NULL};
    bridge b;
    wsr_client_config ccfg;
    crec cr;
    wsr_client *c = NULL;
    char url[128];
    if (!bridge_start(&b, args)) {
        CHECK(!"openssl s_server did not start");
        child_free(&b.ss);
        case_end(&t);
        return;
    }
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/openssl", b.port);
    client_cfg(&ccfg, &cr, url);
    ccfg.tls.ca_file = P("ca.crt");
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) bridge_session(&b, c, &cr, "s_server echo");
    wsr_client_free(c);
    child_stop(&b.ss);
    if (wsr_test_failed != t.failed_before) child_dump(&b.ss);
    child_free(&b.ss);
    case_end(&t);
}

/* SNI: s_server's default certificate is other.crt; only a client that
   sends the name "localhost" gets server.crt (-servername, -cert2), and
   s_server prints the name it got. Three connections to one s_server:
   1. wss://127.0.0.1: an IP literal is not sent (RFC 6066 §3), so the
      default certificate comes, refused as the wrong host;
   2. wss://127.0.0.1 with tls.server_name "localhost": that name is sent
      and verified, and a message goes both ways;
   3. wss://localhost: the URL's host is sent; a whole session. */
TEST(openssl_s_server_sni) {
    tcase t = case_begin("openssl s_server: SNI");
    static const char *const args[] = {"-cert", "other.crt", "-key", "other.key", "-servername", "localhost",
                                       "-cert2", "server.crt", "-key2", "server.key", NULL};
    static const char sni_line[] = "Hostname in TLS extension: \"localhost\"";
    bridge b;
    wsr_client_config ccfg;
    crec cr;
    wsr_client *c = NULL;
    char url[128];
    if (!bridge_start(&b, args)) {
        CHECK(!"openssl s_server did not start");
        child_free(&b.ss);
        case_end(&t);
        return;
    }
    /* 1. By IP: no SNI, the default certificate, refused. */
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/ip", b.port);
    client_cfg(&ccfg, &cr, url);
    ccfg.tls.ca_file = P("ca.crt");
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        PUMP_UNTIL(cr.ends > 0, 10000, BPOLL(c, &b));
        CHECK_EQ_INT(cr.ends, 1);
        CHECK_EQ_INT(cr.end_why.code, WSR_ERR_TLS_CERT);
        CHECK(strstr(cr.end_why.message, "wrong host") != NULL);
        PUMP_FOR(200, child_drain(&b.ss); nap_ms(2));
        CHECK_EQ_INT(count_in(b.ss.buf[0], "Hostname in TLS extension"), 0);
    }
    wsr_client_free(c);
    c = NULL;
    /* 2. By IP, tls.server_name "localhost": sent as SNI and verified. */
    PUMP_FOR(50, child_drain(&b.ss); nap_ms(2));
    b.at = b.ss.len[0];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/server_name", b.port);
    client_cfg(&ccfg, &cr, url);
    ccfg.tls.ca_file = P("ca.crt");
    ccfg.tls.server_name = "localhost";
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c && bridge_open(&b, c, &cr, "s_server server_name"))
        bridge_echo(&b, c, &cr, 0, WSR_MSG_TEXT, (const unsigned char *)"named", 5, "s_server server_name");
    if (c && cr.ends) printf("server_name \"localhost\" by IP: %s\n", cr.end_why.message);
    {
        /* s_server prints the name in its own time (seconds on a busy machine). */
        uint64_t until = wsr_now_ms() + 10000;
        while (count_in(b.ss.buf[0], sni_line) < 1 && wsr_now_ms() < until) { child_drain(&b.ss); nap_ms(2); }
    }
    CHECK_EQ_INT(count_in(b.ss.buf[0], sni_line), 1);
    wsr_client_free(c);              /* abruptly: s_server goes back to accepting */
    c = NULL;
    /* 3. By name: SNI "localhost", server.crt, and a whole session. */
    PUMP_FOR(100, child_drain(&b.ss); nap_ms(2));
    b.at = b.ss.len[0];
    snprintf(url, sizeof url, "wss://localhost:%d/sni", b.port);
    client_cfg(&ccfg, &cr, url);
    ccfg.tls.ca_file = P("ca.crt");
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        bridge_session(&b, c, &cr, "s_server SNI");
        {
            /* s_server prints the name in its own time: read its output a while. */
            uint64_t until = wsr_now_ms() + 10000;
            while (count_in(b.ss.buf[0], sni_line) < 2 && wsr_now_ms() < until) { child_drain(&b.ss); nap_ms(2); }
        }
        CHECK_EQ_INT(count_in(b.ss.buf[0], sni_line), 2);
    }
    wsr_client_free(c);
    child_stop(&b.ss);
    if (wsr_test_failed != t.failed_before) child_dump(&b.ss);
    child_free(&b.ss);
    case_end(&t);
}

/* ---- reconnection across a restart of the TLS server ------------------------ */

TEST(reconnect_across_restart) {
    tcase t = case_begin("reconnect across a TLS server restart");
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr, sr2;
    crec cr;
    wsr_server *s, *s2 = NULL;
    wsr_client *c = NULL;
    char url[128];
    int port;
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg(&scfg, &sr, P("server.crt"), P("server.key"));
    sr.echo = 0;
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { case_end(&t); return; }
    port = wsr_server_port(s);
    snprintf(url, sizeof url, "wss://localhost:%d/again", port);
    client_cfg(&ccfg, &cr, url);
    ccfg.reconnect = 1;
    ccfg.backoff.min_uptime_ms = 0;
    ccfg.tls.ca_file = P("ca.crt");
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        CHECK_EQ_INT(wsr_send_text(c, "first", 5), WSR_OK);
        PUMP_UNTIL(sr.messages == 1 || cr.ends, 10000, BOTH(s, c));
        CHECK_EQ_INT(cr.opens, 1);
        CHECK_EQ_INT(sr.messages, 1);
        CHECK_EQ_STR(sr.text[0], "first");
        /* The server goes away (close_notify, then the socket closes). */
        wsr_server_free(s);
        s = NULL;
        PUMP_UNTIL(cr.closes == 1, 5000, wsr_client_poll(c, 5));
        CHECK_EQ_INT(cr.closes, 1);
        if (show()) printf("  restart: the client saw: %s\n", cr.first_close.message);
        /* close_notify, then the end of the stream: worth reconnecting. */
        CHECK(cr.first_close.code == WSR_ERR_EOF || cr.first_close.code == WSR_ERR_RESET);
        CHECK_EQ_INT(cr.first_close.transient, 1);
        CHECK(wsr_error_retryable(&cr.first_close));
        /* Queued while down; refused connections meanwhile. */
        CHECK_EQ_INT(wsr_send_text(c, "q1", 2), WSR_OK);
        CHECK_EQ_INT(wsr_send_text(c, "q2", 2), WSR_OK);
        CHECK_EQ_INT(wsr_send_binary(c, "q3", 2), WSR_OK);
        CHECK_EQ_INT(wsr_send_text(c, "q4", 2), WSR_OK);
        PUMP_FOR(300, wsr_client_poll(c, 5));
        CHECK(cr.reconnecting >= 2);
        CHECK_EQ_INT(cr.opens, 1);
        CHECK_EQ_INT(wsr_client_queued_messages(c), 4);
        /* A new server on the same port. */
        server_cfg(&scfg, &sr2, P("server.crt"), P("server.key"));
        sr2.echo = 0;
        scfg.port = port;
        s2 = server_new(&scfg);
        CHECK(s2 != NULL);
        if (s2) {
            PUMP_UNTIL(sr2.messages >= 4 || cr.ends, 10000, BOTH(s2, c));
            CHECK_EQ_INT(cr.opens, 2);
            CHECK_EQ_INT(cr.ends, 0);
            CHECK_EQ_INT(sr2.opens, 1);
            CHECK_EQ_INT(sr2.messages, 4);
            CHECK_EQ_STR(sr2.text[0], "q1");
            CHECK_EQ_STR(sr2.text[1], "q2");
            CHECK_EQ_STR(sr2.text[3], "q4");
            CHECK_EQ_INT(sr2.bytes, 8);
            CHECK_EQ_INT(wsr_client_queued_messages(c), 0);
            CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
        }
    }
    wsr_client_free(c);
    wsr_server_free(s);
    wsr_server_free(s2);
    case_end(&t);
}

/* ---- bytes that mbedTLS holds --------------------------------------------
   mbedTLS decrypts a TLS record whole; when our read buffer fills in the
   middle of a record, the rest stays inside mbedTLS, where poll() cannot
   see it. The server reads at most 16 times per poll (the client 64): if
   the last of those reads fills the buffer in the middle of the last
   record the peer sent, the socket is empty and the rest of the message
   must still be delivered, without waiting for more traffic.
   Made so: the client's "x" goes out alone (a 7-byte record), then one
   frame of exactly 64 records of 16384 bytes (1048562 bytes of payload
   and a 14-byte header), all written before the server reads. The server
   then reads 16 times 65536 bytes, and the last 7 bytes of the frame are
   left inside mbedTLS. */
TEST(server_reads_what_mbedtls_holds) {
    tcase t = case_begin("server: bytes held inside mbedTLS");
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr;
    crec cr;
    wsr_server *s;
    wsr_client *c = NULL;
    char url[128];
    const size_t big = 64 * 16384 - 14;
    unsigned char *p = pattern(big, 7);
    if (!pki_ready() || !p) { free(p); case_end(&t); return; }
    server_cfg(&scfg, &sr, P("server.crt"), P("server.key"));
    sr.echo = 0;
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { free(p); case_end(&t); return; }
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/held", wsr_server_port(s));
    client_cfg(&ccfg, &cr, url);
    ccfg.tls.ca_file = P("ca.crt");
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        PUMP_UNTIL(cr.opens == 1 && sr.opens == 1, 10000, BOTH(s, c));
        CHECK_EQ_INT(cr.opens, 1);
        CHECK_EQ_INT(wsr_send_text(c, "x", 1), WSR_OK);
        PUMP_UNTIL(wsr_client_queued_messages(c) == 0, 5000, wsr_client_poll(c, 1));
        CHECK_EQ_INT(wsr_send_binary(c, p, big), WSR_OK);
        PUMP_UNTIL(wsr_client_queued_messages(c) == 0, 5000, wsr_client_poll(c, 1));
        CHECK_EQ_INT(wsr_client_queued_messages(c), 0);
        PUMP_FOR(20, nap_ms(1));
        /* Only the server polls now: nothing more arrives on its socket. */
        PUMP_UNTIL(sr.messages == 2, 2000, wsr_server_poll(s, 10));
        CHECK_EQ_INT(sr.messages, 2);
        CHECK_EQ_INT(sr.bytes, 1 + big);
        if (sr.messages != 2)
            printf("the server got %d of 2 messages: the end of the second stays inside mbedTLS, unseen by poll()\n",
                   sr.messages);
    }
    wsr_client_free(c);
    wsr_server_free(s);
    free(p);
    case_end(&t);
}

/* ---- mutual TLS ------------------------------------------------------------- */

static void mtls_case(const char *name, const char *cert, const char *key, int want_ok, wsr_err want_server_err,
                      const char *want_server_words) {
    tcase t = case_begin(name);
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr;
    crec cr;
    wsr_server *s;
    wsr_client *c = NULL;
    char url[128];
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg(&scfg, &sr, P("server.crt"), P("server.key"));
    scfg.tls.verify_peer = 1;
    scfg.tls.ca_file = P("ca.crt");
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { case_end(&t); return; }
    snprintf(url, sizeof url, "wss://localhost:%d/mtls", wsr_server_port(s));
    client_cfg(&ccfg, &cr, url);
    ccfg.tls.ca_file = P("ca.crt");
    ccfg.tls.cert_file = cert;
    ccfg.tls.key_file = key;
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        cr.expect[0] = (const unsigned char *)"who am i";
        cr.expect_len[0] = 8;
        cr.expect_type[0] = WSR_MSG_TEXT;
        cr.nexpect = 1;
        CHECK_EQ_INT(wsr_send_text(c, "who am i", 8), WSR_OK);
        PUMP_UNTIL(cr.messages >= 1 || (cr.ends && sr.errors), 10000, BOTH(s, c));
        if (want_ok) {
            CHECK_EQ_INT(cr.opens, 1);
            CHECK_EQ_INT(cr.messages, 1);
            CHECK(cr.ok[0]);
            CHECK_EQ_INT(sr.opens, 1);
            CHECK_EQ_INT(sr.errors, 0);
            if (cr.ends) printf("%s: client ended: %s\n", name, cr.end_why.message);
            if (sr.errors) printf("%s: server error: %s\n", name, sr.first_error.message);
        } else {
            PUMP_FOR(200, BOTH(s, c));
            CHECK_EQ_INT(cr.opens, 0);
            CHECK_EQ_INT(sr.opens, 0);
            CHECK_EQ_INT(sr.messages, 0);
            CHECK_EQ_INT(cr.ends, 1);
            /* The server refuses during the TLS handshake and closes the
               socket with the client's last handshake records unread, so
               the client sees a reset (mbedTLS 2.28 sends no alert first);
               a TLS alert or the end of the stream would do too. All are
               transient: the client cannot tell it from a broken link. */
            if (!(cr.end_why.code == WSR_ERR_TLS || cr.end_why.code == WSR_ERR_EOF || cr.end_why.code == WSR_ERR_RESET))
                printf("%s: client ended with %s: %s\n", name, wsr_strerror(cr.end_why.code), cr.end_why.message);
            CHECK(cr.end_why.code == WSR_ERR_TLS || cr.end_why.code == WSR_ERR_EOF || cr.end_why.code == WSR_ERR_RESET);
            CHECK_EQ_INT(cr.end_why.transient, 1);
            CHECK(wsr_error_retryable(&cr.end_why));
            if (show()) printf("  %s: client: %s (%s)\n", name, cr.end_why.message, wsr_strerror(cr.end_why.code));
            /* ...and the server's on_error says why. */
            CHECK_EQ_INT(sr.errors, 1);
            if (sr.first_error.code != want_server_err || !strstr(sr.first_error.message, want_server_words))
                printf("%s: server on_error: %s (%s)\n", name, sr.first_error.message,
                       wsr_strerror(sr.first_error.code));
            CHECK_EQ_INT(sr.first_error.code, want_server_err);
            CHECK(strstr(sr.first_error.message, want_server_words) != NULL);
            if (show()) printf("  %s: server on_error: %s\n", name, sr.first_error.message);
        }
    }
    wsr_client_free(c);
    wsr_server_free(s);
    case_end(&t);
}

TEST(mutual_tls) {
    if (!pki_ready()) return;
    mtls_case("mTLS: client certificate by ca", P("client.crt"), P("client.key"), 1, WSR_OK, "");
    mtls_case("mTLS: no client certificate", NULL, NULL, 0, WSR_ERR_TLS, "TLS handshake");
    mtls_case("mTLS: client certificate by ca2", P("client2.crt"), P("client.key"), 0, WSR_ERR_TLS_CERT,
              "unknown CA");
}

/* ---- the wrong protocol on either side -------------------------------------- */

/* ws:// (plain HTTP) to a TLS server: the server's TLS handshake fails at
   once (on_error), the client fails its upgrade; nothing opens. */
TEST(plain_client_tls_server) {
    tcase t = case_begin("ws:// client, TLS server");
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr;
    crec cr;
    wsr_server *s;
    wsr_client *c = NULL;
    char url[128];
    uint64_t t0;
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg(&scfg, &sr, P("server.crt"), P("server.key"));
    scfg.handshake_timeout_ms = 3000;
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { case_end(&t); return; }
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/plain", wsr_server_port(s));
    client_cfg(&ccfg, &cr, url);
    ccfg.connect_timeout_ms = 5000;
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        t0 = wsr_now_ms();
        PUMP_UNTIL(cr.ends && sr.errors, 10000, BOTH(s, c));
        CHECK_EQ_INT(cr.opens, 0);
        CHECK_EQ_INT(cr.ends, 1);
        CHECK_EQ_INT(sr.opens, 0);
        CHECK_EQ_INT(sr.errors, 1);
        CHECK_EQ_INT(sr.first_error.code, WSR_ERR_TLS);
        /* Not the handshake timeout: the garbage is refused at once. */
        CHECK(wsr_now_ms() - t0 < 2000);
        CHECK(cr.end_why.code == WSR_ERR_HANDSHAKE || cr.end_why.code == WSR_ERR_EOF ||
              cr.end_why.code == WSR_ERR_RESET);
        CHECK_EQ_INT(wsr_server_conn_count(s), 0);
        if (wsr_test_failed != t.failed_before || show())
            printf("  ws:// to TLS: client: %s; server: %s\n", cr.end_why.message, sr.first_error.message);
    }
    wsr_client_free(c);
    wsr_server_free(s);
    case_end(&t);
}

/* wss:// to a plain server: a transient failure (TLS error or EOF), retried. */
TEST(tls_client_plain_server) {
    tcase t = case_begin("wss:// client, plain server");
    wsr_server_config scfg;
    wsr_client_config ccfg;
    srec sr;
    crec cr;
    wsr_server *s;
    wsr_client *c = NULL;
    char url[128];
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg(&scfg, &sr, NULL, NULL);
    scfg.handshake_timeout_ms = 300;
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) { case_end(&t); return; }
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/tls", wsr_server_port(s));
    client_cfg(&ccfg, &cr, url);
    ccfg.reconnect = 1;
    ccfg.connect_timeout_ms = 5000;
    ccfg.backoff.max_attempts = 3;
    ccfg.tls.ca_file = P("ca.crt");
    c = client_new(&ccfg);
    CHECK(c != NULL);
    if (c) {
        PUMP_UNTIL(cr.ends > 0, 15000, BOTH(s, c));
        PUMP_FOR(100, BOTH(s, c));
        CHECK_EQ_INT(cr.opens, 0);
        CHECK_EQ_INT(cr.ends, 1);
        CHECK_EQ_INT(cr.reconnecting, 2);
        CHECK(cr.first_cause.code == WSR_ERR_TLS || cr.first_cause.code == WSR_ERR_EOF);
        CHECK_EQ_INT(cr.first_cause.transient, 1);
        CHECK(wsr_error_retryable(&cr.first_cause));
        CHECK(cr.end_why.code == WSR_ERR_TLS || cr.end_why.code == WSR_ERR_EOF);
        CHECK_EQ_INT(cr.end_why.attempts, 3);
        /* Three connections, each refused by the plain server. */
        CHECK_EQ_INT(sr.errors, 3);
        CHECK_EQ_INT(sr.opens, 0);
        if (wsr_test_failed != t.failed_before || show())
            printf("  wss:// to plain: client: %s / %s; server: %s\n", cr.first_cause.message, cr.end_why.message,
                   sr.first_error.message);
    }
    wsr_client_free(c);
    wsr_server_free(s);
    case_end(&t);
}

/* ---- configuration errors --------------------------------------------------- */

static void server_cfg_fails(const char *what, const char *cert, const char *key, const char *password,
                             wsr_err want, const char *want_words) {
    wsr_server_config scfg;
    srec sr;
    wsr_error err;
    wsr_server *s;
    server_cfg(&scfg, &sr, cert, key);
    scfg.tls.key_password = password;
    memset(&err, 0, sizeof err);
    s = wsr_server_new(&scfg, &err);
    CHECK(s == NULL);
    CHECK_EQ_INT(err.code, want);
    if (want_words && !strstr(err.message, want_words))
        printf("%s: \"%s\" does not name \"%s\"\n", what, err.message, want_words);
    if (want_words) CHECK(strstr(err.message, want_words) != NULL);
    wsr_server_free(s);
}

TEST(config_errors) {
    tcase t = case_begin("configuration errors");
    wsr_client_config ccfg;
    crec cr;
    wsr_error err;
    wsr_client *c;
    if (!pki_ready()) { case_end(&t); return; }
    server_cfg_fails("missing key file", P("server.crt"), P("missing.key"), NULL, WSR_ERR_TLS, "missing.key");
    server_cfg_fails("missing cert file", P("missing.crt"), P("server.key"), NULL, WSR_ERR_TLS, "missing.crt");
    server_cfg_fails("wrong key password", P("server.crt"), P("server-enc.key"), "not-it", WSR_ERR_TLS,
                     "server-enc.key");
    server_cfg_fails("encrypted key, no password", P("server.crt"), P("server-enc.key"), NULL, WSR_ERR_TLS,
                     "server-enc.key");
    /* A certificate with no key at all. */
    {
        wsr_server_config scfg;
        srec sr;
        wsr_server *s;
        server_cfg(&scfg, &sr, P("server.crt"), NULL);
        s = wsr_server_new(&scfg, &err);
        CHECK(s == NULL);
        CHECK(err.code == WSR_ERR_TLS || err.code == WSR_ERR_INVALID);
        wsr_server_free(s);
    }
    /* The client reads its CA files when it is created. */
    client_cfg(&ccfg, &cr, "wss://127.0.0.1:1/x");
    ccfg.tls.ca_file = P("missing-ca.crt");
    memset(&err, 0, sizeof err);
    c = wsr_client_new(&ccfg, &err);
    CHECK(c == NULL);
    CHECK_EQ_INT(err.code, WSR_ERR_TLS);
    CHECK(strstr(err.message, "missing-ca.crt") != NULL);
    wsr_client_free(c);
    client_cfg(&ccfg, &cr, "wss://127.0.0.1:1/x");
    ccfg.tls.ca_dir = P("no-such-dir");
    memset(&err, 0, sizeof err);
    c = wsr_client_new(&ccfg, &err);
    CHECK(c == NULL);
    CHECK_EQ_INT(err.code, WSR_ERR_TLS);
    CHECK(strstr(err.message, "no-such-dir") != NULL);
    wsr_client_free(c);
    client_cfg(&ccfg, &cr, "wss://127.0.0.1:1/x");
    ccfg.tls.ca_pem = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
    memset(&err, 0, sizeof err);
    c = wsr_client_new(&ccfg, &err);
    CHECK(c == NULL);
    CHECK_EQ_INT(err.code, WSR_ERR_TLS);
    wsr_client_free(c);
    case_end(&t);
}

/* ---- examples/wss_client, as a reader would run it ----------------------------- */

static const char *examples_dir(void) {
    const char *d = getenv("WSR_EXAMPLES_DIR");
    return d && *d ? d : "build/examples";
}

/* Runs `wss_client URL [CA_FILE]` to its end (at most 15 s) against a fresh
   echo server of ours with server.crt; the server's record in sr. */
static void run_wss_client(child *ch, srec *sr, const char *bin, const char *host, const char *ca) {
    wsr_server_config scfg;
    wsr_server *s;
    char url[128];
    char *argv[4];
    child_init(ch, "examples/wss_client");
    server_cfg(&scfg, sr, P("server.crt"), P("server.key"));
    s = server_new(&scfg);
    CHECK(s != NULL);
    if (!s) return;
    snprintf(url, sizeof url, "wss://%s:%d/example", host, wsr_server_port(s));
    argv[0] = (char *)bin;
    argv[1] = url;
    argv[2] = (char *)ca;
    argv[3] = NULL;
    if (!child_spawn(ch, argv, NULL, 0, 0)) {
        printf("could not start %s: %s\n", bin, strerror(errno));
        CHECK(!"spawn wss_client");
        wsr_server_free(s);
        return;
    }
    PUMP_UNTIL(!ch->running, 15000, { wsr_server_poll(s, 2); child_drain(ch); });
    if (ch->running) printf("%s: still running after 15 s: killed\n", bin);
    child_stop(ch);
    /* The server's side of the close handshake, or of the refused handshake. */
    PUMP_UNTIL(sr->closes + sr->errors > 0, 2000, wsr_server_poll(s, 2));
    PUMP_FOR(100, wsr_server_poll(s, 2));     /* and nothing more comes */
    wsr_server_free(s);
}

TEST(example_wss_client) {
    tcase t = case_begin("examples/wss_client");
    char bin[512];
    child ch;
    srec sr;
    int before;
    if (!pki_ready()) { case_end(&t); return; }
    snprintf(bin, sizeof bin, "%s/wss_client", examples_dir());
    if (access(bin, X_OK) != 0) {
        printf("FAIL %s: the example binary %s is missing (%s): build it with `make examples` (make run-tests "
               "does), or set WSR_EXAMPLES_DIR\n", wsr_test_current, bin, strerror(errno));
        CHECK(!"examples/wss_client missing");
        case_end(&t);
        return;
    }
    /* With the test CA: connected, one message echoed, closed with 1000, exit 0. */
    before = wsr_test_failed;
    run_wss_client(&ch, &sr, bin, "localhost", P("ca.crt"));
    CHECK(!ch.running && WIFEXITED(ch.status));
    CHECK_EQ_INT(WIFEXITED(ch.status) ? WEXITSTATUS(ch.status) : -1, 0);
    CHECK(ch.buf[0] && strstr(ch.buf[0], "connected over TLS\n") != NULL);
    CHECK(ch.buf[0] && strstr(ch.buf[0], "echo: hello over TLS\n") != NULL);
    CHECK_EQ_INT(sr.opens, 1);
    CHECK_EQ_INT(sr.messages, 1);
    CHECK_EQ_STR(sr.text[0], "hello over TLS");
    CHECK_EQ_INT(sr.closes, 1);
    CHECK_EQ_INT(sr.close_why.close_code, 1000);
    CHECK_EQ_INT(sr.errors, 0);
    if (wsr_test_failed != before) child_dump(&ch);
    child_free(&ch);
    /* Without a CA file it trusts only the system's bundle: our test CA is
       unknown there. It says so and exits 1 after one connection (a refused
       certificate is not retried). */
    before = wsr_test_failed;
    run_wss_client(&ch, &sr, bin, "127.0.0.1", NULL);
    CHECK(!ch.running && WIFEXITED(ch.status));
    CHECK_EQ_INT(WIFEXITED(ch.status) ? WEXITSTATUS(ch.status) : -1, 1);
    CHECK(ch.buf[1] && strstr(ch.buf[1], "unknown CA") != NULL);
    CHECK(!ch.buf[0] || strstr(ch.buf[0], "echo:") == NULL);
    CHECK_EQ_INT(sr.opens, 0);
    CHECK_EQ_INT(sr.errors, 1);
    if (wsr_test_failed != before) child_dump(&ch);
    child_free(&ch);
    case_end(&t);
}

TEST_MAIN()
