/* tool_os.h: the little that wsrcat and wsr-chaos need from the OS beyond
   ws_reconnect.h, on POSIX and on Windows (Winsock, Vista and later).

   Include it after ws_reconnect.h (whose implementation part brings in the
   platform's socket headers in the right order) in the one .c file of a tool.

   What it gives:
   - stdin as something poll() can wait on. POSIX: fd 0 itself. Windows:
     WSAPoll waits on sockets only, never on a console or a pipe, so a
     reader thread does blocking reads of stdin and writes what it reads into
     one end of a loopback TCP pair; the tool polls and recv()s the other end
     exactly where POSIX polls and read()s fd 0. The end of stdin is the end
     of that stream (recv() returns 0).
   - a wake-up for Ctrl-C. POSIX: SIGINT and SIGTERM write a byte into a
     self-pipe. Windows: a console control handler (Ctrl-C, Ctrl-Break, the
     console window closing, logoff, shutdown) writes a byte into a second
     loopback pair. Either way tool_signals counts them and tool_signal_fd
     is readable.
   - socket compatibility for wsr-chaos's plain BSD-socket code: the socket
     type and its "none" value, close, non-blocking mode, the error number
     and its text, the few error codes it tests, poll().

   Why a thread and a socket pair rather than, say, WaitForMultipleObjects on
   the console handle: the tools wait on sockets and stdin together, and
   WSAPoll is the only call that waits on many sockets at once. A console
   handle is signalled by any input event (a mouse move, a key release), a
   pipe handle cannot be waited on at all, and select() takes sockets only.
   A socket pair turns every kind of stdin into a socket, at the price of one
   thread and one copy of the input. (Windows 10 1803 has AF_UNIX sockets,
   but loopback TCP works on every Windows and under wine.)

   Every function is static: each tool is one translation unit. */
#ifndef TOOL_OS_H
#define TOOL_OS_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Static helpers that a tool may not all use: no -Wunused-function. */
#if defined(__GNUC__) || defined(__clang__)
#  define TOOL_FN static __attribute__((unused))
#else
#  define TOOL_FN static
#endif

#if defined(_WIN32)
/* ---- Windows ------------------------------------------------------------------ */

#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0600
#  undef _WIN32_WINNT
#  define _WIN32_WINNT 0x0600          /* WSAPoll */
#endif
#include <winsock2.h>                  /* before windows.h */
#include <ws2tcpip.h>
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#if defined(_MSC_VER)
#  pragma comment(lib, "ws2_32")
#endif

typedef SOCKET tool_sock;
#define TOOL_NO_SOCK INVALID_SOCKET
#define TOOL_SHUT_WR SD_SEND
#define TOOL_E_INTR WSAEINTR
#define TOOL_E_WOULDBLOCK(e) ((e) == WSAEWOULDBLOCK)
/* A non-blocking connect says WSAEWOULDBLOCK, not EINPROGRESS. */
#define TOOL_E_INPROGRESS(e) ((e) == WSAEWOULDBLOCK || (e) == WSAEINPROGRESS)
#define tool_sock_errno() ((int)WSAGetLastError())
#define tool_sock_close(s) closesocket(s)
/* For a listener: on Windows SO_REUSEADDR would let another program bind
   the same port and take our connections; a listener there can be
   restarted at once without it, and SO_EXCLUSIVEADDRUSE keeps the port ours. */
#define TOOL_SO_REUSE SO_EXCLUSIVEADDRUSE
/* WSAPoll does not report a failed non-blocking connect on Windows before
   10 version 2004 (wine reports POLLERR): a tool checks a pending connect
   with tool_connect_failed() at least this often. */
#define TOOL_CONNECT_CHECK_MS 50

TOOL_FN int tool_sock_nonblock(tool_sock s) {
    u_long on = 1;
    return ioctlsocket(s, FIONBIO, &on) == 0 ? 0 : -1;
}

/* The text for a Winsock error. Our own: FormatMessage has none for many
   WSAE codes under wine. The wording is glibc's strerror, so a message reads
   the same on both systems; the name says which code it was. */
TOOL_FN const char *tool_sock_strerror(int e) {
    static const struct { int code; const char *text; } table[] = {
        { WSAEINTR, "Interrupted system call (WSAEINTR)" },
        { WSAEACCES, "Permission denied (WSAEACCES)" },
        { WSAEINVAL, "Invalid argument (WSAEINVAL)" },
        { WSAEMFILE, "Too many open files (WSAEMFILE)" },
        { WSAEWOULDBLOCK, "Resource temporarily unavailable (WSAEWOULDBLOCK)" },
        { WSAEINPROGRESS, "Operation now in progress (WSAEINPROGRESS)" },
        { WSAENOTSOCK, "Socket operation on non-socket (WSAENOTSOCK)" },
        { WSAEAFNOSUPPORT, "Address family not supported by protocol (WSAEAFNOSUPPORT)" },
        { WSAEADDRINUSE, "Address already in use (WSAEADDRINUSE)" },
        { WSAEADDRNOTAVAIL, "Cannot assign requested address (WSAEADDRNOTAVAIL)" },
        { WSAENETDOWN, "Network is down (WSAENETDOWN)" },
        { WSAENETUNREACH, "Network is unreachable (WSAENETUNREACH)" },
        { WSAENETRESET, "Network dropped connection on reset (WSAENETRESET)" },
        { WSAECONNABORTED, "Software caused connection abort (WSAECONNABORTED)" },
        { WSAECONNRESET, "Connection reset by peer (WSAECONNRESET)" },
        { WSAENOBUFS, "No buffer space available (WSAENOBUFS)" },
        { WSAENOTCONN, "Transport endpoint is not connected (WSAENOTCONN)" },
        { WSAESHUTDOWN, "Cannot send after transport endpoint shutdown (WSAESHUTDOWN)" },
        { WSAETIMEDOUT, "Connection timed out (WSAETIMEDOUT)" },
        { WSAECONNREFUSED, "Connection refused (WSAECONNREFUSED)" },
        { WSAEHOSTDOWN, "Host is down (WSAEHOSTDOWN)" },
        { WSAEHOSTUNREACH, "No route to host (WSAEHOSTUNREACH)" },
        { WSANOTINITIALISED, "Winsock not started (WSANOTINITIALISED)" },
        /* getaddrinfo's errors are Winsock codes too (EAI_NONAME is WSAHOST_NOT_FOUND) */
        { WSAHOST_NOT_FOUND, "Name or service not known (WSAHOST_NOT_FOUND)" },
        { WSATRY_AGAIN, "Temporary failure in name resolution (WSATRY_AGAIN)" },
        { WSANO_RECOVERY, "Non-recoverable failure in name resolution (WSANO_RECOVERY)" },
        { WSANO_DATA, "No address associated with hostname (WSANO_DATA)" },
        { WSATYPE_NOT_FOUND, "Servname not supported for ai_socktype (WSATYPE_NOT_FOUND)" },
    };
    static char other[48];
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == e) return table[i].text;
    snprintf(other, sizeof other, "Winsock error %d", e);
    return other;
}
#define tool_gai_strerror(r) tool_sock_strerror(r)

/* poll() for Winsock. WSAPoll is called with the entries that hold a socket
   only: on Linux poll() skips a negative fd, and although WSAPoll is
   documented to skip INVALID_SOCKET, leaving them out costs nothing and
   trusts less. With nothing to watch WSAPoll fails (WSAEINVAL) instead of
   sleeping, so then we sleep. Never put POLLERR or POLLHUP in `events`:
   Windows refuses them. A stream's end shows as POLLHUP alone, without
   POLLIN: test POLLHUP too before reading. */
TOOL_FN int tool_poll(struct pollfd *p, size_t n, int timeout_ms) {
    static WSAPOLLFD live[1024];                  /* more than the tools ever poll */
    size_t i, k = 0;
    int r;
    for (i = 0; i < n; i++) {
        p[i].revents = 0;
        if (p[i].fd != INVALID_SOCKET && k < sizeof live / sizeof live[0]) live[k++] = p[i];
    }
    if (k == 0) {
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
        return 0;
    }
    r = WSAPoll(live, (ULONG)k, timeout_ms);
    if (r == SOCKET_ERROR) return -1;
    for (i = 0, k = 0; i < n; i++)
        if (p[i].fd != INVALID_SOCKET && k < sizeof live / sizeof live[0]) p[i].revents = live[k++].revents;
    return r;
}

/* Has this pending non-blocking connect failed? select() reports a failed
   connect in exceptfds reliably where WSAPoll may say nothing (see
   TOOL_CONNECT_CHECK_MS). Then SO_ERROR tells why. */
TOOL_FN int tool_connect_failed(tool_sock s) {
    fd_set ex;
    struct timeval tv;
    FD_ZERO(&ex);
    FD_SET(s, &ex);
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    return select(0, NULL, NULL, &ex, &tv) == 1;
}

/* Two connected TCP sockets on 127.0.0.1 (Winsock has no socketpair):
   listen on port 0, connect, accept, close the listener. Another local
   program could connect to that port first, so the accepted socket is kept
   only if its peer is our own connecting socket. s[1] gets TCP_NODELAY: a
   line written into it must not wait for the previous one's ACK (Nagle),
   which a delayed ACK can make 200 ms. Neither end is inherited by child
   processes. Returns 0, or -1 with WSAGetLastError() set. */
TOOL_FN int tool_socketpair(tool_sock s[2]) {
    struct sockaddr_in addr, mine, peer;
    int len, tries, one = 1;
    tool_sock l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP), a = INVALID_SOCKET, c = INVALID_SOCKET;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    len = (int)sizeof addr;
    if (l == INVALID_SOCKET || bind(l, (struct sockaddr *)&addr, len) != 0 || listen(l, 4) != 0 ||
        getsockname(l, (struct sockaddr *)&addr, &len) != 0)
        goto fail;
    c = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    len = (int)sizeof mine;
    if (c == INVALID_SOCKET || connect(c, (struct sockaddr *)&addr, (int)sizeof addr) != 0 ||
        getsockname(c, (struct sockaddr *)&mine, &len) != 0)
        goto fail;
    for (tries = 0; tries < 8; tries++) {
        len = (int)sizeof peer;
        if ((a = accept(l, (struct sockaddr *)&peer, &len)) == INVALID_SOCKET) goto fail;
        if (peer.sin_port == mine.sin_port && peer.sin_addr.s_addr == mine.sin_addr.s_addr) break;
        closesocket(a);                           /* a stranger: not ours */
        a = INVALID_SOCKET;
    }
    if (a == INVALID_SOCKET) goto fail;
    closesocket(l);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    SetHandleInformation((HANDLE)a, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation((HANDLE)c, HANDLE_FLAG_INHERIT, 0);
    s[0] = a;
    s[1] = c;
    return 0;
fail:
    {
        int e = WSAGetLastError();
        if (l != INVALID_SOCKET) closesocket(l);
        if (c != INVALID_SOCKET) closesocket(c);
        WSASetLastError(e ? e : WSAECONNREFUSED);
    }
    return -1;
}

/* Sends all of buf on a blocking socket. 0, or -1 if the other end is gone. */
TOOL_FN int tool_send_all(tool_sock s, const char *buf, size_t n) {
    while (n > 0) {
        int k = send(s, buf, n > 0x10000 ? 0x10000 : (int)n, 0);
        if (k <= 0) return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One read from a console, as UTF-8 with "\n" line ends, like a pipe would
   give. ReadFile on a console gives bytes in the console's code page (not
   UTF-8, so a line with an accented letter would not be valid text) and
   "\r\n" line ends; ReadConsoleW gives UTF-16, converted here. Returns the
   bytes put in out (cap >= 3 * 4096), 0 at the end of input (Ctrl-Z at the
   start of a line, Windows' Ctrl-D), -1 on an error. */
TOOL_FN long tool_console_read(HANDLE h, char *out, size_t cap) {
    static WCHAR held;      /* a '\r' or a high surrogate that ended the last read: it goes first now */
    WCHAR w[4096];
    DWORD got, i, k;
    int n;
    for (;;) {
        k = held ? 1 : 0;
        w[0] = held;
        SetLastError(0);
        if (!ReadConsoleW(h, w + k, (DWORD)(sizeof w / sizeof w[0]) - k, &got, NULL)) return -1;
        /* Ctrl-C ends the read early with nothing read: that is not the end
           of input. The control handler has the Ctrl-C; we read on. */
        if (got == 0 && GetLastError() == ERROR_OPERATION_ABORTED) { Sleep(10); continue; }
        break;
    }
    held = 0;
    got += k;
    if (got == 0 || w[0] == 0x1A) return 0;
    if (got > 1 && (w[got - 1] == '\r' || (w[got - 1] >= 0xD800 && w[got - 1] <= 0xDBFF))) held = w[--got];
    for (i = 0, k = 0; i < got; i++)              /* "\r\n" -> "\n" */
        if (!(w[i] == '\r' && i + 1 < got && w[i + 1] == '\n')) w[k++] = w[i];
    n = WideCharToMultiByte(CP_UTF8, 0, w, (int)k, out, (int)cap, NULL, NULL);
    return n > 0 ? n : -1;
}

/* The reader thread: blocking reads of stdin into the socket pair, then the
   end of the stream. It uses Win32 calls only (ReadFile, not fread), so a
   pipe's bytes pass unchanged, with no text-mode translation. A read error
   ends the input like the end of the file does. When the tool stops reading
   (a full queue), this thread blocks in send() once the socket buffers are
   full, and stops reading stdin: back-pressure still reaches the writer,
   after those buffers. At exit the process ends the thread wherever it is. */
static tool_sock tool_stdin_pair[2] = { INVALID_SOCKET, INVALID_SOCKET };

static DWORD WINAPI tool_stdin_thread(LPVOID arg) {
    static char buf[3 * 4096 + 16];
    HANDLE h = GetStdHandle(STD_INPUT_HANDLE);
    DWORD mode, got;
    int console = h != NULL && h != INVALID_HANDLE_VALUE && GetConsoleMode(h, &mode);
    (void)arg;
    if (h != NULL && h != INVALID_HANDLE_VALUE) {
        for (;;) {
            long n;
            if (console) n = tool_console_read(h, buf, sizeof buf);
            else n = ReadFile(h, buf, (DWORD)sizeof buf, &got, NULL) ? (long)got : -1;   /* a pipe's end: ERROR_BROKEN_PIPE */
            if (n <= 0 || tool_send_all(tool_stdin_pair[1], buf, (size_t)n) != 0) break;
        }
    }
    shutdown(tool_stdin_pair[1], SD_SEND);        /* the reader sees recv() == 0 */
    return 0;
}

/* Starts the reader thread. Returns the socket to poll for stdin, or
   TOOL_NO_SOCK after printing why (prog: the message's prefix). */
TOOL_FN tool_sock tool_stdin_start(const char *prog) {
    HANDLE t;
    if (tool_socketpair(tool_stdin_pair) != 0) {
        fprintf(stderr, "%s: cannot make a socket pair for stdin: %s\n", prog, tool_sock_strerror(WSAGetLastError()));
        return TOOL_NO_SOCK;
    }
    tool_sock_nonblock(tool_stdin_pair[0]);
    if (!(t = CreateThread(NULL, 0, tool_stdin_thread, NULL, 0, NULL))) {
        fprintf(stderr, "%s: cannot start the stdin thread (error %lu)\n", prog, (unsigned long)GetLastError());
        return TOOL_NO_SOCK;
    }
    CloseHandle(t);                               /* it runs on; we never join it */
    return tool_stdin_pair[0];
}

/* Like read(0, buf, cap): the bytes read, 0 at the end of stdin, -1 with
   errno set (EAGAIN: nothing there yet; EIO: the socket pair broke). */
TOOL_FN long tool_stdin_read(tool_sock s, void *buf, size_t cap) {
    int n = recv(s, (char *)buf, cap > 0x10000 ? 0x10000 : (int)cap, 0);
    if (n >= 0) return n;
    errno = TOOL_E_WOULDBLOCK(WSAGetLastError()) ? EAGAIN : EIO;
    return -1;
}

/* ---- Ctrl-C and friends --------------------------------------------------------- */

/* How many interruptions came; tool_signal_fd is readable after each. */
static volatile LONG tool_signals;
static tool_sock tool_signal_pair[2] = { INVALID_SOCKET, INVALID_SOCKET };
static tool_sock tool_signal_fd = INVALID_SOCKET;

/* Runs on a thread of its own that Windows starts for each event. Ctrl-C
   and Ctrl-Break are SIGINT's analogue (and Ctrl-Break, which a parent can
   send with GenerateConsoleCtrlEvent to a process group, is the nearest
   thing to SIGTERM). For the console closing, logoff and shutdown, Windows
   ends the process as soon as this returns, so it waits instead and gives
   the main loop time for its close handshakes; Windows still ends the
   process after its own timeout (5 s for a closed console). */
static BOOL WINAPI tool_on_ctrl(DWORD type) {
    char b = 1;
    InterlockedIncrement(&tool_signals);
    send(tool_signal_pair[1], &b, 1, 0);          /* non-blocking: if full, a wake-up is there already */
    if (type != CTRL_C_EVENT && type != CTRL_BREAK_EVENT) Sleep(10000);
    return TRUE;
}

/* Installs the handler. Returns 0, or -1 after printing why. */
TOOL_FN int tool_signals_start(const char *prog) {
    if (tool_socketpair(tool_signal_pair) != 0) {
        fprintf(stderr, "%s: cannot make a socket pair for Ctrl-C: %s\n", prog, tool_sock_strerror(WSAGetLastError()));
        return -1;
    }
    tool_sock_nonblock(tool_signal_pair[0]);
    tool_sock_nonblock(tool_signal_pair[1]);
    tool_signal_fd = tool_signal_pair[0];
    if (!SetConsoleCtrlHandler(tool_on_ctrl, TRUE)) {
        fprintf(stderr, "%s: cannot handle Ctrl-C (error %lu)\n", prog, (unsigned long)GetLastError());
        return -1;
    }
    return 0;
}

/* Empties the wake-up socket (it only woke us: tool_signals counts). */
TOOL_FN void tool_signals_drain(void) {
    char buf[16];
    while (recv(tool_signal_fd, buf, sizeof buf, 0) > 0) {}
}

/* Winsock must be started before any socket call; a tool may open sockets
   before any wsr_client or wsr_server exists (those start it themselves,
   and WSAStartup counts). stdout and stderr become binary: the C runtime
   would turn every "\n" into "\r\n", which changes messages that hold
   newlines and the lines a test parses. A console shows "\n" as a new
   line all the same. Returns 0, or -1 after printing why. */
TOOL_FN int tool_init(const char *prog) {
    WSADATA wd;
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
    if (WSAStartup(MAKEWORD(2, 2), &wd) != 0) {
        fprintf(stderr, "%s: cannot start Winsock\n", prog);
        return -1;
    }
    return 0;
}

#else
/* ---- POSIX ---------------------------------------------------------------------- */

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

typedef int tool_sock;
#define TOOL_NO_SOCK (-1)
#define TOOL_SHUT_WR SHUT_WR
#define TOOL_E_INTR EINTR
#define TOOL_E_WOULDBLOCK(e) ((e) == EAGAIN || (e) == EWOULDBLOCK)
#define TOOL_E_INPROGRESS(e) ((e) == EINPROGRESS)
#define tool_sock_errno() errno
#define tool_sock_close(s) close(s)
#define TOOL_SO_REUSE SO_REUSEADDR        /* restart at once, despite TIME_WAIT */
#define tool_sock_strerror(e) strerror(e)
#define tool_gai_strerror(r) gai_strerror(r)
/* poll() reports a failed connect: no extra checks needed. */
#define TOOL_CONNECT_CHECK_MS 0
#define tool_connect_failed(s) 0

TOOL_FN int tool_sock_nonblock(tool_sock fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }
TOOL_FN int tool_poll(struct pollfd *p, size_t n, int timeout_ms) { return poll(p, (nfds_t)n, timeout_ms); }

/* stdin is fd 0 itself: poll() waits on it, read() reads it. */
TOOL_FN tool_sock tool_stdin_start(const char *prog) { (void)prog; return 0; }

TOOL_FN long tool_stdin_read(tool_sock fd, void *buf, size_t cap) {
    ssize_t n;
    do n = read(fd, buf, cap); while (n < 0 && errno == EINTR);
    return (long)n;
}

/* ---- signals: a pipe that poll() can watch ---------------------------------------- */

static int tool_signal_pipe[2] = { -1, -1 };
static volatile sig_atomic_t tool_signals;
#define tool_signal_fd (tool_signal_pipe[0])

static void tool_on_signal(int sig) {
    char b = (char)sig;
    int saved = errno;
    tool_signals++;
    if (write(tool_signal_pipe[1], &b, 1) < 0) { /* full: a wake-up is already there */ }
    errno = saved;
}

/* SIGINT and SIGTERM. Returns 0, or -1 after printing why. */
TOOL_FN int tool_signals_start(const char *prog) {
    struct sigaction sa;
    if (pipe(tool_signal_pipe) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
        return -1;
    }
    fcntl(tool_signal_pipe[0], F_SETFL, fcntl(tool_signal_pipe[0], F_GETFL, 0) | O_NONBLOCK);
    fcntl(tool_signal_pipe[1], F_SETFL, fcntl(tool_signal_pipe[1], F_GETFL, 0) | O_NONBLOCK);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tool_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

TOOL_FN void tool_signals_drain(void) {
    char buf[16];
    while (read(tool_signal_pipe[0], buf, sizeof buf) > 0) {}
}

TOOL_FN int tool_init(const char *prog) { (void)prog; return 0; }

#endif
#endif /* TOOL_OS_H */
