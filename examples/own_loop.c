/* The client inside your own poll() loop, next to another file descriptor.

   usage: own_loop ws://host:port/path
   Each line typed on stdin is sent as a text message; each message received
   is printed. The program owns the loop: it asks the client which socket,
   which events and how long to wait, polls everything together, then lets
   the client do its work with wsr_client_step. End with Ctrl-D. */
#define _POSIX_C_SOURCE 200809L
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
    wsr_client_config_init(&cfg);
    cfg.url = argc > 1 ? argv[1] : "ws://127.0.0.1:9001/";
    cfg.on_message = on_message;
    if (!(c = wsr_client_new(&cfg, &err))) { fprintf(stderr, "%s\n", err.message); return 1; }
    while (wsr_client_state(c) != WSR_STATE_CLOSED) {
        struct pollfd fds[2];
        int events = wsr_client_events(c), n = 0;
        uintptr_t sock = wsr_client_socket(c);
        if (sock != WSR_INVALID_SOCKET) {
            fds[n].fd = (int)sock;
            fds[n].events = (short)(((events & WSR_POLL_IN) ? POLLIN : 0) | ((events & WSR_POLL_OUT) ? POLLOUT : 0));
            n++;
        }
        if (stdin_open) { fds[n].fd = 0; fds[n].events = POLLIN; n++; }
        poll(fds, (nfds_t)n, wsr_client_timeout_ms(c, wsr_now_ms()));
        if (stdin_open && (fds[n - 1].revents & (POLLIN | POLLHUP))) {
            char buf[4096];
            ssize_t got = read(0, buf, sizeof buf);
            if (got <= 0) {
                stdin_open = 0;
            } else {
                /* One message per line (a read may hold several). */
                ssize_t start = 0, i;
                for (i = 0; i < got; i++)
                    if (buf[i] == '\n') { wsr_send_text(c, buf + start, (size_t)(i - start)); start = i + 1; }
                if (start < got) wsr_send_text(c, buf + start, (size_t)(got - start));
            }
        }
        /* At the end of input, close once everything typed has gone out:
           closing earlier would drop what is still queued (and report it). */
        if (!stdin_open && wsr_client_queued_messages(c) == 0 && wsr_client_state(c) == WSR_STATE_OPEN)
            wsr_client_close(c, 1000, "end of input");
        wsr_client_step(c, wsr_now_ms());      /* reads, writes, timers, callbacks */
    }
    printf("closed: %s\n", wsr_client_error(c)->message);
    wsr_client_free(c);
    return 0;
}
