/* The client inside your own poll() loop, next to another file descriptor.

   usage: own_loop ws://host:port/path
   Each line typed on stdin is sent as a text message; each message received
   is printed. The program owns the loop: it asks the client which socket,
   which events and how long to wait, polls everything together, then lets
   the client do its work with wsr_client_step. End with Ctrl-D (Windows:
   Ctrl-Z, Enter).

   On Windows the loop is the same with WSAPoll, but WSAPoll waits on
   sockets only, and stdin is a console or a pipe: the block below turns
   stdin into a socket. Build there (mingw-w64):
       cc -std=c99 -O2 -I. examples/own_loop.c -o own_loop.exe -lws2_32 -lbcrypt */
#define _POSIX_C_SOURCE 200809L
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <stdio.h>
#include <string.h>

#ifndef _WIN32
#include <poll.h>
#include <unistd.h>
typedef int os_fd;
/* On POSIX stdin is fd 0: poll() waits on it and read() reads it. */
static os_fd stdin_fd(void) { return 0; }
static long read_input(os_fd fd, char *buf, size_t cap) { return (long)read(fd, buf, cap); }
#else
/* Windows. ws_reconnect.h's implementation has included winsock2.h and
   windows.h, in that order. A thread does blocking reads of stdin and sends
   what it reads into one end of a pair of connected sockets on 127.0.0.1;
   the loop polls and reads the other end, as it polls and reads fd 0 on
   POSIX. At the end of stdin the thread shuts its end down, and the loop's
   recv() returns 0, just as read() does. */
#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <stdlib.h>
typedef SOCKET os_fd;
static SOCKET input_pair[2];     /* [0] the loop's end, [1] the thread's */

static unsigned __stdcall stdin_thread(void *arg) {
    char buf[4096];
    int got;
    (void)arg;
    /* The C runtime's read in text mode, as a Windows user expects: "\r\n"
       becomes "\n", and Ctrl-Z, Enter ends the input. */
    while ((got = _read(0, buf, sizeof buf)) > 0)
        if (send(input_pair[1], buf, got, 0) != got) break;   /* a blocking socket: all of it, or broken */
    shutdown(input_pair[1], SD_SEND);
    return 0;
}

/* Winsock has no socketpair(): listen on a free port, connect, accept. */
static os_fd stdin_fd(void) {
    WSADATA wd;
    struct sockaddr_in a;
    int len = sizeof a, one = 1;
    SOCKET l;
    WSAStartup(MAKEWORD(2, 2), &wd);          /* the client started Winsock too; the calls are counted */
    _setmode(_fileno(stdout), _O_BINARY);     /* print "\n", not "\r\n": what a program reading us expects */
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = socket(AF_INET, SOCK_STREAM, 0);
    input_pair[1] = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0 ||
        connect(input_pair[1], (struct sockaddr *)&a, sizeof a) != 0 ||
        (input_pair[0] = accept(l, NULL, NULL)) == INVALID_SOCKET) {
        fprintf(stderr, "cannot make a socket for stdin (error %d)\n", WSAGetLastError());
        exit(1);
    }
    closesocket(l);
    /* Each line at once: without this, Nagle holds a short write back until
       the one before it is acknowledged. */
    setsockopt(input_pair[1], IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    CloseHandle((HANDLE)_beginthreadex(NULL, 0, stdin_thread, NULL, 0, NULL));
    return input_pair[0];
}

static long read_input(os_fd fd, char *buf, size_t cap) { return recv(fd, buf, (int)cap, 0); }

/* poll() is WSAPoll, which fails at once when given nothing to watch (stdin
   has ended and the client waits out a reconnect): then we sleep. */
typedef ULONG nfds_t;
static int poll(struct pollfd *fds, nfds_t n, int timeout_ms) {
    if (n == 0) { Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms); return 0; }
    return WSAPoll(fds, n, timeout_ms);
}
#endif

static void on_message(wsr_client *c, wsr_msg_type type, const void *data, size_t len, void *user) {
    (void)c; (void)type; (void)user;
    printf("< %.*s\n", (int)len, (const char *)data);
    fflush(stdout);
}

int main(int argc, char **argv) {
    wsr_client_config cfg;
    wsr_error err;
    wsr_client *c;
    int stdin_open = 1;
    os_fd in;
    wsr_client_config_init(&cfg);
    cfg.url = argc > 1 ? argv[1] : "ws://127.0.0.1:9001/";
    cfg.on_message = on_message;
    if (!(c = wsr_client_new(&cfg, &err))) { fprintf(stderr, "%s\n", err.message); return 1; }
    in = stdin_fd();
    while (wsr_client_state(c) != WSR_STATE_CLOSED) {
        struct pollfd fds[2];
        int events, n = 0;
        uintptr_t sock;
        /* At the end of input, close once everything typed has gone out
           (closing earlier would drop what is still queued, and report
           it). Asked before waiting, so the wait is not the ping interval. */
        if (!stdin_open && wsr_client_queued_messages(c) == 0 && wsr_client_state(c) == WSR_STATE_OPEN)
            wsr_client_close(c, 1000, "end of input");
        events = wsr_client_events(c);
        sock = wsr_client_socket(c);
        if (sock != WSR_INVALID_SOCKET) {
            fds[n].fd = (os_fd)sock;        /* an int on POSIX, a SOCKET on Windows */
            fds[n].events = (short)(((events & WSR_POLL_IN) ? POLLIN : 0) | ((events & WSR_POLL_OUT) ? POLLOUT : 0));
            n++;
        }
        if (stdin_open) { fds[n].fd = in; fds[n].events = POLLIN; n++; }
        poll(fds, (nfds_t)n, wsr_client_timeout_ms(c, wsr_now_ms()));
        /* POLLHUP too: at the end of input Windows says POLLHUP without POLLIN. */
        if (stdin_open && (fds[n - 1].revents & (POLLIN | POLLHUP))) {
            char buf[4096];
            long got = read_input(in, buf, sizeof buf);
            if (got <= 0) {
                stdin_open = 0;
            } else {
                /* One message per line (a read may hold several). */
                long start = 0, i;
                for (i = 0; i < got; i++)
                    if (buf[i] == '\n') { wsr_send_text(c, buf + start, (size_t)(i - start)); start = i + 1; }
                if (start < got) wsr_send_text(c, buf + start, (size_t)(got - start));
            }
        }
        wsr_client_step(c, wsr_now_ms());      /* reads, writes, timers, callbacks */
    }
    printf("closed: %s\n", wsr_client_error(c)->message);
    wsr_client_free(c);
    return 0;
}
