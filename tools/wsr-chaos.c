/* wsr-chaos: a TCP proxy that breaks connections on command, for testing
   clients that must stay connected.

   usage: wsr-chaos [-l HOST:PORT] -t HOST:PORT [--schedule "T:CMD;..."] [-q]
   (wsr-chaos --help says it all; the text is in `usage` below.)

   It is a byte proxy, not a WebSocket peer: it never parses what it carries,
   so what a client sees through it is exactly what a broken network, a
   crashed middlebox or a slow link would show it. Put it between a client
   and a server, then say `stall`, `reset` or `delay 300` and watch what the
   client does.

   How it works. One poll() loop serves everything: stdin (commands), the
   listening socket, and both sockets of every connection. Each connection
   has two flows, client->server and server->client. A flow holds the bytes
   read from one side until they may be written to the other: at most
   BUF_CAP bytes, and when that is full we simply stop reading that side, so
   TCP's own flow control pushes back on the sender. Each read is kept as a
   "chunk" with the time it may leave (now + delay), which is all `delay`
   needs. A FIN read from one side is passed on (shutdown SHUT_WR) once its
   flow is empty, and a reset is passed on as a reset, so a half-closed or
   reset connection looks the same on both sides of the proxy.

   On Windows it is the same program on Winsock. tool_os.h holds the few
   differences: a socket is a SOCKET handle closed with closesocket, errors
   come from WSAGetLastError, poll is WSAPoll, and stdin, which WSAPoll cannot
   wait on, becomes a socket fed by a reader thread. What differs in
   behaviour is said where it happens (see TOOL_CONNECT_CHECK_MS). */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"   /* wsr_now_ms() and the POSIX feature macros; the proxy itself is plain sockets */
#include "tool_os.h"        /* the POSIX / Winsock differences */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

static const char usage[] =
"usage: wsr-chaos [-l HOST:PORT] -t HOST:PORT [--schedule \"T:CMD;T:CMD...\"] [-q]\n"
"\n"
"A TCP proxy that injects faults. It listens on -l (default 127.0.0.1:0; port 0\n"
"picks a free one), prints \"listening on HOST:PORT\" as its first line on stdout,\n"
"and forwards every connection it accepts to the target -t, both directions,\n"
"byte for byte, until a command says otherwise. A FIN from one side is passed\n"
"on as a FIN, a reset as a reset. HOST may be a name or an address ([::1]:80).\n"
"\n"
"Commands come one per line on stdin, applied at once, or from --schedule,\n"
"where T is milliseconds since start (\"500:stall;2500:resume\"). After each\n"
"one it prints \"ok CMD\" on stdout (\"error ...\" for a bad one), so a test can\n"
"wait for it.\n"
"  close          end every current connection with a FIN to both sides (bytes\n"
"                 the proxy still holds are dropped; what arrives later is read\n"
"                 and dropped until each side closes too)\n"
"  reset          end every current connection with a reset (RST) to both sides\n"
"  stall          forward nothing and read nothing until resume; sockets stay\n"
"                 open. New connections are still accepted (and connected to\n"
"                 the target), and stall too.\n"
"  resume         end a stall\n"
"  delay MS       hold every chunk read for MS ms before passing it on (0: off)\n"
"  split          pass bytes on in 1-byte writes\n"
"  nosplit        pass on as much as the socket takes (the default)\n"
"  bandwidth B    at most B bytes/s in each direction of each connection\n"
"                 (0: unlimited, the default)\n"
"  refuse MS      for MS ms, reset every new connection: it is accepted and\n"
"                 closed at once with RST, so the client's connect succeeds\n"
"                 and its next read or write fails with ECONNRESET. The target\n"
"                 never hears of it. Connections already open are not touched.\n"
"  accept         stop refusing now\n"
"  quit           exit at once (status 0); the system closes the sockets\n"
"\n"
"It exits with status 0 on quit, or at the end of stdin once no scheduled\n"
"command is left (at once without --schedule: keep stdin open to keep it\n"
"running, e.g. `sleep 1d | wsr-chaos ...`). Status 2: bad arguments; 1: cannot\n"
"listen or resolve the target.\n"
"\n"
"Unless -q, one line per event on stderr:\n"
"  conn N open from ADDR         conn N closed by client|server  (a FIN)\n"
"  conn N reset by client|server conn N cannot reach the target: REASON\n"
"  conn N refused (reset)        conn N closing|reset (command)\n"
"  conn N done (U bytes up, D bytes down)\n";

enum {
    BUF_CAP = 1 << 20,       /* bytes held per direction of a connection */
    MAX_CHUNKS = 4096,       /* reads held per direction (each keeps its due time) */
    MAX_CONNS = 256,         /* more are reset at once */
    MAX_SCHEDULE = 64,
    LINGER_MS = 2000,        /* after `close`, how long we wait for both sides' FIN */
    LINE_MAX_LEN = 256
};
enum { CLIENT = 0, SERVER = 1 };
static const char *const side_name[2] = { "client", "server" };

/* ---- settings changed by commands ------------------------------------------ */

static int quiet, stalled, split, delay_ms, quitting;
static long bandwidth;                 /* bytes per second, 0 = unlimited */
static uint64_t refuse_until;          /* refuse new connections until this time */

static void event(const char *fmt, ...) {
    va_list ap;
    if (quiet) return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- one direction of a connection ---------------------------------------- */

typedef struct chunk { uint64_t due; size_t len; } chunk;

/* Bytes read from one side and not yet written to the other. */
typedef struct flow {
    unsigned char *buf;        /* BUF_CAP bytes; the data is buf[start, end) */
    size_t start, end;
    chunk chunks[MAX_CHUNKS];  /* the same data as it was read, oldest first (a ring) */
    int first, count;
    double tokens;             /* bandwidth: bytes we may write now */
    uint64_t refill_at;
    int eof;                   /* the source side sent its FIN */
    int shut;                  /* and we passed it on (so eof is set too) */
    unsigned long long total;  /* bytes read */
} flow;

static int flow_has_room(const flow *f) { return f->end - f->start < BUF_CAP && f->count < MAX_CHUNKS; }

/* Appends n bytes just read into buf[end]. They may leave at `due`. A chunk
   due no later than the one before it joins that one: bytes cannot overtake
   each other anyway, and with no delay the whole flow stays one chunk. */
static void flow_push(flow *f, size_t n, uint64_t due, uint64_t now) {
    chunk *last = f->count ? &f->chunks[(f->first + f->count - 1) % MAX_CHUNKS] : NULL;
    f->end += n;
    f->total += n;
    if (last && due <= (last->due > now ? last->due : now)) {
        last->len += n;
    } else {
        chunk *c = &f->chunks[(f->first + f->count++) % MAX_CHUNKS];
        c->due = due;
        c->len = n;
    }
}

/* Removes n written bytes from the front. */
static void flow_pop(flow *f, size_t n) {
    chunk *c = &f->chunks[f->first];
    f->start += n;
    c->len -= n;
    if (c->len == 0) { f->first = (f->first + 1) % MAX_CHUNKS; f->count--; }
    if (f->start == f->end) f->start = f->end = 0;
}

/* Token bucket: `bandwidth` bytes per second, with a burst of 20 ms worth. */
static void flow_refill(flow *f, uint64_t now) {
    double burst = bandwidth / 50 > 1 ? (double)(bandwidth / 50) : 1.0;
    f->tokens += (double)bandwidth * (double)(now - f->refill_at) / 1000.0;
    if (f->tokens > burst) f->tokens = burst;
    f->refill_at = now;
}

/* How long the next byte of f must wait: -1 if f is empty, 0 if it may be
   written now, else the ms left of its delay or until bandwidth allows it. */
static long flow_wait(flow *f, uint64_t now) {
    uint64_t due;
    if (f->count == 0) return -1;
    due = f->chunks[f->first].due;
    if (due > now) return (long)(due - now);
    if (bandwidth > 0) {
        flow_refill(f, now);
        if (f->tokens < 1.0) return 1 + (long)((1.0 - f->tokens) * 1000.0 / (double)bandwidth);
    }
    return 0;
}

/* ---- connections ----------------------------------------------------------- */

typedef struct conn {
    int id;
    tool_sock fd[2];           /* [CLIENT] the accepted socket, [SERVER] ours to the target; TOOL_NO_SOCK: gone */
    int connecting;            /* the connect to the target is still under way */
    int cut;                   /* `close` ran: FINs sent, whatever comes is dropped */
    uint64_t cut_at;
    flow flow[2];              /* flow[s] carries what fd[s] sends to fd[!s] */
} conn;

static conn *conns[MAX_CONNS];
static int next_id = 1;

/* A reset instead of a FIN: with SO_LINGER on and a zero timeout, close()
   throws away whatever is unsent and sends RST (closesocket does the same:
   Winsock calls it an abortive close). */
static void close_reset(tool_sock fd) {
    struct linger lg;
    lg.l_onoff = 1;
    lg.l_linger = 0;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
    tool_sock_close(fd);
}

/* Ends connection i: RST to both sides if `reset`, else a plain close (by
   then both FINs went both ways, so it is clean). */
static void conn_end(int i, int reset) {
    conn *c = conns[i];
    int s;
    for (s = 0; s < 2; s++) {
        if (c->fd[s] == TOOL_NO_SOCK) continue;
        if (reset) close_reset(c->fd[s]);
        else tool_sock_close(c->fd[s]);
    }
    event("conn %d done (%llu bytes up, %llu bytes down)", c->id, c->flow[CLIENT].total, c->flow[SERVER].total);
    free(c->flow[0].buf);
    free(c->flow[1].buf);
    free(c);
    conns[i] = NULL;
}

/* The `close` command for one connection: FIN to both sides now. We keep
   reading (and dropping) until both sides close too, because close() on a
   socket with unread data sends RST, not FIN. */
static void conn_cut(conn *c, uint64_t now) {
    int s;
    event("conn %d closing (close command)", c->id);
    /* The FIN to side s, unless it got one already or is not connected yet. */
    for (s = 0; s < 2; s++)
        if (!c->flow[!s].shut && !(s == SERVER && c->connecting)) shutdown(c->fd[s], TOOL_SHUT_WR);
    for (s = 0; s < 2; s++) {
        c->flow[s].start = c->flow[s].end = 0;
        c->flow[s].count = 0;
        c->flow[s].shut = 1;
    }
    if (c->connecting) {       /* the target never got it: nothing to say goodbye to */
        tool_sock_close(c->fd[SERVER]);
        c->fd[SERVER] = TOOL_NO_SOCK;
        c->flow[SERVER].eof = 1;
        c->connecting = 0;
    }
    c->cut = 1;
    c->cut_at = now;
}

static const struct addrinfo *target;   /* where connections go: -t, resolved once */

/* Takes a newly accepted client socket and starts connecting to the target. */
static void conn_accept(tool_sock fd, int id, const struct sockaddr *peer, socklen_t peer_len, uint64_t now) {
    char host[64], port[16];
    int i, s, one = 1, err;
    tool_sock up;
    conn *c;
    for (i = 0; i < MAX_CONNS && conns[i]; i++) {}
    if (i == MAX_CONNS) {
        event("conn %d refused: %d connections already", id, MAX_CONNS);
        close_reset(fd);
        return;
    }
    c = (conn *)calloc(1, sizeof *c);
    if (c) c->flow[0].buf = (unsigned char *)malloc(BUF_CAP);
    if (c) c->flow[1].buf = (unsigned char *)malloc(BUF_CAP);
    if (!c || !c->flow[0].buf || !c->flow[1].buf) {
        event("conn %d refused: out of memory", id);
        if (c) { free(c->flow[0].buf); free(c->flow[1].buf); free(c); }
        close_reset(fd);
        return;
    }
    c->id = id;
    c->fd[CLIENT] = fd;
    c->fd[SERVER] = TOOL_NO_SOCK;
    for (s = 0; s < 2; s++) c->flow[s].refill_at = now;
    conns[i] = c;
    if (getnameinfo(peer, peer_len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        strcpy(host, "?");
        strcpy(port, "?");
    }
    event("conn %d open from %s:%s", id, host, port);
    /* We copy bytes as they come, so Nagle's wait for more would only add
       latency (and would glue `split`'s 1-byte writes back together). */
    tool_sock_nonblock(fd);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    up = socket(target->ai_family, SOCK_STREAM, 0);
    err = tool_sock_errno();
    if (up != TOOL_NO_SOCK) {
        tool_sock_nonblock(up);
        setsockopt(up, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
        c->fd[SERVER] = up;
        if (connect(up, target->ai_addr, (socklen_t)target->ai_addrlen) == 0) return;
        err = tool_sock_errno();
        if (TOOL_E_INPROGRESS(err)) { c->connecting = 1; return; }
    }
    /* The client should see what it would see without us: a reset. */
    event("conn %d cannot reach the target: %s", id, tool_sock_strerror(err));
    conn_end(i, 1);
}

/* Reads once from side s into flow[s]. Returns -1 if that side reset. */
static int flow_read(conn *c, int s, uint64_t now) {
    flow *f = &c->flow[s];
    long n;
    int err;
    if (f->end == BUF_CAP && f->start > 0) {      /* make the free space one piece */
        memmove(f->buf, f->buf + f->start, f->end - f->start);
        f->end -= f->start;
        f->start = 0;
    }
    n = (long)recv(c->fd[s], (char *)f->buf + f->end, BUF_CAP - f->end, 0);
    if (n > 0) {
        if (c->cut) f->total += (size_t)n;         /* dropped */
        else flow_push(f, (size_t)n, now + (uint64_t)delay_ms, now);
        return 0;
    }
    if (n == 0) {
        f->eof = 1;
        event("conn %d closed by %s", c->id, side_name[s]);
        return 0;
    }
    err = tool_sock_errno();
    if (TOOL_E_WOULDBLOCK(err) || err == TOOL_E_INTR) return 0;
    event("conn %d reset by %s (%s)", c->id, side_name[s], tool_sock_strerror(err));
    return -1;
}

/* Writes what is due of flow[s] to the other side, then passes on a FIN.
   Returns -1 if the other side reset. */
static int flow_write(conn *c, int s, uint64_t now) {
    flow *f = &c->flow[s];
    tool_sock to = c->fd[!s];
    while (flow_wait(f, now) == 0) {
        size_t n = f->chunks[f->first].len;
        long k;
        int err;
        if (split) n = 1;
        if (bandwidth > 0 && (double)n > f->tokens) n = (size_t)f->tokens;   /* >= 1: flow_wait said so */
        k = (long)send(to, (const char *)f->buf + f->start, n, 0);
        if (k < 0) {
            err = tool_sock_errno();
            if (TOOL_E_WOULDBLOCK(err) || err == TOOL_E_INTR) return 0;
            event("conn %d reset by %s (%s)", c->id, side_name[!s], tool_sock_strerror(err));
            return -1;
        }
        flow_pop(f, (size_t)k);
        if (bandwidth > 0) f->tokens -= (double)k;
    }
    if (f->eof && f->count == 0 && !f->shut) {
        shutdown(to, TOOL_SHUT_WR);
        f->shut = 1;
    }
    return 0;
}

/* The poll events side s of c needs: fd[s] is where flow[s] comes from and
   where flow[!s] goes to. 0 means "do not poll it at all". */
static short conn_events(conn *c, int s, uint64_t now) {
    short ev = 0;
    if (c->fd[s] == TOOL_NO_SOCK) return 0;
    if (s == SERVER && c->connecting) return POLLOUT;      /* writable = connected (or failed) */
    if (c->cut) return c->flow[s].eof ? 0 : POLLIN;
    if (stalled) return 0;
    if (!c->flow[s].eof && flow_has_room(&c->flow[s])) ev |= POLLIN;
    if (flow_wait(&c->flow[!s], now) == 0) ev |= POLLOUT;
    return ev;
}

/* Everything connection i has to do after poll; rev[s]: what poll said about fd[s]. */
static void conn_step(int i, const short rev[2], uint64_t now) {
    conn *c = conns[i];
    int s;
    /* tool_connect_failed: where poll may miss a failed connect (Windows), ask
       about it; elsewhere it is 0 and poll's answer is enough. */
    if (c->connecting && (rev[SERVER] || tool_connect_failed(c->fd[SERVER]))) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd[SERVER], SOL_SOCKET, SO_ERROR, (char *)&err, &len) != 0) err = tool_sock_errno();
        if (err) {
            event("conn %d cannot reach the target: %s", c->id, tool_sock_strerror(err));
            conn_end(i, 1);
            return;
        }
        c->connecting = 0;
    }
    if (c->cut) {
        for (s = 0; s < 2; s++)
            if (rev[s] && flow_read(c, s, now) < 0) { conn_end(i, 1); return; }
        if ((c->flow[CLIENT].eof && c->flow[SERVER].eof) || now >= c->cut_at + LINGER_MS) conn_end(i, 0);
        return;
    }
    if (stalled) return;
    for (s = 0; s < 2; s++)
        if ((rev[s] & (POLLIN | POLLHUP | POLLERR)) && !c->flow[s].eof && flow_has_room(&c->flow[s]) &&
            flow_read(c, s, now) < 0) {
            conn_end(i, 1);     /* a reset on one side becomes a reset on the other */
            return;
        }
    for (s = 0; s < 2; s++) {
        if (s == CLIENT && c->connecting) continue;       /* the client's bytes wait for the target */
        if (flow_write(c, s, now) < 0) { conn_end(i, 1); return; }
    }
    if (c->flow[CLIENT].shut && c->flow[SERVER].shut) conn_end(i, 0);   /* FINs went both ways */
}

/* ---- commands -------------------------------------------------------------- */

/* Splits a command line into its word and its number (-1: none).
   Returns 1 for a known command with the right argument, 0 for a blank
   line, -1 for anything else. */
static int parse_command(const char *line, char word[16], long *arg) {
    static const char *const known[] = { "close", "reset", "stall", "resume", "split", "nosplit",
                                         "accept", "quit", "delay", "refuse", "bandwidth" };
    const char *rest;
    char *end;
    int n = 0, k, takes_arg;
    *arg = -1;
    if (sscanf(line, "%15s%n", word, &n) != 1) return 0;
    for (rest = line + n; *rest == ' ' || *rest == '\t'; rest++) {}
    if (*rest) {                                   /* a number, and nothing after it */
        *arg = strtol(rest, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        if (end == rest || *end || *arg < 0 || *arg > 86400000L) return -1;
    }
    for (k = 0; k < (int)(sizeof known / sizeof known[0]) && strcmp(word, known[k]) != 0; k++) {}
    takes_arg = k >= 8;                            /* delay, refuse, bandwidth */
    if (k == (int)(sizeof known / sizeof known[0]) || takes_arg != (*arg >= 0)) return -1;
    return 1;
}

/* Applies one command line; prints "ok LINE" or "error ...". */
static void command(const char *line, uint64_t now) {
    char word[16];
    long arg;
    int i, r;
    while (*line == ' ' || *line == '\t') line++;
    if ((r = parse_command(line, word, &arg)) <= 0) {
        if (r < 0) printf("error bad command: %s\n", line);
        fflush(stdout);
        return;
    }
    if (strcmp(word, "close") == 0) {
        for (i = 0; i < MAX_CONNS; i++)
            if (conns[i] && !conns[i]->cut) conn_cut(conns[i], now);
    } else if (strcmp(word, "reset") == 0) {
        for (i = 0; i < MAX_CONNS; i++)
            if (conns[i]) { event("conn %d reset (reset command)", conns[i]->id); conn_end(i, 1); }
    } else if (strcmp(word, "stall") == 0) {
        stalled = 1;
    } else if (strcmp(word, "resume") == 0) {
        stalled = 0;
    } else if (strcmp(word, "split") == 0) {
        split = 1;
    } else if (strcmp(word, "nosplit") == 0) {
        split = 0;
    } else if (strcmp(word, "accept") == 0) {
        refuse_until = 0;
    } else if (strcmp(word, "quit") == 0) {
        quitting = 1;
    } else if (strcmp(word, "delay") == 0) {
        delay_ms = (int)arg;           /* chunks already held keep their time */
    } else if (strcmp(word, "refuse") == 0) {
        refuse_until = now + (uint64_t)arg;
    } else if (strcmp(word, "bandwidth") == 0) {
        bandwidth = arg;
        for (i = 0; i < MAX_CONNS * 2; i++) {      /* every bucket starts empty */
            if (!conns[i / 2]) continue;
            conns[i / 2]->flow[i % 2].tokens = 0;
            conns[i / 2]->flow[i % 2].refill_at = now;
        }
    }
    printf("ok %s\n", line);
    fflush(stdout);
}

/* Where stdin is polled and read: fd 0 on POSIX, a socket fed by a reader
   thread on Windows (tool_os.h). */
static tool_sock stdin_fd;

/* Reads stdin and runs every whole line. Returns 0 at its end. */
static int read_commands(uint64_t now) {
    static char line[LINE_MAX_LEN];
    static size_t len;
    char *nl;
    long n = tool_stdin_read(stdin_fd, line + len, sizeof line - 1 - len);
    if (n < 0 && errno == EINTR) return 1;
    if (n <= 0) {                      /* the end (or a broken stdin): a last unfinished line counts */
        line[len] = '\0';
        if (len) command(line, now);
        len = 0;
        return 0;
    }
    len += (size_t)n;
    line[len] = '\0';
    while ((nl = strchr(line, '\n')) != NULL && !quitting) {
        *nl = '\0';
        if (nl > line && nl[-1] == '\r') nl[-1] = '\0';
        command(line, now);
        len -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, len + 1);
    }
    if (len == sizeof line - 1) { command(line, now); len = 0; }   /* too long: answered as an error */
    return 1;
}

/* Accepts every waiting connection: refused (reset at once) or proxied. */
static void accept_all(tool_sock lfd, uint64_t now) {
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        tool_sock fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        if (fd == TOOL_NO_SOCK) return;   /* EAGAIN: that was all */
        if (now < refuse_until) {
            event("conn %d refused (reset)", next_id++);
            close_reset(fd);
        } else {
            conn_accept(fd, next_id++, (struct sockaddr *)&ss, sl, now);
        }
    }
}

typedef struct scheduled { uint64_t at; char text[LINE_MAX_LEN]; int done; } scheduled;
static scheduled schedule[MAX_SCHEDULE];
static int nschedule;

/* Runs every scheduled command that is due, earliest first (ties in the
   order given). Returns 1 if some are still to come. */
static int run_schedule(uint64_t since_start, uint64_t now) {
    for (;;) {
        int i, next = -1;
        for (i = 0; i < nschedule; i++)
            if (!schedule[i].done && (next < 0 || schedule[i].at < schedule[next].at)) next = i;
        if (next < 0) return 0;
        if (schedule[next].at > since_start) return 1;
        schedule[next].done = 1;
        command(schedule[next].text, now);
    }
}

/* "T:cmd;T:cmd". Returns 0, or -1 on a malformed list or command. */
static int parse_schedule(const char *s) {
    char word[16];
    long arg;
    while (*s) {
        char *end;
        const char *semi;
        long at = strtol(s, &end, 10);
        size_t len;
        if (end == s || *end != ':' || at < 0 || nschedule == MAX_SCHEDULE) return -1;
        s = end + 1;
        semi = strchr(s, ';');
        len = semi ? (size_t)(semi - s) : strlen(s);
        if (len == 0 || len >= LINE_MAX_LEN) return -1;
        schedule[nschedule].at = (uint64_t)at;
        memcpy(schedule[nschedule].text, s, len);
        schedule[nschedule].text[len] = '\0';
        if (parse_command(schedule[nschedule++].text, word, &arg) != 1) return -1;
        s += len;
        if (*s == ';') s++;
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------ */

/* Resolves "HOST:PORT" (or "[V6]:PORT"). Returns NULL after printing why. */
static struct addrinfo *resolve(const char *hostport, int passive) {
    char host[256];
    const char *colon = strrchr(hostport, ':'), *h = hostport;
    size_t hl;
    struct addrinfo hints, *res = NULL;
    int r;
    if (!colon || colon == hostport || !colon[1]) {
        fprintf(stderr, "wsr-chaos: want HOST:PORT, got '%s'\n", hostport);
        return NULL;
    }
    hl = (size_t)(colon - hostport);
    if (h[0] == '[' && colon[-1] == ']') { h++; hl -= 2; }
    if (hl >= sizeof host) hl = sizeof host - 1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    if ((r = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
        fprintf(stderr, "wsr-chaos: cannot resolve '%s': %s\n", hostport, tool_gai_strerror(r));
        return NULL;
    }
    return res;
}

int main(int argc, char **argv) {
    const char *listen_at = "127.0.0.1:0", *target_at = NULL;
    struct addrinfo *la, *ta;
    struct pollfd pfd[2 + 2 * MAX_CONNS];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[64], port[16];
    int i, s, one = 1, stdin_open = 1;
    tool_sock lfd;
    uint64_t start;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { fputs(usage, stdout); return 0; }
        else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc) listen_at = argv[++i];
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) target_at = argv[++i];
        else if (strcmp(argv[i], "-q") == 0) quiet = 1;
        else if (strcmp(argv[i], "--schedule") == 0 && i + 1 < argc) {
            if (parse_schedule(argv[++i]) != 0) {
                fprintf(stderr, "wsr-chaos: bad --schedule (want \"T:CMD;T:CMD\", at most %d, commands as in --help)\n",
                        MAX_SCHEDULE);
                return 2;
            }
        } else break;
    }
    if (i < argc || !target_at) { fputs(usage, stderr); return 2; }
    if (tool_init("wsr-chaos") != 0) return 1;   /* Windows: Winsock, binary stdout */
    if (!(ta = resolve(target_at, 0)) || !(la = resolve(listen_at, 1))) return 1;
    target = ta;                          /* the first address; kept until exit */
#ifdef SIGPIPE
    signal(SIGPIPE, SIG_IGN);             /* a peer that went away is an errno, not a signal */
#endif

    lfd = socket(la->ai_family, SOCK_STREAM, 0);
    if (lfd == TOOL_NO_SOCK || setsockopt(lfd, SOL_SOCKET, TOOL_SO_REUSE, (const char *)&one, sizeof one) != 0 ||
        bind(lfd, la->ai_addr, (socklen_t)la->ai_addrlen) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&ss, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        fprintf(stderr, "wsr-chaos: cannot listen on %s: %s\n", listen_at, tool_sock_strerror(tool_sock_errno()));
        return 1;
    }
    freeaddrinfo(la);
    tool_sock_nonblock(lfd);
    printf(strchr(host, ':') ? "listening on [%s]:%s\n" : "listening on %s:%s\n", host, port);
    fflush(stdout);
    if ((stdin_fd = tool_stdin_start("wsr-chaos")) == TOOL_NO_SOCK) return 1;
    start = wsr_now_ms();

    for (;;) {
        uint64_t now = wsr_now_ms(), wake = 0;
        int timeout, left = run_schedule(now - start, now);
        if (quitting || (!stdin_open && !left)) break;

        /* Build the poll set: stdin, the listener, then fd[CLIENT] and
           fd[SERVER] of conns[i] at 2 + 2i (negative fds are skipped). */
        pfd[0].fd = stdin_open ? stdin_fd : TOOL_NO_SOCK;
        pfd[1].fd = lfd;
        pfd[0].events = pfd[1].events = POLLIN;
        for (i = 0; i < MAX_CONNS; i++) {
            for (s = 0; s < 2; s++) {
                struct pollfd *p = &pfd[2 + 2 * i + s];
                p->events = conns[i] ? conn_events(conns[i], s, now) : 0;
                p->fd = p->events ? conns[i]->fd[s] : TOOL_NO_SOCK;
                p->revents = 0;
            }
            /* Timers: a chunk that waits out its delay or its bandwidth share,
               the end of the linger after `close`, and (Windows) the next look
               at a pending connect. */
            if (conns[i] && conns[i]->connecting && TOOL_CONNECT_CHECK_MS > 0) {
                uint64_t t = now + TOOL_CONNECT_CHECK_MS;
                if (!wake || t < wake) wake = t;
            }
            if (conns[i] && conns[i]->cut) {
                uint64_t t = conns[i]->cut_at + LINGER_MS;
                if (!wake || t < wake) wake = t;
            } else if (conns[i] && !stalled) {
                for (s = 0; s < 2; s++) {
                    long w = flow_wait(&conns[i]->flow[s], now);
                    if (w > 0 && (!wake || now + (uint64_t)w < wake)) wake = now + (uint64_t)w;
                }
            }
        }
        for (i = 0; i < nschedule; i++)
            if (!schedule[i].done && (!wake || start + schedule[i].at < wake)) wake = start + schedule[i].at;
        timeout = !wake ? -1 : wake <= now ? 0 : wake - now > 60000 ? 60000 : (int)(wake - now);

        if (tool_poll(pfd, 2 + 2 * MAX_CONNS, timeout) < 0 && tool_sock_errno() != TOOL_E_INTR) {
            fprintf(stderr, "wsr-chaos: poll: %s\n", tool_sock_strerror(tool_sock_errno()));
            return 1;
        }
        now = wsr_now_ms();
        /* Connections first (the pollfd slots match conns[] only until a
           command or an accept changes it), then commands, then newcomers. */
        for (i = 0; i < MAX_CONNS; i++) {
            short rev[2];
            rev[CLIENT] = pfd[2 + 2 * i].revents;
            rev[SERVER] = pfd[3 + 2 * i].revents;
            if (conns[i]) conn_step(i, rev, now);
        }
        if (pfd[0].revents && !read_commands(now)) stdin_open = 0;
        if (pfd[1].revents & POLLIN) accept_all(lfd, now);
    }
    freeaddrinfo(ta);
    return 0;
}
