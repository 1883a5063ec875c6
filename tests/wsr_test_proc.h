/* wsr_test_proc.h - child processes for the tests that run programs (our
   examples, wsrcat, wsr-chaos; the interop peers), on POSIX and on Windows. Include
   after ws_reconnect.h (its clock) and wsr_test.h.

   One child is a `proc`: started from a path with arguments, its stdout and
   stderr collected into growing NUL-terminated buffers (or both into one,
   in the order written), optionally its stdin on a pipe we write to. Nothing
   here blocks for longer than asked: proc_pump() takes what the child
   printed, waiting up to a given time for something. Every child is ended
   by its PID or handle: proc_kill() (SIGKILL / TerminateProcess unless it
   exited, then reaped), which proc_end() and proc_free() call, and, for
   any a crashed check left behind, an exit handler. Children also die with
   us: PR_SET_PDEATHSIG on Linux, a kill-on-close job object on Windows.

       proc p;
       const char *args[] = { "ws://127.0.0.1:1234/", NULL };
       int fails = wsr_test_failed;
       if (proc_start(&p, "build/examples/hello", args, PROC_MERGE)) {
           proc_wait_exit(&p, 5000);
           CHECK_EQ_INT(proc_exit_code(&p), 0);
           CHECK(strstr(proc_stdout(&p), "connected\n") != NULL);
       }
       proc_end(&p, fails, "hello");     // always: kills, reaps, prints its output if a check failed

   Windows: the path gets ".exe"; arguments are quoted for the MSVCRT parser;
   "\r\n" in what the child prints becomes "\n" (its stdout is in text mode),
   so the checks read the same text on both systems. There is no SIGTERM on
   Windows (nothing a console program can catch from another process
   reliably, least of all under wine), so proc_term() is POSIX-only and the
   tests that need it say so.

   Host programs (PROC_HOST), for tests/test_interop.c's Node and Python
   peers: on POSIX the flag changes nothing, the path is a host program like
   any other. On Windows the test runs under wine, whose processes can
   neither start Linux programs with pipes nor kill them, so the program is
   started by tests/interop/peer_broker.py (a Python process on the host,
   listening at the address in $WSR_PEER_BROKER, "127.0.0.1:PORT"): one TCP
   connection per program, the command as a JSON array, its output and exit
   code coming back as records. proc_pump, proc_kill, proc_exit_code and
   proc_done work the same over that connection; see "host programs through
   the peer broker" below. Such a program dies with us because our end of
   the connection closes when we die (the broker kills it then); with
   PROC_MERGE its stdout and stderr keep their order only roughly (the broker
   reads them apart). No WSR_PEER_BROKER there: the start fails, saying so.

   Also here, for every process test: the deadline scale
   (WSR_TEST_TIME_SCALE) and a sleep. Test code only. */
#ifndef WSR_TEST_PROC_H
#define WSR_TEST_PROC_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>                /* before windows.h */
#include <windows.h>
#else
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#endif

#define WSR_TP_UNUSED __attribute__((unused))

/* ---- time ------------------------------------------------------------------------- */

/* Deadlines are generous upper bounds; WSR_TEST_TIME_SCALE stretches them
   (for valgrind), never the timing bounds a test checks. */
static WSR_TP_UNUSED int wsr_test_time_scale(void) {
    const char *s = getenv("WSR_TEST_TIME_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}
static WSR_TP_UNUSED uint64_t wsr_test_scaled(int ms) { return (uint64_t)ms * (uint64_t)wsr_test_time_scale(); }

static WSR_TP_UNUSED void wsr_test_sleep_ms(int ms) {
#if defined(_WIN32)
    Sleep((DWORD)ms);
#else
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
#endif
}

/* Running under wine rather than on Windows (its ntdll exports
   wine_get_version). For what wine cannot do: a test that accepts
   something else there says why. */
static WSR_TP_UNUSED int wsr_test_under_wine(void) {
#if defined(_WIN32)
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    return nt != NULL && GetProcAddress(nt, "wine_get_version") != NULL;
#else
    return 0;
#endif
}

/* ---- the child ---------------------------------------------------------------------- */

#define PROC_STDIN 1   /* its stdin is a pipe (proc_write, proc_close_stdin); else it reads an empty one */
#define PROC_MERGE 2   /* its stderr goes where its stdout goes: one buffer, in the order written */
#define PROC_HOST 4    /* a program of the host system (POSIX: no change; Windows: through the peer broker) */

typedef struct proc_buf { char *data; size_t len, cap; } proc_buf;

typedef struct proc {
    char path[512];             /* what was started (with ".exe" on Windows) */
    int started;                /* its pipes and process are ours to end: from proc_start to proc_kill */
    int missing;                /* proc_start failed because there is no such program */
    int exited;                 /* reaped: code is valid */
    int code;                   /* its exit code; 128 + N if signal N ended it */
    int merged;                 /* PROC_MERGE: its stderr is in out */
    proc_buf out, err;          /* what it printed, NUL-terminated (err stays empty with PROC_MERGE) */
#if defined(_WIN32)
    HANDLE process;             /* NULL when none */
    DWORD pid;
    HANDLE in, rd[2];           /* our ends: its stdin, its stdout and stderr; NULL once closed */
    /* PROC_HOST: the connection to the peer broker stands for the process
       and its pipes (process, in and rd stay NULL). */
    int hosted;                 /* started through the broker */
    SOCKET sock;                /* the connection; INVALID_SOCKET once closed */
    unsigned char rec[5];       /* the header of the record being read: type, big-endian length */
    size_t rec_have;            /* bytes of that header so far (5: reading its data) */
    size_t rec_left;            /* data bytes of that record still to come */
    char xcode[16];             /* the data of the 'X' record: the exit code in decimal */
    size_t xlen;
#else
    pid_t pid;                  /* 0 when none */
    int in, rd[2];              /* our ends: its stdin, its stdout and stderr; -1 once closed */
#endif
} proc;

/* A proc of all zero bytes (memset, or static) is a valid one that never
   started: every function below may be given it. One that started must
   not go out of scope before proc_end, proc_kill or proc_free: this list of
   running children is for the exit handler. */
#define PROC_MAX_LIVE 16
static proc *proc_live[PROC_MAX_LIVE];

static WSR_TP_UNUSED const char *proc_stdout(const proc *p) { return p->out.data ? p->out.data : ""; }
static WSR_TP_UNUSED const char *proc_stderr(const proc *p) { return p->err.data ? p->err.data : ""; }

/* Room for at least `more` bytes and the NUL. */
static int proc__reserve(proc_buf *b, size_t more) {
    if (b->cap - b->len < more + 1) {
        size_t cap = b->cap ? b->cap : 8192;
        char *d;
        while (cap - b->len < more + 1) cap *= 2;
        if (!(d = (char *)realloc(b->data, cap))) return 0;
        b->data = d;
        b->cap = cap;
        b->data[b->len] = '\0';        /* a string even if nothing more comes */
    }
    return 1;
}

/* n new bytes were read into b->data + b->len. */
static void proc__took(proc_buf *b, size_t n) {
#if defined(_WIN32)
    /* The child's stdout is in text mode: "\n" arrives as "\r\n". Fold it
       back, including a pair split across two reads (start one byte back).
       (Not for a host program's output: a POSIX program writes "\n".) */
    size_t from = b->len ? b->len - 1 : 0, end = b->len + n, i, o = from;
    for (i = from; i < end; i++)
        if (!(b->data[i] == '\r' && i + 1 < end && b->data[i + 1] == '\n')) b->data[o++] = b->data[i];
    b->len = o;
#else
    b->len += n;
#endif
    b->data[b->len] = '\0';
}

static void proc__untrack(proc *p) {
    int k;
    for (k = 0; k < PROC_MAX_LIVE; k++)
        if (proc_live[k] == p) proc_live[k] = NULL;
}

static void proc_kill_all(void);

#if defined(_WIN32)
/* ---- Win32 ---------------------------------------------------------------------------- */

/* Appends arg to cmd quoted for the MSVCRT command-line parser: inside
   quotes, backslashes are literal except before a quote, where 2n of them
   make n and 2n+1 make n and a literal quote. */
static void proc__quote(char *cmd, size_t *len, const char *arg) {
    size_t n = *len;
    const char *s;
    if (n) cmd[n++] = ' ';
    if (*arg && !strpbrk(arg, " \t\n\v\"")) {
        memcpy(cmd + n, arg, strlen(arg));
        *len = n + strlen(arg);
        return;
    }
    cmd[n++] = '"';
    for (s = arg;; s++) {
        size_t bs = 0, k;
        while (*s == '\\') { bs++; s++; }
        if (!*s) {                      /* before the closing quote: double them */
            for (k = 0; k < bs * 2; k++) cmd[n++] = '\\';
            break;
        }
        if (*s == '"') {
            for (k = 0; k < bs * 2 + 1; k++) cmd[n++] = '\\';
        } else {
            for (k = 0; k < bs; k++) cmd[n++] = '\\';
        }
        cmd[n++] = *s;
    }
    cmd[n++] = '"';
    *len = n;
}

/* A job object that kills its processes when its last handle closes: ours,
   held until we exit, however we exit. Best effort (NULL if refused). */
static HANDLE proc__job(void) {
    static HANDLE job;
    static int tried;
    if (!tried) {
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
        tried = 1;
        job = CreateJobObjectA(NULL, NULL);
        memset(&li, 0, sizeof li);
        li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        if (job && !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li)) {
            CloseHandle(job);
            job = NULL;
        }
    }
    return job;
}

/* Reads what is there without blocking; 1 if it got something. At the end
   of the stream (the child and every copy of the write end are gone) the
   handle is closed and set to NULL. */
static int proc__read(HANDLE *h, proc_buf *b) {
    int got = 0;
    while (*h) {
        DWORD avail = 0, n = 0;
        if (!PeekNamedPipe(*h, NULL, 0, NULL, &avail, NULL)) {   /* ERROR_BROKEN_PIPE: the end */
            CloseHandle(*h);
            *h = NULL;
            break;
        }
        if (avail == 0 || !proc__reserve(b, avail)) break;
        if (!ReadFile(*h, b->data + b->len, avail, &n, NULL) || n == 0) break;
        proc__took(b, n);
        got = 1;
    }
    return got;
}

static void proc__reap(proc *p, DWORD wait_ms) {
    DWORD code;
    if (!p->process || p->exited) return;
    if (WaitForSingleObject(p->process, wait_ms) != WAIT_OBJECT_0) return;
    if (!GetExitCodeProcess(p->process, &code)) code = 255;
    p->code = (int)code;
    p->exited = 1;
}

static int proc__spawn(proc *p, const char *dir, const char *const *args, int flags) {
    SECURITY_ATTRIBUTES sa;
    STARTUPINFOEXA si;
    PROCESS_INFORMATION pi;
    HANDLE child_in = NULL, child_out = NULL, child_err = NULL, list[3], job;
    LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
    SIZE_T attrs_size = 0;
    size_t cap = 2 * strlen(p->path) + 3, len = 0;
    char *cmd;
    int k, nlist = 0, ok = 0;
    DWORD how = EXTENDED_STARTUPINFO_PRESENT | CREATE_SUSPENDED;
    for (k = 0; args[k]; k++) cap += 2 * strlen(args[k]) + 3;
    if (!(cmd = (char *)malloc(cap + 1))) return 0;
    proc__quote(cmd, &len, p->path);
    for (k = 0; args[k]; k++) proc__quote(cmd, &len, args[k]);
    cmd[len] = '\0';

    /* The pipes are made inheritable, then our ends are made not to be:
       only the child's ends may go to it (and to no later child). */
    sa.nLength = sizeof sa;
    sa.lpSecurityDescriptor = NULL;
    sa.bInheritHandle = TRUE;
    if (!CreatePipe(&p->rd[0], &child_out, &sa, 65536)) goto done;
    SetHandleInformation(p->rd[0], HANDLE_FLAG_INHERIT, 0);
    if (!(flags & PROC_MERGE)) {
        if (!CreatePipe(&p->rd[1], &child_err, &sa, 65536)) goto done;
        SetHandleInformation(p->rd[1], HANDLE_FLAG_INHERIT, 0);
    }
    if (flags & PROC_STDIN) {
        if (!CreatePipe(&child_in, &p->in, &sa, 65536)) goto done;
        SetHandleInformation(p->in, HANDLE_FLAG_INHERIT, 0);
    } else {
        child_in = CreateFileA("NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, NULL);
        if (child_in == INVALID_HANDLE_VALUE) { child_in = NULL; goto done; }
    }
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = child_in;
    si.StartupInfo.hStdOutput = child_out;
    si.StartupInfo.hStdError = child_err ? child_err : child_out;
    /* Other handles of ours may be inheritable (a raw test socket is): the
       handle list passes these three only. */
    list[nlist++] = child_in;
    list[nlist++] = child_out;
    if (child_err) list[nlist++] = child_err;
    InitializeProcThreadAttributeList(NULL, 1, 0, &attrs_size);
    attrs = (LPPROC_THREAD_ATTRIBUTE_LIST)malloc(attrs_size ? attrs_size : 64);
    if (attrs && InitializeProcThreadAttributeList(attrs, 1, 0, &attrs_size)) {
        if (UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list, nlist * sizeof(HANDLE), NULL,
                                      NULL))
            si.lpAttributeList = attrs;
    }
    if (!si.lpAttributeList) how &= ~(DWORD)EXTENDED_STARTUPINFO_PRESENT;
    if (!CreateProcessA(p->path, cmd, NULL, NULL, TRUE, how, NULL, dir, &si.StartupInfo, &pi)) goto done;
    /* Suspended until it is in the job, so even a child that starts a child
       of its own cannot leave it behind. */
    if ((job = proc__job()) != NULL) AssignProcessToJobObject(job, pi.hProcess);
    ResumeThread(pi.hThread);
    CloseHandle(pi.hThread);
    p->process = pi.hProcess;
    p->pid = pi.dwProcessId;
    ok = 1;
done:
    if (!ok) printf("  CreateProcess %s: error %lu\n", p->path, (unsigned long)GetLastError());
    if (attrs) {
        if (si.lpAttributeList) DeleteProcThreadAttributeList(attrs);
        free(attrs);
    }
    free(cmd);
    /* Our copies of the child's ends: with them open, its output would never end. */
    if (child_in) CloseHandle(child_in);
    if (child_out) CloseHandle(child_out);
    if (child_err) CloseHandle(child_err);
    if (!ok) {
        for (k = 0; k < 2; k++)
            if (p->rd[k]) { CloseHandle(p->rd[k]); p->rd[k] = NULL; }
        if (p->in) { CloseHandle(p->in); p->in = NULL; }
    }
    return ok;
}

static int proc_exists(const char *path) {
    DWORD a = GetFileAttributesA(path);
    return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

/* ---- Win32: host programs through the peer broker (PROC_HOST) ------------------------- */

/* Under wine a Windows process cannot run a Linux program with pipes nor
   kill one, so tests/interop/peer_broker.py, a host process, does it for
   us: we connect to it (127.0.0.1:PORT from $WSR_PEER_BROKER) and send the
   command as one line, a JSON array; it answers with records of a type
   byte, a 4-byte big-endian length and that many bytes: 'O' stdout, 'E'
   stderr, 'X' the exit code in decimal (-N: signal N), the last one. Any
   byte we send, or our closing the connection, makes it kill the program.
   The program runs in the broker's directory, with /dev/null as stdin, so
   PROC_HOST takes no directory and no PROC_STDIN here. */

/* Appends s to cmd as a JSON string: quotes, backslashes and control
   characters escaped; other bytes as they are (UTF-8 passes through). */
static void proc__json_str(char *cmd, size_t *len, const char *s) {
    size_t n = *len;
    cmd[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            cmd[n++] = '\\';
            cmd[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)sprintf(cmd + n, "\\u%04x", c);
        } else {
            cmd[n++] = (char)c;
        }
    }
    cmd[n++] = '"';
    *len = n;
}

static void proc__host_close(proc *p) {
    if (p->hosted && p->sock != INVALID_SOCKET) closesocket(p->sock);
    p->sock = INVALID_SOCKET;
}

/* The program's end, from the 'X' record, or a broken connection (no
   record: 255, and a line in its stderr saying so). */
static void proc__host_ended(proc *p, int code, const char *why) {
    if (why) {
        proc_buf *b = p->merged ? &p->out : &p->err;
        size_t n = strlen(why);
        if (proc__reserve(b, n)) {
            memcpy(b->data + b->len, why, n);
            b->len += n;
            b->data[b->len] = '\0';
        }
    }
    p->code = code;
    p->exited = 1;
    proc__host_close(p);        /* 'X' is the last record: nothing more to read */
}

/* Takes n bytes of the broker's answer: splits them into records. */
static void proc__host_feed(proc *p, const unsigned char *d, size_t n) {
    while (n > 0 && !p->exited) {
        if (p->rec_have < 5) {                      /* the header */
            p->rec[p->rec_have++] = *d++;
            n--;
            if (p->rec_have == 5) {
                p->rec_left = ((size_t)p->rec[1] << 24) | ((size_t)p->rec[2] << 16) | ((size_t)p->rec[3] << 8) |
                              p->rec[4];
                p->xlen = 0;
                if (p->rec[0] != 'O' && p->rec[0] != 'E' && p->rec[0] != 'X') {
                    proc__host_ended(p, 255, "peer broker: a record of unknown type (is WSR_PEER_BROKER "
                                             "the broker's address?)\n");
                    return;
                }
            }
        } else {                                    /* its data */
            size_t take = n < p->rec_left ? n : p->rec_left;
            if (p->rec[0] == 'X') {
                size_t k;
                for (k = 0; k < take; k++)
                    if (p->xlen < sizeof p->xcode - 1) p->xcode[p->xlen++] = (char)d[k];
            } else {
                proc_buf *b = p->rec[0] == 'O' || p->merged ? &p->out : &p->err;
                if (!proc__reserve(b, take)) return;
                memcpy(b->data + b->len, d, take);  /* as written: no "\r\n" to fold */
                b->len += take;
                b->data[b->len] = '\0';
            }
            d += take;
            n -= take;
            p->rec_left -= take;
        }
        if (p->rec_have == 5 && p->rec_left == 0) { /* a whole record */
            if (p->rec[0] == 'X') {
                int code;
                p->xcode[p->xlen] = '\0';
                code = atoi(p->xcode);
                proc__host_ended(p, code < 0 ? 128 - code : code, NULL);   /* signal N: 128 + N, as on POSIX */
            }
            p->rec_have = 0;
        }
    }
}

/* Reads what the broker sent, waiting up to wait_ms for the first byte. */
static void proc__host_pump(proc *p, int wait_ms) {
    char buf[65536];
    if (p->sock == INVALID_SOCKET) return;
    if (wait_ms > 0) {
        fd_set rd;
        struct timeval tv;
        FD_ZERO(&rd);
        FD_SET(p->sock, &rd);
        tv.tv_sec = wait_ms / 1000;
        tv.tv_usec = (wait_ms % 1000) * 1000;
        select(0, &rd, NULL, NULL, &tv);            /* readable: data, or the end */
    }
    while (p->sock != INVALID_SOCKET && !p->exited) {
        int n = recv(p->sock, buf, (int)sizeof buf, 0);
        if (n > 0) {
            proc__host_feed(p, (const unsigned char *)buf, (size_t)n);
            continue;
        }
        if (n < 0 && WSAGetLastError() == WSAEWOULDBLOCK) break;
        proc__host_ended(p, 255, "peer broker: the connection ended before the program's exit code\n");
    }
}

/* Connects to the broker and sends the command. 1, or 0 after printing why. */
static int proc__host_spawn(proc *p, const char *dir, const char *const *args, int flags) {
    static int wsa;
    const char *addr = getenv("WSR_PEER_BROKER");
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char host[64], *cmd;
    struct sockaddr_in sa;
    size_t cap = 6 * strlen(p->path) + 8, len = 0, off;
    u_long on = 1;
    int k, port = colon ? atoi(colon + 1) : 0;
    p->sock = INVALID_SOCKET;
    if (!addr || !*addr) {
        printf("  %s is a host program: on Windows the peer broker starts it, and WSR_PEER_BROKER "
               "(its address, 127.0.0.1:PORT) is not set; start tests/interop/peer_broker.py "
               "(tools/test-windows.sh does)\n", p->path);
        return 0;
    }
    if (!colon || colon - addr >= (ptrdiff_t)sizeof host || port <= 0 || port > 65535) {
        printf("  WSR_PEER_BROKER=%s is not 127.0.0.1:PORT\n", addr);
        return 0;
    }
    if (dir || (flags & PROC_STDIN)) {
        printf("  %s: the peer broker runs host programs in its own directory, stdin /dev/null "
               "(no directory, no PROC_STDIN)\n", p->path);
        return 0;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((u_short)port);
    sa.sin_addr.s_addr = inet_addr(host);
    if (!wsa) {
        WSADATA wd;
        wsa = WSAStartup(MAKEWORD(2, 2), &wd) == 0;   /* kept until we exit */
    }
    p->sock = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (p->sock == INVALID_SOCKET) {
        printf("  socket: error %d\n", WSAGetLastError());
        return 0;
    }
    /* Not for the children we start ourselves (the handle list keeps it
       from them anyway). */
    SetHandleInformation((HANDLE)p->sock, HANDLE_FLAG_INHERIT, 0);
    if (connect(p->sock, (struct sockaddr *)&sa, sizeof sa) != 0) {
        printf("  cannot reach the peer broker at WSR_PEER_BROKER=%s: error %d (is tests/interop/peer_broker.py "
               "running?)\n", addr, WSAGetLastError());
        proc__host_close(p);
        return 0;
    }
    for (k = 0; args[k]; k++) cap += 6 * strlen(args[k]) + 3;
    if (!(cmd = (char *)malloc(cap))) { proc__host_close(p); return 0; }
    cmd[len++] = '[';
    proc__json_str(cmd, &len, p->path);
    for (k = 0; args[k]; k++) {
        cmd[len++] = ',';
        proc__json_str(cmd, &len, args[k]);
    }
    cmd[len++] = ']';
    cmd[len++] = '\n';
    for (off = 0; off < len;) {                     /* blocking still: a short line to an idle broker */
        int n = send(p->sock, cmd + off, (int)(len - off), 0);
        if (n <= 0) break;
        off += (size_t)n;
    }
    free(cmd);
    if (off < len) {
        printf("  sending the command to the peer broker: error %d\n", WSAGetLastError());
        proc__host_close(p);
        return 0;
    }
    ioctlsocket(p->sock, FIONBIO, &on);             /* proc_pump never blocks */
    p->hosted = 1;
    return 1;
}

/* The hard stop: one byte asks the broker to kill it (SIGKILL); its exit
   record follows the rest of its output. */
static void proc__host_kill(proc *p) {
    uint64_t until = wsr_now_ms() + 10000;
    if (!p->exited && p->sock != INVALID_SOCKET) send(p->sock, "k", 1, 0);
    while (!p->exited && p->sock != INVALID_SOCKET && wsr_now_ms() < until) proc__host_pump(p, 10);
    if (!p->exited) proc__host_ended(p, 255, "peer broker: no exit record 10 s after the kill\n");
    proc__host_close(p);
}

#else
/* ---- POSIX ------------------------------------------------------------------------------ */

/* Reads what is there without blocking; 1 if it got something. At the end
   of the stream the descriptor is closed and set to -1. */
static int proc__read(int *fd, proc_buf *b) {
    int got = 0;
    while (*fd >= 0) {
        ssize_t n;
        if (!proc__reserve(b, 4096)) break;
        n = read(*fd, b->data + b->len, b->cap - b->len - 1);
        if (n > 0) { proc__took(b, (size_t)n); got = 1; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || errno != EAGAIN) { close(*fd); *fd = -1; }
        break;
    }
    return got;
}

static void proc__reap(proc *p, int block) {
    int status;
    pid_t r;
    if (p->pid <= 0 || p->exited) return;
    while ((r = waitpid(p->pid, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {}
    if (r != p->pid) return;
    p->code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
    p->exited = 1;
}

static int proc__spawn(proc *p, const char *dir, const char *const *args, int flags) {
    int out[2], err[2] = { -1, -1 }, in[2] = { -1, -1 }, k;
    const char *argv[64];
    pid_t parent = getpid();
    argv[0] = p->path;
    for (k = 0; args[k] && k < 62; k++) argv[k + 1] = args[k];
    argv[k + 1] = NULL;
    if (pipe(out) != 0) return 0;
    if (!(flags & PROC_MERGE) && pipe(err) != 0) { close(out[0]); close(out[1]); return 0; }
    if ((flags & PROC_STDIN) && pipe(in) != 0) {
        close(out[0]); close(out[1]);
        if (err[0] >= 0) { close(err[0]); close(err[1]); }
        return 0;
    }
    fflush(stdout);                     /* or the child would print our buffered lines again */
    p->pid = fork();
    if (p->pid == 0) {
        int fd;
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* dies with the test, even if it crashes */
        if (getppid() != parent) _exit(126);
#endif
        (void)parent;
        if (flags & PROC_STDIN) dup2(in[0], 0);
        else if ((fd = open("/dev/null", O_RDONLY)) >= 0) dup2(fd, 0);
        dup2(out[1], 1);
        dup2(err[1] >= 0 ? err[1] : out[1], 2);
        for (fd = 3; fd < 1024; fd++) close(fd);   /* not our sockets, not the pipes' other ends */
        if (dir && chdir(dir) != 0) _exit(126);
        execv(p->path, (char *const *)argv);
        {
            static const char m[] = "exec failed: ";
            if (write(2, m, sizeof m - 1) < 0 || write(2, p->path, strlen(p->path)) < 0 || write(2, "\n", 1) < 0) {}
        }
        _exit(127);
    }
    close(out[1]);
    if (err[1] >= 0) close(err[1]);
    if (in[0] >= 0) close(in[0]);
    if (p->pid < 0) {
        printf("  fork: %s\n", strerror(errno));
        p->pid = 0;
        close(out[0]);
        if (err[0] >= 0) close(err[0]);
        if (in[1] >= 0) close(in[1]);
        return 0;
    }
    p->rd[0] = out[0];
    p->rd[1] = err[0];
    p->in = in[1];
    for (k = 0; k < 2; k++)
        if (p->rd[k] >= 0) {
            fcntl(p->rd[k], F_SETFL, fcntl(p->rd[k], F_GETFL, 0) | O_NONBLOCK);
            fcntl(p->rd[k], F_SETFD, FD_CLOEXEC);   /* a later child must not hold it open */
        }
    if (p->in >= 0) fcntl(p->in, F_SETFD, FD_CLOEXEC);
    return 1;
}

static int proc_exists(const char *path) { return access(path, X_OK) == 0; }
#endif

/* ---- the operations ----------------------------------------------------------------------- */

/* Starts bin (a path; on Windows ".exe" is added unless there) with args
   (NULL-terminated, without argv[0]), in directory dir (NULL: ours).
   flags: PROC_STDIN, PROC_MERGE, PROC_HOST. Returns 1, or 0 after printing
   why (a missing program also sets p->missing). Either way p may be given to
   proc_kill, proc_end and proc_free.
   PROC_HOST on Windows: bin is a host path, or "node" / "python" for the
   broker's node and /usr/bin/python3; dir must be NULL and PROC_STDIN is
   refused (the broker runs it in tests/interop, stdin /dev/null); whether
   the program exists shows only in how it ends (the broker: exit 127 and a
   line in its stderr). */
static WSR_TP_UNUSED int proc_start_in(proc *p, const char *dir, const char *bin, const char *const *args, int flags) {
    static int once;
    static const char *const none[] = { NULL };
    int k;
    memset(p, 0, sizeof *p);
#if defined(_WIN32)
    p->sock = INVALID_SOCKET;
    {
        size_t n = strlen(bin);
        snprintf(p->path, sizeof p->path, "%s%s", bin,
                 (flags & PROC_HOST) || (n > 4 && _stricmp(bin + n - 4, ".exe") == 0) ? "" : ".exe");
    }
#else
    p->in = p->rd[0] = p->rd[1] = -1;
    snprintf(p->path, sizeof p->path, "%s", bin);
#endif
    if (!once) {
        once = 1;
#if !defined(_WIN32)
        signal(SIGPIPE, SIG_IGN);       /* writing to a child that died must fail a check, not kill us */
#endif
        atexit(proc_kill_all);
    }
#if defined(_WIN32)
    if (flags & PROC_HOST) {
        if (!proc__host_spawn(p, dir, args ? args : none, flags)) {
            printf("FAIL %s: cannot start the host program %s through the peer broker\n", wsr_test_current, p->path);
            return 0;
        }
    } else
#endif
    if (!proc_exists(p->path)) {
        p->missing = 1;
#if defined(_WIN32)
        printf("FAIL %s: the program %s is missing\n", wsr_test_current, p->path);
#else
        printf("FAIL %s: the program %s is missing (%s)\n", wsr_test_current, p->path, strerror(errno));
#endif
        return 0;
    }
    else if (!proc__spawn(p, dir, args ? args : none, flags)) {
        printf("FAIL %s: cannot start %s\n", wsr_test_current, p->path);
        return 0;
    }
    p->started = 1;
    p->merged = (flags & PROC_MERGE) != 0;
    for (k = 0; k < PROC_MAX_LIVE; k++)
        if (!proc_live[k]) { proc_live[k] = p; break; }
    return 1;
}

static WSR_TP_UNUSED int proc_start(proc *p, const char *bin, const char *const *args, int flags) {
    return proc_start_in(p, NULL, bin, args, flags);
}

/* Takes what it printed, waiting up to wait_ms for something to come (or
   its output to end), and notes whether it exited. Never blocks longer. */
static WSR_TP_UNUSED void proc_pump(proc *p, int wait_ms) {
#if defined(_WIN32)
    /* Anonymous pipes cannot be waited on with a timeout: look every ms. */
    DWORD start = GetTickCount();
    if (!p->started) return;
    if (p->hosted) { proc__host_pump(p, wait_ms); return; }
    for (;;) {
        int got = proc__read(&p->rd[0], &p->out) | proc__read(&p->rd[1], &p->err);
        proc__reap(p, 0);
        if (got || (!p->rd[0] && !p->rd[1]) || (DWORD)(GetTickCount() - start) >= (DWORD)wait_ms) break;
        Sleep(1);
    }
    if (wait_ms > 0 && !p->rd[0] && !p->rd[1] && !p->exited) proc__reap(p, (DWORD)wait_ms);
#else
    struct pollfd pf[2];
    int n = 0, k;
    if (!p->started) return;
    for (k = 0; k < 2; k++)
        if (p->rd[k] >= 0) {
            pf[n].fd = p->rd[k];
            pf[n].events = POLLIN;
            pf[n].revents = 0;
            n++;
        }
    if (wait_ms > 0) {
        if (n) poll(pf, (nfds_t)n, wait_ms);
        else if (p->pid > 0 && !p->exited) wsr_test_sleep_ms(wait_ms);
    }
    proc__read(&p->rd[0], &p->out);
    proc__read(&p->rd[1], &p->err);
    proc__reap(p, 0);
#endif
}

/* Its exit code once it exited (128 + N if signal N ended it), -1 while it runs
   (or if it never started). */
static WSR_TP_UNUSED int proc_exit_code(proc *p) {
    if (!p->exited) proc_pump(p, 0);
    return p->exited ? p->code : -1;
}

/* Exited, and everything it printed has been read. */
static WSR_TP_UNUSED int proc_done(proc *p) {
#if defined(_WIN32)
    return p->exited && !p->rd[0] && !p->rd[1];   /* hosted: 'X' came last, after all its output */
#else
    return p->exited && p->rd[0] < 0 && p->rd[1] < 0;
#endif
}

/* Writes all of data to its stdin; 0 if it cannot (no stdin pipe, or it
   closed its end). */
static WSR_TP_UNUSED int proc_write_n(proc *p, const void *data, size_t n) {
    const char *s = (const char *)data;
    if (!p->started) return 0;
    while (n > 0) {
#if defined(_WIN32)
        DWORD k = 0;
        if (!p->in || !WriteFile(p->in, s, (DWORD)(n > 65536 ? 65536 : n), &k, NULL) || k == 0) return 0;
#else
        ssize_t k;
        if (p->in < 0) return 0;
        k = write(p->in, s, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
#endif
        s += k;
        n -= (size_t)k;
    }
    return 1;
}
static WSR_TP_UNUSED int proc_write(proc *p, const char *s) { return proc_write_n(p, s, strlen(s)); }

/* Closes our end of its stdin: it reads the end of its input. */
static WSR_TP_UNUSED void proc_close_stdin(proc *p) {
    if (!p->started) return;
#if defined(_WIN32)
    if (p->in) CloseHandle(p->in);
    p->in = NULL;
#else
    if (p->in >= 0) close(p->in);
    p->in = -1;
#endif
}

/* Waits (pumping only this child) until it exited and its output ended, or
   ms (scaled) passed. Its exit code, or -1 if it still runs. */
static WSR_TP_UNUSED int proc_wait_exit(proc *p, int ms) {
    uint64_t deadline = wsr_now_ms() + wsr_test_scaled(ms);
    while (!proc_done(p) && (p->started || p->exited) && wsr_now_ms() < deadline) proc_pump(p, 10);
    return proc_exit_code(p);
}

/* Waits (pumping only this child) until its stdout (with PROC_MERGE, its
   output) contains text, or ms (scaled) passed, or its output ended. 1 if it does. */
static WSR_TP_UNUSED int proc_wait_for(proc *p, const char *text, int ms) {
    uint64_t deadline = wsr_now_ms() + wsr_test_scaled(ms);
    while (!strstr(proc_stdout(p), text) && !proc_done(p) && wsr_now_ms() < deadline) proc_pump(p, 10);
    return strstr(proc_stdout(p), text) != NULL;
}

#if !defined(_WIN32)
/* The soft stop: SIGTERM, which our programs catch to close their
   connections cleanly. 0 on success. POSIX only (see the top). */
static WSR_TP_UNUSED int proc_term(proc *p) {
    if (p->pid <= 0 || p->exited) return -1;
    return kill(p->pid, SIGTERM);
}
#endif

/* The hard stop, by its PID or handle: killed unless it exited, reaped,
   the rest of its output read, our pipe ends closed. Safe on a proc that
   never started and safe twice; the output stays until proc_free. */
static WSR_TP_UNUSED void proc_kill(proc *p) {
    int k;
    if (!p->started) return;
    if (!p->exited) {
        proc_pump(p, 0);
#if defined(_WIN32)
        if (p->hosted) proc__host_kill(p);
        else if (!p->exited) {
            TerminateProcess(p->process, 128 + 9);
            proc__reap(p, 10000);
        }
#else
        if (!p->exited) {
            kill(p->pid, SIGKILL);
            proc__reap(p, 1);
        }
#endif
    }
    /* The last of its output. It exited, so what it wrote is in the pipe,
       then the end of it; a child of its own could still hold the pipe
       open, so this waits half a second at most. */
#if defined(_WIN32)
    for (k = 0; k < 2; k++) {
        DWORD start = GetTickCount();
        while (p->rd[k] && GetTickCount() - start < 500)
            if (!proc__read(&p->rd[k], k ? &p->err : &p->out) && p->rd[k]) Sleep(1);
        if (p->rd[k]) { CloseHandle(p->rd[k]); p->rd[k] = NULL; }
    }
    if (p->process) { CloseHandle(p->process); p->process = NULL; }
    proc__host_close(p);
#else
    for (k = 0; k < 2; k++) {
        uint64_t until = wsr_now_ms() + 500;
        while (p->rd[k] >= 0 && wsr_now_ms() < until) {
            struct pollfd pf;
            pf.fd = p->rd[k];
            pf.events = POLLIN;
            pf.revents = 0;
            poll(&pf, 1, 10);
            proc__read(&p->rd[k], k ? &p->err : &p->out);
        }
        if (p->rd[k] >= 0) { close(p->rd[k]); p->rd[k] = -1; }
    }
#endif
    proc_close_stdin(p);
    p->started = 0;
    proc__untrack(p);
}

/* Prints what it said, for a failed check. Long output: the last 16000 bytes. */
static WSR_TP_UNUSED void proc_dump(proc *p, const char *name) {
    int k;
    proc_pump(p, 0);
    printf("  --- %s (%s", name, p->path);
    if (p->exited) printf(", exit %d", p->code);
    else if (p->started) printf(", running");
    printf(") ---\n");
    for (k = 0; k < 2; k++) {
        const proc_buf *b = k ? &p->err : &p->out;
        const char *s = b->data ? b->data : "";
        size_t n = b->len;
        if (k == 1 && p->merged) break;
        printf("  [%s%s]\n", k ? "stderr" : p->merged ? "stdout and stderr" : "stdout", n > 16000 ? ", its end" : "");
        if (n > 16000) s += n - 16000;
        printf("%s%s", s, n && s[strlen(s) - 1] != '\n' ? "\n" : "");
    }
    printf("  ---\n");
}

/* Frees what proc_kill keeps (after killing it if need be). */
static WSR_TP_UNUSED void proc_free(proc *p) {
    proc_kill(p);
    free(p->out.data);
    free(p->err.data);
    memset(&p->out, 0, sizeof p->out);
    memset(&p->err, 0, sizeof p->err);
}

/* The end of a test, on every path: kills it if it still runs, prints its
   output if a check failed since fails_before (wsr_test_failed when the
   test began), frees it. */
static WSR_TP_UNUSED void proc_end(proc *p, int fails_before, const char *name) {
    proc_kill(p);
    if (wsr_test_failed != fails_before && (p->out.len || p->err.len || p->exited)) proc_dump(p, name);
    proc_free(p);
}

/* Children a crashed check (or an early exit) left behind. */
static void proc_kill_all(void) {
    int k;
    for (k = 0; k < PROC_MAX_LIVE; k++) {
        proc *p = proc_live[k];
        proc_live[k] = NULL;
        if (!p || p->exited) continue;
#if defined(_WIN32)
        if (p->hosted) proc__host_close(p);     /* the broker kills it when the connection closes */
        if (p->process) { TerminateProcess(p->process, 128 + 9); WaitForSingleObject(p->process, 10000); }
#else
        if (p->pid > 0) { kill(p->pid, SIGKILL); while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {} }
#endif
    }
}

#endif
