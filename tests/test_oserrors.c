/* test_oserrors.c - every operating-system error the library knows, fed
   through its mapping: the wsr_err it becomes, whether reconnecting may
   help (transient), the raw code kept in os_error, and a message naming
   the code. The expectations are written out here, independently of the
   library's own table, so a wrong row there fails here. Built for POSIX by
   make test and for Windows (the Winsock table, with ERROR_SEM_TIMEOUT) by
   make test-windows. */
#define WSR_IMPLEMENTATION
#include "ws_reconnect.h"
#include "wsr_test.h"

typedef struct expect { int os; const char *name; wsr_err code; int transient; } expect;

#if defined(_WIN32)
static const expect table[] = {
    /* WinError 121: how Windows reports a TCP link that silently died. */
    { 121, "ERROR_SEM_TIMEOUT", WSR_ERR_TIMEOUT, 1 },
    { WSAETIMEDOUT, "WSAETIMEDOUT", WSR_ERR_TIMEOUT, 1 },
    { WSAECONNRESET, "WSAECONNRESET", WSR_ERR_RESET, 1 },
    { WSAECONNABORTED, "WSAECONNABORTED", WSR_ERR_RESET, 1 },
    { WSAECONNREFUSED, "WSAECONNREFUSED", WSR_ERR_REFUSED, 1 },
    { WSAENETUNREACH, "WSAENETUNREACH", WSR_ERR_UNREACHABLE, 1 },
    { WSAEHOSTUNREACH, "WSAEHOSTUNREACH", WSR_ERR_UNREACHABLE, 1 },
    { WSAENETDOWN, "WSAENETDOWN", WSR_ERR_NETWORK, 1 },
    { WSAENETRESET, "WSAENETRESET", WSR_ERR_NETWORK, 1 },
    { WSAEADDRNOTAVAIL, "WSAEADDRNOTAVAIL", WSR_ERR_ADDRESS, 1 },
    { WSAEADDRINUSE, "WSAEADDRINUSE", WSR_ERR_ADDRESS, 1 },
    { WSAHOST_NOT_FOUND, "WSAHOST_NOT_FOUND", WSR_ERR_DNS, 1 },
    { WSATRY_AGAIN, "WSATRY_AGAIN", WSR_ERR_DNS, 1 },
    { WSANO_DATA, "WSANO_DATA", WSR_ERR_DNS, 1 },
    { WSAENOBUFS, "WSAENOBUFS", WSR_ERR_NOMEM, 1 },
    { WSAEACCES, "WSAEACCES", WSR_ERR_IO, 0 },
    { WSAEINVAL, "WSAEINVAL", WSR_ERR_INVALID, 0 },
};
#define WOULD_BLOCK WSAEWOULDBLOCK
#else
#include <errno.h>
static const expect table[] = {
    { ETIMEDOUT, "ETIMEDOUT", WSR_ERR_TIMEOUT, 1 },
    { ECONNRESET, "ECONNRESET", WSR_ERR_RESET, 1 },
    { ECONNABORTED, "ECONNABORTED", WSR_ERR_RESET, 1 },
    { EPIPE, "EPIPE", WSR_ERR_RESET, 1 },
    { ECONNREFUSED, "ECONNREFUSED", WSR_ERR_REFUSED, 1 },
    { ENETUNREACH, "ENETUNREACH", WSR_ERR_UNREACHABLE, 1 },
    { EHOSTUNREACH, "EHOSTUNREACH", WSR_ERR_UNREACHABLE, 1 },
    { ENETDOWN, "ENETDOWN", WSR_ERR_NETWORK, 1 },
    { ENETRESET, "ENETRESET", WSR_ERR_NETWORK, 1 },
    { EADDRNOTAVAIL, "EADDRNOTAVAIL", WSR_ERR_ADDRESS, 1 },
    { EADDRINUSE, "EADDRINUSE", WSR_ERR_ADDRESS, 1 },
    { ENOBUFS, "ENOBUFS", WSR_ERR_NOMEM, 1 },
    { ENOMEM, "ENOMEM", WSR_ERR_NOMEM, 1 },
    { EMFILE, "EMFILE", WSR_ERR_IO, 1 },
    { EACCES, "EACCES", WSR_ERR_IO, 0 },
    { EINVAL, "EINVAL", WSR_ERR_INVALID, 0 },
};
#define WOULD_BLOCK EAGAIN
#endif

TEST(every_known_code_maps_to_its_error_and_class) {
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        wsr_error e;
        wsr_err r;
        memset(&e, 0, sizeof e);
        r = wsr__os_error(&e, table[i].os, "send");
        if (r != table[i].code || e.code != table[i].code || e.transient != table[i].transient)
            printf("  %s (%d): got %s transient %d\n", table[i].name, table[i].os, wsr_strerror(e.code), e.transient);
        CHECK_EQ_INT(r, table[i].code);
        CHECK_EQ_INT(e.code, table[i].code);
        CHECK_EQ_INT(e.transient, table[i].transient);
        CHECK_EQ_INT(e.os_error, table[i].os);          /* the raw code is kept */
        CHECK(strstr(e.message, table[i].name) != NULL); /* and named for the human */
        CHECK(strncmp(e.message, "send: ", 6) == 0);     /* with what we were doing */
        /* The class and the retry decision agree. */
        CHECK_EQ_INT(wsr_error_retryable(&e), table[i].transient);
    }
}

/* A message is one line of valid UTF-8, whatever the system's text was. */
static int one_utf8_line(const char *m) {
    return wsr__utf8_valid((const unsigned char *)m, strlen(m)) && !strchr(m, '\n') && !strchr(m, '\r');
}

TEST(every_message_is_one_line_of_utf8) {
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        wsr_error e;
        wsr__os_error(&e, table[i].os, "connect to 127.0.0.1:80");
        CHECK(one_utf8_line(e.message));
        CHECK(strlen(e.message) < sizeof e.message);
    }
}

TEST(a_message_cut_short_never_splits_a_character) {
    /* What we were doing can be long and not ASCII (a host name as typed);
       the message is cut at a character, whatever the offset. */
    char doing[400];
    size_t shift;
    for (shift = 0; shift < 4; shift++) {
        wsr_error e;
        size_t i, n = 0;
        for (i = 0; i < shift; i++) doing[n++] = 'x';
        while (n + 3 < sizeof doing) { doing[n++] = (char)0xE2; doing[n++] = (char)0x82; doing[n++] = (char)0xAC; } /* U+20AC */
        doing[n] = 0;
        wsr__os_error(&e, table[0].os, doing);
        CHECK(one_utf8_line(e.message));
        CHECK(strlen(e.message) >= sizeof e.message - 4);   /* cut near the end, not emptied */
    }
}

#if defined(_WIN32)
TEST(the_message_carries_the_system_text_when_there_is_one) {
    /* Asked here independently (FormatMessageA, English on wine and on most
       build machines). Wine has no text for many WSAE codes, so only the
       codes the system knows are checked, and at least one must be known:
       121, the semaphore timeout. */
    size_t i;
    int known = 0;
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        char text[512];
        wsr_error e;
        DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS | FORMAT_MESSAGE_MAX_WIDTH_MASK,
                                 NULL, (DWORD)table[i].os, MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), text, sizeof text, NULL);
        size_t k;
        int ascii = 1;
        while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '.' || text[n - 1] == '\r' || text[n - 1] == '\n')) n--;
        text[n] = 0;
        for (k = 0; k < n; k++) if ((unsigned char)text[k] >= 0x80) ascii = 0;
        if (n == 0 || !ascii || n > 100) continue;     /* none, localized, or too long to fit whole */
        known++;
        wsr__os_error(&e, table[i].os, "recv");
        if (!strstr(e.message, text)) printf("  %s: \"%s\" not in \"%s\"\n", table[i].name, text, e.message);
        CHECK(strstr(e.message, text) != NULL);
    }
    CHECK(known >= 1);
}
#endif

TEST(an_unknown_code_is_a_transient_socket_error) {
    wsr_error e;
    CHECK_EQ_INT(wsr__os_error(&e, 98765, "recv"), WSR_ERR_IO);
    CHECK_EQ_INT(e.transient, 1);
    CHECK_EQ_INT(e.os_error, 98765);
    CHECK(strstr(e.message, "98765") != NULL);
}

TEST(would_block_is_never_an_error_on_a_live_socket) {
    /* The read and write paths turn "would block" into WSR_ERR_AGAIN before
       any mapping: a non-blocking socket with nothing to read must not look
       like a failure. Checked on a real, idle, connected pair. */
    wsr_server_config scfg;
    wsr_client_config ccfg;
    wsr_server *s;
    wsr_client *c;
    char url[64];
    int i;
    wsr_server_config_init(&scfg);
    s = wsr_server_new(&scfg, NULL);
    CHECK(s != NULL);
    if (!s) return;
    wsr_client_config_init(&ccfg);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", wsr_server_port(s));
    ccfg.url = url;
    ccfg.reconnect = 0;
    c = wsr_client_new(&ccfg, NULL);
    CHECK(c != NULL);
    for (i = 0; c && i < 200 && wsr_client_state(c) != WSR_STATE_OPEN; i++) {
        wsr_client_poll(c, 5);
        wsr_server_poll(s, 5);
    }
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    for (i = 0; c && i < 20; i++) {          /* idle: every read would block */
        CHECK_EQ_INT(wsr_client_poll(c, 2), WSR_OK);
        wsr_server_poll(s, 2);
    }
    CHECK_EQ_INT(wsr_client_state(c), WSR_STATE_OPEN);
    CHECK_EQ_INT(wsr_client_error(c)->code, WSR_OK);
    (void)WOULD_BLOCK;
    wsr_client_free(c);
    wsr_server_free(s);
}

TEST_MAIN()
