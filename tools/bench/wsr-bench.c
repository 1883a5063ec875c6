/* wsr-bench: ws_reconnect.h measured against raw TCP and other WebSocket
   libraries, side by side, in one run.

   usage: wsr-bench [--quick | --full] [options]     (see --help)

   What runs. The same binary echo workload, on 127.0.0.1 with port 0
   everywhere, through:
     raw-tcp     the baseline: 4-byte big-endian length + payload, over
                 non-blocking sockets and poll(), written as lean as we could
                 (whole frames are echoed straight from the read buffer; the
                 client sends a window from a strip of ready-made frames in
                 one writev()). Every other number is divided by this one.
     wsr         ws_reconnect.h: wsr_client and wsr_server, each in its own
                 poll() loop, defaults except reconnect = 0.
     ws          Node's ws (tests/interop/node_modules, pinned by the lock
                 file), through tools/bench/bench_ws.js.
     websockets  Python's websockets (Debian's python3-websockets, under
                 /usr/bin/python3), through tools/bench/bench_websockets.py.
   Every WebSocket client runs against every WebSocket server (3 x 3), and
   the raw client against the raw server. So "our client against theirs"
   (same server) and "our server against theirs" (same client) are both
   ratios of two numbers measured seconds apart in the same run.
   permessage-deflate is off everywhere (ws and websockets would otherwise
   compress; ws_reconnect.h has no extensions).

   Why two processes for every pair, ours included: the Node and Python
   peers must be processes of their own, so the raw and wsr servers are too
   (this program again, with --serve), and the raw and wsr clients run in
   this process. Each
   side then pays the same cross-process wake-ups and may use its own core.
   Putting our client and server in one poll loop would measure something
   else: one core, no wake-ups, and an unfair ratio either way.

   Workloads, for 16 B, 1 KiB, 64 KiB and 1 MiB binary messages:
     tp   throughput: a window of messages outstanding (64, at most 8 MiB in
          flight); each echo that comes back lets one more go, until the
          time is up; then the window drains. msgs/s and MB/s (payload one
          way, 10^6 bytes).
     lat  ping-pong: one message at a time, the next sent from the handler
          of the echo; median and 99th percentile round trip (nearest rank).
   Each cell has a warm-up on the same connection (JITs, buffers), then the
   timed part. One connection per client/server pair, all open at once, and
   each cell runs for every pair in turn (the order turns with each run), so
   load from elsewhere on the machine falls on all pairs alike. The tables
   give the median of the runs and their spread.

   Per message, on both sides (both processes): CPU time, from each
   process's CPU clock (every thread; read from outside, so it costs the
   process nothing), and, for ws_reconnect.h, calls to the run-time
   allocator (wsr_allocator) of the client and of the server. Then a
   counting pass, shorter, which counts system calls through the kernel's
   tracepoints (perf_event_open: raw_syscalls:sys_enter for the total,
   syscalls:sys_enter_* for the read / write / poll families) on every
   thread of both processes. It is kept apart because registered syscall
   tracepoints slow every system call on the machine: on the machine this
   was written on, a 16 B ping-pong went from 16 us to 33 us with them.
   Last, memory: each server's RSS per idle open connection, with 1000
   clients, each server in a fresh process (ours are this program started
   again as `wsr-bench --serve raw-tcp|wsr`, so that none inherits our heap).

   Build: cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -I. tools/bench/wsr-bench.c
          -o build/bench/wsr-bench -pthread            (Linux only)
   Run from the repository root (or give --peers DIR). */
#define _GNU_SOURCE                /* perf_event_open through syscall(), prctl, accept4 */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(__linux__)
#  error "wsr-bench runs on Linux (perf_event_open, /proc)"
#endif

/* ------------------------------------------------------------------------
   Settings, implementations and cells
   ------------------------------------------------------------------------ */

enum { IMPL_RAW, IMPL_WSR, IMPL_WS, IMPL_PY, NIMPL };
static const char *const impl_name[NIMPL] = { "raw-tcp", "wsr", "ws", "websockets" };

enum { MODE_TP, MODE_LAT, NMODE };
static const char *const mode_name[NMODE] = { "tp", "lat" };

#define NSIZE 4
static const size_t sizes[NSIZE] = { 16, 1024, 65536, 1048576 };
static const char *const size_name[NSIZE] = { "16 B", "1 KiB", "64 KiB", "1 MiB" };

#define MAX_REPS 9
#define MAX_PAIRS (1 + 3 * 3)
#define WINDOW_BYTES ((size_t)8 << 20)   /* at most this much payload in flight */

typedef struct options {
    const char *mode_label;   /* "quick", "full" or "custom" */
    int run_ms;               /* timed part of each cell */
    int warm_ms;              /* warm-up before it */
    int count_ms, count_warm_ms;   /* the same in the counting pass */
    int reps;                 /* runs of the whole matrix; the tables show medians */
    int window;               /* messages outstanding in tp (capped by WINDOW_BYTES) */
    int conns;                /* idle connections for the memory test; 0 = skip */
    int count;                /* a counting pass for system calls (perf tracepoints) */
    int verbose;              /* print every cell, with system calls by name */
    int only[NIMPL];          /* implementations taking part */
    int size_on[NSIZE];
    int mode_on[NMODE];
    const char *peer_dir;     /* where bench_ws.js and bench_websockets.py are */
    const char *csv;          /* also write every measurement here */
} options;

static options opt;

/* One client/server pairing. */
typedef struct pair { int client, server; } pair;

/* The outcome of one cell (one size, one workload) in one run. */
enum { SC_TOTAL, SC_READ, SC_WRITE, SC_POLL, SC_NCAT };
#define MAX_EV 40
typedef struct side_cost {
    int have_sc, have_cpu, have_alloc;
    double sc[SC_NCAT];           /* system calls per message, by family */
    double cpu_us;                /* CPU time per message */
    double allocs;                /* allocator calls per message */
    double ev[MAX_EV];            /* per message, by system call (verbose) */
} side_cost;

typedef struct cell {
    int valid;
    long msgs;
    int errors;
    double secs;
    double msgs_s, mb_s;          /* tp */
    double p50_us, p99_us;        /* lat */
    side_cost cli, srv;
} cell;

static cell results[MAX_PAIRS][NSIZE][NMODE][MAX_REPS];   /* timed runs */
static cell counted[MAX_PAIRS][NSIZE][NMODE];             /* the counting pass */
static pair pairs[MAX_PAIRS];
static int npairs;

/* ------------------------------------------------------------------------
   Small helpers
   ------------------------------------------------------------------------ */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void die(const char *fmt, const char *arg);

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory%s", "");
    return p;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples (the peers use the same rule). */
static uint64_t percentile(const uint64_t *sorted, size_t n, double p) {
    size_t rank;
    if (n == 0) return 0;
    rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

/* The first line of a file, without its newline, or "" . */
static void read_first_line(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (!f) return;
    if (fgets(out, (int)cap, f)) out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* Resident set size of a process in KiB (VmRSS), or -1. */
static long rss_kib(pid_t pid) {
    char path[64], line[256];
    long kib = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r"))) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return kib;
}

/* ------------------------------------------------------------------------
   Child processes. Every one is recorded here and ended by its pid: on a
   normal stop, on failure, and from the signal handler. Each also asks the
   kernel for SIGKILL if we die first (PR_SET_PDEATHSIG survives exec).
   ------------------------------------------------------------------------ */

#define MAX_CHILDREN 16
static volatile pid_t live_children[MAX_CHILDREN];

static void live_add(pid_t pid) {
    int i;
    for (i = 0; i < MAX_CHILDREN; i++)
        if (!live_children[i]) { live_children[i] = pid; return; }
}
static void live_del(pid_t pid) {
    int i;
    for (i = 0; i < MAX_CHILDREN; i++)
        if (live_children[i] == pid) live_children[i] = 0;
}
static void kill_children(void) {
    int i;
    for (i = 0; i < MAX_CHILDREN; i++) {
        pid_t p = live_children[i];
        if (p > 0) { kill(p, SIGKILL); waitpid(p, NULL, 0); live_children[i] = 0; }
    }
}

static void die(const char *fmt, const char *arg) {
    fflush(stdout);
    fprintf(stderr, "wsr-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    kill_children();
    exit(1);
}

static void on_fatal_signal(int sig) {
    int i;
    for (i = 0; i < MAX_CHILDREN; i++)      /* only async-signal-safe calls here */
        if (live_children[i] > 0) kill(live_children[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A running peer: its pid and, for the script peers, pipes to its stdin and
   from its stdout (one command a line, one answer a line). */
typedef struct child {
    pid_t pid;
    int to_fd, from_fd;
    char buf[4096];
    size_t len;
} child;

/* Reads one line the child wrote, waiting at most timeout_ms. Returns 0, or
   -1 on timeout, end of stream or error. */
static int child_line(child *c, char *out, size_t cap, int timeout_ms) {
    uint64_t until = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        char *nl = (char *)memchr(c->buf, '\n', c->len);
        struct pollfd p;
        ssize_t n;
        uint64_t now;
        if (nl) {
            size_t l = (size_t)(nl - c->buf);
            size_t k = l < cap - 1 ? l : cap - 1;
            memcpy(out, c->buf, k);
            out[k] = '\0';
            memmove(c->buf, nl + 1, c->len - l - 1);
            c->len -= l + 1;
            return 0;
        }
        if (c->len == sizeof c->buf) c->len = 0;          /* an absurd line: drop it */
        now = now_ns();
        if (now >= until) return -1;
        p.fd = c->from_fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, (int)((until - now) / 1000000u) + 1) <= 0) continue;
        n = read(c->from_fd, c->buf + c->len, sizeof c->buf - c->len);
        if (n == 0) return -1;
        if (n < 0) { if (errno == EINTR || errno == EAGAIN) continue; return -1; }
        c->len += (size_t)n;
    }
}

static int child_say(child *c, const char *line) {
    size_t n = strlen(line), off = 0;
    while (off < n) {
        ssize_t k = write(c->to_fd, line + off, n - off);
        if (k < 0) { if (errno == EINTR) continue; return -1; }
        off += (size_t)k;
    }
    return 0;
}

/* Ends a child: SIGTERM, up to 2 s to go, then SIGKILL. */
static void child_stop(child *c) {
    int i;
    if (c->to_fd >= 0) { close(c->to_fd); c->to_fd = -1; }
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        for (i = 0; i < 200; i++) {
            if (waitpid(c->pid, NULL, WNOHANG) == c->pid) break;
            sleep_ms(10);
        }
        if (i == 200) { kill(c->pid, SIGKILL); waitpid(c->pid, NULL, 0); }
        live_del(c->pid);
        c->pid = 0;
    }
    if (c->from_fd >= 0) { close(c->from_fd); c->from_fd = -1; }
    c->len = 0;
}

/* What every child does first: die with us, and forget our handlers. */
static void child_setup(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);          /* we died before prctl */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
}

/* Starts argv[0] with pipes on its stdin and stdout. */
static int child_exec(child *c, char *const argv[]) {
    int in[2], out[2];
    pid_t parent = getpid();
    memset(c, 0, sizeof *c);
    c->to_fd = c->from_fd = -1;
    if (pipe(in) < 0) return -1;
    if (pipe(out) < 0) { close(in[0]); close(in[1]); return -1; }
    fflush(stdout);
    fflush(stderr);
    c->pid = fork();
    if (c->pid < 0) return -1;
    if (c->pid == 0) {
        child_setup(parent);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        execv(argv[0], argv);
        fprintf(stderr, "wsr-bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    live_add(c->pid);
    close(in[0]);
    close(out[1]);
    c->to_fd = in[1];
    c->from_fd = out[0];
    fcntl(c->to_fd, F_SETFD, FD_CLOEXEC);
    fcntl(c->from_fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/* ------------------------------------------------------------------------
   Counting: system calls and CPU time through perf_event_open, and the
   library's allocations through wsr_allocator.
   ------------------------------------------------------------------------ */

/* Tracepoint events, by family. The first is the total; the others name
   the system calls of each family (and a few telling ones, counted as
   "other"). A system call this kernel does not trace is left out. */
typedef struct sc_event { const char *sys, *name; int cat; long long id; } sc_event;
enum { CAT_TOTAL, CAT_READ, CAT_WRITE, CAT_POLL, CAT_OTHER };
static sc_event events[] = {
    { "raw_syscalls", "sys_enter", CAT_TOTAL, -1 },
    { "syscalls", "sys_enter_read", CAT_READ, -1 },
    { "syscalls", "sys_enter_readv", CAT_READ, -1 },
    { "syscalls", "sys_enter_recvfrom", CAT_READ, -1 },
    { "syscalls", "sys_enter_recvmsg", CAT_READ, -1 },
    { "syscalls", "sys_enter_recvmmsg", CAT_READ, -1 },
    { "syscalls", "sys_enter_write", CAT_WRITE, -1 },
    { "syscalls", "sys_enter_writev", CAT_WRITE, -1 },
    { "syscalls", "sys_enter_sendto", CAT_WRITE, -1 },
    { "syscalls", "sys_enter_sendmsg", CAT_WRITE, -1 },
    { "syscalls", "sys_enter_sendmmsg", CAT_WRITE, -1 },
    { "syscalls", "sys_enter_poll", CAT_POLL, -1 },
    { "syscalls", "sys_enter_ppoll", CAT_POLL, -1 },
    { "syscalls", "sys_enter_select", CAT_POLL, -1 },
    { "syscalls", "sys_enter_pselect6", CAT_POLL, -1 },
    { "syscalls", "sys_enter_epoll_wait", CAT_POLL, -1 },
    { "syscalls", "sys_enter_epoll_pwait", CAT_POLL, -1 },
    { "syscalls", "sys_enter_epoll_pwait2", CAT_POLL, -1 },
    { "syscalls", "sys_enter_epoll_ctl", CAT_OTHER, -1 },
    { "syscalls", "sys_enter_futex", CAT_OTHER, -1 },
    { "syscalls", "sys_enter_getrandom", CAT_OTHER, -1 },
    { "syscalls", "sys_enter_clock_gettime", CAT_OTHER, -1 },
    { "syscalls", "sys_enter_brk", CAT_OTHER, -1 },
    { "syscalls", "sys_enter_mmap", CAT_OTHER, -1 },
    { "syscalls", "sys_enter_munmap", CAT_OTHER, -1 },
    { "syscalls", "sys_enter_madvise", CAT_OTHER, -1 },
};
#define NEVENTS ((int)(sizeof events / sizeof events[0]))
static int sc_available;          /* the total's tracepoint could be found */
static char sc_why[200];          /* ... or why not */

/* Counters attached to every thread of one process. */
#define MAX_TASKS 64
typedef struct counters {
    int opened;                   /* counters_open ran (a zeroed struct holds no descriptors) */
    int self;                     /* our own process: our ioctls are in the window */
    int ntask;
    int fd[MAX_TASKS][MAX_EV];    /* -1: not counted */
    uint64_t val[MAX_EV];         /* summed over the threads */
} counters;

static long perf_open(struct perf_event_attr *a, pid_t tid) {
    return syscall(SYS_perf_event_open, a, tid, -1, -1, (unsigned long)PERF_FLAG_FD_CLOEXEC);
}

static void sc_find_events(void) {
    static const char *const roots[] = { "/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events" };
    int i, r;
    for (i = 0; i < NEVENTS; i++) {
        for (r = 0; r < 2 && events[i].id < 0; r++) {
            char path[256], line[64];
            snprintf(path, sizeof path, "%s/%s/%s/id", roots[r], events[i].sys, events[i].name);
            read_first_line(path, line, sizeof line);
            if (line[0]) events[i].id = atoll(line);
        }
    }
    sc_available = events[0].id >= 0;
    if (!sc_available)
        snprintf(sc_why, sizeof sc_why, "no tracefs with raw_syscalls (as root: mount -t tracefs nodev "
                 "/sys/kernel/tracing, or run `perf stat -e raw_syscalls:sys_enter true` once)");
}

/* Attaches disabled counters to every thread pid has now (and, through
   inherit, to the threads they start later). Opening them registers the
   kernel's system call tracepoints, which slows every system call on the
   machine: so they exist only during the counting pass, never while the
   timed runs go. */
static void counters_open(counters *k, pid_t pid) {
    char dir[64];
    DIR *d;
    struct dirent *e;
    memset(k, 0, sizeof *k);
    k->opened = 1;
    k->self = pid == getpid();
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    if (!(d = opendir(dir))) return;
    while ((e = readdir(d)) != NULL && k->ntask < MAX_TASKS) {
        pid_t tid = (pid_t)atoi(e->d_name);
        int i, *fd = k->fd[k->ntask];
        if (tid <= 0) continue;
        for (i = 0; i < MAX_EV; i++) fd[i] = -1;
        for (i = 0; i < NEVENTS; i++) {
            struct perf_event_attr a;
            if (events[i].id < 0) continue;
            memset(&a, 0, sizeof a);
            a.size = sizeof a;
            a.type = PERF_TYPE_TRACEPOINT;
            a.config = (uint64_t)events[i].id;
            a.sample_period = 1;
            a.disabled = 1;
            a.inherit = 1;
            fd[i] = (int)perf_open(&a, tid);
            if (fd[i] < 0 && i == 0 && !sc_why[0])
                snprintf(sc_why, sizeof sc_why, "perf_event_open(raw_syscalls:sys_enter): %s (needs root or "
                         "perf_event_paranoid <= 1)", strerror(errno));
        }
        k->ntask++;
    }
    closedir(d);
}

static void counters_close(counters *k) {
    int t, i;
    if (!k->opened) return;
    for (t = 0; t < k->ntask; t++)
        for (i = 0; i < MAX_EV; i++) if (k->fd[t][i] >= 0) close(k->fd[t][i]);
    memset(k, 0, sizeof *k);
}

/* The total is enabled last and disabled first, so that of our own ioctls
   it sees only the one that disables it (taken off below). */
static void counters_start(counters *k) {
    int t, i;
    if (!k->opened) return;
    for (t = 0; t < k->ntask; t++)
        for (i = NEVENTS - 1; i >= 0; i--) {
            if (k->fd[t][i] < 0) continue;
            ioctl(k->fd[t][i], PERF_EVENT_IOC_RESET, 0);
            ioctl(k->fd[t][i], PERF_EVENT_IOC_ENABLE, 0);
        }
}

static void counters_stop(counters *k) {
    int t, i;
    if (!k->opened) return;
    for (t = 0; t < k->ntask; t++)
        for (i = 0; i < NEVENTS; i++) if (k->fd[t][i] >= 0) ioctl(k->fd[t][i], PERF_EVENT_IOC_DISABLE, 0);
    memset(k->val, 0, sizeof k->val);
    for (t = 0; t < k->ntask; t++)
        for (i = 0; i < NEVENTS; i++) {
            uint64_t v = 0;
            if (k->fd[t][i] >= 0 && read(k->fd[t][i], &v, sizeof v) == (ssize_t)sizeof v) k->val[i] += v;
        }
    if (k->self && k->val[0] > 0) k->val[0]--;
}

/* System calls per message from stopped counters. */
static void counters_cost(const counters *k, long msgs, side_cost *out) {
    int i;
    double m = msgs > 0 ? (double)msgs : 1;
    out->have_sc = k->opened && k->ntask > 0 && k->fd[0][0] >= 0;
    if (!out->have_sc) return;
    memset(out->sc, 0, sizeof out->sc);
    for (i = 0; i < NEVENTS; i++) {
        double v = (double)k->val[i] / m;
        out->ev[i] = v;
        if (events[i].cat == CAT_TOTAL) out->sc[SC_TOTAL] = v;
        else if (events[i].cat == CAT_READ) out->sc[SC_READ] += v;
        else if (events[i].cat == CAT_WRITE) out->sc[SC_WRITE] += v;
        else if (events[i].cat == CAT_POLL) out->sc[SC_POLL] += v;
    }
}

/* CPU time of a whole process (every thread), read from outside: costs the
   process nothing. */
typedef struct cpu_clock { int ok; clockid_t id; uint64_t t0; } cpu_clock;

static void cpu_clock_init(cpu_clock *c, pid_t pid) {
    c->ok = pid == getpid() ? (c->id = CLOCK_PROCESS_CPUTIME_ID, 1) : clock_getcpuclockid(pid, &c->id) == 0;
}
static uint64_t cpu_clock_read(const cpu_clock *c) {
    struct timespec ts;
    if (!c->ok || clock_gettime(c->id, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The run-time allocator handed to wsr_client and wsr_server: malloc with
   a 16-byte header for the size, counting calls and live bytes. The
   server's counts live in shared memory, so that we can read them here. */
typedef struct alloc_stats {
    volatile uint64_t allocs, frees, live, peak;
} alloc_stats;

static void *count_alloc(size_t n, void *user) {
    alloc_stats *s = (alloc_stats *)user;
    size_t *p = (size_t *)malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    s->allocs++;
    s->live += n;
    if (s->live > s->peak) s->peak = s->live;
    return (char *)p + 16;
}
static void count_free(void *ptr, void *user) {
    alloc_stats *s = (alloc_stats *)user;
    size_t *p = (size_t *)(void *)((char *)ptr - 16);
    s->frees++;
    s->live -= p[0];
    free(p);
}

static alloc_stats client_alloc;       /* our wsr client, in this process */
static alloc_stats *server_alloc;      /* the wsr server child's, shared */

/* ------------------------------------------------------------------------
   The workload, shared by the raw and wsr clients in this process: what to
   do when an echo comes back. The Node and Python peers do the same.
   ------------------------------------------------------------------------ */

typedef struct workload {
    int mode;
    size_t size;
    int window;
    uint64_t t0, t_end, end_ns;   /* start, last echo, when to stop sending */
    uint64_t t_sent;              /* lat: when the message in flight was sent */
    long sent, got;
    int stop, done, errors;
    uint64_t *samples;            /* lat: round trips, ns */
    size_t nsamples, cap;
} workload;

static uint64_t *sample_buf;
#define SAMPLE_CAP ((size_t)1 << 21)

/* Starts the clock; the caller then sends wl->sent messages. */
static void wl_start(workload *w, int mode, size_t size, int window, int ms) {
    memset(w, 0, sizeof *w);
    w->mode = mode;
    w->size = size;
    w->window = window;
    w->samples = sample_buf;
    w->cap = SAMPLE_CAP;
    w->sent = mode == MODE_TP ? window : 1;
    w->t0 = w->t_sent = now_ns();
    w->end_ns = w->t0 + (uint64_t)ms * 1000000u;
}

/* An echo of len bytes came back. Returns 1 when the caller must send the
   next message now. */
static int wl_echo(workload *w, size_t len) {
    uint64_t t = now_ns();
    w->got++;
    if (len != w->size) w->errors++;
    if (w->mode == MODE_LAT) {
        if (w->nsamples < w->cap) w->samples[w->nsamples++] = t - w->t_sent;
        if (t >= w->end_ns || w->nsamples == w->cap) { w->done = 1; w->t_end = t; return 0; }
        w->sent++;
        w->t_sent = now_ns();
        return 1;
    }
    if (!w->stop && t >= w->end_ns) w->stop = 1;
    if (!w->stop) { w->sent++; return 1; }
    if (w->got == w->sent) { w->done = 1; w->t_end = t; }
    return 0;
}

/* Result of a timed run, as the peers report it too. */
typedef struct run_result {
    long msgs;
    uint64_t ns, p50, p99;
    int errors;
} run_result;

static void wl_result(workload *w, run_result *r) {
    r->msgs = w->got;
    r->ns = w->t_end - w->t0;
    r->errors = w->errors;
    r->p50 = r->p99 = 0;
    if (w->mode == MODE_LAT && w->nsamples) {
        qsort(w->samples, w->nsamples, sizeof *w->samples, cmp_u64);
        r->p50 = percentile(w->samples, w->nsamples, 0.50);
        r->p99 = percentile(w->samples, w->nsamples, 0.99);
    }
}

static unsigned char *payload;        /* the message: sizes[NSIZE-1] bytes */

/* ------------------------------------------------------------------------
   Raw TCP: the baseline. A frame is a 4-byte big-endian length and the
   payload. Reads offer at least 256 KiB (and room for the rest of a frame
   whose header is in), so a whole frame is always delivered where it lies;
   nothing is copied but a partial frame moved to the front.
   ------------------------------------------------------------------------ */

#define RAW_READ ((size_t)256 * 1024)
#define RAW_MAX_FRAME ((size_t)64 << 20)

typedef struct rbuf { unsigned char *d; size_t pos, len, cap; } rbuf;

static size_t raw_frame_len(const unsigned char *p) {
    return 4 + ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3]);
}

/* Room to read: RAW_READ bytes at least, and the rest of the frame that
   starts at pos. Returns -1 for a frame over RAW_MAX_FRAME or no memory. */
static int rbuf_room(rbuf *b) {
    size_t need = RAW_READ, have = b->len - b->pos;
    if (have >= 4) {
        size_t f = raw_frame_len(b->d + b->pos);
        if (f > RAW_MAX_FRAME) return -1;
        if (f > have && f - have > need) need = f - have;
    }
    if (b->cap - b->len >= need) return 0;
    if (b->pos > 0) {                              /* move the partial frame to the front */
        memmove(b->d, b->d + b->pos, have);
        b->pos = 0;
        b->len = have;
        if (b->cap - b->len >= need) return 0;
    }
    {
        size_t cap = b->len + need;
        unsigned char *d = (unsigned char *)realloc(b->d, cap);
        if (!d) return -1;
        b->d = d;
        b->cap = cap;
    }
    return 0;
}

static int rbuf_append(rbuf *b, const unsigned char *p, size_t n) {
    if (b->cap - b->len < n) {
        size_t cap = b->len + n + RAW_READ;
        unsigned char *d = (unsigned char *)realloc(b->d, cap);
        if (!d) return -1;
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->len, p, n);
    b->len += n;
    return 0;
}

static int listen_local(int *port) {
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0 || set_nonblock(fd) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A blocking connect to 127.0.0.1:port with TCP_NODELAY (as the libraries do). */
static int connect_local(int port) {
    struct sockaddr_in a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static volatile sig_atomic_t server_stop;
static void on_server_term(int sig) { (void)sig; server_stop = 1; }

static void server_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_server_term;      /* no SA_RESTART: poll() returns at once */
    sigaction(SIGTERM, &sa, NULL);
}

typedef struct raw_conn { int fd; rbuf in, out; } raw_conn;

/* Echoes n bytes of whole frames: straight from the read buffer when
   nothing waits before them, else after what waits. */
static int raw_echo(raw_conn *c, const unsigned char *p, size_t n) {
    if (c->out.len == c->out.pos) {
        ssize_t k = write(c->fd, p, n);
        if (k < 0) { if (errno != EAGAIN && errno != EINTR) return -1; k = 0; }
        p += k;
        n -= (size_t)k;
        c->out.pos = c->out.len = 0;
    }
    return n ? rbuf_append(&c->out, p, n) : 0;
}

/* Reads until the socket is empty and echoes every whole frame. -1: the
   connection is over. */
static int raw_conn_read(raw_conn *c) {
    for (;;) {
        size_t space, at;
        ssize_t n;
        if (rbuf_room(&c->in) < 0) return -1;
        space = c->in.cap - c->in.len;
        n = read(c->fd, c->in.d + c->in.len, space);
        if (n == 0) return -1;
        if (n < 0) { if (errno == EINTR) continue; return errno == EAGAIN ? 0 : -1; }
        c->in.len += (size_t)n;
        at = c->in.pos;
        while (c->in.len - at >= 4 && c->in.len - at >= raw_frame_len(c->in.d + at)) at += raw_frame_len(c->in.d + at);
        if (at > c->in.pos && raw_echo(c, c->in.d + c->in.pos, at - c->in.pos) < 0) return -1;
        c->in.pos = at;
        if (c->in.pos == c->in.len) c->in.pos = c->in.len = 0;
        if ((size_t)n < space) return 0;           /* short read: the socket is empty */
    }
}

static int raw_conn_write(raw_conn *c) {
    while (c->out.pos < c->out.len) {
        ssize_t k = write(c->fd, c->out.d + c->out.pos, c->out.len - c->out.pos);
        if (k < 0) { if (errno == EINTR) continue; return errno == EAGAIN ? 0 : -1; }
        c->out.pos += (size_t)k;
    }
    c->out.pos = c->out.len = 0;
    return 0;
}

/* The raw-TCP echo server (wsr-bench --serve raw): one poll() over
   everything. */
static int raw_serve(void) {
    raw_conn *conns = NULL;
    struct pollfd *pf = NULL;
    size_t n = 0, cap = 0, i;
    int port = 0, lfd = listen_local(&port);
    server_signals();
    printf("READY %d\n", lfd < 0 ? 0 : port);
    fflush(stdout);
    if (lfd < 0) return 1;
    while (!server_stop) {
        if (cap < n + 1) {
            cap = (n + 1) * 2;
            pf = (struct pollfd *)realloc(pf, cap * sizeof *pf);
            conns = (raw_conn *)realloc(conns, cap * sizeof *conns);
            if (!pf || !conns) _exit(1);
        }
        pf[0].fd = lfd;
        pf[0].events = POLLIN;
        for (i = 0; i < n; i++) {
            pf[i + 1].fd = conns[i].fd;
            pf[i + 1].events = (short)(POLLIN | (conns[i].out.len > conns[i].out.pos ? POLLOUT : 0));
        }
        if (poll(pf, n + 1, 1000) <= 0) continue;
        for (i = 0; i < n; i++) {
            short re = pf[i + 1].revents;
            int bad = 0;
            if (re & POLLOUT) bad = raw_conn_write(&conns[i]) < 0;
            if (!bad && (re & (POLLIN | POLLHUP | POLLERR))) bad = raw_conn_read(&conns[i]) < 0;
            if (bad) {                                  /* closed: the last one takes its place */
                close(conns[i].fd);
                free(conns[i].in.d);
                free(conns[i].out.d);
                conns[i].fd = -1;
            }
        }
        for (i = 0; i < n;) {
            if (conns[i].fd < 0) { conns[i] = conns[--n]; pf[i + 1] = pf[n + 1]; }
            else i++;
        }
        if (pf[0].revents & POLLIN) {
            for (;;) {
                int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) break;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (cap < n + 2) {
                    cap = (n + 2) * 2;
                    pf = (struct pollfd *)realloc(pf, cap * sizeof *pf);
                    conns = (raw_conn *)realloc(conns, cap * sizeof *conns);
                    if (!pf || !conns) _exit(1);
                }
                memset(&conns[n], 0, sizeof conns[n]);
                conns[n++].fd = fd;
            }
        }
    }
    return 0;
}

/* The raw-TCP client. The frames are built once, as a strip of identical
   frames back to back (up to 64 of them, at most 256 KiB); "sending" a
   message adds a frame's length to the bytes owed, and one writev() sends
   everything owed out of the strip, so a window of small messages goes out
   as one contiguous buffer in one system call. */
#define RAW_STRIP_BYTES ((size_t)256 * 1024)
typedef struct raw_client {
    int fd;
    unsigned char *strip;
    size_t flen, nframes;         /* one frame's length; frames in the strip */
    uint64_t owe;                 /* bytes owed: whole frames, less what of the first one went out */
    rbuf in;
} raw_client;

static int raw_flush(raw_client *rc) {
    size_t span = rc->flen * rc->nframes;
    while (rc->owe) {
        struct iovec iov[64];
        int k = 0;
        uint64_t left = rc->owe;
        size_t off = (size_t)((rc->flen - rc->owe % rc->flen) % rc->flen), want = 0;
        ssize_t n;
        while (left && k < 64) {
            size_t len = span - off;
            if (len > left) len = (size_t)left;
            iov[k].iov_base = rc->strip + off;
            iov[k++].iov_len = len;
            want += len;
            left -= len;
            off = 0;
        }
        n = writev(rc->fd, iov, k);
        if (n < 0) { if (errno == EAGAIN) return 0; if (errno == EINTR) continue; return -1; }
        rc->owe -= (uint64_t)n;
        if ((size_t)n < want) return 0;            /* the socket is full: wait for POLLOUT */
    }
    return 0;
}

static int raw_client_read(raw_client *rc, workload *w) {
    for (;;) {
        size_t space;
        ssize_t n;
        if (rbuf_room(&rc->in) < 0) return -1;
        space = rc->in.cap - rc->in.len;
        n = read(rc->fd, rc->in.d + rc->in.len, space);
        if (n == 0) return -1;
        if (n < 0) { if (errno == EAGAIN) return 0; if (errno == EINTR) continue; return -1; }
        rc->in.len += (size_t)n;
        while (rc->in.len - rc->in.pos >= 4) {
            size_t f = raw_frame_len(rc->in.d + rc->in.pos);
            if (rc->in.len - rc->in.pos < f) break;
            if (wl_echo(w, f - 4)) rc->owe += rc->flen;   /* the message was "received" where it lies */
            rc->in.pos += f;
        }
        if (rc->in.pos == rc->in.len) rc->in.pos = rc->in.len = 0;
        if ((size_t)n < space || w->done) return 0;
    }
}

static int raw_client_open(raw_client *rc, int port) {
    memset(rc, 0, sizeof *rc);
    rc->fd = connect_local(port);
    if (rc->fd < 0 || set_nonblock(rc->fd) < 0) return -1;
    rc->strip = (unsigned char *)xmalloc(RAW_STRIP_BYTES > 4 + sizes[NSIZE - 1] ? RAW_STRIP_BYTES : 4 + sizes[NSIZE - 1]);
    return 0;
}

static void raw_client_close(raw_client *rc) {
    if (rc->fd >= 0) close(rc->fd);
    free(rc->strip);
    free(rc->in.d);
    memset(rc, 0, sizeof *rc);
    rc->fd = -1;
}

static int raw_client_run(raw_client *rc, int mode, size_t size, int window, int ms, run_result *res) {
    workload w;
    uint32_t l = (uint32_t)size;
    size_t i;
    rc->flen = 4 + size;
    rc->nframes = RAW_STRIP_BYTES / rc->flen;
    if (rc->nframes > 64) rc->nframes = 64;
    if (rc->nframes < 1) rc->nframes = 1;
    for (i = 0; i < rc->nframes; i++) {
        unsigned char *f = rc->strip + i * rc->flen;
        f[0] = (unsigned char)(l >> 24); f[1] = (unsigned char)(l >> 16);
        f[2] = (unsigned char)(l >> 8);  f[3] = (unsigned char)l;
        memcpy(f + 4, payload, size);
    }
    wl_start(&w, mode, size, window, ms);
    rc->owe = (uint64_t)w.sent * rc->flen;
    while (!w.done) {
        struct pollfd p;
        if (rc->owe && raw_flush(rc) < 0) return -1;
        p.fd = rc->fd;
        p.events = (short)(POLLIN | (rc->owe ? POLLOUT : 0));
        p.revents = 0;
        if (poll(&p, 1, 30000) <= 0) { if (errno == EINTR) continue; return -1; }
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && raw_client_read(rc, &w) < 0) return -1;
    }
    wl_result(&w, res);
    return 0;
}

/* ------------------------------------------------------------------------
   ws_reconnect.h: the server (wsr-bench --serve wsr) and the client (here)
   ------------------------------------------------------------------------ */

static void wsr_echo(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len, void *user) {
    (void)user;
    if (wsr_conn_send(conn, type, data, len) != WSR_OK) wsr_conn_close(conn, 1011, "echo failed");
}

/* ws_reconnect.h's echo server (wsr-bench --serve wsr): defaults, except
   room for the memory test's connections and the counting allocator. */
static int wsr_serve(void) {
    wsr_server_config cfg;
    wsr_server *s;
    wsr_error err;
    server_signals();
    wsr_server_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.max_connections = 4096;            /* the memory test opens 1000 and more */
    cfg.on_message = wsr_echo;
    cfg.allocator.alloc_fn = count_alloc;
    cfg.allocator.free_fn = count_free;
    cfg.allocator.user = server_alloc;
    s = wsr_server_new(&cfg, &err);
    printf("READY %d\n", s ? wsr_server_port(s) : 0);
    fflush(stdout);
    if (!s) { fprintf(stderr, "wsr-bench --serve wsr: %s\n", err.message); return 1; }
    while (!server_stop) wsr_server_poll(s, 1000);
    wsr_server_free(s);
    return 0;
}

typedef struct wsr_side {
    wsr_client *c;
    workload *w;                  /* the run under way, or NULL */
    int open, ended;
    char why[WSR_ERROR_MESSAGE_SIZE];
} wsr_side;

static void wc_open(wsr_client *c, const char *subprotocol, void *user) {
    (void)c; (void)subprotocol;
    ((wsr_side *)user)->open = 1;
}
static void wc_close(wsr_client *c, const wsr_error *why, void *user) {
    wsr_side *s = (wsr_side *)user;
    (void)c;
    s->ended = 1;
    snprintf(s->why, sizeof s->why, "%s", why->message);
}
/* The echo came back: maybe send the next one, from the handler itself
   (what a request/response application does). */
static void wc_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    wsr_side *s = (wsr_side *)user;
    (void)type; (void)data;
    if (s->w && wl_echo(s->w, len) && wsr_send_binary(c, payload, s->w->size) != WSR_OK) s->w->errors++;
}

static int wsr_client_open_to(wsr_side *s, int port) {
    wsr_client_config cfg;
    wsr_error err;
    char url[64];
    uint64_t until = now_ns() + 10000000000u;
    memset(s, 0, sizeof *s);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/bench", port);
    wsr_client_config_init(&cfg);
    cfg.url = url;
    cfg.reconnect = 0;                     /* a dropped link is a failed benchmark */
    cfg.on_open = wc_open;
    cfg.on_close = wc_close;
    cfg.on_message = wc_message;
    cfg.user = s;
    cfg.allocator.alloc_fn = count_alloc;
    cfg.allocator.free_fn = count_free;
    cfg.allocator.user = &client_alloc;
    if (!(s->c = wsr_client_new(&cfg, &err))) { snprintf(s->why, sizeof s->why, "%s", err.message); return -1; }
    while (!s->open && !s->ended && now_ns() < until) wsr_client_poll(s->c, 100);
    if (!s->open && !s->why[0]) snprintf(s->why, sizeof s->why, "no upgrade within 10 s");
    return s->open ? 0 : -1;
}

static int wsr_client_run(wsr_side *s, int mode, size_t size, int window, int ms, run_result *res) {
    workload w;
    long i;
    uint64_t limit;
    wl_start(&w, mode, size, window, ms);
    limit = w.end_ns + 60000000000u;
    s->w = &w;
    for (i = 0; i < w.sent; i++)
        if (wsr_send_binary(s->c, payload, size) != WSR_OK) w.errors++;
    while (!w.done && !s->ended && now_ns() < limit) wsr_client_poll(s->c, 1000);
    s->w = NULL;
    if (!w.done) {
        if (!s->why[0]) snprintf(s->why, sizeof s->why, "the run did not finish");
        return -1;
    }
    wl_result(&w, res);
    return 0;
}

static void wsr_client_end(wsr_side *s) {
    if (s->c && s->open && !s->ended) {
        uint64_t until = now_ns() + 2000000000u;
        wsr_client_close(s->c, 1000, "done");
        while (wsr_client_state(s->c) != WSR_STATE_CLOSED && now_ns() < until) wsr_client_poll(s->c, 100);
    }
    wsr_client_free(s->c);
    s->c = NULL;
}

/* ------------------------------------------------------------------------
   Peers: servers and clients of every kind behind one interface
   ------------------------------------------------------------------------ */

static char node_bin[256] = "/usr/bin/node";
static const char *python_bin = "/usr/bin/python3";
static char ws_script[1024], py_script[1024];
static int impl_ok[NIMPL];             /* the peer could start (--version answered) */
static char impl_version[NIMPL][160];

static int stats_fd = -1;             /* memfd holding server_alloc, for --serve wsr */
static char stats_arg[16];

static void script_argv(int impl, const char *role, const char *url, char *argv[6]) {
    argv[0] = impl == IMPL_WS ? node_bin : (char *)python_bin;
    argv[1] = impl == IMPL_WS ? ws_script : py_script;
    argv[2] = (char *)role;
    argv[3] = (char *)url;
    argv[4] = NULL;
    if (impl == IMPL_RAW || impl == IMPL_WSR) {       /* our servers: this program, afresh */
        argv[0] = (char *)"/proc/self/exe";
        argv[1] = (char *)"--serve";
        argv[2] = (char *)impl_name[impl];
        argv[3] = (char *)"--stats-fd";
        argv[4] = stats_arg;
        argv[5] = NULL;
    }
}

/* A server of any kind, in its own process. */
typedef struct peer_server {
    int impl;
    child ch;
    int port;
    counters k;                   /* during the counting pass */
    cpu_clock clk;
} peer_server;

static int server_start(peer_server *s, int impl) {
    char line[256];
    memset(s, 0, sizeof *s);
    s->impl = impl;
    {
        char *argv[6];
        script_argv(impl, "server", NULL, argv);
        if (child_exec(&s->ch, argv) < 0) return -1;
    }
    if (child_line(&s->ch, line, sizeof line, 15000) < 0 || strncmp(line, "READY ", 6) != 0 ||
        (s->port = atoi(line + 6)) <= 0) {
        fprintf(stderr, "wsr-bench: the %s server did not start\n", impl_name[impl]);
        child_stop(&s->ch);
        return -1;
    }
    cpu_clock_init(&s->clk, s->ch.pid);
    return 0;
}

static void server_end(peer_server *s) {
    counters_close(&s->k);
    child_stop(&s->ch);
}

/* A client of any kind, connected to a server. */
typedef struct peer_client {
    int impl;
    raw_client raw;
    wsr_side wsr;
    child ch;                     /* a script peer */
    counters k;                   /* during the counting pass */
    cpu_clock clk;
    char why[WSR_ERROR_MESSAGE_SIZE];
} peer_client;

static int client_start(peer_client *c, int impl, int port) {
    memset(c, 0, sizeof *c);
    c->impl = impl;
    c->ch.to_fd = c->ch.from_fd = -1;
    if (impl == IMPL_RAW) {
        if (raw_client_open(&c->raw, port) < 0) { snprintf(c->why, sizeof c->why, "connect: %s", strerror(errno)); return -1; }
        cpu_clock_init(&c->clk, getpid());
    } else if (impl == IMPL_WSR) {
        if (wsr_client_open_to(&c->wsr, port) < 0) { snprintf(c->why, sizeof c->why, "%s", c->wsr.why); return -1; }
        cpu_clock_init(&c->clk, getpid());
    } else {
        char url[64], line[256], *argv[6];
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/bench", port);
        script_argv(impl, "client", url, argv);
        if (child_exec(&c->ch, argv) < 0) return -1;
        if (child_line(&c->ch, line, sizeof line, 15000) < 0 || strcmp(line, "READY") != 0) {
            snprintf(c->why, sizeof c->why, "the %s client did not connect", impl_name[impl]);
            return -1;
        }
        cpu_clock_init(&c->clk, c->ch.pid);
    }
    return 0;
}

/* One run of a workload: warm = untimed. */
static int client_do(peer_client *c, int warm, int mode, size_t size, int window, int ms, run_result *r) {
    memset(r, 0, sizeof *r);
    if (c->impl == IMPL_RAW) {
        if (raw_client_run(&c->raw, mode, size, window, ms, r) == 0) return 0;
        snprintf(c->why, sizeof c->why, "raw client: %s", strerror(errno));
        return -1;
    }
    if (c->impl == IMPL_WSR) {
        if (wsr_client_run(&c->wsr, mode, size, window, ms, r) == 0) return 0;
        snprintf(c->why, sizeof c->why, "%s", c->wsr.why);
        return -1;
    } else {
        char cmd[128], line[256];
        unsigned long long ns, p50, p99;
        long msgs;
        int errors;
        snprintf(cmd, sizeof cmd, "%s %s %lu %d %d\n", warm ? "WARM" : "RUN", mode_name[mode], (unsigned long)size,
                 window, ms);
        if (child_say(&c->ch, cmd) < 0 || child_line(&c->ch, line, sizeof line, ms + 60000) < 0) {
            snprintf(c->why, sizeof c->why, "the %s client stopped answering", impl_name[c->impl]);
            return -1;
        }
        if (sscanf(line, "RESULT %ld %llu %llu %llu %d", &msgs, &ns, &p50, &p99, &errors) != 5) {
            snprintf(c->why, sizeof c->why, "the %s client said: %.200s", impl_name[c->impl], line);
            return -1;
        }
        r->msgs = msgs;
        r->ns = ns;
        r->p50 = p50;
        r->p99 = p99;
        r->errors = errors;
        return 0;
    }
}

static void client_end(peer_client *c) {
    counters_close(&c->k);
    if (c->impl == IMPL_RAW) raw_client_close(&c->raw);
    else if (c->impl == IMPL_WSR) wsr_client_end(&c->wsr);
    else if (c->ch.pid > 0) {
        int i;
        child_say(&c->ch, "QUIT\n");
        for (i = 0; i < 100 && waitpid(c->ch.pid, NULL, WNOHANG) != c->ch.pid; i++) sleep_ms(10);
        if (i < 100) { live_del(c->ch.pid); c->ch.pid = 0; }
        child_stop(&c->ch);
    }
}

/* ------------------------------------------------------------------------
   The matrix
   ------------------------------------------------------------------------ */

static int window_for(size_t size) {
    size_t w = (size_t)opt.window;
    if (w * size > WINDOW_BYTES) w = WINDOW_BYTES / size;
    return w < 1 ? 1 : (int)w;
}

static FILE *csv;

static void print_cost_line(const char *who, const side_cost *s) {
    int i;
    if (!s->have_sc) return;
    printf("      %s:", who);
    for (i = 1; i < NEVENTS; i++)
        if (s->ev[i] >= 0.005) printf(" %s %.2f", events[i].name + 10, s->ev[i]);
    printf("  (all %.2f)\n", s->sc[SC_TOTAL]);
}

/* One cell: warm up, then either time it (CPU clocks and allocation
   counts around the timed part) or, in the counting pass, count its system
   calls. Returns -1 when the pair broke (it is not used again). */
static int run_cell(int pi, peer_client *c, peer_server *s, int si, int mode, int rep, int counting) {
    cell *out = counting ? &counted[pi][si][mode] : &results[pi][si][mode][rep];
    run_result r;
    size_t size = sizes[si];
    int window = mode == MODE_TP ? window_for(size) : 1;
    int ms = counting ? opt.count_ms : opt.run_ms;
    uint64_t ca0, sa0, cc0, sc0, cc1, sc1;
    double m;
    memset(out, 0, sizeof *out);
    if (client_do(c, 1, mode, size, window, counting ? opt.count_warm_ms : opt.warm_ms, &r) < 0) {
        fprintf(stderr, "\nwsr-bench: %s -> %s, %s %s warm-up: %s\n", impl_name[c->impl], impl_name[s->impl],
                mode_name[mode], size_name[si], c->why);
        return -1;
    }
    ca0 = client_alloc.allocs;
    sa0 = server_alloc->allocs;
    /* (Reading a process's CPU clock is a system call: not in the counted window.) */
    cc0 = counting ? 0 : cpu_clock_read(&c->clk);
    sc0 = counting ? 0 : cpu_clock_read(&s->clk);
    if (counting) { counters_start(&s->k); counters_start(&c->k); }
    if (client_do(c, 0, mode, size, window, ms, &r) < 0) {
        if (counting) { counters_stop(&c->k); counters_stop(&s->k); }
        fprintf(stderr, "\nwsr-bench: %s -> %s, %s %s: %s\n", impl_name[c->impl], impl_name[s->impl],
                mode_name[mode], size_name[si], c->why);
        return -1;
    }
    if (counting) { counters_stop(&c->k); counters_stop(&s->k); }
    cc1 = counting ? 0 : cpu_clock_read(&c->clk);
    sc1 = counting ? 0 : cpu_clock_read(&s->clk);
    m = r.msgs > 0 ? (double)r.msgs : 1;
    out->valid = r.msgs > 0;
    out->msgs = r.msgs;
    out->errors = r.errors;
    out->secs = (double)r.ns / 1e9;
    if (mode == MODE_TP && r.ns) {
        out->msgs_s = (double)r.msgs / out->secs;
        out->mb_s = out->msgs_s * (double)size / 1e6;
    }
    out->p50_us = (double)r.p50 / 1000.0;
    out->p99_us = (double)r.p99 / 1000.0;
    out->cli.have_cpu = !counting && c->clk.ok && cc1 > 0;
    out->cli.cpu_us = (double)(cc1 - cc0) / 1000.0 / m;
    out->srv.have_cpu = !counting && s->clk.ok && sc1 > 0;
    out->srv.cpu_us = (double)(sc1 - sc0) / 1000.0 / m;
    if (counting) {
        counters_cost(&c->k, r.msgs, &out->cli);
        counters_cost(&s->k, r.msgs, &out->srv);
    }
    if (c->impl == IMPL_WSR) {
        out->cli.have_alloc = 1;
        out->cli.allocs = (double)(client_alloc.allocs - ca0) / m;
    }
    if (s->impl == IMPL_WSR) {
        out->srv.have_alloc = 1;
        out->srv.allocs = (double)(server_alloc->allocs - sa0) / m;
    }
    if (r.errors)
        fprintf(stderr, "\nwsr-bench: %s -> %s, %s %s: %d echoes of the wrong size\n", impl_name[c->impl],
                impl_name[s->impl], mode_name[mode], size_name[si], r.errors);
    if (opt.verbose) {
        printf("  %-10s -> %-10s %-3s %-6s %8ld msgs %7.3f s", impl_name[c->impl], impl_name[s->impl],
               mode_name[mode], size_name[si], r.msgs, out->secs);
        if (mode == MODE_TP) printf("  %10.0f msgs/s", out->msgs_s);
        else printf("  p50 %.1f us  p99 %.1f us", out->p50_us, out->p99_us);
        printf("  cpu us/msg %.2f + %.2f\n", out->cli.cpu_us, out->srv.cpu_us);
        print_cost_line("client", &out->cli);
        print_cost_line("server", &out->srv);
        fflush(stdout);
    }
    if (csv) {
        fprintf(csv, "%s,%s,%s,%s,%lu,%d,%ld,%.6f,%.1f,%.3f,%.2f,%.2f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%d\n",
                counting ? "count" : (rep == 0 ? "1" : rep == 1 ? "2" : rep == 2 ? "3" : "4+"),
                impl_name[c->impl], impl_name[s->impl], mode_name[mode], (unsigned long)size, window, r.msgs,
                out->secs, out->msgs_s, out->mb_s, out->p50_us, out->p99_us,
                out->cli.have_sc ? out->cli.sc[SC_TOTAL] : -1.0, out->cli.sc[SC_READ], out->cli.sc[SC_WRITE],
                out->cli.sc[SC_POLL], out->cli.cpu_us, out->cli.have_alloc ? out->cli.allocs : -1.0,
                out->srv.have_sc ? out->srv.sc[SC_TOTAL] : -1.0, out->srv.sc[SC_READ], out->srv.sc[SC_WRITE],
                out->srv.sc[SC_POLL], out->srv.cpu_us, out->srv.have_alloc ? out->srv.allocs : -1.0, r.errors);
        fflush(csv);
    }
    return 0;
}

static int pair_index(int client, int server) {
    int i;
    for (i = 0; i < npairs; i++)
        if (pairs[i].client == client && pairs[i].server == server) return i;
    return -1;
}

static peer_server servers[NIMPL];
static int server_up[NIMPL];
static peer_client clients[MAX_PAIRS];
static int client_up[MAX_PAIRS];

/* Our clients in this process run only when polled: between cells, give
   the idle ones a moment, so the keepalive pings of the servers (ours after
   30 s, websockets' every 20 s) are answered and nobody is dropped. */
static void service_idle(int busy) {
    int i;
    for (i = 0; i < npairs; i++)
        if (i != busy && client_up[i] && clients[i].impl == IMPL_WSR) wsr_client_poll(clients[i].wsr.c, 0);
}

/* Runs every cell for every pair once: one timed run (rep), or the
   counting pass. Each cell runs for every pair before the next cell
   starts, in an order that turns with each run: load from elsewhere on the
   machine then falls on all pairs alike instead of on one block of them. */
static void run_pass(int rep, int counting) {
    int si, mode, k;
    for (si = 0; si < NSIZE; si++) {
        for (mode = 0; mode < NMODE; mode++) {
            if (!opt.size_on[si] || !opt.mode_on[mode]) continue;
            for (k = 0; k < npairs; k++) {
                int pi = (k + rep) % npairs;
                if (!client_up[pi]) continue;
                service_idle(pi);
                if (run_cell(pi, &clients[pi], &servers[pairs[pi].server], si, mode, rep, counting) < 0) {
                    client_end(&clients[pi]);
                    client_up[pi] = 0;
                }
            }
            if (!opt.verbose) { printf("."); fflush(stdout); }
        }
    }
}

/* Every server and every client connection stay up for the whole run: the
   timed runs first, then the counting pass, with the system call counters
   attached to every thread of every process for its length only. */
static void run_matrix(void) {
    int i, rep, k;
    for (i = 0; i < NIMPL; i++) {
        int used = 0;
        for (k = 0; k < npairs; k++) used |= pairs[k].server == i;
        if (used) server_up[i] = server_start(&servers[i], i) == 0;
    }
    for (k = 0; k < npairs; k++) {
        if (!server_up[pairs[k].server]) continue;
        client_up[k] = client_start(&clients[k], pairs[k].client, servers[pairs[k].server].port) == 0;
        if (!client_up[k]) {
            fprintf(stderr, "wsr-bench: %s -> %s: %s\n", impl_name[pairs[k].client], impl_name[pairs[k].server],
                    clients[k].why);
            client_end(&clients[k]);
        }
    }
    for (rep = 0; rep < opt.reps; rep++) {
        if (opt.verbose) printf("\ntimed run %d of %d\n", rep + 1, opt.reps);
        run_pass(rep, 0);
    }
    if (opt.count && sc_available) {
        if (opt.verbose) printf("\ncounting pass\n");
        else { printf(" counting"); fflush(stdout); }
        for (i = 0; i < NIMPL; i++) if (server_up[i]) counters_open(&servers[i].k, servers[i].ch.pid);
        for (k = 0; k < npairs; k++)
            if (client_up[k]) counters_open(&clients[k].k, clients[k].ch.pid > 0 ? clients[k].ch.pid : getpid());
        run_pass(0, 1);
        for (k = 0; k < npairs; k++) counters_close(&clients[k].k);
        for (i = 0; i < NIMPL; i++) counters_close(&servers[i].k);
    }
    for (k = 0; k < npairs; k++) if (client_up[k]) { client_end(&clients[k]); client_up[k] = 0; }
    for (i = 0; i < NIMPL; i++) if (server_up[i]) { server_end(&servers[i]); server_up[i] = 0; }
}

/* ------------------------------------------------------------------------
   Memory: a fresh server, then `conns` idle connections that finished the
   upgrade (for raw TCP: one empty frame echoed), RSS before and after.
   ------------------------------------------------------------------------ */

typedef struct mem_result {
    int valid;
    long rss0_kib, rss1_kib;
    double kib_per_conn;
    double heap_per_conn;         /* wsr: bytes the allocator holds per connection */
} mem_result;

static mem_result mem[NIMPL];

/* Opens one idle connection by hand: the upgrade for WebSocket servers. */
static int idle_conn(int impl, int port) {
    static const char req[] =
        "GET /idle HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    char buf[1024];
    size_t have = 0;
    struct timeval tv;
    int fd = connect_local(port);
    if (fd < 0) return -1;
    tv.tv_sec = 10;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (impl == IMPL_RAW) {
        unsigned char z[4] = { 0, 0, 0, 0 };
        if (write(fd, z, 4) != 4 || read(fd, z, 4) != 4) { close(fd); return -1; }
        return fd;
    }
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) { close(fd); return -1; }
    while (have < sizeof buf - 1) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) { close(fd); return -1; }
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n")) break;
    }
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0) { close(fd); return -1; }
    return fd;
}

static void run_memory(void) {
    int impl;
    const int warm = 10;
    for (impl = 0; impl < NIMPL; impl++) {
        peer_server s;
        int *fds, i, n = 0;
        uint64_t heap0 = 0;
        mem_result *m = &mem[impl];
        if (!opt.only[impl] || !impl_ok[impl]) continue;
        if (server_start(&s, impl) < 0) continue;
        fds = (int *)xmalloc(sizeof *fds * (size_t)(opt.conns + warm));
        for (i = 0; i < warm; i++) if ((fds[n] = idle_conn(impl, s.port)) >= 0) n++;
        sleep_ms(300);
        m->rss0_kib = rss_kib(s.ch.pid);
        heap0 = server_alloc->live;
        for (i = 0; i < opt.conns; i++) if ((fds[n] = idle_conn(impl, s.port)) >= 0) n++;
        sleep_ms(500);                        /* let the server settle (and a GC run) */
        m->rss1_kib = rss_kib(s.ch.pid);
        if (n == opt.conns + warm && m->rss0_kib > 0 && m->rss1_kib > 0) {
            m->valid = 1;
            m->kib_per_conn = (double)(m->rss1_kib - m->rss0_kib) / opt.conns;
            if (impl == IMPL_WSR) m->heap_per_conn = (double)(server_alloc->live - heap0) / opt.conns;
        } else {
            fprintf(stderr, "wsr-bench: memory test: %d of %d connections to the %s server opened\n", n,
                    opt.conns + warm, impl_name[impl]);
        }
        for (i = 0; i < n; i++) close(fds[i]);
        free(fds);
        server_end(&s);
        printf(".");
        fflush(stdout);
    }
}

/* ------------------------------------------------------------------------
   The report
   ------------------------------------------------------------------------ */

/* Median over the runs of one field of a cell (offset into the struct). */
static int cell_median(int pi, int si, int mode, double (*get)(const cell *), double *med, double *spread) {
    double v[MAX_REPS];
    int r, n = 0;
    for (r = 0; r < opt.reps; r++) {
        const cell *c = &results[pi][si][mode][r];
        if (c->valid) v[n++] = get(c);
    }
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    if (spread) *spread = *med > 0 ? (v[n - 1] - v[0]) / *med * 100.0 : 0;
    return 1;
}

static double get_msgs_s(const cell *c) { return c->msgs_s; }
static double get_mb_s(const cell *c) { return c->mb_s; }
static double get_p50(const cell *c) { return c->p50_us; }
static double get_p99(const cell *c) { return c->p99_us; }
static double get_msgs(const cell *c) { return (double)c->msgs; }
static double get_cli_cpu(const cell *c) { return c->cli.have_cpu ? c->cli.cpu_us : -1; }
static double get_srv_cpu(const cell *c) { return c->srv.have_cpu ? c->srv.cpu_us : -1; }
static double get_cli_alloc(const cell *c) { return c->cli.have_alloc ? c->cli.allocs : -1; }
static double get_srv_alloc(const cell *c) { return c->srv.have_alloc ? c->srv.allocs : -1; }

/* The "speed" of a cell in one run, for ratios: msgs/s, or 1 / median
   round trip. */
static int cell_speed(int pi, int si, int mode, int rep, double *speed) {
    const cell *c;
    if (pi < 0) return 0;
    c = &results[pi][si][mode][rep];
    if (!c->valid) return 0;
    if (mode == MODE_TP) { *speed = c->msgs_s; return *speed > 0; }
    if (c->p50_us <= 0) return 0;
    *speed = 1.0 / c->p50_us;
    return 1;
}

/* The ratio of two pairs' speeds: in each run the two cells ran one right
   after the other, so the ratio is taken run by run, then the median. */
static int speed_ratio(int pa, int pb, int si, int mode, double *ratio) {
    double v[MAX_REPS], a, b;
    int r, n = 0;
    for (r = 0; r < opt.reps; r++)
        if (cell_speed(pa, si, mode, r, &a) && cell_speed(pb, si, mode, r, &b) && b > 0) v[n++] = a / b;
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    *ratio = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return 1;
}

static void fmt_rate(char *out, size_t cap, double v) {
    if (v >= 1e6) snprintf(out, cap, "%.2fM", v / 1e6);
    else if (v >= 1e4) snprintf(out, cap, "%.1fk", v / 1e3);
    else snprintf(out, cap, "%.0f", v);
}

static void fmt_num(char *out, size_t cap, double v, int prec) {
    if (v < 0) snprintf(out, cap, "-");
    else snprintf(out, cap, "%.*f", prec, v);
}

/* The ratio of two pairs' speeds as text, or "-" . */
static void fmt_ratio(char *out, size_t cap, int pa, int pb, int si, int mode) {
    double x;
    if (speed_ratio(pa, pb, si, mode, &x)) snprintf(out, cap, "%.2f", x);
    else snprintf(out, cap, "-");
}

static void print_speed_tables(void) {
    int si, pi, raw = pair_index(IMPL_RAW, IMPL_RAW);
    if (opt.mode_on[MODE_TP]) {
        printf("\nTHROUGHPUT  binary echo, window of %d messages outstanding (at most 8 MiB in flight: 8 for 1 MiB)\n"
               "            MB/s = payload one way, 10^6 B/s; x raw = msgs/s over raw TCP's (run by run, then the median);\n"
               "            spread = (max-min)/median of the runs\n",
               opt.window);
        printf("%-7s %-10s %-10s %10s %9s %7s %7s\n", "size", "client", "server", "msgs/s", "MB/s", "x raw", "spread");
        for (si = 0; si < NSIZE; si++) {
            if (!opt.size_on[si]) continue;
            for (pi = 0; pi < npairs; pi++) {
                double v, mb, sp;
                char a[32], x[16], spr[16];
                if (!cell_median(pi, si, MODE_TP, get_msgs_s, &v, &sp)) continue;
                cell_median(pi, si, MODE_TP, get_mb_s, &mb, NULL);
                fmt_rate(a, sizeof a, v);
                fmt_ratio(x, sizeof x, pi, raw, si, MODE_TP);
                if (opt.reps > 1) snprintf(spr, sizeof spr, "%.0f%%", sp); else snprintf(spr, sizeof spr, "-");
                printf("%-7s %-10s %-10s %10s %9.1f %7s %7s\n", size_name[si], impl_name[pairs[pi].client],
                       impl_name[pairs[pi].server], a, mb, x, spr);
            }
            printf("\n");
        }
    }
    if (opt.mode_on[MODE_LAT]) {
        printf("\nLATENCY  ping-pong, one message at a time; round trip in microseconds\n"
               "         x raw = raw TCP's median / this median, run by run, then the median (1.00: as fast as raw TCP)\n");
        printf("%-7s %-10s %-10s %9s %9s %7s %7s %8s\n", "size", "client", "server", "p50 us", "p99 us", "x raw",
               "spread", "samples");
        for (si = 0; si < NSIZE; si++) {
            if (!opt.size_on[si]) continue;
            for (pi = 0; pi < npairs; pi++) {
                double p50, p99, sp, n;
                char x[16], spr[16];
                if (!cell_median(pi, si, MODE_LAT, get_p50, &p50, &sp)) continue;
                cell_median(pi, si, MODE_LAT, get_p99, &p99, NULL);
                cell_median(pi, si, MODE_LAT, get_msgs, &n, NULL);
                fmt_ratio(x, sizeof x, pi, raw, si, MODE_LAT);
                if (opt.reps > 1) snprintf(spr, sizeof spr, "%.0f%%", sp); else snprintf(spr, sizeof spr, "-");
                printf("%-7s %-10s %-10s %9.1f %9.1f %7s %7s %8.0f\n", size_name[si], impl_name[pairs[pi].client],
                       impl_name[pairs[pi].server], p50, p99, x, spr, n);
            }
            printf("\n");
        }
    }
}

/* "all (read+write+poll)" system calls per message, from the counting pass. */
static void fmt_sc(char *out, size_t cap, const cell *c, const side_cost *s) {
    if (!c->valid || !s->have_sc) snprintf(out, cap, "-");
    else snprintf(out, cap, "%5.2f (%.2f+%.2f+%.2f)", s->sc[SC_TOTAL], s->sc[SC_READ], s->sc[SC_WRITE], s->sc[SC_POLL]);
}

static void print_cost_tables(void) {
    int mode, si, pi;
    for (mode = 0; mode < NMODE; mode++) {
        if (!opt.mode_on[mode]) continue;
        printf("\nCOST PER MESSAGE (%s)  system calls per message: all (read+write+poll families);\n"
               "            (counting pass); cpu = CPU microseconds per message (process CPU clock, all threads, timed runs);\n"
               "            alloc = wsr_allocator calls per message (timed runs)\n",
               mode == MODE_TP ? "throughput runs" : "ping-pong runs; one message = one round trip");
        printf("%-7s %-10s %-10s | %-22s %7s %6s | %-22s %7s %6s\n", "size", "client", "server", "client syscalls",
               "cpu us", "alloc", "server syscalls", "cpu us", "alloc");
        for (si = 0; si < NSIZE; si++) {
            if (!opt.size_on[si]) continue;
            for (pi = 0; pi < npairs; pi++) {
                double t, cpu, al;
                char cs[40], ss[40], cc[16], sc[16], ca[16], sa[16];
                if (!cell_median(pi, si, mode, get_msgs, &t, NULL)) continue;
                fmt_sc(cs, sizeof cs, &counted[pi][si][mode], &counted[pi][si][mode].cli);
                fmt_sc(ss, sizeof ss, &counted[pi][si][mode], &counted[pi][si][mode].srv);
                cell_median(pi, si, mode, get_cli_cpu, &cpu, NULL); fmt_num(cc, sizeof cc, cpu, 2);
                cell_median(pi, si, mode, get_srv_cpu, &cpu, NULL); fmt_num(sc, sizeof sc, cpu, 2);
                cell_median(pi, si, mode, get_cli_alloc, &al, NULL); fmt_num(ca, sizeof ca, al, 3);
                if (pairs[pi].client == IMPL_RAW) snprintf(ca, sizeof ca, "0");
                cell_median(pi, si, mode, get_srv_alloc, &al, NULL); fmt_num(sa, sizeof sa, al, 3);
                if (pairs[pi].server == IMPL_RAW) snprintf(sa, sizeof sa, "0");
                printf("%-7s %-10s %-10s | %-22s %7s %6s | %-22s %7s %6s\n", size_name[si], impl_name[pairs[pi].client],
                       impl_name[pairs[pi].server], cs, cc, ca, ss, sc, sa);
            }
            printf("\n");
        }
    }
}

/* Ours against theirs with the other side fixed. Ratios of speeds (msgs/s,
   or 1 / median round trip): above 1, ours is faster. */
static void print_comparisons(void) {
    int mode, si, fixed, them;
    static const int others[2] = { IMPL_WS, IMPL_PY };
    for (mode = 0; mode < NMODE; mode++) {
        if (!opt.mode_on[mode]) continue;
        printf("\nOURS / THEIRS, %s  (speed ratios, run by run, then the median; > 1: ws_reconnect.h faster)\n",
               mode == MODE_TP ? "throughput (msgs/s)" : "ping-pong (1 / median round trip)");
        printf("  clients, same server:                     ");
        for (si = 0; si < NSIZE; si++) if (opt.size_on[si]) printf("%9s", size_name[si]);
        printf("\n");
        for (fixed = IMPL_WSR; fixed < NIMPL; fixed++) {
            for (them = 0; them < 2; them++) {
                char label[64];
                if (!opt.only[fixed] || !opt.only[others[them]]) continue;
                snprintf(label, sizeof label, "wsr/%s client, %s server", impl_name[others[them]], impl_name[fixed]);
                printf("    %-42s", label);
                for (si = 0; si < NSIZE; si++) {
                    char x[16];
                    if (!opt.size_on[si]) continue;
                    fmt_ratio(x, sizeof x, pair_index(IMPL_WSR, fixed), pair_index(others[them], fixed), si, mode);
                    printf("%9s", x);
                }
                printf("\n");
            }
        }
        printf("  servers, same client:\n");
        for (fixed = IMPL_WSR; fixed < NIMPL; fixed++) {
            for (them = 0; them < 2; them++) {
                char label[64];
                if (!opt.only[fixed] || !opt.only[others[them]]) continue;
                snprintf(label, sizeof label, "wsr/%s server, %s client", impl_name[others[them]], impl_name[fixed]);
                printf("    %-42s", label);
                for (si = 0; si < NSIZE; si++) {
                    char x[16];
                    if (!opt.size_on[si]) continue;
                    fmt_ratio(x, sizeof x, pair_index(fixed, IMPL_WSR), pair_index(fixed, others[them]), si, mode);
                    printf("%9s", x);
                }
                printf("\n");
            }
        }
        printf("  wsr -> wsr over raw TCP:                  ");
        for (si = 0; si < NSIZE; si++) {
            char x[16];
            if (!opt.size_on[si]) continue;
            fmt_ratio(x, sizeof x, pair_index(IMPL_WSR, IMPL_WSR), pair_index(IMPL_RAW, IMPL_RAW), si, mode);
            printf("%9s", x);
        }
        printf("\n");
    }
}

static void print_memory(void) {
    int impl;
    double raw = mem[IMPL_RAW].valid ? mem[IMPL_RAW].kib_per_conn : 0;
    printf("\nMEMORY  server RSS with %d idle open connections (after the upgrade), each server in a fresh process\n",
           opt.conns);
    printf("%-10s %11s %11s %10s %9s %8s %14s\n", "server", "RSS before", "RSS after", "KiB/conn", "x raw", "wsr/this",
           "heap B/conn");
    for (impl = 0; impl < NIMPL; impl++) {
        const mem_result *m = &mem[impl];
        char x[16], o[16], h[32];
        if (!m->valid) continue;
        if (raw > 0) snprintf(x, sizeof x, "%.2f", m->kib_per_conn / raw); else snprintf(x, sizeof x, "-");
        if (mem[IMPL_WSR].valid && m->kib_per_conn > 0)
            snprintf(o, sizeof o, "%.2f", mem[IMPL_WSR].kib_per_conn / m->kib_per_conn);
        else snprintf(o, sizeof o, "-");
        if (impl == IMPL_WSR) snprintf(h, sizeof h, "%.0f", m->heap_per_conn); else snprintf(h, sizeof h, "-");
        printf("%-10s %8ld KiB %7ld KiB %10.1f %9s %8s %14s\n", impl_name[impl], m->rss0_kib, m->rss1_kib,
               m->kib_per_conn, x, o, h);
    }
    printf("  (x raw: memory over raw TCP's; wsr/this: ours over this server's, below 1: ours is smaller;\n"
           "   heap: bytes wsr_allocator holds per connection)\n");
}

/* ------------------------------------------------------------------------
   Header: the machine and the versions
   ------------------------------------------------------------------------ */

static void cpu_model(char *out, size_t cap) {
    char line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(out, cap, "unknown CPU");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ') v++;
                v[strcspn(v, "\n")] = '\0';
                snprintf(out, cap, "%s", v);
            }
            break;
        }
    }
    fclose(f);
}

/* Asks a script peer for its versions; it also proves the peer can run. */
static void probe_peer(int impl) {
    child c;
    char *argv[6], line[256];
    script_argv(impl, "--version", NULL, argv);
    if (access(argv[0], X_OK) != 0 || access(argv[1], R_OK) != 0) {
        snprintf(impl_version[impl], sizeof impl_version[impl], "not found (%s, %s)", argv[0], argv[1]);
        return;
    }
    if (child_exec(&c, argv) < 0) return;
    if (child_line(&c, line, sizeof line, 15000) == 0 && strncmp(line, "VERSION ", 8) == 0) {
        impl_ok[impl] = 1;
        snprintf(impl_version[impl], sizeof impl_version[impl], "%.150s", line + 8);
    } else {
        snprintf(impl_version[impl], sizeof impl_version[impl], "does not start (see the message above)");
    }
    child_stop(&c);
}

static void find_peers(const char *argv0) {
    char dir[1024];
    if (opt.peer_dir) snprintf(dir, sizeof dir, "%s", opt.peer_dir);
    else if (access("tools/bench/bench_ws.js", R_OK) == 0) snprintf(dir, sizeof dir, "tools/bench");
    else {
        /* build/bench/wsr-bench -> build/bench/../../tools/bench */
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        char *slash;
        dir[n > 0 ? n : 0] = '\0';
        if (n <= 0) snprintf(dir, sizeof dir, "%s", argv0);
        if ((slash = strrchr(dir, '/')) != NULL) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
        strncat(dir, "/../../tools/bench", sizeof dir - strlen(dir) - 1);
    }
    snprintf(ws_script, sizeof ws_script, "%s/bench_ws.js", dir);
    snprintf(py_script, sizeof py_script, "%s/bench_websockets.py", dir);
    if (access(node_bin, X_OK) != 0) {
        /* not at /usr/bin: the first node on PATH */
        const char *path = getenv("PATH");
        while (path && *path) {
            size_t l = strcspn(path, ":");
            snprintf(node_bin, sizeof node_bin, "%.*s/node", (int)l, path);
            if (access(node_bin, X_OK) == 0) break;
            path += l + (path[l] == ':');
        }
    }
}

static void print_header(void) {
    struct utsname u;
    char cpu[200], load[128];
    time_t t = time(NULL);
    uname(&u);
    cpu_model(cpu, sizeof cpu);
    read_first_line("/proc/loadavg", load, sizeof load);
    printf("wsr-bench: ws_reconnect.h %s against raw TCP, Node ws and Python websockets (%s mode)\n",
           WSR_VERSION_STRING, opt.mode_label);
    printf("date:      %s", ctime(&t));
    printf("machine:   %ld CPUs, %s, %s %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu, u.sysname, u.release, u.machine);
    printf("load:      %s (1, 5, 15 min; other work on the machine makes the numbers noisy)\n", load);
#if defined(__clang__)
    printf("compiler:  clang %s", __clang_version__);
#elif defined(__GNUC__)
    printf("compiler:  gcc %s", __VERSION__);
#else
    printf("compiler:  unknown");
#endif
#if defined(__OPTIMIZE__)
    printf(", optimized\n");
#else
    printf(", NOT optimized (build with -O2 for meaningful numbers)\n");
#endif
    printf("ws:        %s\n", impl_version[IMPL_WS]);
    printf("websockets:%s%s\n", impl_version[IMPL_PY][0] ? " " : "", impl_version[IMPL_PY]);
    printf("runs:      %d x (%d ms warm-up + %d ms timed) per cell, every pair in turn; 127.0.0.1, port 0;\n"
           "           client and server in separate processes; tables show the median of the runs.\n"
           "           CPU time per message from each process's CPU clock (all threads), read from outside\n",
           opt.reps, opt.warm_ms, opt.run_ms);
    if (opt.count && sc_available)
        printf("counting:  then one pass of %d ms per cell counting system calls through perf tracepoints\n"
               "           (raw_syscalls:sys_enter, syscalls:sys_enter_*) on every thread of both processes;\n"
               "           kept out of the timed runs, since registered tracepoints slow every system call\n",
               opt.count_ms);
    else
        printf("counting:  no system call counts: %s\n", opt.count ? sc_why : "--no-count");
    fflush(stdout);
}

/* ------------------------------------------------------------------------
   main
   ------------------------------------------------------------------------ */

static void usage(void) {
    printf("usage: wsr-bench [--quick | --full] [options]\n"
           "  --quick          about 30 s: 1 timed run, 40 ms warm-up + 180 ms per cell (default)\n"
           "  --full           a few minutes: 3 timed runs, 150 ms warm-up + 600 ms per cell\n"
           "  --ms N           timed part of each cell, ms        --warm-ms N   warm-up, ms\n"
           "  --count-ms N     each cell's length in the counting pass (quick 60, full 300)\n"
           "  --reps N         runs of the whole matrix (max %d)   --window N    tp window (default 64)\n"
           "  --conns N        idle connections for the memory test (default 1000; 0: skip it)\n"
           "  --only LIST      implementations: raw-tcp,wsr,ws,websockets (default all)\n"
           "  --sizes LIST     16,1024,65536,1048576 (default all)   --modes LIST  tp,lat (default both)\n"
           "  --no-count       no counting pass (system calls are not counted)\n"
           "  --peers DIR      where bench_ws.js and bench_websockets.py are (default tools/bench)\n"
           "  --csv FILE       every measurement, one line each\n"
           "  -v               every cell as it runs, with system calls by name\n", MAX_REPS);
}

static int list_has(const char *list, const char *item) {
    size_t n = strlen(item);
    const char *p = list;
    while ((p = strstr(p, item)) != NULL) {
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
        p += n;
    }
    return 0;
}

int main(int argc, char **argv) {
    int i, c, s;
    uint64_t t0 = now_ns();
    const char *only = NULL, *size_list = NULL, *mode_list = NULL;
    if (argc >= 3 && strcmp(argv[1], "--serve") == 0) {
        /* A server of ours, started by the benchmark (see server_start). */
        static alloc_stats own;
        server_alloc = &own;
        if (argc >= 5 && strcmp(argv[3], "--stats-fd") == 0) {
            void *m = mmap(NULL, sizeof *server_alloc, PROT_READ | PROT_WRITE, MAP_SHARED, atoi(argv[4]), 0);
            if (m != MAP_FAILED) server_alloc = (alloc_stats *)m;
            close(atoi(argv[4]));
        }
        signal(SIGPIPE, SIG_IGN);
        if (strcmp(argv[2], "raw-tcp") == 0) return raw_serve();
        if (strcmp(argv[2], "wsr") == 0) return wsr_serve();
        return 2;
    }
    opt.mode_label = "quick";
    opt.run_ms = 180;
    opt.warm_ms = 40;
    opt.count_ms = 60;
    opt.count_warm_ms = 15;
    opt.reps = 1;
    opt.window = 64;
    opt.conns = 1000;
    opt.count = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            opt.mode_label = "quick"; opt.run_ms = 180; opt.warm_ms = 40; opt.reps = 1;
            opt.count_ms = 60; opt.count_warm_ms = 15;
        } else if (strcmp(a, "--full") == 0) {
            opt.mode_label = "full"; opt.run_ms = 600; opt.warm_ms = 150; opt.reps = 3;
            opt.count_ms = 300; opt.count_warm_ms = 100;
        }
        else if (strcmp(a, "--ms") == 0 && v) { opt.run_ms = atoi(v); i++; }
        else if (strcmp(a, "--warm-ms") == 0 && v) { opt.warm_ms = atoi(v); i++; }
        else if (strcmp(a, "--count-ms") == 0 && v) { opt.count_ms = atoi(v); i++; }
        else if (strcmp(a, "--reps") == 0 && v) { opt.reps = atoi(v); i++; }
        else if (strcmp(a, "--window") == 0 && v) { opt.window = atoi(v); i++; }
        else if (strcmp(a, "--conns") == 0 && v) { opt.conns = atoi(v); i++; }
        else if (strcmp(a, "--only") == 0 && v) { only = v; i++; }
        else if (strcmp(a, "--sizes") == 0 && v) { size_list = v; i++; }
        else if (strcmp(a, "--modes") == 0 && v) { mode_list = v; i++; }
        else if (strcmp(a, "--peers") == 0 && v) { opt.peer_dir = v; i++; }
        else if (strcmp(a, "--csv") == 0 && v) { opt.csv = v; i++; }
        else if (strcmp(a, "--no-count") == 0) opt.count = 0;
        else if (strcmp(a, "-v") == 0) opt.verbose = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(); return 0; }
        else { usage(); return 2; }
    }
    if (opt.reps < 1 || opt.reps > MAX_REPS || opt.run_ms < 1 || opt.count_ms < 1 || opt.warm_ms < 0 || opt.window < 1 || opt.conns < 0) {
        usage();
        return 2;
    }
    for (i = 0; i < NIMPL; i++) opt.only[i] = !only || list_has(only, impl_name[i]);
    for (i = 0; i < NSIZE; i++) {
        char n[32];
        snprintf(n, sizeof n, "%lu", (unsigned long)sizes[i]);
        opt.size_on[i] = !size_list || list_has(size_list, n);
    }
    for (i = 0; i < NMODE; i++) opt.mode_on[i] = !mode_list || list_has(mode_list, mode_name[i]);
    if (opt.reps > 1 && strcmp(opt.mode_label, "full") != 0) opt.mode_label = "custom";

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);

    payload = (unsigned char *)xmalloc(sizes[NSIZE - 1]);
    for (i = 0; i < (int)sizes[NSIZE - 1]; i++) payload[i] = (unsigned char)(i * 7 + 3);
    sample_buf = (uint64_t *)xmalloc(SAMPLE_CAP * sizeof *sample_buf);
    /* The wsr server's allocation counts, shared with it through a memfd
       that it inherits (kept above the standard descriptors). */
    stats_fd = memfd_create("wsr-bench-alloc", 0);
    if (stats_fd >= 0 && stats_fd < 3) stats_fd = fcntl(stats_fd, F_DUPFD, 3);
    if (stats_fd < 0 || ftruncate(stats_fd, sizeof *server_alloc) < 0) die("memfd: %s", strerror(errno));
    snprintf(stats_arg, sizeof stats_arg, "%d", stats_fd);
    server_alloc = (alloc_stats *)mmap(NULL, sizeof *server_alloc, PROT_READ | PROT_WRITE, MAP_SHARED, stats_fd, 0);
    if (server_alloc == MAP_FAILED) die("mmap: %s", strerror(errno));

    sc_find_events();
    find_peers(argv[0]);
    impl_ok[IMPL_RAW] = impl_ok[IMPL_WSR] = 1;
    if (opt.only[IMPL_WS]) probe_peer(IMPL_WS); else snprintf(impl_version[IMPL_WS], sizeof impl_version[IMPL_WS], "(not run)");
    if (opt.only[IMPL_PY]) probe_peer(IMPL_PY); else snprintf(impl_version[IMPL_PY], sizeof impl_version[IMPL_PY], "(not run)");
    print_header();

    /* raw against raw, then every WebSocket client against every server. */
    if (opt.only[IMPL_RAW]) { pairs[npairs].client = IMPL_RAW; pairs[npairs++].server = IMPL_RAW; }
    for (s = IMPL_WSR; s < NIMPL; s++)
        for (c = IMPL_WSR; c < NIMPL; c++)
            if (opt.only[c] && opt.only[s] && impl_ok[c] && impl_ok[s]) { pairs[npairs].client = c; pairs[npairs++].server = s; }

    if (opt.csv) {
        if (!(csv = fopen(opt.csv, "w"))) die("cannot write %s", opt.csv);
        fprintf(csv, "rep,client,server,mode,size,window,msgs,secs,msgs_s,mb_s,p50_us,p99_us,"
                     "cli_sc,cli_rd,cli_wr,cli_poll,cli_cpu_us,cli_allocs,srv_sc,srv_rd,srv_wr,srv_poll,srv_cpu_us,srv_allocs,errors\n");
    }
    printf("\nrunning");
    fflush(stdout);
    run_matrix();
    if (opt.conns > 0) run_memory();
    printf(" done\n");

    print_speed_tables();
    print_comparisons();
    print_cost_tables();
    if (opt.conns > 0) print_memory();
    {
        char load[128];
        read_first_line("/proc/loadavg", load, sizeof load);
        printf("\nload at the end: %s; took %.0f s\n", load, (double)(now_ns() - t0) / 1e9);
    }
    if (csv) fclose(csv);
    kill_children();
    return 0;
}
