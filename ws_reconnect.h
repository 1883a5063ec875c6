/* ws_reconnect.h - v0.2.0 - RFC 6455 WebSocket client and server that stays connected - MIT OR Unlicense - see end of file

   A WebSocket library in one C99 file: a strict RFC 6455 codec, a client that
   stays connected (reconnect with backoff, keepalive, a queue that loses
   nothing silently) and tells you exactly why a link ended, and a server,
   driven by poll(), by your own event loop, or by a background thread.

   QUICK START

       #define WSR_IMPLEMENTATION       // in exactly one .c file
       #include "ws_reconnect.h"

       static void on_message(wsr_client *c, wsr_msg_type type,
                              const void *data, size_t len, void *user)
       { printf("got %.*s\n", (int)len, (const char *)data); }

       int main(void) {
           wsr_client_config cfg; wsr_error err; wsr_client *c;
           wsr_client_config_init(&cfg);
           cfg.url = "ws://127.0.0.1:9001/chat";
           cfg.on_message = on_message;
           if (!(c = wsr_client_new(&cfg, &err))) { puts(err.message); return 1; }
           wsr_send_text(c, "hello", 5);          // queued until the upgrade is done
           while (wsr_client_state(c) != WSR_STATE_CLOSED) wsr_client_poll(c, 100);
           // (it reconnects after failures; wsr_client_close() ends it)
           wsr_client_free(c);
       }

   DOES
   - RFC 6455 framing: 7/16/64-bit lengths, masking, fragmentation with control
     frames in between, incremental fail-fast UTF-8 checks, the close handshake;
     every violation refused with the close code the RFC asks for (1002/1007/1009).
   - The HTTP/1.1 upgrade for both roles, with Sec-WebSocket-Accept checked.
   - A client driven by poll(), by your own event loop, or by its own thread,
     that reconnects with exponential backoff and jitter (Retry-After and
     close 1012/1013 honoured), pings idle links and fails dead ones within
     ping_interval_ms + pong_timeout_ms, and keeps every message in a bounded
     queue until it is written whole, re-sending across reconnects; the fate
     of each message is reported (on_delivery).
   - A server that accepts many connections in one poll loop, with broadcast,
     keepalive, slow-consumer and slowloris limits, and graceful shutdown.
   - wss:// (client and server) through mbedTLS 2.28 or 3.x, when compiled
     with WSR_USE_MBEDTLS; certificates verified by default.
   - A sans-I/O layer (codec and handshake) you can drive with your own I/O.
   - Bounded everything: message size, handshake size, queue size.

   DOES NOT (yet)
   - permessage-deflate or any other extension (a server that sends one unasked is refused).

   CONFIGURATION MACROS
       WSR_IMPLEMENTATION   IMPL-ONLY  emit the implementation in this translation unit
       WSR_STATIC           GLOBAL     make every function static (private copy per TU)
       WSR_DLL              GLOBAL     Windows: __declspec(dllexport/dllimport)
       WSR_API              GLOBAL     override the linkage of every public function
       WSR_ASSERT(x)        IMPL-ONLY  default assert(x)
       WSR_MALLOC(n)        IMPL-ONLY  define all three or none; default malloc/realloc/free
       WSR_REALLOC(p,n)     IMPL-ONLY
       WSR_FREE(p)          IMPL-ONLY
       WSR_NO_THREADS       IMPL-ONLY  no thread runner (wsr_client_start_thread fails)
       WSR_USE_MBEDTLS      IMPL-ONLY  wss:// through mbedTLS (link -lmbedtls -lmbedx509 -lmbedcrypto;
                                       on Windows with 2.28 also -ladvapi32)
   No macro changes the layout of a public struct.

   THREADING
   A wsr_client or wsr_server belongs to the thread that polls it. Callbacks run
   inside wsr_client_poll / wsr_server_poll on that thread. Different objects may
   be used from different threads at once: the library has no global state.
   A callback may send and close, but must not free the object it was called for.
   wsr_client_start_thread() hands a client to a background thread (pthreads;
   WSR_NO_THREADS compiles it out): then sends, close, reconnect, probe and the
   getters work from any thread, and callbacks run on the client's thread
   (wsr_client_close from another thread only takes note; the client's
   thread closes), except on_delivery for the messages that wsr_send*
   (DROP_OLDEST) or wsr_client_clear_queue drop: that runs in the call, on
   the calling thread, under the client's lock. DNS lookups block only the
   client's thread: they run without the lock.

   LIMITATIONS
   - DNS (getaddrinfo) blocks the polling thread while it runs.
   - "Written" means handed to the kernel: WebSocket has no acknowledgement,
     so a message a dying server read but never acted on needs your own.
   - Messages are delivered whole; there is no streaming of huge messages,
     so max_message_size bounds the memory one connection can take.

   OWNERSHIP TERMS (used in every prototype comment)
   borrowed  the pointer is used only during the call (or, in a callback, only
             until the callback returns); the library keeps no reference.
   copied    the library copies the data before the call returns.
   owned     the caller owns the returned object and frees it with the matching _free.

   ERRORS
   Functions return wsr_err (WSR_OK is 0). Details come in a wsr_error record:
   the code, the raw OS error (errno), the HTTP status of a failed upgrade, the
   close code (1006 when the link just dropped), whether reconnecting could help
   (transient) and a short message. There is no global "last error".

   PLATFORM AND LINKING
   POSIX (Linux, BSD, macOS): nothing to link (-pthread on old C libraries for
   the thread runner). The header needs only the C library and the BSD socket
   API. DNS resolution (getaddrinfo) is the one call that may block longer
   than the timeout you give to poll. With WSR_USE_MBEDTLS, link
   -lmbedtls -lmbedx509 -lmbedcrypto, in that order.
   Windows (Vista or later; mingw-w64 or MSVC): link -lws2_32 -lbcrypt (MSVC
   picks them up through #pragma comment); with WSR_USE_MBEDTLS also the
   mbedTLS libraries and -lcrypt32 (the trusted roots come from the
   certificate store) and, for mbedTLS 2.28, -ladvapi32. Each client and
   server calls WSAStartup when created and WSACleanup when freed. os_error
   holds the raw WSAGetLastError() code there, and the message adds the
   system's own text (FormatMessage).

   LATEST CHANGES (full list in README.md)
   0.3.0  Windows: Winsock transport and server, Win32 thread runner, the
          WSA/Win32 error table (WinError 121 is a transient timeout) with
          the system's text in messages, wss:// trusting the certificate
          store. wsr_error.message is now 256 bytes.
   0.2.0  reconnection, keepalive, the lossless queue with delivery reports,
          the thread runner. Clients now reconnect by default (reconnect = 0
          for one connection) and ping after 20 s without traffic.
   0.1.0  first release: codec, handshake, POSIX client and server.
*/
#ifndef WSR_INCLUDE_WS_RECONNECT_H
#define WSR_INCLUDE_WS_RECONNECT_H

/* glibc hides POSIX (getaddrinfo, poll, clock_gettime) under -std=c99 unless a
   feature macro is set before the first system header. stdint.h below is
   such a header, so the implementation unit asks for POSIX 2008 here. If your
   file includes system headers before this one, define _POSIX_C_SOURCE
   200809L (or _GNU_SOURCE) yourself, or include this header first. */
#if defined(WSR_IMPLEMENTATION) && defined(__linux__) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
   Version and linkage
   ------------------------------------------------------------------------ */
/* >>version */
#define WSR_VERSION_MAJOR 0
#define WSR_VERSION_MINOR 3
#define WSR_VERSION_PATCH 0
#define WSR_VERSION_STRING "0.3.0"

#ifndef WSR_API
#  if defined(WSR_STATIC) && (defined(__GNUC__) || defined(__clang__))
#    define WSR_API static __attribute__((unused))   /* a TU may use only some functions */
#  elif defined(WSR_STATIC)
#    define WSR_API static
#  elif defined(WSR_DLL) && defined(_WIN32) && defined(WSR_IMPLEMENTATION)
#    define WSR_API __declspec(dllexport)
#  elif defined(WSR_DLL) && defined(_WIN32)
#    define WSR_API __declspec(dllimport)
#  else
#    define WSR_API extern
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
   Public API: limits, errors, configuration, client, server
   ------------------------------------------------------------------------ */
/* >>api */

enum {
    WSR_MAX_CONTROL_PAYLOAD = 125,     /* RFC 6455 §5.5: control frames carry at most 125 bytes */
    WSR_MAX_FRAME_HEADER = 14,         /* 2 + 8 (64-bit length) + 4 (mask key) */
    WSR_MAX_CLOSE_REASON = 123,        /* 125 minus the 2-byte close code */
    WSR_DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024,
    WSR_DEFAULT_MAX_HANDSHAKE = 16 * 1024,
    WSR_MAX_HEADERS = 64,              /* header lines accepted in one upgrade request or response */
    WSR_ERROR_MESSAGE_SIZE = 256       /* room for Windows' own, long error texts */
};

/* Every error code with its number and its text. Codes are grouped by layer:
   1-99 use of the API and resources, 100-199 network, 200-299 WebSocket
   protocol, 300-399 TLS, 400-499 connection policy. */
#define WSR_ERRORS(X) \
    X(WSR_OK,                   0, "no error") \
    X(WSR_ERR_INVALID,          1, "invalid argument") \
    X(WSR_ERR_NOMEM,            2, "out of memory") \
    X(WSR_ERR_STATE,            3, "not possible in the current state") \
    X(WSR_ERR_AGAIN,            4, "would block; try again later") \
    X(WSR_ERR_QUEUE_FULL,       5, "outbound queue is full") \
    X(WSR_ERR_DNS,            100, "host name lookup failed") \
    X(WSR_ERR_REFUSED,        101, "connection refused") \
    X(WSR_ERR_RESET,          102, "connection reset by peer") \
    X(WSR_ERR_TIMEOUT,        103, "timed out") \
    X(WSR_ERR_UNREACHABLE,    104, "network or host unreachable") \
    X(WSR_ERR_EOF,            105, "connection closed by peer without a close frame") \
    X(WSR_ERR_NETWORK,        106, "network is down") \
    X(WSR_ERR_ADDRESS,        107, "address in use or not available") \
    X(WSR_ERR_IO,             199, "socket error") \
    X(WSR_ERR_HANDSHAKE,      200, "WebSocket upgrade failed") \
    X(WSR_ERR_PROTOCOL,       201, "peer broke the WebSocket protocol") \
    X(WSR_ERR_TOO_BIG,        202, "message larger than max_message_size") \
    X(WSR_ERR_PEER_CLOSED,    203, "peer closed the connection") \
    X(WSR_ERR_TLS,            300, "TLS error") \
    X(WSR_ERR_TLS_UNAVAILABLE, 301, "wss:// needs TLS, which is not compiled in") \
    X(WSR_ERR_TLS_CERT,       302, "TLS certificate not accepted") \
    X(WSR_ERR_CLOSED,         400, "closed by the application")

#define WSR__ERR_ENUM(name, num, text) name = num,
typedef enum wsr_err { WSR_ERRORS(WSR__ERR_ENUM) WSR__ERR_LAST } wsr_err;
#undef WSR__ERR_ENUM

/* Why something failed. Every field is filled; unused ones are 0 or "". */
typedef struct wsr_error {
    wsr_err code;            /* what went wrong, WSR_OK when nothing did */
    int os_error;            /* raw errno (WSAGetLastError()/GetLastError() on Windows), or 0 */
    int http_status;         /* HTTP status of a refused upgrade, or 0 */
    int close_code;          /* WebSocket close code; 1006 when the link dropped without one */
    int transient;           /* 1: trying again may work; 0: it will fail the same way */
    int retry_after_ms;      /* the server asked for at least this wait (Retry-After, close 1012/1013), or 0 */
    int attempts;            /* connection attempts that failed in a row, this one included */
    uint64_t down_ms;        /* how long the link has been down (0 while it was up until now) */
    char message[WSR_ERROR_MESSAGE_SIZE];        /* one line for a human, never NULL */
    char close_reason[WSR_MAX_CLOSE_REASON + 1]; /* the peer's close reason (UTF-8), or "" */
} wsr_error;

/* Returns the fixed text of an error code ("unknown error" for other values). */
WSR_API const char *wsr_strerror(wsr_err code);

/* Message types; the values are the RFC 6455 opcodes. */
typedef enum wsr_msg_type { WSR_MSG_TEXT = 1, WSR_MSG_BINARY = 2 } wsr_msg_type;

/* Client states. A connection attempt walks CONNECTING -> HANDSHAKE -> OPEN ->
   CLOSING. When it ends, the client goes to WAITING (the backoff wait before
   the next attempt, which starts again at CONNECTING) or, when it will not
   try again, to CLOSED. IDLE is a client that has not started yet. */
typedef enum wsr_state {
    WSR_STATE_IDLE = 0,
    WSR_STATE_CONNECTING,    /* DNS lookup and TCP connect */
    WSR_STATE_HANDSHAKE,     /* HTTP upgrade request sent, waiting for 101 */
    WSR_STATE_OPEN,          /* messages flow */
    WSR_STATE_CLOSING,       /* close frame sent or received, waiting for the other side */
    WSR_STATE_WAITING,       /* link down, waiting out the backoff before the next attempt */
    WSR_STATE_CLOSED         /* final: wsr_client_error() says why */
} wsr_state;

/* Returns the name of a state ("OPEN"), for logs. */
WSR_API const char *wsr_state_name(wsr_state s);

/* Run-time allocator. Leave both functions NULL to use WSR_MALLOC/WSR_FREE. */
typedef struct wsr_allocator {
    void *(*alloc_fn)(size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} wsr_allocator;

enum { WSR_LOG_ERROR = 0, WSR_LOG_WARN = 1, WSR_LOG_INFO = 2, WSR_LOG_DEBUG = 3 };
/* Log sink. msg is borrowed. The library never writes to stdout or stderr. */
typedef void (*wsr_log_fn)(int level, const char *msg, void *user);

/* Events a transport waits for, as used by wsr_client_events(). */
enum { WSR_POLL_IN = 1, WSR_POLL_OUT = 2 };

/* The socket value meaning "no socket". Sockets are stored as uintptr_t so the
   public part needs no system header (a Winsock SOCKET is a UINT_PTR). */
#define WSR_INVALID_SOCKET (~(uintptr_t)0)

/* A byte-stream transport: the built-in TCP one, or your own (tests use a
   scripted one). Every function returns WSR_OK, WSR_ERR_AGAIN (would block:
   wait for the events from events_fn, then call again) or an error with the
   details in *err. */
typedef struct wsr_transport {
    /* Starts connecting to host:port (host borrowed). May finish at once. */
    wsr_err (*open_fn)(void *self, const char *host, int port, uint64_t now_ms, wsr_error *err);
    /* Moves a connect forward: WSR_OK once the byte stream is established. */
    wsr_err (*connect_fn)(void *self, uint64_t now_ms, wsr_error *err);
    /* Reads up to cap bytes into buf; *got > 0 on WSR_OK. End of stream is WSR_ERR_EOF. */
    wsr_err (*read_fn)(void *self, void *buf, size_t cap, size_t *got, wsr_error *err);
    /* Writes up to len bytes (borrowed); *put says how many were taken. */
    wsr_err (*write_fn)(void *self, const void *buf, size_t len, size_t *put, wsr_error *err);
    /* Closes the stream. Safe to call twice; the transport may be opened again. */
    void (*close_fn)(void *self);
    /* The socket to poll, or WSR_INVALID_SOCKET. */
    uintptr_t (*socket_fn)(void *self);
    /* WSR_POLL_IN / WSR_POLL_OUT the transport itself needs (e.g. OUT while connecting). */
    int (*events_fn)(void *self);
    void *self;
    /* Optional: while connecting, the time (now_ms scale) at which connect_fn
       must run even if the socket stays quiet (to move on to the next
       address), or 0. NULL: no such time. */
    uint64_t (*timer_fn)(void *self);
    /* Optional: bytes the transport holds that poll() cannot see (TLS
       decrypts whole records): while nonzero, read_fn is called without
       waiting for the socket. NULL: none. */
    size_t (*pending_fn)(void *self);
} wsr_transport;

/* ---- reconnection policy, as pure functions ------------------------------ */

/* How the wait before a reconnect is randomised, so that many clients that
   lost the same server do not all come back in the same millisecond. */
typedef enum wsr_jitter {
    WSR_JITTER_NONE = 0,       /* exactly the exponential value */
    WSR_JITTER_FULL,           /* uniform in [0, value] */
    WSR_JITTER_EQUAL,          /* uniform in [value/2, value] */
    WSR_JITTER_DECORRELATED    /* uniform in [initial, previous * factor], capped */
} wsr_jitter;

/* When and how long a client waits before it connects again. The defaults
   (set by wsr_client_config_init) are in the README with their reasons. */
typedef struct wsr_backoff {
    int initial_ms;            /* wait before the first retry (default 500) */
    int max_ms;                /* no wait is longer than this (default 30000) */
    double factor;             /* each wait is this many times the one before, >= 1 (default 2) */
    wsr_jitter jitter;         /* default WSR_JITTER_EQUAL */
    int max_attempts;          /* give up after this many failed attempts in a row; 0 = never (default) */
    int max_elapsed_ms;        /* give up when the link has been down this long; 0 = never (default) */
    int min_uptime_ms;         /* a connection must stay open this long before the attempt
                                  count starts again from 1 (default 5000), so a server that
                                  accepts and drops at once is not hammered */
    int retry_later_ms;        /* least wait after close 1012 (restart) or 1013 (try again
                                  later), which carry no time of their own (default 2000) */
} wsr_backoff;

/* The wait before retry number `attempt` (1 for the first retry):
   min(max_ms, initial_ms * factor^(attempt-1)), then randomised by the
   jitter mode with rnd, a uniformly random 32-bit value the caller draws
   (tests pass fixed values). prev_ms is the previous wait (decorrelated
   jitter only; 0 for the first). Never negative, never above max_ms. */
WSR_API int wsr_backoff_delay(const wsr_backoff *b, int attempt, int prev_ms, uint32_t rnd);

/* Would another connection attempt be worth making after this error?
   1: yes (network failures, timeouts, HTTP 408/429/5xx, close codes 1000
   from the server, 1001, 1005, 1006, 1011-1014 and 3000-4999); 0: no (our own
   close, a bad URL or configuration, TLS not compiled in, HTTP 4xx, a peer
   that broke the protocol, close codes 1002, 1003, 1007-1010). */
WSR_API int wsr_error_retryable(const wsr_error *e);

/* TLS settings for wss:// (client) and for a wss server. They take effect
   only in an implementation compiled with WSR_USE_MBEDTLS; without it a
   wss:// URL fails at once with WSR_ERR_TLS_UNAVAILABLE. Files and PEM text
   are read when the client or server is created. */
typedef struct wsr_tls_config {
    const char *ca_file;          /* trusted CAs, a PEM file. None of the three: the system's */
    const char *ca_dir;           /*   bundle (/etc/ssl/certs/ca-certificates.crt on Debian)
                                       or, on Windows, the certificate store's trusted roots */
    const char *ca_pem;           /*   ... or PEM text in memory */
    const char *cert_file;        /* our certificate (a server's own, or a client's for mutual TLS) */
    const char *key_file;         /* ... and its private key */
    const char *cert_pem;         /* the same two as PEM text in memory */
    const char *key_pem;
    const char *key_password;     /* for an encrypted key, or NULL */
    const char *server_name;      /* client: the name to verify and send as SNI, if not the URL's host */
    int verify_peer;              /* server: require a client certificate signed by the CAs above */
    int insecure_skip_verify;     /* client: accept ANY certificate. Tests only: anyone on the path
                                     can then read and change the traffic */
} wsr_tls_config;

typedef struct wsr_client wsr_client;

/* What became of a message handed to wsr_send*. Every message meets exactly
   one of these; on_delivery (when set) hears it. */
typedef enum wsr_delivery {
    WSR_DELIVERY_WRITTEN = 0,      /* written whole to the socket (not proof the server read it) */
    WSR_DELIVERY_DROPPED_OVERFLOW, /* pushed out of a full queue by a newer one (WSR_OVERFLOW_DROP_OLDEST) */
    WSR_DELIVERY_EXPIRED,          /* waited longer than queue_ttl_ms */
    WSR_DELIVERY_DISCONNECTED,     /* the link dropped and queue_drop_on_disconnect is set */
    WSR_DELIVERY_CLEARED,          /* wsr_client_clear_queue() */
    WSR_DELIVERY_CLOSED,           /* the client was closed or freed before it went out */
    WSR_DELIVERY_GAVE_UP           /* reconnection ended before it went out */
} wsr_delivery;

/* Returns the name of a delivery outcome ("WRITTEN", "EXPIRED"), for logs. */
WSR_API const char *wsr_delivery_name(wsr_delivery d);

/* What wsr_send* does when the queue is full. */
typedef enum wsr_overflow {
    WSR_OVERFLOW_REJECT = 0,       /* the new message is refused with WSR_ERR_QUEUE_FULL (default) */
    WSR_OVERFLOW_DROP_OLDEST       /* the oldest messages not yet being written make room */
} wsr_overflow;

typedef void (*wsr_client_open_fn)(wsr_client *c, const char *subprotocol, void *user);
typedef void (*wsr_client_message_fn)(wsr_client *c, wsr_msg_type type, const void *data,
                                      size_t len, void *user);
typedef void (*wsr_client_close_fn)(wsr_client *c, const wsr_error *why, void *user);
typedef void (*wsr_client_state_fn)(wsr_client *c, wsr_state from, wsr_state to, void *user);
typedef void (*wsr_client_pong_fn)(wsr_client *c, const void *data, size_t len, void *user);
/* Before each backoff wait: attempt (1 = first retry), the wait it will
   take, and why the link is down. Return nonzero to go on, 0 to stop for good.
   It may call wsr_client_set_url / wsr_client_set_headers (a fresh token). */
typedef int (*wsr_client_reconnecting_fn)(wsr_client *c, int attempt, int delay_ms,
                                          const wsr_error *cause, void *user);
/* Decides whether an error is worth another attempt (default: wsr_error_retryable). */
typedef int (*wsr_client_retry_fn)(const wsr_error *cause, void *user);
/* The fate of one message; tag is the one given to wsr_send_tracked (0 for wsr_send*). */
typedef void (*wsr_client_delivery_fn)(wsr_client *c, uint64_t tag, wsr_delivery fate, void *user);
/* Says whether an inbound message answers the application-level heartbeat. */
typedef int (*wsr_client_heartbeat_fn)(wsr_msg_type type, const void *data, size_t len, void *user);

/* Client configuration. Fill with wsr_client_config_init(), then set what you
   need. Strings are copied by wsr_client_new(). */
typedef struct wsr_client_config {
    const char *url;              /* "ws://host[:port]/path?query" (required) */
    const char *origin;           /* Origin header, or NULL */
    const char *subprotocols;     /* offer, comma-separated ("chat, v2.chat"), or NULL */
    const char *headers;          /* extra header lines "Name: value\r\n...", or NULL */
    size_t max_message_size;      /* inbound limit, default 16 MiB; bigger closes with 1009 */
    size_t max_handshake_size;    /* limit on the response head, default 16 KiB */
    size_t send_fragment_size;    /* split outbound messages into frames of this size; 0 = never */
    int connect_timeout_ms;       /* DNS + TCP + upgrade together, default 10000 */
    int close_timeout_ms;         /* close handshake, default 5000; 0 = wait as long as it takes */

    /* Reconnection. */
    int reconnect;                /* 1 (default): reconnect after a failure worth retrying; 0: never */
    wsr_backoff backoff;          /* how long to wait, and when to give up */
    wsr_client_retry_fn retry_fn; /* NULL: wsr_error_retryable() decides */

    /* Keepalive: a ping after ping_interval_ms without inbound traffic; no
       inbound traffic within pong_timeout_ms after it fails the link (1006,
       WSR_ERR_TIMEOUT). A dead peer is found within the sum of the two. A
       ping waiting behind our own data counts from when it reaches the
       socket, as long as the socket keeps taking bytes. */
    int ping_interval_ms;         /* default 20000; 0 = never ping */
    int pong_timeout_ms;          /* default 10000; 0 = ping but never time out */
    /* Application-level heartbeat instead of the protocol ping, for servers
       that expect one: this text is sent as a message, and an inbound message
       containing heartbeat_reply (or accepted by heartbeat_match_fn) answers it
       and is not passed to on_message. Same timers as the ping. */
    const char *heartbeat_text;   /* e.g. "{\"type\":\"ping\"}", or NULL for protocol pings */
    const char *heartbeat_reply;  /* e.g. "\"pong\"", or NULL */
    wsr_client_heartbeat_fn heartbeat_match_fn;
    /* Operating-system deadlines on the built-in TCP transport. */
    int tcp_keepalive_idle_s;     /* SO_KEEPALIVE probes after this idle time, default 30; 0 = off */
    int tcp_keepalive_interval_s; /* between probes, default 10 */
    int tcp_keepalive_count;      /* unanswered probes before the link fails, default 3 */
    int tcp_user_timeout_ms;      /* Linux TCP_USER_TIMEOUT: unacknowledged data fails the link
                                     after this long, default 30000; 0 = the system's (15+ min) */

    /* The outbound queue. Every message waits here until it is written whole,
       so one cut off mid-write goes out again, whole, on the next connection. */
    size_t queue_max_bytes;       /* payload bytes waiting, default 64 MiB */
    size_t queue_max_messages;    /* messages waiting, default 100000 */
    wsr_overflow queue_overflow;  /* default WSR_OVERFLOW_REJECT */
    int queue_ttl_ms;             /* drop messages that waited longer; 0 = never (default) */
    int queue_drop_on_disconnect; /* 1: drop what is waiting when a link drops (replay is wrong for
                                     your protocol); 0 (default): keep it for the next connection */

    wsr_tls_config tls;           /* for wss:// */
    wsr_transport *transport;     /* NULL: built-in TCP. Borrowed for the client's lifetime;
                                     with wss:// TLS runs over it */
    /* Random bytes for keys, masks and jitter. NULL: the operating system's.
       Set it only for tests and simulations (a seeded source). */
    void (*random_fn)(void *buf, size_t n, void *user);
    wsr_allocator allocator;
    wsr_log_fn log_fn;
    /* Callbacks (any may be NULL); all run inside wsr_client_poll/step, or on
       the client's thread after wsr_client_start_thread(). */
    wsr_client_open_fn on_open;         /* connection open; subprotocol borrowed ("" if none) */
    wsr_client_message_fn on_message;   /* whole message; data borrowed */
    wsr_client_close_fn on_close;       /* once per attempt that started, however it ended; why borrowed */
    wsr_client_reconnecting_fn on_reconnecting;   /* before each wait */
    wsr_client_close_fn on_end;         /* once each time the client stops for good (closed, gave
                                           up, or a permanent error; wsr_client_reconnect can
                                           restart one that gave up); why borrowed */
    wsr_client_delivery_fn on_delivery; /* the fate of every message */
    wsr_client_state_fn on_state;       /* every state change */
    wsr_client_pong_fn on_pong;         /* a pong arrived; payload borrowed */
    void *user;                         /* passed to every callback */
} wsr_client_config;

/* Fills cfg with the defaults. */
WSR_API void wsr_client_config_init(wsr_client_config *cfg);

/* Creates a client and starts its first connection attempt on the first poll.
   cfg and its strings are copied. Returns NULL on a bad URL or configuration
   (WSR_ERR_INVALID, WSR_ERR_TLS_UNAVAILABLE) or no memory; *err says why (err may be NULL). */
WSR_API wsr_client *wsr_client_new(const wsr_client_config *cfg, wsr_error *err);

/* Waits up to timeout_ms for the socket or the next timer, then does all the
   I/O that is ready and runs callbacks. Returns WSR_OK, or the error that ended
   the connection during this call (it is also in wsr_client_error()).
   WSR_ERR_STATE when the client runs on its own thread. */
WSR_API wsr_err wsr_client_poll(wsr_client *c, int timeout_ms);

/* For your own event loop: wait on wsr_client_socket() for wsr_client_events()
   for at most wsr_client_timeout_ms(), then call wsr_client_step(c, wsr_now_ms()).
   step never blocks (except for DNS during CONNECTING). */
WSR_API uintptr_t wsr_client_socket(const wsr_client *c);
WSR_API int wsr_client_events(const wsr_client *c);
WSR_API int wsr_client_timeout_ms(const wsr_client *c, uint64_t now_ms);   /* -1: no timer */
WSR_API wsr_err wsr_client_step(wsr_client *c, uint64_t now_ms);

/* Sends one message; data is copied. It waits in the queue while the link is
   down and goes out in order after the next upgrade, before anything sent
   later. WSR_ERR_STATE once the client is closing or closed for good,
   WSR_ERR_QUEUE_FULL when the queue is full (WSR_OVERFLOW_REJECT),
   WSR_ERR_INVALID for bad arguments, including text that is not UTF-8
   (§5.6). on_delivery later tells its fate. */
WSR_API wsr_err wsr_send(wsr_client *c, wsr_msg_type type, const void *data, size_t len);
WSR_API wsr_err wsr_send_text(wsr_client *c, const char *text, size_t len);
WSR_API wsr_err wsr_send_binary(wsr_client *c, const void *data, size_t len);
/* As wsr_send; on_delivery reports this message with your tag. */
WSR_API wsr_err wsr_send_tracked(wsr_client *c, wsr_msg_type type, const void *data, size_t len,
                                 uint64_t tag);
/* Sends a ping (payload copied, at most 125 bytes). Only while OPEN. */
WSR_API wsr_err wsr_send_ping(wsr_client *c, const void *data, size_t len);

/* Starts the close handshake (RFC 6455 §7): code 1000-4999 that may be sent on
   the wire, reason (borrowed, UTF-8, at most 123 bytes) may be NULL. What was
   queued goes out before the close frame. When not connected it just stops
   (never waits for a pending backoff). The client never reopens after it. */
WSR_API wsr_err wsr_client_close(wsr_client *c, int code, const char *reason);
/* Drops the current link (or skips the current wait) and connects again at
   the next step: call it when you know the network came back. Also restarts
   a client that gave up. WSR_ERR_STATE after wsr_client_close(). */
WSR_API wsr_err wsr_client_reconnect(wsr_client *c);
/* Checks the link now, e.g. after the machine resumed from sleep: a ping is
   sent at the next step, and no inbound traffic within timeout_ms fails the
   link (and reconnects). While waiting to reconnect it skips the wait;
   while connecting it does nothing (the connect timeout covers that). */
WSR_API wsr_err wsr_client_probe(wsr_client *c, int timeout_ms);
/* Change the URL or the extra headers for the next attempts (copied), e.g.
   from on_reconnecting with a refreshed token. */
WSR_API wsr_err wsr_client_set_url(wsr_client *c, const char *url, wsr_error *err);
WSR_API wsr_err wsr_client_set_headers(wsr_client *c, const char *headers);
/* Drops every message not yet being written (WSR_DELIVERY_CLEARED).
   Returns how many were dropped. */
WSR_API size_t wsr_client_clear_queue(wsr_client *c);

WSR_API wsr_state wsr_client_state(const wsr_client *c);
/* Why the last connection ended (code WSR_OK while none has), kept until
   the next one ends. Borrowed; with the thread runner, read it in a
   callback or copy it with wsr_client_get_error(), which takes the lock. */
WSR_API const wsr_error *wsr_client_error(const wsr_client *c);
WSR_API void wsr_client_get_error(const wsr_client *c, wsr_error *out);
/* Payload bytes and messages accepted by wsr_send* and not yet written whole. */
WSR_API size_t wsr_client_queued_bytes(const wsr_client *c);
WSR_API size_t wsr_client_queued_messages(const wsr_client *c);
/* Round-trip time of the last answered keepalive ping, or -1 before one. */
WSR_API int wsr_client_rtt_ms(const wsr_client *c);
WSR_API void *wsr_client_user(const wsr_client *c);

/* Runs the client on a background thread (pthreads, or Win32 threads): the
   thread polls, pings and reconnects while your threads do their own work.
   Afterwards wsr_send*, wsr_client_close, _reconnect, _probe, _clear_queue and
   the getters may be called from any thread; callbacks run on the client's
   thread. wsr_client_poll/step are then refused. Not with WSR_NO_THREADS. */
WSR_API wsr_err wsr_client_start_thread(wsr_client *c);
/* Waits up to timeout_ms (-1: no limit) until nothing is left in the queue:
   every message written or dropped. WSR_OK, or WSR_ERR_TIMEOUT. Polls the
   client itself unless it runs on its own thread. Not from a callback
   (WSR_ERR_STATE): it would wait for itself. */
WSR_API wsr_err wsr_client_flush(wsr_client *c, int timeout_ms);
/* Waits up to timeout_ms (-1: no limit) until the client is CLOSED, e.g.
   after wsr_client_close(). WSR_OK, or WSR_ERR_TIMEOUT. */
WSR_API wsr_err wsr_client_wait_closed(wsr_client *c, int timeout_ms);
/* Stops the client's thread if it has one, closes its socket at once (no
   close handshake), reports every message still queued as
   WSR_DELIVERY_CLOSED, and frees it. NULL is a no-op. */
WSR_API void wsr_client_free(wsr_client *c);

/* Milliseconds from a monotonic clock with an arbitrary origin. */
WSR_API uint64_t wsr_now_ms(void);

/* ---- server -------------------------------------------------------------- */

typedef struct wsr_server wsr_server;
typedef struct wsr_conn wsr_conn;

typedef struct wsr_request wsr_request;   /* a parsed upgrade request; see the sans-I/O section */

/* What a server does with a message for a client whose queue is full. */
typedef enum wsr_slow_policy {
    WSR_SLOW_CLOSE = 0,     /* close that client with 1008 (its on_close says why); the default */
    WSR_SLOW_DROP           /* refuse the message for that client (WSR_ERR_QUEUE_FULL); keep it */
} wsr_slow_policy;

typedef void (*wsr_conn_open_fn)(wsr_conn *conn, void *user);
/* Before the 101: look at the request (path with query, headers through
   wsr_request_header) and return 0 to accept, or an HTTP status (400-599,
   e.g. 401, 403, 404) to refuse. wsr_conn_set_subprotocol may pick the
   subprotocol here. req and its strings are borrowed for the call. */
typedef int (*wsr_conn_handshake_fn)(wsr_conn *conn, const wsr_request *req, void *user);
/* A failure that no on_close reports: a connection that never opened (bad or
   refused upgrade, handshake timeout, connection limit) or, with conn NULL,
   accept() itself. why carries the raw OS error. */
typedef void (*wsr_server_error_fn)(wsr_server *s, wsr_conn *conn, const wsr_error *why, void *user);
typedef void (*wsr_conn_message_fn)(wsr_conn *conn, wsr_msg_type type, const void *data,
                                    size_t len, void *user);
typedef void (*wsr_conn_close_fn)(wsr_conn *conn, const wsr_error *why, void *user);

typedef struct wsr_server_config {
    const char *host;             /* address to bind, default "127.0.0.1"; "0.0.0.0" or "::" for all */
    int port;                     /* 0 picks a free port; see wsr_server_port() */
    const char *subprotocols;     /* supported, in order of preference, comma-separated, or NULL */
    size_t max_message_size;      /* default 16 MiB */
    size_t max_handshake_size;    /* limit on a request head, default 16 KiB */
    size_t send_fragment_size;    /* 0 = never fragment */
    size_t conn_max_queued;       /* bytes waiting per connection, default 64 MiB; then slow_policy */
    wsr_slow_policy slow_policy;  /* default WSR_SLOW_CLOSE */
    int max_connections;          /* default 1024; newcomers beyond it get 503 */
    int retry_after_s;            /* Retry-After on that 503, default 5; 0 = none */
    int handshake_timeout_ms;     /* the whole upgrade request must arrive within this, default 10000 */
    int close_timeout_ms;         /* default 5000; 0 = wait as long as the client takes */
    int ping_interval_ms;         /* ping clients silent this long, default 30000; 0 = never */
    int pong_timeout_ms;          /* no traffic this long after the ping drops the client, default 10000 */
    int idle_timeout_ms;          /* close clients that sent no message this long (1000 "idle timeout"); 0 = never */
    wsr_tls_config tls;           /* with tls.cert_file/cert_pem set (and WSR_USE_MBEDTLS): serve wss:// */
    wsr_allocator allocator;
    wsr_log_fn log_fn;
    wsr_conn_handshake_fn on_handshake;  /* NULL: accept every valid upgrade */
    wsr_conn_open_fn on_open;
    wsr_conn_message_fn on_message;  /* data borrowed */
    wsr_conn_close_fn on_close;      /* once per connection that opened; after it returns the wsr_conn is gone */
    wsr_server_error_fn on_error;    /* failures on_close does not report */
    void *user;
} wsr_server_config;

WSR_API void wsr_server_config_init(wsr_server_config *cfg);
/* Binds and listens. Returns NULL with *err on failure (err may be NULL). */
WSR_API wsr_server *wsr_server_new(const wsr_server_config *cfg, wsr_error *err);
/* Waits up to timeout_ms, accepts, reads, writes, runs callbacks. */
WSR_API wsr_err wsr_server_poll(wsr_server *s, int timeout_ms);
/* The port actually bound (useful with port 0). */
WSR_API int wsr_server_port(const wsr_server *s);
/* Number of connections (in handshake or open). */
WSR_API size_t wsr_server_conn_count(const wsr_server *s);
/* Sends to every open connection (data copied once per connection). Never
   waits for a slow client: one whose queue is full meets slow_policy while
   the others get the message. Returns WSR_OK, or the first error met. */
WSR_API wsr_err wsr_server_broadcast(wsr_server *s, wsr_msg_type type, const void *data, size_t len);
/* The same, to the open connections for which filter(conn, arg) returns nonzero. */
WSR_API wsr_err wsr_server_broadcast_if(wsr_server *s, wsr_msg_type type, const void *data, size_t len,
                                        int (*filter)(wsr_conn *conn, void *arg), void *arg);
/* Graceful shutdown: stops accepting, closes every client with 1001 "going
   away", and polls until their close handshakes finish or timeout_ms
   passes; whoever is left is dropped. WSR_OK, or WSR_ERR_TIMEOUT when some
   had to be dropped. Callbacks run as in wsr_server_poll. Then free it.
   From a callback it only starts all that and returns WSR_ERR_AGAIN: keep
   polling until wsr_server_conn_count() is 0. (wsr_server_poll from a
   callback returns WSR_ERR_STATE; wsr_server_free must not be called from
   one.) */
WSR_API wsr_err wsr_server_shutdown(wsr_server *s, int timeout_ms);
/* Closes the listening socket and every connection at once. NULL is a no-op. */
WSR_API void wsr_server_free(wsr_server *s);

/* Per-connection: data copied. WSR_ERR_STATE if not open. */
WSR_API wsr_err wsr_conn_send(wsr_conn *conn, wsr_msg_type type, const void *data, size_t len);
WSR_API wsr_err wsr_conn_send_ping(wsr_conn *conn, const void *data, size_t len);
/* Starts the close handshake with this client. */
WSR_API wsr_err wsr_conn_close(wsr_conn *conn, int code, const char *reason);
WSR_API wsr_server *wsr_conn_server(const wsr_conn *conn);
/* The request path with query ("/chat?room=1"), borrowed for the connection's life. */
WSR_API const char *wsr_conn_path(const wsr_conn *conn);
/* The subprotocol chosen for this connection, "" if none. */
WSR_API const char *wsr_conn_subprotocol(const wsr_conn *conn);
WSR_API void wsr_conn_set_user(wsr_conn *conn, void *user);
WSR_API void *wsr_conn_user(const wsr_conn *conn);
WSR_API size_t wsr_conn_queued_bytes(const wsr_conn *conn);
/* In on_handshake: answer with this subprotocol (copied, at most 63 bytes;
   it should be one the client offered). WSR_ERR_STATE elsewhere. */
WSR_API wsr_err wsr_conn_set_subprotocol(wsr_conn *conn, const char *subprotocol);
/* Round-trip time of the last answered keepalive ping, or -1. */
WSR_API int wsr_conn_rtt_ms(const wsr_conn *conn);

/* ------------------------------------------------------------------------
   Sans-I/O layer: the codec and the handshake without sockets or clocks
   ------------------------------------------------------------------------ */
/* >>sansio */

/* Parsed URL. host and path point into the string given to wsr_url_parse
   (borrowed from it). path is the path with its query as written, "/" when
   the URL has neither; a bare query ("ws://h?x=1") keeps path "?x=1", and
   wsr_handshake_request() sends it as "/?x=1". */
typedef struct wsr_url {
    int secure;                   /* 1 for wss:// */
    int port;                     /* explicit or 80 / 443 */
    int port_given;               /* 1 if the URL named the port */
    int ipv6;                     /* 1 if host was a [bracketed] IPv6 literal */
    const char *host; size_t host_len;   /* without brackets */
    const char *path; size_t path_len;
} wsr_url;

/* Parses ws:// and wss:// URLs. WSR_ERR_INVALID (with err->message) for
   anything else: another scheme, no host, a bad port, a fragment, spaces. */
WSR_API wsr_err wsr_url_parse(const char *url, wsr_url *out, wsr_error *err);

/* Incremental UTF-8 validation. Start with *state = 0; feed the bytes in any
   pieces. Returns 0 as soon as the bytes so far cannot be valid UTF-8, 1
   otherwise. At the end of the text the input is complete only if *state == 0. */
WSR_API int wsr_utf8_feed(uint32_t *state, const unsigned char *p, size_t n);

/* SHA-1 (FIPS 180-4) and base64 (RFC 4648, with padding). base64 writes
   4*ceil(n/3) characters and a NUL. */
WSR_API void wsr_sha1(const void *data, size_t len, unsigned char digest[20]);
WSR_API void wsr_base64_encode(const unsigned char *in, size_t n, char *out);

/* Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)),
   28 characters and a NUL. key is borrowed. */
WSR_API void wsr_accept_key(const char *key, size_t key_len, char out[29]);

/* RFC 6455 opcodes. */
enum {
    WSR_OP_CONTINUATION = 0x0, WSR_OP_TEXT = 0x1, WSR_OP_BINARY = 0x2,
    WSR_OP_CLOSE = 0x8, WSR_OP_PING = 0x9, WSR_OP_PONG = 0xA
};

/* Writes a frame header into out (up to 14 bytes) and returns its length.
   mask_key NULL means unmasked (server to client). */
WSR_API size_t wsr_frame_header(unsigned char *out, int fin, int opcode, uint64_t payload_len,
                                const unsigned char *mask_key);
/* XORs data with the 4-byte key, starting at byte `offset` of the key stream
   (so a payload can be masked in pieces). Masking twice restores the data. */
WSR_API void wsr_mask(unsigned char *data, size_t len, const unsigned char key[4], size_t offset);

/* May this close code be sent in a close frame (RFC 6455 §7.4)? 1000-1003,
   1007-1011, 1012-1014 and 3000-4999 may; 1004-1006, 1015, the rest may not. */
WSR_API int wsr_close_code_valid(int code);

typedef enum wsr_role { WSR_ROLE_CLIENT = 0, WSR_ROLE_SERVER = 1 } wsr_role;

typedef enum wsr_event_type {
    WSR_EVENT_NONE = 0,      /* need more bytes */
    WSR_EVENT_MESSAGE,       /* a whole text or binary message */
    WSR_EVENT_PING,          /* the pong is already queued */
    WSR_EVENT_PONG,
    WSR_EVENT_CLOSE          /* the peer's close frame; our answer is already queued */
} wsr_event_type;

typedef struct wsr_event {
    wsr_event_type type;
    wsr_msg_type msg_type;       /* for WSR_EVENT_MESSAGE */
    const unsigned char *data;   /* payload (close: the reason), borrowed until the next call */
    size_t len;
    int close_code;              /* WSR_EVENT_CLOSE: the code, 1005 if the frame had none */
} wsr_event;

/* The protocol engine for one connection: frames in, events out; frames out
   to a byte buffer you drain. It never touches a socket or a clock. */
typedef struct wsr_proto wsr_proto;

/* rand_fn fills buf with n unpredictable bytes for mask keys; a client
   proto needs one (NULL gives NULL), a server proto ignores it. Returns NULL
   when out of memory. alloc may be NULL. */
WSR_API wsr_proto *wsr_proto_new(wsr_role role, size_t max_message_size,
                                 void (*rand_fn)(void *buf, size_t n, void *user), void *rand_user,
                                 const wsr_allocator *alloc);
WSR_API void wsr_proto_free(wsr_proto *p);

/* Parses bytes from the peer. Consumes up to len bytes, sets *used, and stops
   after the first event (ev->type NONE means all input was consumed and more
   is needed). buf is modified (payloads are unmasked in place) and event data
   may point into it. On a protocol violation it returns WSR_ERR_PROTOCOL or
   WSR_ERR_TOO_BIG, fills *err (with the close code), and queues a close frame
   with that code; the connection is then finished. */
WSR_API wsr_err wsr_proto_parse(wsr_proto *p, unsigned char *buf, size_t len, size_t *used,
                                wsr_event *ev, wsr_error *err);

/* Queues one message as a frame (or as frames of at most fragment_size bytes
   when fragment_size > 0). Copied. WSR_ERR_STATE after a close was sent. */
WSR_API wsr_err wsr_proto_send(wsr_proto *p, int opcode, const void *data, size_t len,
                               size_t fragment_size);
/* Queues a close frame (code 0 = no code). WSR_ERR_INVALID for a code that may
   not be sent or a reason over 123 bytes or not UTF-8. */
WSR_API wsr_err wsr_proto_close(wsr_proto *p, int code, const char *reason, size_t reason_len);

/* Bytes waiting to be written: *data borrowed until the next call. Then
   report how many were written with wsr_proto_written(). */
WSR_API size_t wsr_proto_pending(const wsr_proto *p, const unsigned char **data);
WSR_API void wsr_proto_written(wsr_proto *p, size_t n);

/* 1 once we sent a close frame / once we received the peer's one. */
WSR_API int wsr_proto_close_sent(const wsr_proto *p);
WSR_API int wsr_proto_close_received(const wsr_proto *p);

/* Upgrade request (client side). key is the 24-character Sec-WebSocket-Key;
   origin, protocols and headers may be NULL. Writes at most cap bytes and
   sets *len; WSR_ERR_TOO_BIG if cap is too small, WSR_ERR_INVALID for header
   lines that are not "Name: value". */
WSR_API wsr_err wsr_handshake_request(char *out, size_t cap, size_t *len, const wsr_url *url,
                                      const char *key, const char *origin,
                                      const char *protocols, const char *headers);

typedef struct wsr_handshake_result {
    int status;                   /* HTTP status code */
    size_t head_len;              /* bytes of the head, including the blank line */
    char subprotocol[64];         /* chosen by the server, "" if none */
    int retry_after_s;            /* Retry-After in seconds when given as a number, else -1 */
    long long retry_after_date;   /* Retry-After given as an HTTP-date, as Unix time, else -1 */
} wsr_handshake_result;

/* Checks the server's answer (RFC 6455 §4.1). head/len: the bytes received so
   far. WSR_ERR_AGAIN while the head is incomplete; WSR_ERR_HANDSHAKE (status
   and reason in *err) when it is not a valid 101 for this key and offer,
   or longer than max_head. Bytes after head_len are WebSocket frames. */
WSR_API wsr_err wsr_handshake_response_check(const char *head, size_t len, size_t max_head,
                                             const char *key, const char *offered_protocols,
                                             wsr_handshake_result *res, wsr_error *err);

struct wsr_request {
    const char *head;             /* the whole request head (borrowed), for wsr_request_header */
    const char *path; size_t path_len;      /* borrowed from the head; from an absolute URI
                                               only its path and query */
    const char *key; size_t key_len;
    const char *protocols; size_t protocols_len;  /* Sec-WebSocket-Protocol, may be empty */
    const char *origin; size_t origin_len;
    const char *host; size_t host_len;
    int version;                  /* Sec-WebSocket-Version, -1 if missing */
    size_t head_len;
    int status;                   /* 101 if valid, else the status to answer: 400, 426, 431 */
};

/* Parses a client's upgrade request (RFC 6455 §4.2.1). WSR_ERR_AGAIN while
   incomplete; WSR_ERR_HANDSHAKE with req->status (400, 426, 431) and
   err->message when the request must be refused. */
WSR_API wsr_err wsr_handshake_request_parse(const char *head, size_t len, size_t max_head,
                                            wsr_request *req, wsr_error *err);
/* The value of a request header (first line with that name, any case), or
   NULL. Not NUL-terminated: *len says how long (borrowed from the head). */
WSR_API const char *wsr_request_header(const wsr_request *req, const char *name, size_t *len);
/* Picks the first of `supported` (comma-separated, preference order) that the
   client offered. Copies it into out (NUL-terminated) and returns 1, or 0. */
WSR_API int wsr_subprotocol_choose(const char *supported, const char *offered, size_t offered_len,
                                   char *out, size_t cap);
/* Writes the 101 answer for a key (subprotocol may be NULL or ""). */
WSR_API wsr_err wsr_handshake_response(char *out, size_t cap, size_t *len, const char *key,
                                       size_t key_len, const char *subprotocol);
/* Writes a refusal (400, 426 with Sec-WebSocket-Version: 13, or another status). */
WSR_API wsr_err wsr_handshake_refusal(char *out, size_t cap, size_t *len, int status);

#ifdef __cplusplus
}
#endif
#endif /* WSR_INCLUDE_WS_RECONNECT_H */

/* ========================================================================
   IMPLEMENTATION
   ======================================================================== */
#ifdef WSR_IMPLEMENTATION
#ifndef WSR__IMPLEMENTATION_ONCE
#define WSR__IMPLEMENTATION_ONCE

/* ------------------------------------------------------------------------
   Configuration: standard headers, overridable macros, the platform choice
   ------------------------------------------------------------------------ */
/* >>config */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if !defined(WSR_MALLOC) && !defined(WSR_REALLOC) && !defined(WSR_FREE)
#  include <stdlib.h>
#  define WSR_MALLOC(n) malloc(n)
#  define WSR_REALLOC(p, n) realloc(p, n)
#  define WSR_FREE(p) free(p)
#elif !defined(WSR_MALLOC) || !defined(WSR_REALLOC) || !defined(WSR_FREE)
#  error "define all of WSR_MALLOC, WSR_REALLOC and WSR_FREE, or none"
#endif

#ifndef WSR_ASSERT
#  include <assert.h>
#  define WSR_ASSERT(x) assert(x)
#endif

/* The one place that decides the platform. Everything platform-specific below
   is inside #if WSR__POSIX / #if WSR__WIN32 in the >>platform section. */
#if defined(_WIN32)
#  define WSR__WIN32 1
#  define WSR__POSIX 0
#elif defined(__unix__) || defined(__unix) || defined(__APPLE__)
#  define WSR__WIN32 0
#  define WSR__POSIX 1
#else
#  error "ws_reconnect.h: unknown platform (neither _WIN32 nor POSIX)"
#endif

/* TLS is compiled in only on request, and needs mbedTLS (2.28 or 3.x). */
#if defined(WSR_USE_MBEDTLS)
#  define WSR__TLS 1
#else
#  define WSR__TLS 0
#endif

/* Internal functions: static in WSR_STATIC builds; "unused" keeps GCC and
   Clang quiet about the ones a translation unit happens not to call. */
#if defined(__GNUC__) || defined(__clang__)
#  define WSR__PRIVATE static __attribute__((unused))
#else
#  define WSR__PRIVATE static
#endif

#define WSR__MIN(a, b) ((a) < (b) ? (a) : (b))
#define WSR__MAX(a, b) ((a) > (b) ? (a) : (b))

/* ------------------------------------------------------------------------
   Utilities: errors, memory, SHA-1, base64, UTF-8, URL, byte buffers
   ------------------------------------------------------------------------ */
/* >>util */

WSR_API const char *wsr_strerror(wsr_err code) {
    switch (code) {
#define WSR__ERR_CASE(name, num, text) case name: return text;
        WSR_ERRORS(WSR__ERR_CASE)
#undef WSR__ERR_CASE
    default: return "unknown error";
    }
}

WSR_API const char *wsr_state_name(wsr_state s) {
    static const char *const names[] = { "IDLE", "CONNECTING", "HANDSHAKE", "OPEN", "CLOSING", "WAITING", "CLOSED" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* Fills an error record. The message is the code's text unless fmt is given;
   printf-style formatting keeps every caller to one line. */
WSR__PRIVATE void wsr__error_set(wsr_error *err, wsr_err code, int os_error, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
WSR__PRIVATE void wsr__error_set(wsr_error *err, wsr_err code, int os_error, const char *fmt, ...) {
    if (!err) return;
    memset(err, 0, sizeof *err);
    err->code = code;
    err->os_error = os_error;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    } else {
        snprintf(err->message, sizeof err->message, "%s", wsr_strerror(code));
    }
}

/* Formats one log line and hands it to the application's log_fn, if any. */
WSR__PRIVATE void wsr__log(wsr_log_fn fn, void *user, int level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
WSR__PRIVATE void wsr__log(wsr_log_fn fn, void *user, int level, const char *fmt, ...) {
    char line[256];
    va_list ap;
    if (!fn) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fn(level, line, user);
}

/* How many of the first n bytes of UTF-8 text fit in `max` bytes without
   cutting a character in two (for quoting peer text in messages). */
WSR__PRIVATE size_t wsr__utf8_cut(const unsigned char *s, size_t n, size_t max) {
    if (n <= max) return n;
    while (max > 0 && (s[max] & 0xC0) == 0x80) max--;   /* s[max] continues a character */
    return max;
}

/* Memory goes through the run-time allocator when one is set, else through
   WSR_MALLOC/WSR_REALLOC/WSR_FREE. The allocator has no realloc, so growing
   is alloc + copy + free there; buffers grow geometrically, so that is rare. */
WSR__PRIVATE void *wsr__alloc(const wsr_allocator *a, size_t n) {
    if (a && a->alloc_fn) return a->alloc_fn(n, a->user);
    return WSR_MALLOC(n);
}
WSR__PRIVATE void wsr__free(const wsr_allocator *a, void *p) {
    if (!p) return;
    if (a && a->free_fn) a->free_fn(p, a->user);
    else WSR_FREE(p);
}
WSR__PRIVATE void *wsr__realloc(const wsr_allocator *a, void *p, size_t old_size, size_t n) {
    void *q;
    if (!(a && a->alloc_fn)) return WSR_REALLOC(p, n);
    q = a->alloc_fn(n, a->user);
    if (q && p) memcpy(q, p, WSR__MIN(old_size, n));
    if (q) wsr__free(a, p);
    return q;
}
WSR__PRIVATE char *wsr__strdup(const wsr_allocator *a, const char *s) {
    size_t n;
    char *d;
    if (!s) return NULL;
    n = strlen(s) + 1;
    d = (char *)wsr__alloc(a, n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- SHA-1 (FIPS 180-4 §6.1) ---------------------------------------------
   Only the handshake uses it: Sec-WebSocket-Accept is base64(SHA-1(key+GUID)).
   SHA-1 is broken for signatures; here it only proves the server read our key. */

typedef struct wsr__sha1 {
    uint32_t h[5];
    uint64_t total;           /* bytes hashed so far */
    unsigned char block[64];
    size_t used;              /* bytes waiting in block */
} wsr__sha1;

#define WSR__ROL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

WSR__PRIVATE void wsr__sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80], a, b, c, d, e, t;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (i = 16; i < 80; i++) w[i] = WSR__ROL32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];
    for (i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)      { f = (b & c) | (~b & d);           k = 0x5A827999u; }
        else if (i < 40) { f = b ^ c ^ d;                    k = 0x6ED9EBA1u; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d);  k = 0x8F1BBCDCu; }
        else             { f = b ^ c ^ d;                    k = 0xCA62C1D6u; }
        t = WSR__ROL32(a, 5) + f + e + k + w[i];
        e = d; d = c; c = WSR__ROL32(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

WSR__PRIVATE void wsr__sha1_init(wsr__sha1 *s) {
    s->h[0] = 0x67452301u; s->h[1] = 0xEFCDAB89u; s->h[2] = 0x98BADCFEu;
    s->h[3] = 0x10325476u; s->h[4] = 0xC3D2E1F0u;
    s->total = 0;
    s->used = 0;
}

WSR__PRIVATE void wsr__sha1_update(wsr__sha1 *s, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    s->total += len;
    while (len > 0) {
        size_t n = WSR__MIN(len, 64 - s->used);
        memcpy(s->block + s->used, p, n);
        s->used += n; p += n; len -= n;
        if (s->used == 64) { wsr__sha1_block(s->h, s->block); s->used = 0; }
    }
}

WSR__PRIVATE void wsr__sha1_final(wsr__sha1 *s, unsigned char digest[20]) {
    /* Padding: a 1 bit, zeros up to 56 mod 64, then the length in bits, big-endian. */
    uint64_t bits = s->total * 8;
    unsigned char pad = 0x80;
    unsigned char len_be[8];
    int i;
    wsr__sha1_update(s, &pad, 1);
    pad = 0;
    while (s->used != 56) wsr__sha1_update(s, &pad, 1);
    for (i = 0; i < 8; i++) len_be[i] = (unsigned char)(bits >> (56 - 8 * i));
    wsr__sha1_update(s, len_be, 8);
    for (i = 0; i < 20; i++) digest[i] = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

WSR_API void wsr_sha1(const void *data, size_t len, unsigned char digest[20]) {
    wsr__sha1 s;
    wsr__sha1_init(&s);
    wsr__sha1_update(&s, data, len);
    wsr__sha1_final(&s, digest);
}

/* ---- base64 (RFC 4648 §4) ---------------------------------------------- */

WSR_API void wsr_base64_encode(const unsigned char *in, size_t n, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = abc[v >> 18]; *out++ = abc[(v >> 12) & 63];
        *out++ = abc[(v >> 6) & 63]; *out++ = abc[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = abc[v >> 18]; *out++ = abc[(v >> 12) & 63]; *out++ = '='; *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = abc[v >> 18]; *out++ = abc[(v >> 12) & 63]; *out++ = abc[(v >> 6) & 63]; *out++ = '=';
    }
    *out = '\0';
}

/* Length of the decoded bytes of a base64 string, or -1 if it is not valid
   padded base64. The server uses it to check that Sec-WebSocket-Key is 16
   bytes (RFC 6455 §4.2.1 item 5). */
WSR__PRIVATE long wsr__base64_decoded_len(const char *s, size_t n) {
    size_t i, pad = 0;
    if (n == 0 || n % 4 != 0) return -1;
    for (i = 0; i < n; i++) {
        char ch = s[i];
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '+' || ch == '/';
        if (ch == '=' && i >= n - 2) { pad++; continue; }
        if (!ok || pad) return -1;   /* a data character after '=' */
    }
    return (long)(n / 4 * 3 - pad);
}

/* ---- UTF-8 (RFC 3629 §4) ----------------------------------------------
   The state is how many continuation bytes are still due, plus the range
   the next byte must fall in. The first continuation byte has a narrower
   range after E0, ED, F0 and F4: that is what rules out overlong forms,
   UTF-16 surrogates (U+D800..DFFF) and code points above U+10FFFF. So the
   validator fails on the very byte that makes the text impossible, which
   RFC 6455 §8.1 wants ("fail fast"). Layout: bits 0-7 bytes due, 8-15 the
   lowest allowed next byte, 16-23 the highest. */

#define WSR__UTF8_STATE(due, lo, hi) ((uint32_t)(due) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)

WSR_API int wsr_utf8_feed(uint32_t *state, const unsigned char *p, size_t n) {
    uint32_t st = *state;
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        if (st == 0) {
            /* Fast path: skip ASCII eight bytes at a time. */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            if (i >= n) break;
            b = p[i];
            if (b < 0x80) { i++; continue; }
            if (b >= 0xC2 && b <= 0xDF) st = WSR__UTF8_STATE(1, 0x80, 0xBF);
            else if (b == 0xE0) st = WSR__UTF8_STATE(2, 0xA0, 0xBF);          /* no overlong */
            else if (b == 0xED) st = WSR__UTF8_STATE(2, 0x80, 0x9F);          /* no surrogates */
            else if (b >= 0xE1 && b <= 0xEF) st = WSR__UTF8_STATE(2, 0x80, 0xBF);
            else if (b == 0xF0) st = WSR__UTF8_STATE(3, 0x90, 0xBF);          /* no overlong */
            else if (b >= 0xF1 && b <= 0xF3) st = WSR__UTF8_STATE(3, 0x80, 0xBF);
            else if (b == 0xF4) st = WSR__UTF8_STATE(3, 0x80, 0x8F);          /* <= U+10FFFF */
            else { *state = st; return 0; }  /* 80-C1 (stray or overlong lead), F5-FF */
        } else {
            uint32_t due = st & 0xFF, lo = (st >> 8) & 0xFF, hi = (st >> 16) & 0xFF;
            if (b < lo || b > hi) { *state = st; return 0; }
            st = due == 1 ? 0 : WSR__UTF8_STATE(due - 1, 0x80, 0xBF);
        }
        i++;
    }
    *state = st;
    return 1;
}

/* Is p[0..n) complete, valid UTF-8 text? */
WSR__PRIVATE int wsr__utf8_valid(const void *p, size_t n) {
    uint32_t st = 0;
    return wsr_utf8_feed(&st, (const unsigned char *)p, n) && st == 0;
}

/* ---- small string helpers ---------------------------------------------- */

WSR__PRIVATE int wsr__lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

/* Case-insensitive comparison of a counted string with a C string. */
WSR__PRIVATE int wsr__ieq(const char *a, size_t alen, const char *b) {
    size_t i;
    for (i = 0; i < alen; i++)
        if (!b[i] || wsr__lower((unsigned char)a[i]) != wsr__lower((unsigned char)b[i])) return 0;
    return b[alen] == '\0';
}

/* Trims spaces and tabs (HTTP "OWS") from both ends of s[0..*n). */
WSR__PRIVATE const char *wsr__trim(const char *s, size_t *n) {
    while (*n && (s[0] == ' ' || s[0] == '\t')) { s++; (*n)--; }
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t')) (*n)--;
    return s;
}

/* Walks a comma-separated list: returns 1 and the next trimmed item, or 0 at
   the end. *pos is the cursor. Empty items (", ,") are skipped, as HTTP allows. */
WSR__PRIVATE int wsr__list_next(const char *s, size_t n, size_t *pos, const char **item, size_t *item_len) {
    while (*pos < n) {
        size_t start = *pos, len;
        const char *it;
        while (*pos < n && s[*pos] != ',') (*pos)++;
        len = *pos - start;
        if (*pos < n) (*pos)++;     /* skip the comma */
        it = wsr__trim(s + start, &len);
        if (len) { *item = it; *item_len = len; return 1; }
    }
    return 0;
}

/* Does the comma-separated list s contain token (case-insensitively)? */
WSR__PRIVATE int wsr__list_has(const char *s, size_t n, const char *token) {
    size_t pos = 0, len;
    const char *it;
    while (wsr__list_next(s, n, &pos, &it, &len))
        if (wsr__ieq(it, len, token)) return 1;
    return 0;
}

/* ---- URL (RFC 6455 §3) ---------------------------------------------------
   ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ]; the same for wss.
   Fragments are forbidden. We keep pointers into the caller's string. */

WSR_API wsr_err wsr_url_parse(const char *url, wsr_url *out, wsr_error *err) {
    const char *p, *host, *host_end, *path;
    long port = 0;
    memset(out, 0, sizeof *out);
    if (!url) { wsr__error_set(err, WSR_ERR_INVALID, 0, "URL is NULL"); return WSR_ERR_INVALID; }
    if (strncmp(url, "ws://", 5) == 0 || strncmp(url, "WS://", 5) == 0) {
        p = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0 || strncmp(url, "WSS://", 6) == 0) {
        out->secure = 1;
        p = url + 6;
    } else {
        wsr__error_set(err, WSR_ERR_INVALID, 0, "URL must start with ws:// or wss://: '%.60s'", url);
        return WSR_ERR_INVALID;
    }
    out->port = out->secure ? 443 : 80;
    if (*p == '[') {                      /* IPv6 literal, RFC 3986 §3.2.2 */
        host = ++p;
        while (*p && *p != ']') {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
                  *p == ':' || *p == '.')) {
                wsr__error_set(err, WSR_ERR_INVALID, 0, "bad character in IPv6 address in URL '%.60s'", url);
                return WSR_ERR_INVALID;
            }
            p++;
        }
        if (*p != ']' || p == host) {
            wsr__error_set(err, WSR_ERR_INVALID, 0, "unterminated or empty [IPv6] host in URL '%.60s'", url);
            return WSR_ERR_INVALID;
        }
        host_end = p++;
        out->ipv6 = 1;
    } else {
        host = p;
        while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '#') {
            unsigned char ch = (unsigned char)*p;
            if (ch <= ' ' || ch >= 0x7F || ch == '@' || ch == '[' || ch == ']' || ch == '\\') {
                wsr__error_set(err, WSR_ERR_INVALID, 0, "bad character in host of URL '%.60s'", url);
                return WSR_ERR_INVALID;
            }
            p++;
        }
        host_end = p;
        if (host_end == host) {
            wsr__error_set(err, WSR_ERR_INVALID, 0, "URL has no host: '%.60s'", url);
            return WSR_ERR_INVALID;
        }
    }
    if (*p == ':') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9' && digits < 6) { port = port * 10 + (*p - '0'); p++; digits++; }
        if (digits == 0 || port < 1 || port > 65535 || (*p && *p != '/' && *p != '?' && *p != '#')) {
            wsr__error_set(err, WSR_ERR_INVALID, 0, "bad port in URL '%.60s' (must be 1-65535)", url);
            return WSR_ERR_INVALID;
        }
        out->port = (int)port;
        out->port_given = 1;
    } else if (*p && *p != '/' && *p != '?' && *p != '#') {
        wsr__error_set(err, WSR_ERR_INVALID, 0, "bad URL '%.60s'", url);
        return WSR_ERR_INVALID;
    }
    path = p;
    for (; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '#') {
            wsr__error_set(err, WSR_ERR_INVALID, 0, "a WebSocket URL may not have a #fragment (RFC 6455 §3)");
            return WSR_ERR_INVALID;
        }
        if (ch <= ' ' || ch == 0x7F) {
            wsr__error_set(err, WSR_ERR_INVALID, 0, "space or control character in URL path");
            return WSR_ERR_INVALID;
        }
    }
    out->host = host;
    out->host_len = (size_t)(host_end - host);
    if (out->host_len > 253) {
        wsr__error_set(err, WSR_ERR_INVALID, 0, "host name longer than 253 characters");
        return WSR_ERR_INVALID;
    }
    if (*path == '/') { out->path = path; out->path_len = (size_t)(p - path); }
    else if (*path == '?') { out->path = path; out->path_len = (size_t)(p - path); }  /* "/"+query, see below */
    else { out->path = "/"; out->path_len = 1; }
    if (err) wsr__error_set(err, WSR_OK, 0, NULL);
    return WSR_OK;
}

/* ---- byte buffer --------------------------------------------------------
   A growable array with a read position: bytes are appended at len and
   consumed from pos. When everything is consumed both reset to 0, so a
   buffer that keeps up never moves data. */

typedef struct wsr__buf {
    unsigned char *data;
    size_t pos, len, cap;
} wsr__buf;

WSR__PRIVATE size_t wsr__buf_avail(const wsr__buf *b) { return b->len - b->pos; }

/* Makes room for n more bytes at the end. Moves the unread bytes to the front
   first when that is enough, so the buffer does not grow without need. */
WSR__PRIVATE wsr_err wsr__buf_reserve(wsr__buf *b, const wsr_allocator *a, size_t n) {
    size_t need, cap;
    unsigned char *d;
    if (b->cap - b->len >= n) return WSR_OK;
    if (b->pos > 0) {
        memmove(b->data, b->data + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
        if (b->cap - b->len >= n) return WSR_OK;
    }
    if (n > (size_t)-1 - b->len) return WSR_ERR_NOMEM;
    need = b->len + n;
    cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    d = (unsigned char *)wsr__realloc(a, b->data, b->len, cap);
    if (!d) return WSR_ERR_NOMEM;
    b->data = d;
    b->cap = cap;
    return WSR_OK;
}

WSR__PRIVATE wsr_err wsr__buf_append(wsr__buf *b, const wsr_allocator *a, const void *p, size_t n) {
    wsr_err e = wsr__buf_reserve(b, a, n);
    if (e) return e;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return WSR_OK;
}

WSR__PRIVATE void wsr__buf_consume(wsr__buf *b, size_t n) {
    WSR_ASSERT(n <= b->len - b->pos);
    b->pos += n;
    if (b->pos == b->len) b->pos = b->len = 0;
}

WSR__PRIVATE void wsr__buf_free(wsr__buf *b, const wsr_allocator *a) {
    wsr__free(a, b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------
   Protocol core (sans-I/O): frames, messages, close handshake, HTTP upgrade
   ------------------------------------------------------------------------ */
/* >>codec */

/* RFC 6455 §5.2 base framing:
      0                   1                   2                   3
      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
     +-+-+-+-+-------+-+-------------+-------------------------------+
     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
     +-+-+-+-+-------+-+-------------+-------------------------------+
     then the 4-byte masking key if MASK is set, then the payload.    */

WSR_API size_t wsr_frame_header(unsigned char *out, int fin, int opcode, uint64_t payload_len,
                                const unsigned char *mask_key) {
    size_t n = 2;
    out[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (payload_len < 126) {
        out[1] = (unsigned char)payload_len;
    } else if (payload_len <= 0xFFFF) {         /* the shortest form is a MUST (§5.2) */
        out[1] = 126;
        out[2] = (unsigned char)(payload_len >> 8);
        out[3] = (unsigned char)payload_len;
        n = 4;
    } else {
        int i;
        out[1] = 127;
        for (i = 0; i < 8; i++) out[2 + i] = (unsigned char)(payload_len >> (56 - 8 * i));
        n = 10;
    }
    if (mask_key) {
        out[1] |= 0x80;
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

/* Masking (§5.3) is a XOR with the key repeated. Doing it a byte at a time
   costs a load, a XOR and a store per byte; instead we XOR 8 bytes at a time
   with the key repeated twice in a 64-bit word, four independent words per
   round, which compilers turn into vector code (an array of eight words
   here made gcc -O2 round-trip every block through the stack: 4x slower,
   slower than memcpy). memcpy keeps the unaligned loads legal C. */
WSR_API void wsr_mask(unsigned char *data, size_t len, const unsigned char key[4], size_t offset) {
    unsigned char k[8];
    uint64_t k8;
    size_t i = 0;
    for (i = 0; i < 8; i++) k[i] = key[(offset + i) & 3];
    memcpy(&k8, k, 8);
    i = 0;
    for (; i + 32 <= len; i += 32) {           /* four words per round */
        uint64_t a, b, c, d;
        memcpy(&a, data + i, 8);
        memcpy(&b, data + i + 8, 8);
        memcpy(&c, data + i + 16, 8);
        memcpy(&d, data + i + 24, 8);
        a ^= k8;
        b ^= k8;
        c ^= k8;
        d ^= k8;
        memcpy(data + i, &a, 8);
        memcpy(data + i + 8, &b, 8);
        memcpy(data + i + 16, &c, 8);
        memcpy(data + i + 24, &d, 8);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= k8;
        memcpy(data + i, &w, 8);
    }
    for (; i < len; i++) data[i] ^= k[i & 7];
}

WSR_API int wsr_close_code_valid(int code) {
    /* §7.4.1: 1004 reserved, 1005/1006/1015 are for reporting only, never sent.
       1012-1014 were registered later with IANA (service restart, try again
       later, bad gateway). 1016-2999 are reserved for future RFCs. 3000-3999
       are for libraries and frameworks, 4000-4999 private use. */
    if (code >= 1000 && code <= 1003) return 1;
    if (code >= 1007 && code <= 1014) return 1;
    return code >= 3000 && code <= 4999;
}

/* The per-connection protocol engine. The decoder is a small state machine
   over the frame header so it accepts input split anywhere, even byte by byte. */
struct wsr_proto {
    wsr_role role;
    size_t max_message;
    wsr_allocator alloc;
    void (*rand_fn)(void *buf, size_t n, void *user);
    void *rand_user;
    unsigned char rand_pool[256];  /* mask keys come from here: one OS call per 64 frames */
    size_t rand_left;

    /* current frame */
    unsigned char hdr[WSR_MAX_FRAME_HEADER];
    size_t hdr_have, hdr_need;
    int in_payload;                /* header done, payload bytes still due */
    int fin, opcode, masked;
    unsigned char key[4];
    uint64_t payload_len, payload_done;

    /* message being reassembled from frames */
    int msg_type;                  /* WSR_OP_TEXT/BINARY while a message is open, else 0 */
    int msg_ready;                 /* msg holds a delivered message: clear on next parse */
    wsr__buf msg;
    uint32_t utf8;                 /* UTF-8 state across the frames of a text message */

    unsigned char ctrl[WSR_MAX_CONTROL_PAYLOAD];   /* control frame payloads are small: copy them */
    size_t ctrl_len;

    wsr__buf out;                  /* encoded frames waiting to be written */
    int close_sent, close_received;
    wsr_err failed;                /* set once the peer broke the protocol */
};

/* Gives back what a quiet connection does not need: the reassembly buffer
   (as big as the largest message so far) when no message is open, and the
   output buffer when it is empty. The drivers call it when a connection
   has been quiet for a keepalive interval, never per message. */
WSR__PRIVATE void wsr__proto_trim(wsr_proto *p) {
    if (!p) return;
    if (!p->msg_type) {
        wsr__buf_free(&p->msg, &p->alloc);
        p->msg_ready = 0;
    }
    if (!wsr__buf_avail(&p->out)) wsr__buf_free(&p->out, &p->alloc);
}

WSR_API wsr_proto *wsr_proto_new(wsr_role role, size_t max_message_size,
                                 void (*rand_fn)(void *buf, size_t n, void *user), void *rand_user,
                                 const wsr_allocator *alloc) {
    wsr_proto *p;
    if (role == WSR_ROLE_CLIENT && !rand_fn) return NULL;   /* clients must mask with random keys */
    p = (wsr_proto *)wsr__alloc(alloc, sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->role = role;
    p->max_message = max_message_size ? max_message_size : (size_t)WSR_DEFAULT_MAX_MESSAGE;
    if (alloc) p->alloc = *alloc;
    p->rand_fn = rand_fn;
    p->rand_user = rand_user;
    p->hdr_need = 2;
    return p;
}

WSR_API void wsr_proto_free(wsr_proto *p) {
    wsr_allocator a;
    if (!p) return;
    a = p->alloc;
    wsr__buf_free(&p->msg, &a);
    wsr__buf_free(&p->out, &a);
    wsr__free(&a, p);
}

WSR_API int wsr_proto_close_sent(const wsr_proto *p) { return p->close_sent; }
WSR_API int wsr_proto_close_received(const wsr_proto *p) { return p->close_received; }

WSR_API size_t wsr_proto_pending(const wsr_proto *p, const unsigned char **data) {
    if (data) *data = p->out.data ? p->out.data + p->out.pos : p->out.data;
    return wsr__buf_avail(&p->out);
}

WSR_API void wsr_proto_written(wsr_proto *p, size_t n) { wsr__buf_consume(&p->out, n); }

/* Appends one frame to the output. Client frames get a fresh mask key each
   (§5.3: "MUST pick a fresh masking key from the set of allowed 32-bit
   values", unpredictable, so a proxy cannot be fed crafted bytes). */
WSR__PRIVATE wsr_err wsr__proto_frame(wsr_proto *p, int fin, int opcode, const void *data, size_t len) {
    unsigned char hdr[WSR_MAX_FRAME_HEADER], key[4];
    size_t hlen;
    wsr_err e;
    if (p->role == WSR_ROLE_CLIENT) {
        if (p->rand_left < 4) {
            p->rand_fn(p->rand_pool, sizeof p->rand_pool, p->rand_user);
            p->rand_left = sizeof p->rand_pool;
        }
        memcpy(key, p->rand_pool + sizeof p->rand_pool - p->rand_left, 4);
        p->rand_left -= 4;
        hlen = wsr_frame_header(hdr, fin, opcode, len, key);
    } else {
        hlen = wsr_frame_header(hdr, fin, opcode, len, NULL);
    }
    if ((e = wsr__buf_reserve(&p->out, &p->alloc, hlen + len)) != WSR_OK) return e;
    memcpy(p->out.data + p->out.len, hdr, hlen);
    if (len) memcpy(p->out.data + p->out.len + hlen, data, len);
    if (p->role == WSR_ROLE_CLIENT) wsr_mask(p->out.data + p->out.len + hlen, len, key, 0);
    p->out.len += hlen + len;
    return WSR_OK;
}

WSR_API wsr_err wsr_proto_send(wsr_proto *p, int opcode, const void *data, size_t len, size_t fragment_size) {
    const unsigned char *d = (const unsigned char *)data;
    int op = opcode;
    wsr_err e;
    if (!p || (len && !data)) return WSR_ERR_INVALID;
    if (p->close_sent || p->failed) return WSR_ERR_STATE;   /* §5.5.1: nothing after our close */
    if (opcode == WSR_OP_PING || opcode == WSR_OP_PONG) {
        if (len > WSR_MAX_CONTROL_PAYLOAD) return WSR_ERR_INVALID;
        return wsr__proto_frame(p, 1, opcode, data, len);
    }
    if (opcode != WSR_OP_TEXT && opcode != WSR_OP_BINARY) return WSR_ERR_INVALID;
    if (fragment_size == 0 || len <= fragment_size) return wsr__proto_frame(p, 1, opcode, data, len);
    /* §5.4: the first frame carries the opcode, the others are continuations. */
    if ((e = wsr__buf_reserve(&p->out, &p->alloc, len + (len / fragment_size + 1) * WSR_MAX_FRAME_HEADER)))
        return e;
    while (len > 0) {
        size_t n = WSR__MIN(len, fragment_size);
        if ((e = wsr__proto_frame(p, n == len, op, d, n)) != WSR_OK) return e;
        d += n; len -= n;
        op = WSR_OP_CONTINUATION;
    }
    return WSR_OK;
}

WSR_API wsr_err wsr_proto_close(wsr_proto *p, int code, const char *reason, size_t reason_len) {
    unsigned char payload[WSR_MAX_CONTROL_PAYLOAD];
    wsr_err e;
    if (p->close_sent) return WSR_ERR_STATE;
    if (code == 0) {
        if (reason_len) return WSR_ERR_INVALID;            /* a reason needs a code (§5.5.1) */
    } else if (!wsr_close_code_valid(code) || reason_len > WSR_MAX_CLOSE_REASON ||
               (reason_len && !reason) || !wsr__utf8_valid(reason, reason_len)) {
        return WSR_ERR_INVALID;
    }
    if (code) {
        payload[0] = (unsigned char)(code >> 8);
        payload[1] = (unsigned char)code;
        if (reason_len) memcpy(payload + 2, reason, reason_len);
    }
    e = wsr__proto_frame(p, 1, WSR_OP_CLOSE, payload, code ? 2 + reason_len : 0);
    if (e == WSR_OK) p->close_sent = 1;
    return e;
}

/* Refuses the connection: records why, queues a close frame with the close
   code (§7.1.7 "Fail the WebSocket Connection") and poisons the parser. */
WSR__PRIVATE wsr_err wsr__proto_fail(wsr_proto *p, wsr_err code, int close_code, wsr_error *err,
                                     const char *why) {
    wsr__error_set(err, code, 0, "%s", why);
    if (err) { err->close_code = close_code; err->transient = 0; }
    if (!p->close_sent) {
        const char *reason = close_code == 1007 ? "invalid UTF-8" : close_code == 1009 ? "message too big"
                                                                                       : "protocol error";
        wsr_proto_close(p, close_code, reason, strlen(reason));
    }
    p->failed = code;
    return code;
}

/* The header is complete: check every rule that a header alone can break. */
WSR__PRIVATE wsr_err wsr__proto_header_done(wsr_proto *p, wsr_error *err) {
    const unsigned char *h = p->hdr;
    unsigned len7 = h[1] & 0x7F;
    size_t at = 2;
    if (len7 == 126) {
        p->payload_len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
        if (p->payload_len < 126)
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "frame length not in its shortest form (RFC 6455 §5.2)");
    } else if (len7 == 127) {
        int i;
        p->payload_len = 0;
        for (i = 0; i < 8; i++) p->payload_len = p->payload_len << 8 | h[2 + i];
        at = 10;
        if (p->payload_len >> 63)
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "64-bit frame length with its top bit set (RFC 6455 §5.2)");
        if (p->payload_len <= 0xFFFF)
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "frame length not in its shortest form (RFC 6455 §5.2)");
    } else {
        p->payload_len = len7;
    }
    if (p->masked) memcpy(p->key, h + at, 4);
    p->payload_done = 0;
    p->ctrl_len = 0;
    if (p->opcode < 8) {
        /* Data frame. Check the size against the limit before any byte of the
           payload is stored, so a forged length cannot make us allocate. */
        uint64_t so_far = p->msg_type ? wsr__buf_avail(&p->msg) : 0;
        if (p->payload_len > (uint64_t)p->max_message || so_far + p->payload_len > (uint64_t)p->max_message)
            return wsr__proto_fail(p, WSR_ERR_TOO_BIG, 1009, err, "message larger than max_message_size");
        if (p->opcode != WSR_OP_CONTINUATION) {
            p->msg_type = p->opcode;
            p->utf8 = 0;
        }
    }
    p->in_payload = 1;
    return WSR_OK;
}

/* The first two header bytes are in: check the bits and work out how long
   the rest of the header is. */
WSR__PRIVATE wsr_err wsr__proto_header_start(wsr_proto *p, wsr_error *err) {
    unsigned b0 = p->hdr[0], b1 = p->hdr[1], len7 = b1 & 0x7F;
    p->fin = (b0 & 0x80) != 0;
    p->opcode = (int)(b0 & 0x0F);
    p->masked = (b1 & 0x80) != 0;
    if (b0 & 0x70)   /* §5.2: RSV1-3 must be 0 unless an extension says otherwise; we negotiate none */
        return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "reserved bits set in frame header (no extension negotiated)");
    switch (p->opcode) {
    case WSR_OP_CONTINUATION:
        if (!p->msg_type)
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "continuation frame with no message to continue (RFC 6455 §5.4)");
        break;
    case WSR_OP_TEXT: case WSR_OP_BINARY:
        if (p->msg_type)
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "new data frame inside a fragmented message (RFC 6455 §5.4)");
        break;
    case WSR_OP_CLOSE: case WSR_OP_PING: case WSR_OP_PONG:
        if (!p->fin)   /* §5.5: control frames MUST NOT be fragmented */
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "fragmented control frame (RFC 6455 §5.5)");
        if (len7 > WSR_MAX_CONTROL_PAYLOAD)
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "control frame payload over 125 bytes (RFC 6455 §5.5)");
        break;
    default:
        return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "unknown opcode (RFC 6455 §5.2)");
    }
    /* §5.1: a client masks every frame and a server masks none; the receiver
       MUST close the connection when the rule is broken. */
    if (p->role == WSR_ROLE_SERVER && !p->masked)
        return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "unmasked frame from a client (RFC 6455 §5.1)");
    if (p->role == WSR_ROLE_CLIENT && p->masked)
        return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "masked frame from a server (RFC 6455 §5.1)");
    p->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (p->masked ? 4 : 0);
    return WSR_OK;
}

/* A whole control frame is in p->ctrl: act on it and describe it in *ev. */
WSR__PRIVATE wsr_err wsr__proto_control(wsr_proto *p, wsr_event *ev, wsr_error *err) {
    ev->data = p->ctrl;
    ev->len = p->ctrl_len;
    if (p->opcode == WSR_OP_PING) {
        /* §5.5.2: answer with a pong carrying the same payload, unless we
           already sent a close (then nothing more may be sent). */
        ev->type = WSR_EVENT_PING;
        if (!p->close_sent && wsr__proto_frame(p, 1, WSR_OP_PONG, p->ctrl, p->ctrl_len) != WSR_OK) {
            wsr__error_set(err, WSR_ERR_NOMEM, 0, "out of memory answering a ping");
            return WSR_ERR_NOMEM;
        }
        return WSR_OK;
    }
    if (p->opcode == WSR_OP_PONG) {          /* §5.5.3: unsolicited pongs are allowed */
        ev->type = WSR_EVENT_PONG;
        return WSR_OK;
    }
    /* Close (§5.5.1): empty, or a 2-byte code plus a UTF-8 reason. */
    ev->type = WSR_EVENT_CLOSE;
    ev->close_code = 1005;                   /* §7.1.5: "no status code was present" */
    if (p->ctrl_len == 1)
        return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "close frame with a 1-byte payload (RFC 6455 §5.5.1)");
    if (p->ctrl_len >= 2) {
        ev->close_code = p->ctrl[0] << 8 | p->ctrl[1];
        if (!wsr_close_code_valid(ev->close_code))
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1002, err, "close code that may not be sent (RFC 6455 §7.4)");
        if (!wsr__utf8_valid(p->ctrl + 2, p->ctrl_len - 2))
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1007, err, "close reason is not valid UTF-8");
        ev->data = p->ctrl + 2;
        ev->len = p->ctrl_len - 2;
    }
    p->close_received = 1;
    /* §5.5.1: answer a close with a close, echoing the code, if we have not
       sent one yet. An empty close is answered by an empty one. */
    if (!p->close_sent) {
        wsr_err e = wsr_proto_close(p, ev->close_code == 1005 ? 0 : ev->close_code, NULL, 0);
        if (e != WSR_OK && e != WSR_ERR_STATE) {
            wsr__error_set(err, e, 0, "could not answer the close: %s", wsr_strerror(e));
            return e;
        }
    }
    return WSR_OK;
}

/* n payload bytes of the current frame, at chunk: unmasked, checked and
   kept (control payloads in ctrl, message data gathered in msg, unless the
   frame is a whole message lying in the caller's buffer: then it is
   delivered from there, with no copy). in_place: chunk is already at the end
   of msg (read there by a driver, see wsr__proto_direct). When the frame
   completes, the header state is reset and ev says what arrived, if
   anything. */
WSR__PRIVATE wsr_err wsr__proto_payload(wsr_proto *p, unsigned char *chunk, size_t n, int in_place,
                                        wsr_event *ev, wsr_error *err) {
    int frame_done = (uint64_t)n == p->payload_len - p->payload_done;
    int gather = p->opcode < 8 && !in_place &&
                 !(frame_done && p->fin && p->payload_done == 0 && wsr__buf_avail(&p->msg) == 0);
    /* Room for the whole frame when it starts: the header already passed
       max_message, so this is bounded. */
    if (gather && p->payload_done == 0 && wsr__buf_reserve(&p->msg, &p->alloc, (size_t)p->payload_len)) {
        wsr__error_set(err, WSR_ERR_NOMEM, 0, "out of memory for a %llu-byte frame", (unsigned long long)p->payload_len);
        return WSR_ERR_NOMEM;
    }
    if (p->masked) wsr_mask(chunk, n, p->key, (size_t)(p->payload_done & 3));
    if (p->opcode >= 8) {
        memcpy(p->ctrl + p->ctrl_len, chunk, n);
        p->ctrl_len += n;
    } else {
        if (p->msg_type == WSR_OP_TEXT && !wsr_utf8_feed(&p->utf8, chunk, n))
            return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1007, err, "text message is not valid UTF-8 (RFC 6455 §8.1)");
        if (in_place) p->msg.len += n;
        else if (gather) wsr__buf_append(&p->msg, &p->alloc, chunk, n);   /* room was reserved */
    }
    p->payload_done += n;
    if (!frame_done) return WSR_OK;
    /* The frame is complete: get ready for the next header. */
    p->in_payload = 0;
    p->hdr_have = 0;
    p->hdr_need = 2;
    if (p->opcode >= 8) return wsr__proto_control(p, ev, err);
    if (!p->fin) return WSR_OK;
    if (p->msg_type == WSR_OP_TEXT && p->utf8 != 0)
        return wsr__proto_fail(p, WSR_ERR_PROTOCOL, 1007, err, "text message ends inside a UTF-8 sequence");
    ev->type = WSR_EVENT_MESSAGE;
    ev->msg_type = (wsr_msg_type)p->msg_type;
    if (wsr__buf_avail(&p->msg)) {
        ev->data = p->msg.data + p->msg.pos;
        ev->len = wsr__buf_avail(&p->msg);
        p->msg_ready = 1;
    } else {
        ev->data = chunk;
        ev->len = n;
    }
    p->msg_type = 0;
    return WSR_OK;
}

/* The least that is worth reading straight into place: below it the next
   frames are better read together with the end of this one. */
#define WSR__DIRECT_MIN 16384

/* The last message was delivered and its bytes may go. */
WSR__PRIVATE void wsr__proto_forget(wsr_proto *p) {
    if (p->msg_ready) {
        p->msg.pos = p->msg.len = 0;
        p->msg_ready = 0;
    }
}

WSR_API wsr_err wsr_proto_parse(wsr_proto *p, unsigned char *buf, size_t len, size_t *used,
                                wsr_event *ev, wsr_error *err) {
    size_t i = 0;
    wsr_err e;
    memset(ev, 0, sizeof *ev);
    *used = 0;
    if (p->failed) { wsr__error_set(err, p->failed, 0, "connection already failed"); return p->failed; }
    wsr__proto_forget(p);
    if (p->close_received) {                  /* §5.5.1: nothing may follow a close frame */
        *used = len;
        return WSR_OK;
    }
    while (i < len) {
        size_t n;
        if (!p->in_payload) {
            /* Collect the header, two bytes first, then the rest once we know its size. */
            n = WSR__MIN(len - i, p->hdr_need - p->hdr_have);
            memcpy(p->hdr + p->hdr_have, buf + i, n);
            p->hdr_have += n;
            i += n;
            if (p->hdr_have < p->hdr_need) break;
            if (p->hdr_need == 2) {
                if ((e = wsr__proto_header_start(p, err)) != WSR_OK) { *used = i; return e; }
                if (p->hdr_have < p->hdr_need) continue;
            }
            if ((e = wsr__proto_header_done(p, err)) != WSR_OK) { *used = i; return e; }
        }
        n = (size_t)WSR__MIN((uint64_t)(len - i), p->payload_len - p->payload_done);
        e = wsr__proto_payload(p, buf + i, n, 0, ev, err);
        if (e != WSR_OK) {
            memset(ev, 0, sizeof *ev);        /* a refused frame is no event */
            *used = e == WSR_ERR_NOMEM ? i : i + n;
            return e;
        }
        i += n;
        /* A control frame or a whole message ends this call (the event's
           data may lie in buf). */
        if (ev->type != WSR_EVENT_NONE) { *used = i; return e; }
        if (p->in_payload) break;             /* the frame goes on in the next buffer */
    }
    *used = i;
    return WSR_OK;
}

/* Reading a big frame straight into place. While the payload of a data
   frame is being gathered (some of it has come, more is due), a driver
   whose read buffer holds nothing unparsed may read the rest of that
   payload directly to where it is gathered: no copy out of the read buffer,
   and reads as large as what is due instead of 64 KiB at a time. Returns
   how many bytes are due (never past the frame's end) and where they go,
   or 0 when the next bytes are something else. Then
   wsr__proto_direct_done() with what the read put there. */
WSR__PRIVATE size_t wsr__proto_direct(wsr_proto *p, unsigned char **dst) {
    if (p->failed || p->close_received || !p->in_payload || p->opcode >= 8 || p->payload_done == 0) return 0;
    wsr__proto_forget(p);
    *dst = p->msg.data + p->msg.len;   /* room for the whole frame was reserved when it started */
    return (size_t)(p->payload_len - p->payload_done);
}
WSR__PRIVATE wsr_err wsr__proto_direct_done(wsr_proto *p, size_t n, wsr_event *ev, wsr_error *err) {
    wsr_err e;
    memset(ev, 0, sizeof *ev);
    if ((e = wsr__proto_payload(p, p->msg.data + p->msg.len, n, 1, ev, err)) != WSR_OK) memset(ev, 0, sizeof *ev);
    return e;
}

/* ---- HTTP/1.1 upgrade (RFC 6455 §4) -------------------------------------- */

#define WSR__GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   /* §1.3, fixed by the RFC */

WSR_API void wsr_accept_key(const char *key, size_t key_len, char out[29]) {
    wsr__sha1 s;
    unsigned char digest[20];
    wsr__sha1_init(&s);
    wsr__sha1_update(&s, key, key_len);
    wsr__sha1_update(&s, WSR__GUID, sizeof WSR__GUID - 1);
    wsr__sha1_final(&s, digest);
    wsr_base64_encode(digest, 20, out);
}

/* A bounded string writer: appends until full, then remembers it overflowed,
   so builders check once at the end instead of after every piece. */
typedef struct wsr__writer { char *out; size_t cap, len; int overflow; } wsr__writer;

WSR__PRIVATE void wsr__put(wsr__writer *w, const char *s, size_t n) {
    if (w->overflow || n > w->cap - w->len) { w->overflow = 1; return; }
    memcpy(w->out + w->len, s, n);
    w->len += n;
}
WSR__PRIVATE void wsr__puts(wsr__writer *w, const char *s) { wsr__put(w, s, strlen(s)); }
WSR__PRIVATE wsr_err wsr__writer_end(wsr__writer *w, size_t *len) {
    wsr__put(w, "", 1);               /* NUL, not counted in *len */
    if (w->overflow) { *len = 0; return WSR_ERR_TOO_BIG; }
    *len = w->len - 1;
    return WSR_OK;
}

/* HTTP token characters (RFC 9110 §5.6.2), for header names. */
WSR__PRIVATE int wsr__is_tchar(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Copies the caller's extra headers, one "Name: value" per line (lines end
   with \n or \r\n). Refuses anything that could smuggle a second header or
   end the head early: a missing colon, a bad name, a CR or NUL inside. */
WSR__PRIVATE wsr_err wsr__put_extra_headers(wsr__writer *w, const char *h) {
    while (h && *h) {
        const char *eol = h, *colon = NULL;
        size_t name_len, n;
        while (*eol && *eol != '\n') eol++;
        n = (size_t)(eol - h);
        if (n && h[n - 1] == '\r') n--;
        if (n) {
            size_t i;
            for (i = 0; i < n; i++) {
                if (h[i] == '\r') return WSR_ERR_INVALID;
                if (!colon && h[i] == ':') colon = h + i;
            }
            if (!colon) return WSR_ERR_INVALID;
            name_len = (size_t)(colon - h);
            if (name_len == 0) return WSR_ERR_INVALID;
            for (i = 0; i < name_len; i++)
                if (!wsr__is_tchar((unsigned char)h[i])) return WSR_ERR_INVALID;
            wsr__put(w, h, n);
            wsr__put(w, "\r\n", 2);
        }
        h = *eol ? eol + 1 : eol;
    }
    return WSR_OK;
}

WSR_API wsr_err wsr_handshake_request(char *out, size_t cap, size_t *len, const wsr_url *url,
                                      const char *key, const char *origin,
                                      const char *protocols, const char *headers) {
    wsr__writer w;
    char port[16];
    w.out = out; w.cap = cap; w.len = 0; w.overflow = 0;
    *len = 0;
    if ((origin && strpbrk(origin, "\r\n")) || (protocols && strpbrk(protocols, "\r\n")))
        return WSR_ERR_INVALID;
    /* §4.1 items 1-2: a GET for the resource name, HTTP/1.1. */
    wsr__puts(&w, "GET ");
    if (url->path[0] == '?') wsr__put(&w, "/", 1);   /* "ws://h?x" asks for "/?x" */
    wsr__put(&w, url->path, url->path_len);
    wsr__puts(&w, " HTTP/1.1\r\nHost: ");
    /* §4.1 item 4: Host names the port only when it is not the default. */
    if (url->ipv6) wsr__put(&w, "[", 1);
    wsr__put(&w, url->host, url->host_len);
    if (url->ipv6) wsr__put(&w, "]", 1);
    if (url->port != (url->secure ? 443 : 80)) {
        snprintf(port, sizeof port, ":%d", url->port);
        wsr__puts(&w, port);
    }
    wsr__puts(&w, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    wsr__puts(&w, key);
    wsr__puts(&w, "\r\nSec-WebSocket-Version: 13\r\n");
    if (origin && *origin) { wsr__puts(&w, "Origin: "); wsr__puts(&w, origin); wsr__puts(&w, "\r\n"); }
    if (protocols && *protocols) {
        wsr__puts(&w, "Sec-WebSocket-Protocol: ");
        wsr__puts(&w, protocols);
        wsr__puts(&w, "\r\n");
    }
    if (wsr__put_extra_headers(&w, headers) != WSR_OK) return WSR_ERR_INVALID;
    wsr__puts(&w, "\r\n");
    return wsr__writer_end(&w, len);
}

/* Finds the blank line that ends an HTTP head. Returns the head's length
   (including the blank line) or 0 if it is not all there yet. */
WSR__PRIVATE size_t wsr__head_end(const char *s, size_t n) {
    size_t i;
    for (i = 3; i < n; i++)
        if (s[i] == '\n' && s[i - 1] == '\r' && s[i - 2] == '\n' && s[i - 3] == '\r') return i + 1;
    return 0;
}

/* Iterates over the header lines of a head (after the start line). Returns
   1 with name and value (value trimmed), 0 at the blank line, -1 on a line
   that is not "name: value" or uses obsolete line folding (RFC 9112 §5.2). */
WSR__PRIVATE int wsr__header_next(const char *head, size_t head_len, size_t *pos,
                                  const char **name, size_t *name_len, const char **value, size_t *value_len) {
    const char *line = head + *pos, *end = line, *colon = NULL;
    size_t i, n;
    while ((size_t)(end - head) < head_len && *end != '\n') end++;
    if ((size_t)(end - head) >= head_len || end == line || end[-1] != '\r') return -1;
    n = (size_t)(end - line) - 1;       /* without \r */
    *pos = (size_t)(end - head) + 1;
    if (n == 0) return 0;
    if (line[0] == ' ' || line[0] == '\t') return -1;
    for (i = 0; i < n; i++) {
        if (line[i] == ':') { colon = line + i; break; }
        if (!wsr__is_tchar((unsigned char)line[i])) return -1;
    }
    if (!colon || colon == line) return -1;
    *name = line;
    *name_len = (size_t)(colon - line);
    *value_len = n - *name_len - 1;
    *value = wsr__trim(colon + 1, value_len);
    for (i = 0; i < *value_len; i++)
        if ((*value)[i] == '\0' || (*value)[i] == '\r') return -1;
    return 1;
}

/* Parses an HTTP-date (IMF-fixdate, RFC 9110 §5.6.7) into seconds since the
   epoch, or -1. Only the preferred format; the two obsolete ones give -1. */
WSR__PRIVATE long long wsr__http_date(const char *s, size_t n) {
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int day, year, hh, mm, ss, mon = -1, i;
    long long days;
    char buf[40], m[4];
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (sscanf(buf, "%*3s, %2d %3s %4d %2d:%2d:%2d GMT", &day, m, &year, &hh, &mm, &ss) != 6) return -1;
    for (i = 0; i < 12; i++)
        if (strncmp(m, months + 3 * i, 3) == 0) mon = i;
    /* sscanf's %d takes signs and spaces: the fixed layout must be all digits. */
    if (n != 29 || strspn(buf + 5, "0123456789") != 2 || strspn(buf + 12, "0123456789") != 4 ||
        strspn(buf + 17, "0123456789") != 2 || strspn(buf + 20, "0123456789") != 2 ||
        strspn(buf + 23, "0123456789") != 2)
        return -1;
    if (mon < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1970) return -1;
    /* Days since 1970-01-01 for a proleptic Gregorian date (March-based year). */
    {
        int y = year - (mon < 2), mp = (mon + 10) % 12;   /* months from March; mon is 0-based */
        long long era = y / 400, yoe = y - era * 400;
        long long doy = (153 * mp + 2) / 5 + day - 1;
        long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        days = era * 146097 + doe - 719468;
    }
    return days * 86400 + hh * 3600 + mm * 60 + ss;
}

WSR_API wsr_err wsr_handshake_response_check(const char *head, size_t len, size_t max_head,
                                             const char *key, const char *offered_protocols,
                                             wsr_handshake_result *res, wsr_error *err) {
    size_t head_len, pos, nl, vl;
    const char *name, *value, *p;
    int got_upgrade = 0, got_connection = 0, got_accept = 0, status, r;
    char accept[29];
    wsr_error scratch;
    if (!err) err = &scratch;             /* err is optional */
    memset(res, 0, sizeof *res);
    res->retry_after_s = -1;
    res->retry_after_date = -1;
    if (!max_head) max_head = WSR_DEFAULT_MAX_HANDSHAKE;
    head_len = wsr__head_end(head, WSR__MIN(len, max_head));
    if (!head_len) {
        if (len < max_head) return WSR_ERR_AGAIN;
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "upgrade response head longer than %lu bytes",
                       (unsigned long)max_head);
        return WSR_ERR_HANDSHAKE;
    }
    res->head_len = head_len;
    /* Status line: "HTTP/1.1 101 Switching Protocols" (§4.1 item 1 of the server's part). */
    if (head_len < 13 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' || (head[12] != ' ' && head[12] != '\r') ||
        head[9] < '1' || head[9] > '5' || head[10] < '0' || head[10] > '9' || head[11] < '0' || head[11] > '9') {
        /* The head is not NUL-terminated: print a counted prefix of its first line. */
        const char *eol = (const char *)memchr(head, '\r', head_len);
        int shown = (int)WSR__MIN((size_t)(eol ? eol - head : (ptrdiff_t)head_len), (size_t)30);
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "upgrade response is not HTTP: '%.*s'", shown, head);
        return WSR_ERR_HANDSHAKE;
    }
    status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    res->status = status;
    p = (const char *)memchr(head, '\n', head_len);
    pos = (size_t)(p - head) + 1;
    while ((r = wsr__header_next(head, head_len, &pos, &name, &nl, &value, &vl)) == 1) {
        if (wsr__ieq(name, nl, "upgrade")) {
            /* A list header may come in several lines (RFC 7230 §3.2.2):
               the token may be in any of them. */
            got_upgrade |= wsr__list_has(value, vl, "websocket");
        } else if (wsr__ieq(name, nl, "connection")) {
            got_connection |= wsr__list_has(value, vl, "upgrade");
        } else if (wsr__ieq(name, nl, "sec-websocket-accept")) {
            wsr_accept_key(key, strlen(key), accept);
            got_accept = got_accept ? -1 : (vl == 28 && memcmp(value, accept, 28) == 0) ? 1 : -2;
        } else if (wsr__ieq(name, nl, "sec-websocket-extensions") && status == 101) {
            /* §4.1 item 5 of the client's checks: we offered no extension, so
               any extension in use means we cannot read the frames. */
            if (vl) {
                wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "server uses extension '%.*s' that was not offered",
                               (int)WSR__MIN(vl, (size_t)40), value);
                err->http_status = status;
                return WSR_ERR_HANDSHAKE;
            }
        } else if (wsr__ieq(name, nl, "sec-websocket-protocol") && status == 101) {
            const char *it;
            size_t il, lp = 0;
            int offered = 0;
            while (offered_protocols && wsr__list_next(offered_protocols, strlen(offered_protocols), &lp, &it, &il))
                if (il == vl && memcmp(it, value, vl) == 0) offered = 1;
            if (!offered || res->subprotocol[0] || vl >= sizeof res->subprotocol) {
                wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "server chose subprotocol '%.*s' that was not offered",
                               (int)WSR__MIN(vl, (size_t)40), value);
                err->http_status = status;
                return WSR_ERR_HANDSHAKE;
            }
            memcpy(res->subprotocol, value, vl);
            res->subprotocol[vl] = '\0';
        } else if (wsr__ieq(name, nl, "retry-after")) {
            size_t i;
            long secs = 0;
            for (i = 0; i < vl && value[i] >= '0' && value[i] <= '9' && secs < 86400 * 365; i++)
                secs = secs * 10 + (value[i] - '0');
            if (i == vl && vl > 0) res->retry_after_s = (int)secs;
            else res->retry_after_date = wsr__http_date(value, vl);   /* the caller knows the time */
        }
    }
    if (r < 0) {
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "malformed header line in upgrade response");
        err->http_status = status;
        return WSR_ERR_HANDSHAKE;
    }
    if (status != 101) {
        /* The reason phrase goes into the message for the human reading logs. */
        const char *reason = head + 13 <= p ? head + 13 : "";
        int rlen = head + 13 <= p ? (int)(p - reason) - 1 : 0;
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "server answered HTTP %d %.*s instead of 101", status,
                       rlen > 60 ? 60 : (rlen < 0 ? 0 : rlen), reason);
        err->http_status = status;
        /* Worth retrying: the server is overloaded, restarting or asks us to wait. */
        err->transient = status == 408 || status == 429 || status >= 500;
        return WSR_ERR_HANDSHAKE;
    }
    if (head[7] != '1') {
        /* 101 and Upgrade exist from HTTP/1.1 on (RFC 7230 §6.7). */
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "101 answer in HTTP/1.%c, not HTTP/1.1", head[7]);
        err->http_status = status;
        return WSR_ERR_HANDSHAKE;
    }
    if (!got_upgrade || !got_connection || got_accept != 1) {
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "101 answer without %s",
                       !got_upgrade ? "'Upgrade: websocket'" : !got_connection ? "'Connection: Upgrade'"
                       : got_accept == 0 ? "Sec-WebSocket-Accept" : "the right Sec-WebSocket-Accept");
        err->http_status = status;
        return WSR_ERR_HANDSHAKE;
    }
    if (err) wsr__error_set(err, WSR_OK, 0, NULL);
    return WSR_OK;
}

/* The resource a request line names (§4.2.1 item 1): "/path?query", or an
   absolute URI "http://host/path?query" (RFC 7230 §5.3.2: servers MUST
   accept that form) whose path and query are taken ("/" when it has neither). */
WSR__PRIVATE int wsr__request_target(const char *t, size_t n, const char **path, size_t *path_len) {
    static const char *const schemes[] = { "http://", "https://", "ws://", "wss://" };
    size_t i, k;
    if (n > 0 && t[0] == '/') { *path = t; *path_len = n; return 1; }
    for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t sl = strlen(schemes[i]);
        if (n > sl && wsr__ieq(t, sl, schemes[i])) {
            for (k = sl; k < n && t[k] != '/' && t[k] != '?'; k++) {}
            if (k == sl) return 0;                      /* no host */
            if (k == n) { *path = "/"; *path_len = 1; return 1; }
            /* "http://host?query": the path is "/?query", which is not in
               the head to point at; refused rather than handing on a path
               without its "/" or a query cut off. */
            if (t[k] == '?') return 0;
            *path = t + k;
            *path_len = n - k;
            return 1;
        }
    }
    return 0;
}

WSR_API wsr_err wsr_handshake_request_parse(const char *head, size_t len, size_t max_head,
                                            wsr_request *req, wsr_error *err) {
    size_t head_len, pos, nl, vl;
    const char *name, *value, *sp1, *sp2, *eol;
    int got_upgrade = 0, got_connection = 0, r, lines = 0;
    wsr_error scratch;
    if (!err) err = &scratch;             /* err is optional */
    memset(req, 0, sizeof *req);
    req->version = -1;
    if (!max_head) max_head = WSR_DEFAULT_MAX_HANDSHAKE;
    head_len = wsr__head_end(head, WSR__MIN(len, max_head));
    if (!head_len) {
        if (len < max_head) return WSR_ERR_AGAIN;
        req->status = 431;   /* RFC 6585: Request Header Fields Too Large */
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "request head longer than %lu bytes", (unsigned long)max_head);
        err->http_status = 431;
        return WSR_ERR_HANDSHAKE;
    }
    req->head = head;
    req->head_len = head_len;
    req->status = 400;
    /* §4.2.1 item 1: "an HTTP/1.1 or higher GET request". */
    eol = (const char *)memchr(head, '\r', head_len);
    if (eol[1] != '\n') eol = head;     /* a bare CR inside the request line: refused below */
    sp1 = (const char *)memchr(head, ' ', (size_t)(eol - head));
    sp2 = sp1 ? (const char *)memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 - head != 3 || memcmp(head, "GET", 3) != 0 || sp2 == sp1 + 1 ||
        (size_t)(eol - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 ||
        !wsr__request_target(sp1 + 1, (size_t)(sp2 - sp1 - 1), &req->path, &req->path_len)) {
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "not an HTTP/1.1 GET request: '%.*s'",
                       (int)WSR__MIN((size_t)(eol - head), (size_t)40), head);
        err->http_status = 400;
        return WSR_ERR_HANDSHAKE;
    }
    pos = (size_t)(eol - head) + 2;
    while ((r = wsr__header_next(head, head_len, &pos, &name, &nl, &value, &vl)) == 1) {
        /* A bounded number of lines as well as bytes: a client sending
           thousands of tiny headers is refused like one sending huge ones. */
        if (++lines > WSR_MAX_HEADERS) {
            req->status = 431;
            wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "more than %d header lines", (int)WSR_MAX_HEADERS);
            err->http_status = 431;
            return WSR_ERR_HANDSHAKE;
        }
        if (wsr__ieq(name, nl, "host")) { req->host = value; req->host_len = vl; }
        else if (wsr__ieq(name, nl, "upgrade")) got_upgrade |= wsr__list_has(value, vl, "websocket");
        else if (wsr__ieq(name, nl, "connection")) got_connection |= wsr__list_has(value, vl, "upgrade");
        else if (wsr__ieq(name, nl, "sec-websocket-key")) { req->key = value; req->key_len = vl; }
        else if (wsr__ieq(name, nl, "origin")) { req->origin = value; req->origin_len = vl; }
        else if (wsr__ieq(name, nl, "sec-websocket-protocol")) {
            if (!req->protocols) { req->protocols = value; req->protocols_len = vl; }
        } else if (wsr__ieq(name, nl, "sec-websocket-version")) {
            size_t i;
            req->version = 0;
            for (i = 0; i < vl && i < 4; i++) {
                if (value[i] < '0' || value[i] > '9') { req->version = 0; break; }
                req->version = req->version * 10 + (value[i] - '0');
            }
            if (vl == 0 || vl > 3) req->version = 0;
        }
    }
    if (r < 0) {
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "malformed header line in upgrade request");
    } else if (!req->host) {
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "upgrade request without Host");
    } else if (!got_upgrade || !got_connection) {
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "request without 'Upgrade: websocket' and 'Connection: Upgrade'");
    } else if (req->version != 13) {
        /* §4.2.2 item 4: answer 426 and say which version we speak. */
        req->status = 426;
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "unsupported Sec-WebSocket-Version (only 13)");
    } else if (!req->key || wsr__base64_decoded_len(req->key, req->key_len) != 16) {
        wsr__error_set(err, WSR_ERR_HANDSHAKE, 0, "Sec-WebSocket-Key is not 16 bytes in base64");
    } else {
        req->status = 101;
        if (err) wsr__error_set(err, WSR_OK, 0, NULL);
        return WSR_OK;
    }
    err->http_status = req->status;
    return WSR_ERR_HANDSHAKE;
}

WSR_API const char *wsr_request_header(const wsr_request *req, const char *name, size_t *len) {
    const char *eol, *n, *v;
    size_t pos, nl, vl;
    if (!req || !req->head || !name) return NULL;
    eol = (const char *)memchr(req->head, '\n', req->head_len);
    if (!eol) return NULL;
    pos = (size_t)(eol - req->head) + 1;
    while (wsr__header_next(req->head, req->head_len, &pos, &n, &nl, &v, &vl) == 1) {
        if (wsr__ieq(n, nl, name)) {
            if (len) *len = vl;
            return v;
        }
    }
    return NULL;
}

WSR_API int wsr_subprotocol_choose(const char *supported, const char *offered, size_t offered_len,
                                   char *out, size_t cap) {
    size_t sp = 0, sl, op, ol;
    const char *s, *o;
    if (cap) out[0] = '\0';
    if (!supported || !offered) return 0;
    while (wsr__list_next(supported, strlen(supported), &sp, &s, &sl)) {
        op = 0;
        while (wsr__list_next(offered, offered_len, &op, &o, &ol)) {
            if (ol == sl && memcmp(o, s, sl) == 0 && sl < cap) {
                memcpy(out, s, sl);
                out[sl] = '\0';
                return 1;
            }
        }
    }
    return 0;
}

WSR_API wsr_err wsr_handshake_response(char *out, size_t cap, size_t *len, const char *key,
                                       size_t key_len, const char *subprotocol) {
    wsr__writer w;
    char accept[29];
    w.out = out; w.cap = cap; w.len = 0; w.overflow = 0;
    wsr_accept_key(key, key_len, accept);
    wsr__puts(&w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: ");
    wsr__puts(&w, accept);
    wsr__puts(&w, "\r\n");
    if (subprotocol && *subprotocol) {
        wsr__puts(&w, "Sec-WebSocket-Protocol: ");
        wsr__puts(&w, subprotocol);
        wsr__puts(&w, "\r\n");
    }
    wsr__puts(&w, "\r\n");
    return wsr__writer_end(&w, len);
}

WSR__PRIVATE wsr_err wsr__refusal(char *out, size_t cap, size_t *len, int status, int retry_after_s);
WSR_API wsr_err wsr_handshake_refusal(char *out, size_t cap, size_t *len, int status) {
    return wsr__refusal(out, cap, len, status, 0);
}

/* The refusal, with Retry-After when retry_after_s > 0 (503, 429). */
WSR__PRIVATE wsr_err wsr__refusal(char *out, size_t cap, size_t *len, int status, int retry_after_s) {
    wsr__writer w;
    char line[96];
    const char *text = status == 400 ? "Bad Request" : status == 401 ? "Unauthorized" : status == 403 ? "Forbidden"
                     : status == 404 ? "Not Found" : status == 426 ? "Upgrade Required"
                     : status == 431 ? "Request Header Fields Too Large" : status == 503 ? "Service Unavailable"
                     : "Error";
    w.out = out; w.cap = cap; w.len = 0; w.overflow = 0;
    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, text);
    wsr__puts(&w, line);
    if (status == 426) wsr__puts(&w, "Sec-WebSocket-Version: 13\r\n");
    if (retry_after_s > 0) {
        snprintf(line, sizeof line, "Retry-After: %d\r\n", retry_after_s);
        wsr__puts(&w, line);
    }
    wsr__puts(&w, "Content-Length: 0\r\nConnection: close\r\n\r\n");
    return wsr__writer_end(&w, len);
}

/* ------------------------------------------------------------------------
   Connection policy (sans-I/O): the client state machine and its timers
   ------------------------------------------------------------------------ */
/* >>policy */

WSR_API int wsr_backoff_delay(const wsr_backoff *b, int attempt, int prev_ms, uint32_t rnd) {
    double v = b->initial_ms > 0 ? b->initial_ms : 0;
    double factor = b->factor >= 1.0 ? b->factor : 1.0;
    int cap = b->max_ms > 0 ? b->max_ms : 0x7FFFFFFF, base, i;
    /* Multiply step by step and stop at the cap: factor^attempt alone
       would overflow long before a client gives up. */
    for (i = 1; i < attempt && v < cap; i++) v *= factor;
    base = v >= cap ? cap : (int)v;
    switch (b->jitter) {
    case WSR_JITTER_FULL:
        return (int)(rnd % ((uint32_t)base + 1));
    case WSR_JITTER_EQUAL: {
        int half = base / 2;
        return base - half + (int)(rnd % ((uint32_t)half + 1));
    }
    case WSR_JITTER_DECORRELATED: {
        /* Each wait is drawn between the initial wait and a multiple of the
           previous one, so waits grow on average but not in lockstep. */
        int lo = b->initial_ms > 0 ? b->initial_ms : 0;
        double hi_d = (prev_ms > lo ? prev_ms : lo) * factor;
        int hi = hi_d >= cap ? cap : (int)hi_d;
        if (lo > cap) lo = cap;
        if (hi < lo) hi = lo;
        return lo + (int)(rnd % ((uint32_t)(hi - lo) + 1));
    }
    default:
        return base;
    }
}

WSR_API int wsr_error_retryable(const wsr_error *e) {
    int cc = e->close_code;
    switch (e->code) {
    case WSR_OK:
    case WSR_ERR_CLOSED:            /* the application asked to close */
    case WSR_ERR_INVALID:
    case WSR_ERR_TLS_UNAVAILABLE:
    case WSR_ERR_TLS_CERT:          /* the same certificate would be refused again */
    case WSR_ERR_PROTOCOL:          /* the server broke RFC 6455: it would again */
    case WSR_ERR_TOO_BIG:
        return 0;
    case WSR_ERR_HANDSHAKE:
        /* Overloaded, restarting or rate-limiting servers say so with these;
           other statuses (401, 403, 404, 426) mean the request itself is
           wrong. No status: the link failed during the upgrade. */
        if (e->http_status == 0) return e->transient;
        return e->http_status == 408 || e->http_status == 429 || e->http_status >= 500;
    case WSR_ERR_PEER_CLOSED:
        /* §7.4.1: 1002 protocol error, 1003 unacceptable data, 1007 bad
           payload, 1008 policy violation, 1009 too big, 1010 missing
           extension all say "your messages are the problem": retrying would
           send them again. Everything else (a restart, going away, a
           normal end of session) is worth another connection. */
        return !(cc == 1002 || cc == 1003 || (cc >= 1007 && cc <= 1010));
    default:
        return e->transient;
    }
}

/* The client. Everything here runs on time passed in as now_ms and on bytes
   moved through c->tr, so a test can drive it with a fake clock and a
   scripted transport. The platform section supplies the real ones.

   The outbound queue holds every message from wsr_send* until it has been
   written whole: [wsr__rec][payload] records, oldest first, in one buffer
   (no allocation per message). While the link is up the oldest records are
   "framed": encoded into the codec's output, a little ahead of the socket.
   A framed record remembers where its last byte lies in the connection's
   byte stream (wire_end); once that many bytes are written, it is delivered.
   When a link drops, framed records become unframed again and go out whole,
   with fresh masking keys, on the next connection.

       queue:  [ framed, being written ][ unframed, waiting          ]
               0                      q_framed                      end */
typedef struct wsr__rec {
    uint64_t seq;          /* order of wsr_send calls, so a drop loop knows where it began */
    uint64_t tag;          /* the application's, for on_delivery */
    uint64_t queued_at;    /* first step after the send, for queue_ttl_ms */
    uint64_t wire_end;     /* framed: stream offset just past its last frame */
    uint64_t len;          /* payload bytes after the record */
    int type;              /* WSR_MSG_TEXT or WSR_MSG_BINARY */
} wsr__rec;

/* How far framing runs ahead of the socket. Enough to fill a socket buffer
   in one write; small enough that a queue does not sit in memory twice. */
#define WSR__FRAME_AHEAD ((size_t)256 * 1024)

struct wsr_client {
    wsr_client_config cfg;        /* strings below point to our own copies */
    wsr_allocator alloc;
    wsr_url url;
    char *host;                   /* NUL-terminated copy of url.host, for the transport */
    wsr_transport tr;
    void *tr_owned;               /* the built-in transport's state, freed with the client */
    void (*tr_free_fn)(void *tr_state, const wsr_allocator *a);
    void (*rand_fn)(void *buf, size_t n, void *user);
    int net_started;              /* the platform's network stack was started for us (Winsock) */
    void *rand_user;

    wsr_state state;
    uint64_t now;                 /* the time of the current (or last) step */
    wsr_proto *proto;             /* the current connection's codec; NULL between connections */
    wsr__buf in;                  /* bytes read but not yet parsed */
    wsr__buf hs;                  /* the upgrade request, while it is being written */
    char key[25];                 /* our Sec-WebSocket-Key */
    char subprotocol[64];
    uint64_t deadline;            /* connect deadline, or close-handshake deadline; 0 = none */
    int close_requested;          /* wsr_client_close() was called: never reopen */
    wsr_error error;              /* why the last connection ended */

    /* Reconnection. */
    int started;                  /* the first attempt has begun */
    int attempt;                  /* attempts that failed in a row */
    int prev_delay;               /* the last backoff wait, for decorrelated jitter */
    uint64_t wake_at;             /* WAITING: when the next attempt starts */
    uint64_t down_since;          /* when the link was last up long enough (or the start) */
    uint64_t opened_at;           /* when the current connection opened */
    int is_open;                  /* the current connection reached OPEN */
    int reconnect_now;            /* wsr_client_reconnect(): act at the next step */
    int in_run;                   /* inside wsr__client_run (so inside a callback, if called back) */
    int in_finish;                /* inside the callbacks of wsr__client_finish */
    int close_pending;            /* wsr_client_close() from another thread: the client's thread does it */
    int close_code;
    char close_reason[WSR_MAX_CLOSE_REASON + 1];
    wsr_error last;               /* why the last connection ended, for wsr_client_error() */

    /* Keepalive. */
    uint64_t last_rx;             /* when bytes last arrived */
    uint64_t ping_sent_at;
    uint64_t pong_deadline;       /* no inbound traffic by then: the link is dead; 0 = none */
    int ping_out;                 /* a keepalive was sent and nothing has arrived since */
    uint32_t ping_seq;            /* payload of the last keepalive ping */
    int rtt_ms;
    int rtt_pending;              /* the last keepalive has not been answered yet */
    int ping_timeout_ms;          /* the deadline the outstanding keepalive was sent with */
    uint64_t ping_wire_end;       /* stream offset just past the keepalive frame */
    uint64_t last_tx;             /* when the socket last took bytes from us */
    int probe_ms;                 /* wsr_client_probe(): ping at the next step with this deadline */

    /* The outbound queue (see above). */
    wsr__buf queue;
    size_t q_framed;              /* bytes of framed records, from the front */
    size_t q_stamped;             /* bytes of records whose queued_at is set */
    size_t q_bytes, q_count;      /* payload bytes and records in the queue */
    size_t qf_bytes, qf_count;    /* ... of them framed */
    uint64_t q_seq;               /* the next record's sequence number */
    uint64_t wire_written;        /* bytes of this connection's frames written so far */

    /* The background thread, when there is one (set by the driver). */
    void *thread;
    void (*lock_fn)(void *thread);
    void (*unlock_fn)(void *thread);
    void (*wake_fn)(void *thread);
    int (*is_loop_fn)(void *thread);   /* is the caller the client's thread? */
};

/* Public calls that may come from other threads take the client's lock (a
   recursive one: callbacks on the client's thread may call them too) and
   wake the thread so it acts on the change. Without a thread they cost a
   test of a NULL pointer. */
WSR__PRIVATE void wsr__client_lock(const wsr_client *c) {
    if (c->lock_fn) c->lock_fn(c->thread);
}
WSR__PRIVATE void wsr__client_release(const wsr_client *c) {   /* for a look: no wake-up */
    if (c->unlock_fn) c->unlock_fn(c->thread);
}
WSR__PRIVATE void wsr__client_unlock(const wsr_client *c) {
    if (c->wake_fn) c->wake_fn(c->thread);
    wsr__client_release(c);
}

WSR_API const char *wsr_delivery_name(wsr_delivery d) {
    static const char *const names[] = { "WRITTEN", "DROPPED_OVERFLOW", "EXPIRED", "DISCONNECTED",
                                         "CLEARED", "CLOSED", "GAVE_UP" };
    return (unsigned)d < sizeof names / sizeof names[0] ? names[d] : "?";
}

/* ---- the outbound queue ---- */

WSR__PRIVATE void wsr__rec_get(const wsr_client *c, size_t off, wsr__rec *r) {
    memcpy(r, c->queue.data + c->queue.pos + off, sizeof *r);
}
WSR__PRIVATE void wsr__rec_put(wsr_client *c, size_t off, const wsr__rec *r) {
    memcpy(c->queue.data + c->queue.pos + off, r, sizeof *r);
}
WSR__PRIVATE size_t wsr__q_end(const wsr_client *c) { return wsr__buf_avail(&c->queue); }

/* Takes the record at off out of the queue (the front, or the first
   unframed one) and tells the application its fate. */
WSR__PRIVATE void wsr__q_remove(wsr_client *c, size_t off, wsr_delivery fate) {
    wsr__rec r;
    size_t size;
    wsr__rec_get(c, off, &r);
    size = sizeof r + (size_t)r.len;
    if (off == 0) {
        wsr__buf_consume(&c->queue, size);
    } else {
        unsigned char *base = c->queue.data + c->queue.pos;
        memmove(base + off, base + off + size, wsr__q_end(c) - off - size);
        c->queue.len -= size;
    }
    if (off < c->q_framed) {
        c->q_framed -= size;
        c->qf_bytes -= (size_t)r.len;
        c->qf_count--;
    }
    if (off < c->q_stamped) c->q_stamped -= size;
    c->q_bytes -= (size_t)r.len;
    c->q_count--;
    if (fate != WSR_DELIVERY_WRITTEN)
        wsr__log(c->cfg.log_fn, c->cfg.user, WSR_LOG_WARN, "message of %llu bytes dropped: %s",
                 (unsigned long long)r.len, wsr_delivery_name(fate));
    if (c->cfg.on_delivery) c->cfg.on_delivery(c, r.tag, fate, c->cfg.user);
}

/* Drops every unframed record that is in the queue now, and not the ones
   callbacks add meanwhile (they have later sequence numbers). Every
   iteration re-reads the queue: a callback may have emptied it. */
WSR__PRIVATE size_t wsr__q_drop_unframed(wsr_client *c, wsr_delivery fate) {
    uint64_t limit = c->q_seq;
    size_t n = 0;
    while (c->q_framed < wsr__q_end(c)) {
        wsr__rec r;
        wsr__rec_get(c, c->q_framed, &r);
        if (r.seq >= limit) break;
        wsr__q_remove(c, c->q_framed, fate);
        n++;
    }
    return n;
}

/* Hands the oldest unframed records to the codec while the codec's output
   is shorter than WSR__FRAME_AHEAD (all of them when `all`, before a close). */
WSR__PRIVATE wsr_err wsr__q_frame(wsr_client *c, int all) {
    const unsigned char *d;
    while (c->state == WSR_STATE_OPEN && c->q_framed < wsr__q_end(c) && !wsr_proto_close_sent(c->proto) &&
           (all || wsr_proto_pending(c->proto, &d) < WSR__FRAME_AHEAD)) {
        wsr__rec r;
        wsr_err e;
        wsr__rec_get(c, c->q_framed, &r);
        e = wsr_proto_send(c->proto, r.type, c->queue.data + c->queue.pos + c->q_framed + sizeof r,
                           (size_t)r.len, c->cfg.send_fragment_size);
        if (e != WSR_OK) return e;
        /* The message is the last thing in the codec's output: it ends
           where the written bytes plus the pending ones end. */
        r.wire_end = c->wire_written + wsr_proto_pending(c->proto, &d);
        wsr__rec_put(c, c->q_framed, &r);
        c->q_framed += sizeof r + (size_t)r.len;
        c->qf_bytes += (size_t)r.len;
        c->qf_count++;
    }
    return WSR_OK;
}

/* n more bytes of this connection's frames reached the socket: every framed
   record that ends within them is delivered. */
WSR__PRIVATE void wsr__q_written(wsr_client *c, size_t n) {
    c->wire_written += n;
    while (c->q_framed > 0) {
        wsr__rec r;
        wsr__rec_get(c, 0, &r);
        if (r.wire_end > c->wire_written) break;
        wsr__q_remove(c, 0, WSR_DELIVERY_WRITTEN);
    }
}

/* The link dropped: what was framed and not written whole goes again. */
WSR__PRIVATE void wsr__q_unframe(wsr_client *c) {
    size_t off = 0;
    while (off < c->q_framed) {
        wsr__rec r;
        wsr__rec_get(c, off, &r);
        r.wire_end = 0;
        wsr__rec_put(c, off, &r);
        off += sizeof r + (size_t)r.len;
    }
    c->q_framed = c->qf_bytes = c->qf_count = 0;
    c->wire_written = 0;
}

/* Gives records sent since the last step their time, then drops the
   unframed ones that waited longer than queue_ttl_ms (the oldest first, so
   the first young one ends the search). */
WSR__PRIVATE void wsr__q_age(wsr_client *c, uint64_t now) {
    while (c->q_stamped < wsr__q_end(c)) {
        wsr__rec r;
        wsr__rec_get(c, c->q_stamped, &r);
        r.queued_at = now;
        wsr__rec_put(c, c->q_stamped, &r);
        c->q_stamped += sizeof r + (size_t)r.len;
    }
    if (c->cfg.queue_ttl_ms <= 0) return;
    /* Only stamped records: one a callback sends meanwhile has no time yet. */
    while (c->q_framed < c->q_stamped) {
        wsr__rec r;
        wsr__rec_get(c, c->q_framed, &r);
        if (now - r.queued_at < (uint64_t)c->cfg.queue_ttl_ms) break;
        wsr__q_remove(c, c->q_framed, WSR_DELIVERY_EXPIRED);
    }
}

/* ---- states, endings and the reconnect decision ---- */

/* Records why the current attempt is ending, once: the first cause wins,
   because later errors (a reset after a protocol error) are consequences. */
WSR__PRIVATE void wsr__client_set_error(wsr_client *c, const wsr_error *e) {
    if (c->error.code == WSR_OK) c->error = *e;
}

/* The one place the state changes, so on_state sees every transition. */
WSR__PRIVATE void wsr__client_to(wsr_client *c, wsr_state to) {
    wsr_state from = c->state;
    if (from == to) return;
    c->state = to;
    wsr__log(c->cfg.log_fn, c->cfg.user, WSR_LOG_DEBUG, "state %s -> %s", wsr_state_name(from), wsr_state_name(to));
    if (c->cfg.on_state) c->cfg.on_state(c, from, to, c->cfg.user);
}

/* Closes the transport and forgets the connection; the queue stays. */
WSR__PRIVATE void wsr__client_teardown(wsr_client *c) {
    c->tr.close_fn(c->tr.self);
    wsr_proto_free(c->proto);
    c->proto = NULL;
    c->in.pos = c->in.len = 0;
    c->hs.pos = c->hs.len = 0;
    c->deadline = 0;
    c->pong_deadline = 0;
    c->ping_wire_end = 0;
    c->ping_out = 0;
    c->rtt_pending = 0;
    c->probe_ms = 0;
    c->ping_sent_at = 0;
    wsr__q_unframe(c);
}

/* The client stops for good: CLOSED, every message still queued dropped
   with `fate`, then on_end once. Callers set c->error first. */
WSR__PRIVATE void wsr__client_end(wsr_client *c, wsr_delivery fate) {
    wsr_error why;
    wsr__client_to(c, WSR_STATE_CLOSED);
    wsr__q_unframe(c);
    wsr__q_drop_unframed(c, fate);
    why = c->last = c->error;
    wsr__log(c->cfg.log_fn, c->cfg.user, WSR_LOG_INFO, "stopped for good: %s", why.message);
    if (c->cfg.on_end) c->cfg.on_end(c, &why, c->cfg.user);
}

/* Rewrites the error's message to say that the client gave up, and why. */
WSR__PRIVATE void wsr__client_gave_up(wsr_client *c, const char *what) {
    char was[WSR_ERROR_MESSAGE_SIZE];
    memcpy(was, c->error.message, sizeof was);
    snprintf(c->error.message, sizeof c->error.message, "%s: %.100s", what, was);
}

/* Ends the current attempt or connection: closes the transport, tells the
   application through on_close (once per attempt), and then decides:
   wait and try again (WAITING), or stop for good (CLOSED, on_end). */
WSR__PRIVATE void wsr__client_finish(wsr_client *c) {
    wsr_error why;
    const wsr_backoff *b = &c->cfg.backoff;
    int retry, delay = 0, forced = c->reconnect_now;
    uint64_t now = c->now;
    char what[96];
    if (c->state == WSR_STATE_CLOSED || c->state == WSR_STATE_IDLE || c->state == WSR_STATE_WAITING) return;
    wsr__client_teardown(c);
    c->reconnect_now = 0;
    if (c->error.close_code == 0) c->error.close_code = 1006;   /* §7.1.5: no close frame */

    /* Count the failure. A connection that stayed open min_uptime_ms was a
       success: the count and the down time start again from here. */
    if (c->is_open && now - c->opened_at >= (uint64_t)WSR__MAX(b->min_uptime_ms, 0)) {
        c->attempt = 0;
        c->prev_delay = 0;
        c->down_since = now;
    }
    c->is_open = 0;
    if (forced) { c->attempt = 0; c->prev_delay = 0; }
    else c->attempt++;
    c->error.attempts = c->attempt;
    c->error.down_ms = now - c->down_since;

    what[0] = '\0';
    if (forced) {
        retry = !c->close_requested;
    } else if (c->close_requested || !c->cfg.reconnect) {
        retry = 0;
    } else {
        retry = c->cfg.retry_fn ? c->cfg.retry_fn(&c->error, c->cfg.user) : wsr_error_retryable(&c->error);
        if (!retry) {
            snprintf(what, sizeof what, "stopped (not worth retrying)");
        } else if (b->max_attempts > 0 && c->attempt >= b->max_attempts) {
            retry = 0;
            snprintf(what, sizeof what, "gave up after %d attempts", c->attempt);
        } else {
            uint32_t rnd = 0;
            c->rand_fn(&rnd, sizeof rnd, c->rand_user);
            delay = wsr_backoff_delay(b, c->attempt, c->prev_delay, rnd);
            /* The server's "not sooner than" wins over our schedule. */
            if (c->error.retry_after_ms > delay) delay = c->error.retry_after_ms;
            if (b->max_elapsed_ms > 0 && c->error.down_ms + (uint64_t)delay > (uint64_t)b->max_elapsed_ms) {
                retry = 0;
                snprintf(what, sizeof what, "gave up after %d attempts in %.1f s", c->attempt,
                         (double)c->error.down_ms / 1000.0);
            }
        }
    }
    if (what[0]) wsr__client_gave_up(c, what);
    why = c->last = c->error;
    wsr__log(c->cfg.log_fn, c->cfg.user, WSR_LOG_INFO, "connection ended: %s (close code %d)", why.message, why.close_code);

    if (!retry) {
        wsr__client_to(c, WSR_STATE_CLOSED);
        if (c->cfg.on_close) c->cfg.on_close(c, &why, c->cfg.user);
        wsr__client_end(c, c->close_requested ? WSR_DELIVERY_CLOSED : WSR_DELIVERY_GAVE_UP);
        return;
    }
    c->prev_delay = delay;
    c->wake_at = now + (uint64_t)delay;
    /* Callbacks here may call wsr_client_close(): it only takes note
       (in_finish), so that on_close is heard before on_end. */
    c->in_finish = 1;
    wsr__client_to(c, WSR_STATE_WAITING);
    if (c->cfg.queue_drop_on_disconnect) wsr__q_drop_unframed(c, WSR_DELIVERY_DISCONNECTED);
    if (c->cfg.on_close) c->cfg.on_close(c, &why, c->cfg.user);
    c->in_finish = 0;
    if (c->close_requested) {
        wsr__client_end(c, WSR_DELIVERY_CLOSED);
        return;
    }
    wsr__log(c->cfg.log_fn, c->cfg.user, WSR_LOG_INFO, "reconnect attempt %d in %d ms", c->attempt, delay);
    if (c->cfg.on_reconnecting && !forced &&
        !c->cfg.on_reconnecting(c, c->attempt, delay, &why, c->cfg.user) && c->state == WSR_STATE_WAITING) {
        wsr__client_gave_up(c, "stopped by on_reconnecting");
        wsr__client_end(c, WSR_DELIVERY_GAVE_UP);
    }
}

/* Fails the current attempt with an error from any layer. */
WSR__PRIVATE wsr_err wsr__client_fail(wsr_client *c, const wsr_error *e) {
    wsr__client_set_error(c, e);
    wsr__client_finish(c);
    return e->code;
}

/* Starts a connection attempt: the transport opens, the state clock starts. */
WSR__PRIVATE wsr_err wsr__client_start(wsr_client *c, uint64_t now) {
    wsr_error e;
    unsigned char raw[16];
    memset(&c->error, 0, sizeof c->error);
    if (!c->started) { c->started = 1; c->down_since = now; }
    c->subprotocol[0] = '\0';
    c->deadline = c->cfg.connect_timeout_ms > 0 ? now + (uint64_t)c->cfg.connect_timeout_ms : 0;
    /* §4.1 item 7: the key is 16 random bytes, base64-encoded. */
    c->rand_fn(raw, sizeof raw, c->rand_user);
    wsr_base64_encode(raw, sizeof raw, c->key);
    wsr__client_to(c, WSR_STATE_CONNECTING);
    if (c->state != WSR_STATE_CONNECTING) return WSR_OK;   /* on_state closed the client */
    wsr__log(c->cfg.log_fn, c->cfg.user, WSR_LOG_INFO, "connecting to %s port %d", c->host, c->url.port);
    memset(&e, 0, sizeof e);
    {
        /* open_fn resolves the name, which may block for seconds: on a
           threaded client, other threads may send meanwhile. (Only the
           client's thread changes the state, so nothing moves under us;
           the host is copied because wsr_client_set_url may replace it.) */
        char *host = wsr__strdup(&c->alloc, c->host);
        wsr_err r;
        if (!host) {
            wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL);
            return wsr__client_fail(c, &e);
        }
        wsr__client_release(c);
        r = c->tr.open_fn(c->tr.self, host, c->url.port, now, &e);
        if (c->lock_fn) c->lock_fn(c->thread);
        wsr__free(&c->alloc, host);
        if (r != WSR_OK) return wsr__client_fail(c, &e);
    }
    return WSR_OK;
}

/* The byte stream is up: write the upgrade request (§4.1). */
WSR__PRIVATE wsr_err wsr__client_connected(wsr_client *c) {
    wsr_error e;
    size_t n = 0;
    wsr_err r;
    size_t need = 256 + c->url.host_len + c->url.path_len + (c->cfg.origin ? strlen(c->cfg.origin) : 0) +
                  (c->cfg.subprotocols ? strlen(c->cfg.subprotocols) : 0) +
                  (c->cfg.headers ? 2 * strlen(c->cfg.headers) : 0);
    if (wsr__buf_reserve(&c->hs, &c->alloc, need) != WSR_OK) {
        wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL);
        return wsr__client_fail(c, &e);
    }
    r = wsr_handshake_request((char *)c->hs.data, c->hs.cap, &n, &c->url, c->key, c->cfg.origin,
                              c->cfg.subprotocols, c->cfg.headers);
    if (r != WSR_OK) {
        wsr__error_set(&e, r, 0, "could not build the upgrade request: %s", wsr_strerror(r));
        return wsr__client_fail(c, &e);
    }
    c->hs.pos = 0;
    c->hs.len = n;
    wsr__client_to(c, WSR_STATE_HANDSHAKE);
    return WSR_OK;
}

/* The upgrade succeeded: the connection is open, and the queue goes first. */
WSR__PRIVATE wsr_err wsr__client_open(wsr_client *c, const wsr_handshake_result *res) {
    wsr_error e;
    c->proto = wsr_proto_new(WSR_ROLE_CLIENT, c->cfg.max_message_size, c->rand_fn, c->rand_user, &c->alloc);
    if (!c->proto) {
        wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL);
        return wsr__client_fail(c, &e);
    }
    memcpy(c->subprotocol, res->subprotocol, sizeof c->subprotocol);
    wsr__buf_consume(&c->in, res->head_len);    /* what follows the head are frames */
    c->deadline = 0;
    c->is_open = 1;
    c->opened_at = c->last_rx = c->last_tx = c->now;
    wsr__client_to(c, WSR_STATE_OPEN);
    if (c->state != WSR_STATE_OPEN) return WSR_OK;
    if (wsr__q_frame(c, 0) != WSR_OK) {
        wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL);
        return wsr__client_fail(c, &e);
    }
    wsr__log(c->cfg.log_fn, c->cfg.user, WSR_LOG_INFO, "open%s%s, %lu queued message(s) go first",
             c->subprotocol[0] ? ", subprotocol " : "", c->subprotocol, (unsigned long)c->q_count);
    if (c->cfg.on_open) c->cfg.on_open(c, c->subprotocol, c->cfg.user);
    return WSR_OK;
}

/* Writes what is waiting: the upgrade request, then encoded frames, framing
   more of the queue as the socket takes it. Stops when it would block. */
WSR__PRIVATE wsr_err wsr__client_write(wsr_client *c) {
    wsr_error e;
    memset(&e, 0, sizeof e);
    for (;;) {
        const unsigned char *data;
        size_t n, put = 0;
        wsr_err r;
        if (wsr__buf_avail(&c->hs)) {
            data = c->hs.data + c->hs.pos;
            n = wsr__buf_avail(&c->hs);
        } else if (c->proto) {
            if ((r = wsr__q_frame(c, 0)) != WSR_OK) {
                wsr__error_set(&e, r, 0, "could not frame a queued message: %s", wsr_strerror(r));
                return wsr__client_fail(c, &e);
            }
            n = wsr_proto_pending(c->proto, &data);
        } else {
            return WSR_OK;
        }
        if (n == 0) return WSR_OK;
        r = c->tr.write_fn(c->tr.self, data, n, &put, &e);
        if (r == WSR_ERR_AGAIN) return WSR_OK;
        if (r != WSR_OK) {
            e.close_code = 1006;
            return wsr__client_fail(c, &e);
        }
        if (wsr__buf_avail(&c->hs)) {
            wsr__buf_consume(&c->hs, put);
        } else {
            wsr_proto_written(c->proto, put);
            if (put) c->last_tx = c->now;
            /* The keepalive just reached the socket: the peer has had no
               chance to answer before now, so its time starts now. */
            if (c->pong_deadline && c->wire_written < c->ping_wire_end && c->wire_written + put >= c->ping_wire_end)
                c->pong_deadline = WSR__MAX(c->pong_deadline, c->now + (uint64_t)c->ping_timeout_ms);
            wsr__q_written(c, put);      /* may run on_delivery */
        }
        if (c->state < WSR_STATE_HANDSHAKE || c->state > WSR_STATE_CLOSING) return WSR_OK;
    }
}

/* Sends the keepalive: a ping whose payload is a sequence number (so its
   pong gives the round-trip time), or the application's heartbeat text. */
WSR__PRIVATE wsr_err wsr__client_send_keepalive(wsr_client *c, uint64_t now, int timeout_ms) {
    unsigned char seq[4];
    wsr_err r;
    wsr__proto_trim(c->proto);      /* quiet for an interval: the big buffers go back */
    c->ping_seq++;
    seq[0] = (unsigned char)(c->ping_seq >> 24); seq[1] = (unsigned char)(c->ping_seq >> 16);
    seq[2] = (unsigned char)(c->ping_seq >> 8);  seq[3] = (unsigned char)c->ping_seq;
    if (c->cfg.heartbeat_text)
        r = wsr_proto_send(c->proto, WSR_OP_TEXT, c->cfg.heartbeat_text, strlen(c->cfg.heartbeat_text), 0);
    else
        r = wsr_proto_send(c->proto, WSR_OP_PING, seq, sizeof seq, 0);
    if (r != WSR_OK) return r;
    {
        const unsigned char *d;
        c->ping_wire_end = c->wire_written + wsr_proto_pending(c->proto, &d);
    }
    c->ping_out = timeout_ms > 0;   /* without a deadline, pings go on every interval */
    c->ping_sent_at = now;
    c->ping_timeout_ms = timeout_ms;
    c->rtt_pending = 1;
    if (timeout_ms > 0) {
        uint64_t d = now + (uint64_t)timeout_ms;
        if (!c->pong_deadline || d < c->pong_deadline) c->pong_deadline = d;
    }
    return WSR_OK;
}

/* Does data contain the NUL-terminated needle? (data is not terminated.) */
WSR__PRIVATE int wsr__contains(const unsigned char *data, size_t len, const char *needle) {
    size_t n = strlen(needle), i;
    if (n == 0) return 1;
    for (i = 0; n <= len && i <= len - n; i++)
        if (data[i] == (unsigned char)needle[0] && memcmp(data + i, needle, n) == 0) return 1;
    return 0;
}

/* Is this inbound message the answer to our application-level heartbeat? */
WSR__PRIVATE int wsr__client_is_heartbeat(const wsr_client *c, const wsr_event *ev) {
    if (!c->cfg.heartbeat_text) return 0;
    if (c->cfg.heartbeat_match_fn) return c->cfg.heartbeat_match_fn(ev->msg_type, ev->data, ev->len, c->cfg.user);
    return c->cfg.heartbeat_reply && ev->msg_type == WSR_MSG_TEXT &&
           wsr__contains(ev->data, ev->len, c->cfg.heartbeat_reply);
}

/* Handles one event from the codec. */
WSR__PRIVATE void wsr__client_event(wsr_client *c, const wsr_event *ev) {
    switch (ev->type) {
    case WSR_EVENT_MESSAGE:
        if (wsr__client_is_heartbeat(c, ev)) {
            if (c->rtt_pending) c->rtt_ms = (int)(c->now - c->ping_sent_at);
            c->rtt_pending = 0;
            break;
        }
        /* Also in CLOSING: the server may have sent it before it saw our close. */
        if (c->cfg.on_message) c->cfg.on_message(c, ev->msg_type, ev->data, ev->len, c->cfg.user);
        break;
    case WSR_EVENT_PONG:
        if (ev->len == 4 && !c->cfg.heartbeat_text) {
            uint32_t seq = (uint32_t)ev->data[0] << 24 | (uint32_t)ev->data[1] << 16 |
                           (uint32_t)ev->data[2] << 8 | ev->data[3];
            if (c->rtt_pending && seq == c->ping_seq) {
                c->rtt_ms = (int)(c->now - c->ping_sent_at);
                c->rtt_pending = 0;
            }
        }
        if (c->cfg.on_pong) c->cfg.on_pong(c, ev->data, ev->len, c->cfg.user);
        break;
    case WSR_EVENT_CLOSE:
        if (!c->close_requested) {
            /* The server closes. Our echo is queued; §7.1.1 asks the client
               to let the server close the TCP connection first. */
            wsr_error e;
            size_t rl = WSR__MIN(ev->len, (size_t)WSR_MAX_CLOSE_REASON);
            wsr__error_set(&e, WSR_ERR_PEER_CLOSED, 0, "server closed the connection with code %d%s%.*s",
                           ev->close_code, rl ? ": " : "", (int)wsr__utf8_cut(ev->data, rl, 80), (const char *)ev->data);
            e.close_code = ev->close_code;
            memcpy(e.close_reason, ev->data, rl);
            e.close_reason[rl] = '\0';
            /* The same verdict as wsr_error_retryable(): only the codes that
               blame our messages (1002, 1003, 1007-1010) say "it would fail
               the same way". */
            e.transient = !(ev->close_code == 1002 || ev->close_code == 1003 ||
                            (ev->close_code >= 1007 && ev->close_code <= 1010));
            /* Restarting or overloaded: not sooner than retry_later_ms. */
            if (ev->close_code == 1012 || ev->close_code == 1013) e.retry_after_ms = c->cfg.backoff.retry_later_ms;
            wsr__client_set_error(c, &e);
        } else {
            /* The server answered our close: the handshake is complete. Until
               now the error was left unset, so that a timeout or a dropped
               link during our close is reported as what it is (1006). */
            wsr_error e;
            wsr__error_set(&e, WSR_ERR_CLOSED, 0, "closed by the application (server answered %d)", ev->close_code);
            e.close_code = ev->close_code;
            wsr__client_set_error(c, &e);
        }
        if (c->state == WSR_STATE_OPEN) {
            wsr__client_to(c, WSR_STATE_CLOSING);
            c->deadline = 0;
        }
        break;
    default:
        break;
    }
}

/* Turns Retry-After of a refused upgrade into a wait in milliseconds. */
WSR__PRIVATE long long wsr__unix_time(void);
WSR__PRIVATE int wsr__retry_after_ms(const wsr_handshake_result *res) {
    long long s = -1;
    if (res->retry_after_s >= 0) s = res->retry_after_s;
    else if (res->retry_after_date >= 0) s = res->retry_after_date - wsr__unix_time();
    if (s <= 0) return 0;
    return s > 86400 ? 86400 * 1000 : (int)s * 1000;   /* a day at most */
}

/* §7.1.7: the server broke the protocol. The close frame with the code is
   queued; send it if the socket takes it, then drop. */
WSR__PRIVATE wsr_err wsr__client_broken(wsr_client *c, const wsr_error *e, wsr_err r) {
    wsr__client_set_error(c, e);
    wsr__client_write(c);
    wsr__client_finish(c);
    return r;
}

/* Reads what the transport has and feeds it to the handshake check or the
   codec. Reads until the transport would block, at most 64 times per call so
   timers still run under a flood. */
WSR__PRIVATE wsr_err wsr__client_read(wsr_client *c) {
    wsr_error e;
    int rounds, drained = 0, checked_eof = 0;
    memset(&e, 0, sizeof e);
    /* A read shorter than the space offered means the socket is empty: stop
       there instead of paying one more recv() for EAGAIN; poll says when
       more arrives. */
    for (rounds = 0; rounds < 64 && !drained && c->state >= WSR_STATE_HANDSHAKE && c->state <= WSR_STATE_CLOSING;
         rounds++) {
        size_t got = 0, room = 0;
        unsigned char *dst = NULL;
        int direct = 0;
        wsr_err r;
        /* The rest of a big frame goes straight to where the message is
           gathered, in reads as large as what is due. Anything else: read
           big, so every complete frame in one read is parsed from where it
           lies, and a large buffer means fewer system calls per message. */
        if (c->proto && !wsr__buf_avail(&c->in) && (room = wsr__proto_direct(c->proto, &dst)) >= WSR__DIRECT_MIN) {
            direct = 1;
        } else {
            if (wsr__buf_reserve(&c->in, &c->alloc, 65536) != WSR_OK) {
                wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL);
                return wsr__client_fail(c, &e);
            }
            dst = c->in.data + c->in.len;
            room = c->in.cap - c->in.len;
        }
        r = c->tr.read_fn(c->tr.self, dst, room, &got, &e);
        if (r == WSR_ERR_AGAIN) return WSR_OK;
        if (r != WSR_OK) {
            /* End of stream after the close handshake is the normal ending. */
            if (r == WSR_ERR_EOF && c->proto && wsr_proto_close_received(c->proto) &&
                wsr_proto_close_sent(c->proto)) {
                wsr__client_finish(c);
                return WSR_OK;
            }
            if (r == WSR_ERR_EOF && c->state == WSR_STATE_HANDSHAKE)
                wsr__error_set(&e, WSR_ERR_HANDSHAKE, 0, "server closed the connection during the upgrade");
            if (r == WSR_ERR_EOF) e.transient = 1;
            e.close_code = 1006;
            return wsr__client_fail(c, &e);
        }
        /* Proof of life: whatever arrives answers the keepalive. */
        c->last_rx = c->now;
        c->pong_deadline = 0;
        c->ping_out = 0;
        drained = got < room;
        if (direct) {
            wsr_event ev;
            if ((r = wsr__proto_direct_done(c->proto, got, &ev, &e)) != WSR_OK) return wsr__client_broken(c, &e, r);
            if (ev.type != WSR_EVENT_NONE) wsr__client_event(c, &ev);
            got = 0;                                /* nothing for the read buffer */
        }
        c->in.len += got;
        if (c->state == WSR_STATE_HANDSHAKE) {
            wsr_handshake_result res;
            r = wsr_handshake_response_check((const char *)c->in.data + c->in.pos, wsr__buf_avail(&c->in),
                                             c->cfg.max_handshake_size, c->key, c->cfg.subprotocols, &res, &e);
            if (r == WSR_ERR_AGAIN) continue;
            if (r != WSR_OK) {
                if (e.http_status == 429 || e.http_status == 503) e.retry_after_ms = wsr__retry_after_ms(&res);
                return wsr__client_fail(c, &e);
            }
            if ((r = wsr__client_open(c, &res)) != WSR_OK) return r;
        }
        /* Parse every complete frame we have. */
        while (c->state == WSR_STATE_OPEN || c->state == WSR_STATE_CLOSING) {
            wsr_event ev;
            size_t used = 0;
            r = wsr_proto_parse(c->proto, c->in.data + c->in.pos, wsr__buf_avail(&c->in), &used, &ev, &e);
            wsr__buf_consume(&c->in, used);
            if (r != WSR_OK) return wsr__client_broken(c, &e, r);
            if (ev.type == WSR_EVENT_NONE) break;
            wsr__client_event(c, &ev);
        }
        /* A short read says the socket was empty, but not whether the peer
           closed right behind the bytes we got (a server that pings, then
           drops us). Messages are about to be written: look once more, so a
           closed peer is noticed first and the messages wait for the next
           connection instead of going into a dead socket. */
        if (drained && c->q_count > 0 && !checked_eof) {
            drained = 0;
            checked_eof = 1;
        }
    }
    return WSR_OK;
}

/* Acts on wsr_client_reconnect(): drop the link (saying so with a close
   frame if the socket takes it), skip the wait, or restart a client that
   gave up. The next attempt starts at once. */
WSR__PRIVATE void wsr__client_do_reconnect(wsr_client *c, uint64_t now) {
    if (c->state >= WSR_STATE_CONNECTING && c->state <= WSR_STATE_CLOSING) {
        wsr_error e;
        wsr__error_set(&e, WSR_ERR_CLOSED, 0, "reconnect requested by the application");
        e.close_code = 1006;
        if (c->state == WSR_STATE_OPEN && wsr_proto_close(c->proto, 1001, "reconnecting", 12) == WSR_OK)
            wsr__client_write(c);
        if (c->state >= WSR_STATE_CONNECTING && c->state <= WSR_STATE_CLOSING) {
            c->error = e;
            wsr__client_finish(c);       /* sees reconnect_now: WAITING, no wait */
        }
    } else if (c->state == WSR_STATE_CLOSED) {
        c->attempt = 0;
        c->prev_delay = 0;
        c->down_since = now;
        wsr__client_to(c, WSR_STATE_WAITING);
    }
    c->reconnect_now = 0;
    c->wake_at = now;
}

/* One turn of the state machine: start, connect, read, write, timers.
   revents says which of WSR_POLL_IN / WSR_POLL_OUT the socket reported.
   Reads come before writes, so a peer that has gone is noticed before
   more messages are written into a dead socket. */
WSR__PRIVATE wsr_err wsr__client_do_close(wsr_client *c, int code, const char *reason, size_t rl);
WSR__PRIVATE wsr_err wsr__client_run_once(wsr_client *c, uint64_t now, int revents) {
    wsr_error e;
    wsr_err r = WSR_OK;
    memset(&e, 0, sizeof e);
    c->now = now;
    if (c->close_pending) {
        c->close_pending = 0;
        wsr__client_do_close(c, c->close_code, c->close_reason, strlen(c->close_reason));
    }
    wsr__q_age(c, now);
    if (c->close_requested) c->reconnect_now = 0;
    if (c->state != WSR_STATE_OPEN) c->probe_ms = 0;
    if (c->reconnect_now) wsr__client_do_reconnect(c, now);
    if (c->state == WSR_STATE_IDLE && !c->close_requested) {
        if ((r = wsr__client_start(c, now)) != WSR_OK) return r;
    }
    if (c->state == WSR_STATE_WAITING && now >= c->wake_at) {
        if ((r = wsr__client_start(c, now)) != WSR_OK) return r;
    }
    if (c->state == WSR_STATE_CONNECTING) {
        r = c->tr.connect_fn(c->tr.self, now, &e);
        if (r == WSR_OK) {
            if ((r = wsr__client_connected(c)) != WSR_OK) return r;
            revents |= WSR_POLL_OUT;    /* the request goes out now */
        } else if (r != WSR_ERR_AGAIN) {
            return wsr__client_fail(c, &e);
        }
    }
    if (c->state >= WSR_STATE_HANDSHAKE && c->state <= WSR_STATE_CLOSING) {
        if (c->tr.pending_fn && c->tr.pending_fn(c->tr.self)) revents |= WSR_POLL_IN;   /* bytes poll cannot see */
        if ((revents & WSR_POLL_IN) && (r = wsr__client_read(c)) != WSR_OK) return r;
        /* Also the replies the codec queued while parsing (pongs, the close
           echo): they go out now, not when the application next sends. */
        if ((revents & (WSR_POLL_IN | WSR_POLL_OUT)) && c->state >= WSR_STATE_HANDSHAKE &&
            c->state <= WSR_STATE_CLOSING && (r = wsr__client_write(c)) != WSR_OK)
            return r;
    }
    /* Keepalive. Timers are checked after reading, so traffic that arrived
       while the application was busy counts before any deadline does. */
    if (c->state == WSR_STATE_OPEN) {
        /* A keepalive still queued behind our own data, on a socket that
           keeps taking bytes, is a slow link, not a dead one: wait while
           the bytes move. A socket that took nothing for the whole timeout
           means a peer that stopped reading. */
        if (c->pong_deadline && now >= c->pong_deadline && c->wire_written < c->ping_wire_end &&
            now - c->last_tx < (uint64_t)c->ping_timeout_ms)
            c->pong_deadline = c->last_tx + (uint64_t)c->ping_timeout_ms;
        if (c->pong_deadline && now >= c->pong_deadline) {
            wsr__error_set(&e, WSR_ERR_TIMEOUT, 0, "no answer to the keepalive within %d ms: the peer or the path is dead",
                           (int)(now - c->ping_sent_at));
            e.transient = 1;
            e.close_code = 1006;
            return wsr__client_fail(c, &e);
        }
        /* Due an interval after the last inbound traffic (or the last ping,
           when pings have no deadline and so go on regardless). */
        if (c->probe_ms || (c->cfg.ping_interval_ms > 0 && !c->ping_out &&
                            now - WSR__MAX(c->last_rx, c->ping_sent_at) >= (uint64_t)c->cfg.ping_interval_ms)) {
            int timeout = c->probe_ms ? c->probe_ms : c->cfg.pong_timeout_ms;
            c->probe_ms = 0;
            /* Write it now only if this step has read: otherwise a peer
               that has gone meanwhile would get the ping, and the queue
               behind it, in its dead socket. Pending output makes the
               next wait return at once, and that step reads first. */
            if (wsr__client_send_keepalive(c, now, timeout) == WSR_OK && (revents & WSR_POLL_IN) &&
                (r = wsr__client_write(c)) != WSR_OK)
                return r;
        }
    }
    /* The close timer starts at the first step in CLOSING. */
    if (c->state == WSR_STATE_CLOSING && !c->deadline && c->cfg.close_timeout_ms > 0)
        c->deadline = now + (uint64_t)c->cfg.close_timeout_ms;
    if (c->deadline && now >= c->deadline) {
        if (c->state == WSR_STATE_CONNECTING || c->state == WSR_STATE_HANDSHAKE) {
            wsr__error_set(&e, WSR_ERR_TIMEOUT, 0, "%s did not finish within connect_timeout_ms (%d ms)",
                           c->state == WSR_STATE_CONNECTING ? "TCP connect" : "WebSocket upgrade",
                           c->cfg.connect_timeout_ms);
            e.transient = 1;
            return wsr__client_fail(c, &e);
        }
        if (c->state == WSR_STATE_CLOSING) {
            if (!(c->proto && wsr_proto_close_received(c->proto))) {
                wsr__error_set(&e, WSR_ERR_TIMEOUT, 0, "close handshake did not finish within close_timeout_ms (%d ms)",
                               c->cfg.close_timeout_ms);
                e.transient = 1;
                e.close_code = 1006;
                wsr__client_set_error(c, &e);
            }
            wsr__client_finish(c);
        }
    }
    return r == WSR_ERR_AGAIN ? WSR_OK : r;
}

WSR__PRIVATE wsr_err wsr__client_run(wsr_client *c, uint64_t now, int revents) {
    wsr_err r;
    c->in_run++;
    r = wsr__client_run_once(c, now, revents);
    c->in_run--;
    return r;
}

WSR_API void wsr_client_config_init(wsr_client_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->max_message_size = WSR_DEFAULT_MAX_MESSAGE;
    cfg->max_handshake_size = WSR_DEFAULT_MAX_HANDSHAKE;
    cfg->connect_timeout_ms = 10000;
    cfg->close_timeout_ms = 5000;
    cfg->reconnect = 1;
    cfg->backoff.initial_ms = 500;
    cfg->backoff.max_ms = 30000;
    cfg->backoff.factor = 2.0;
    cfg->backoff.jitter = WSR_JITTER_EQUAL;
    cfg->backoff.min_uptime_ms = 5000;
    cfg->backoff.retry_later_ms = 2000;
    cfg->ping_interval_ms = 20000;
    cfg->pong_timeout_ms = 10000;
    cfg->tcp_keepalive_idle_s = 30;
    cfg->tcp_keepalive_interval_s = 10;
    cfg->tcp_keepalive_count = 3;
    cfg->tcp_user_timeout_ms = 30000;
    cfg->queue_max_bytes = (size_t)64 * 1024 * 1024;
    cfg->queue_max_messages = 100000;
}

WSR_API wsr_err wsr_client_step(wsr_client *c, uint64_t now_ms) {
    if (!c) return WSR_ERR_INVALID;
    if (c->thread) return WSR_ERR_STATE;
    return wsr__client_run(c, now_ms, WSR_POLL_IN | WSR_POLL_OUT);
}

WSR_API uintptr_t wsr_client_socket(const wsr_client *c) {
    if (!c || c->state == WSR_STATE_IDLE || c->state == WSR_STATE_WAITING || c->state == WSR_STATE_CLOSED)
        return WSR_INVALID_SOCKET;
    return c->tr.socket_fn(c->tr.self);
}

WSR_API int wsr_client_events(const wsr_client *c) {
    int ev;
    const unsigned char *d;
    if (!c || c->state == WSR_STATE_IDLE || c->state == WSR_STATE_WAITING || c->state == WSR_STATE_CLOSED)
        return 0;
    ev = c->tr.events_fn(c->tr.self);
    if (c->state != WSR_STATE_CONNECTING) ev |= WSR_POLL_IN;
    if (wsr__buf_avail(&c->hs) || (c->proto && wsr_proto_pending(c->proto, &d)) ||
        (c->state == WSR_STATE_OPEN && c->q_framed < wsr__q_end(c)))
        ev |= WSR_POLL_OUT;
    return ev;
}

/* The earliest timer, as an absolute time; 0 when the next step is due at
   once, UINT64_MAX when nothing is timed. */
WSR__PRIVATE uint64_t wsr__client_next_timer(const wsr_client *c) {
    uint64_t t = UINT64_MAX;
    if (c->state == WSR_STATE_CLOSED) return c->reconnect_now && !c->close_requested ? 0 : t;
    if (c->state >= WSR_STATE_HANDSHAKE && c->state <= WSR_STATE_CLOSING && c->tr.pending_fn &&
        c->tr.pending_fn(c->tr.self))
        return 0;                         /* the transport holds bytes: read them now */
    if (c->state == WSR_STATE_IDLE || (c->reconnect_now && !c->close_requested) ||
        (c->probe_ms && c->state == WSR_STATE_OPEN) || c->q_stamped < wsr__q_end(c))
        return 0;
    if (c->state == WSR_STATE_WAITING) t = c->wake_at;
    if (c->state == WSR_STATE_CLOSING && !c->deadline && c->cfg.close_timeout_ms > 0) return 0;
    if (c->deadline) t = WSR__MIN(t, c->deadline);
    if (c->state == WSR_STATE_CONNECTING && c->tr.timer_fn) {
        uint64_t tt = c->tr.timer_fn(c->tr.self);
        if (tt) t = WSR__MIN(t, tt);
    }
    if (c->state == WSR_STATE_OPEN) {
        if (c->pong_deadline) t = WSR__MIN(t, c->pong_deadline);
        if (c->cfg.ping_interval_ms > 0 && !c->ping_out)
            t = WSR__MIN(t, WSR__MAX(c->last_rx, c->ping_sent_at) + (uint64_t)c->cfg.ping_interval_ms);
    }
    if (c->cfg.queue_ttl_ms > 0 && c->q_framed < wsr__q_end(c)) {
        wsr__rec r;
        wsr__rec_get(c, c->q_framed, &r);
        t = WSR__MIN(t, r.queued_at + (uint64_t)c->cfg.queue_ttl_ms);
    }
    return t;
}

WSR_API int wsr_client_timeout_ms(const wsr_client *c, uint64_t now_ms) {
    uint64_t t;
    if (!c) return -1;
    t = wsr__client_next_timer(c);
    if (t == UINT64_MAX) return -1;
    if (t <= now_ms) return 0;
    return t - now_ms > 0x7FFFFFFF ? 0x7FFFFFFF : (int)(t - now_ms);
}

WSR_API wsr_err wsr_send_tracked(wsr_client *c, wsr_msg_type type, const void *data, size_t len, uint64_t tag) {
    wsr__rec r;
    wsr_err e = WSR_OK;
    if (!c || (len && !data) || (type != WSR_MSG_TEXT && type != WSR_MSG_BINARY)) return WSR_ERR_INVALID;
    /* §5.6: a text message is UTF-8. The server would fail the link with
       1007 (and we would not retry): refuse it here instead. */
    if (type == WSR_MSG_TEXT && !wsr__utf8_valid(data, len)) return WSR_ERR_INVALID;
    wsr__client_lock(c);
    /* Closed for good, or closing with no next connection to carry it. */
    if (c->close_requested || c->state == WSR_STATE_CLOSED || (c->state == WSR_STATE_CLOSING && !c->cfg.reconnect)) {
        e = WSR_ERR_STATE;
        goto done;
    }
    /* Room for it? Under DROP_OLDEST the oldest waiting messages make room,
       but only if dropping all of them would be enough. */
    if (len > c->cfg.queue_max_bytes || c->cfg.queue_max_messages == 0) { e = WSR_ERR_QUEUE_FULL; goto done; }
    if (c->q_bytes > c->cfg.queue_max_bytes - len || c->q_count >= c->cfg.queue_max_messages) {
        if (c->cfg.queue_overflow != WSR_OVERFLOW_DROP_OLDEST || c->qf_bytes > c->cfg.queue_max_bytes - len ||
            c->qf_count >= c->cfg.queue_max_messages) {
            e = WSR_ERR_QUEUE_FULL;
            goto done;
        }
        while (c->q_bytes > c->cfg.queue_max_bytes - len || c->q_count >= c->cfg.queue_max_messages) {
            if (c->q_framed >= wsr__q_end(c)) { e = WSR_ERR_QUEUE_FULL; goto done; }
            wsr__q_remove(c, c->q_framed, WSR_DELIVERY_DROPPED_OVERFLOW);
            /* on_delivery may have closed the client: then this one is refused too. */
            if (c->close_requested || c->state == WSR_STATE_CLOSED) { e = WSR_ERR_STATE; goto done; }
        }
    }
    if (wsr__buf_reserve(&c->queue, &c->alloc, sizeof r + len) != WSR_OK) { e = WSR_ERR_NOMEM; goto done; }
    memset(&r, 0, sizeof r);
    r.seq = c->q_seq++;
    r.tag = tag;
    r.len = len;
    r.type = (int)type;
    wsr__buf_append(&c->queue, &c->alloc, &r, sizeof r);
    wsr__buf_append(&c->queue, &c->alloc, data, len);
    c->q_bytes += len;
    c->q_count++;
    /* While open, encode at once: the next poll only has to write. (If that
       fails for memory, the message is queued all the same and the next
       write tries again.) */
    if (c->state == WSR_STATE_OPEN) wsr__q_frame(c, 0);
done:
    wsr__client_unlock(c);
    return e;
}

WSR_API wsr_err wsr_send(wsr_client *c, wsr_msg_type type, const void *data, size_t len) {
    return wsr_send_tracked(c, type, data, len, 0);
}

WSR_API wsr_err wsr_send_text(wsr_client *c, const char *text, size_t len) {
    return wsr_send_tracked(c, WSR_MSG_TEXT, text, len, 0);
}

WSR_API wsr_err wsr_send_binary(wsr_client *c, const void *data, size_t len) {
    return wsr_send_tracked(c, WSR_MSG_BINARY, data, len, 0);
}

WSR_API wsr_err wsr_send_ping(wsr_client *c, const void *data, size_t len) {
    wsr_err e;
    if (!c || (len && !data) || len > WSR_MAX_CONTROL_PAYLOAD) return WSR_ERR_INVALID;
    wsr__client_lock(c);
    e = c->state != WSR_STATE_OPEN ? WSR_ERR_STATE : wsr_proto_send(c->proto, WSR_OP_PING, data, len, 0);
    wsr__client_unlock(c);
    return e;
}

/* The close itself, on the client's own thread (or with no thread). */
WSR__PRIVATE wsr_err wsr__client_do_close(wsr_client *c, int code, const char *reason, size_t rl) {
    wsr_error e;
    wsr_err r;
    wsr__error_set(&e, WSR_ERR_CLOSED, 0, "closed by the application (code %d)", code);
    e.close_code = code;
    c->close_requested = 1;
    if (c->state == WSR_STATE_CLOSED) return WSR_ERR_STATE;
    if (c->in_finish) {
        /* Called back from wsr__client_finish: it ends the client itself,
           after on_close. */
        c->error = e;
        return WSR_OK;
    }
    if (c->state == WSR_STATE_OPEN) {
        /* What is queued goes out before the close frame (what cannot be
           framed for lack of memory is reported CLOSED at the end). The
           error is recorded when the server answers (see wsr__client_event);
           if it never does, the timeout is the error. */
        wsr__q_frame(c, 1);
        if ((r = wsr_proto_close(c->proto, code, reason, rl)) != WSR_OK) {
            c->close_requested = 0;          /* nothing changed: the caller may try again */
            return r;
        }
        wsr__client_to(c, WSR_STATE_CLOSING);   /* the close timer starts on the next step */
        c->deadline = 0;
        return WSR_OK;
    }
    if (c->state == WSR_STATE_CLOSING) return WSR_OK;   /* the peer closed first: already closing */
    /* Not connected: stop right here, without waiting for anything. */
    if (c->state == WSR_STATE_IDLE || c->state == WSR_STATE_WAITING) {
        c->error = e;
        wsr__client_end(c, WSR_DELIVERY_CLOSED);
    } else {
        wsr__client_set_error(c, &e);
        wsr__client_finish(c);
    }
    return WSR_OK;
}

WSR_API wsr_err wsr_client_close(wsr_client *c, int code, const char *reason) {
    size_t rl = reason ? strlen(reason) : 0;
    wsr_err r = WSR_OK;
    if (!c) return WSR_ERR_INVALID;
    if (!wsr_close_code_valid(code) || rl > WSR_MAX_CLOSE_REASON || !wsr__utf8_valid(reason, rl))
        return WSR_ERR_INVALID;
    wsr__client_lock(c);
    if (c->close_requested || c->state == WSR_STATE_CLOSED) {
        r = WSR_ERR_STATE;
    } else if (c->thread && !c->is_loop_fn(c->thread)) {
        /* From another thread: take note, and let the client's thread do
           it, so that callbacks run there and no socket is closed under
           its poll(). Sends are refused from now on. */
        c->close_requested = 1;
        c->close_pending = 1;
        c->close_code = code;
        if (rl) memcpy(c->close_reason, reason, rl);
        c->close_reason[rl] = '\0';
    } else {
        r = wsr__client_do_close(c, code, reason, rl);
    }
    wsr__client_unlock(c);
    return r;
}

WSR_API wsr_err wsr_client_reconnect(wsr_client *c) {
    wsr_err r = WSR_OK;
    if (!c) return WSR_ERR_INVALID;
    wsr__client_lock(c);
    if (c->close_requested) r = WSR_ERR_STATE;
    else c->reconnect_now = 1;
    wsr__client_unlock(c);
    return r;
}

WSR_API wsr_err wsr_client_probe(wsr_client *c, int timeout_ms) {
    wsr_err r = WSR_OK;
    if (!c || timeout_ms <= 0) return WSR_ERR_INVALID;
    wsr__client_lock(c);
    if (c->close_requested || c->state == WSR_STATE_CLOSED) r = WSR_ERR_STATE;
    else if (c->state == WSR_STATE_WAITING) c->reconnect_now = 1;
    else if (c->state == WSR_STATE_OPEN) c->probe_ms = timeout_ms;
    wsr__client_unlock(c);
    return r;
}

WSR_API wsr_err wsr_client_set_url(wsr_client *c, const char *url, wsr_error *err) {
    wsr_url u;
    wsr_error e;
    char *copy, *host;
    if (!c || !url) { wsr__error_set(err, WSR_ERR_INVALID, 0, "no url"); return WSR_ERR_INVALID; }
    copy = wsr__strdup(&c->alloc, url);
    if (!copy) { wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL); return WSR_ERR_NOMEM; }
    if (wsr_url_parse(copy, &u, &e) != WSR_OK || u.secure != c->url.secure) {
        /* The transport (with TLS or without) was chosen with the first URL. */
        if (e.code == WSR_OK && u.secure && !WSR__TLS)
            wsr__error_set(&e, WSR_ERR_TLS_UNAVAILABLE, 0, "wss:// needs TLS, which is not compiled in");
        else if (e.code == WSR_OK)
            wsr__error_set(&e, WSR_ERR_INVALID, 0, "cannot switch between ws:// and wss:// (create another client)");
        if (err) *err = e;
        wsr__free(&c->alloc, copy);
        return e.code;
    }
    host = (char *)wsr__alloc(&c->alloc, u.host_len + 1);
    if (!host) { wsr__free(&c->alloc, copy); wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL); return WSR_ERR_NOMEM; }
    memcpy(host, u.host, u.host_len);
    host[u.host_len] = '\0';
    wsr__client_lock(c);
    wsr__free(&c->alloc, (void *)c->cfg.url);
    wsr__free(&c->alloc, c->host);
    c->cfg.url = copy;
    c->url = u;
    c->host = host;
    wsr__client_unlock(c);
    if (err) wsr__error_set(err, WSR_OK, 0, NULL);
    return WSR_OK;
}

WSR_API wsr_err wsr_client_set_headers(wsr_client *c, const char *headers) {
    char *copy = NULL, probe[1];
    size_t n;
    wsr_err r = WSR_OK;
    if (!c) return WSR_ERR_INVALID;
    wsr__client_lock(c);
    if (headers && wsr_handshake_request(probe, 0, &n, &c->url, "x", NULL, NULL, headers) == WSR_ERR_INVALID)
        r = WSR_ERR_INVALID;
    else if (headers && !(copy = wsr__strdup(&c->alloc, headers)))
        r = WSR_ERR_NOMEM;
    if (r == WSR_OK) {
        wsr__free(&c->alloc, (void *)c->cfg.headers);
        c->cfg.headers = copy;
    }
    wsr__client_unlock(c);
    return r;
}

WSR_API size_t wsr_client_clear_queue(wsr_client *c) {
    size_t n;
    if (!c) return 0;
    wsr__client_lock(c);
    n = wsr__q_drop_unframed(c, WSR_DELIVERY_CLEARED);
    wsr__client_unlock(c);
    return n;
}

WSR_API wsr_state wsr_client_state(const wsr_client *c) {
    wsr_state s;
    if (!c) return WSR_STATE_CLOSED;
    wsr__client_lock(c);
    s = c->state;
    wsr__client_release(c);
    return s;
}
WSR_API const wsr_error *wsr_client_error(const wsr_client *c) { return &c->last; }
WSR_API void wsr_client_get_error(const wsr_client *c, wsr_error *out) {
    if (!c || !out) return;
    wsr__client_lock(c);
    *out = c->last;
    wsr__client_release(c);
}
WSR_API void *wsr_client_user(const wsr_client *c) { return c->cfg.user; }
/* Getters read under the lock, so a threaded client is read consistently. */
WSR_API size_t wsr_client_queued_bytes(const wsr_client *c) {
    size_t v;
    if (!c) return 0;
    wsr__client_lock(c);
    v = c->q_bytes;
    wsr__client_release(c);
    return v;
}
WSR_API size_t wsr_client_queued_messages(const wsr_client *c) {
    size_t v;
    if (!c) return 0;
    wsr__client_lock(c);
    v = c->q_count;
    wsr__client_release(c);
    return v;
}
WSR_API int wsr_client_rtt_ms(const wsr_client *c) {
    int v;
    if (!c) return -1;
    wsr__client_lock(c);
    v = c->rtt_ms;
    wsr__client_release(c);
    return v;
}

/* ------------------------------------------------------------------------
   Platform: clock, random bytes, OS errors, the TCP transport
   ------------------------------------------------------------------------ */
/* >>platform */

WSR__PRIVATE wsr_err wsr__os_error(wsr_error *err, int os, const char *doing);

#if WSR__POSIX
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
#  include <stdlib.h>              /* arc4random_buf */
#  define WSR__HAVE_ARC4RANDOM 1
#elif defined(__linux__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
#  include <sys/random.h>          /* getrandom */
#  define WSR__HAVE_GETRANDOM 1
#endif
#if !defined(CLOCK_MONOTONIC)
#  error "POSIX is hidden: compile the implementation with -D_POSIX_C_SOURCE=200809L (or -std=gnu99), or include ws_reconnect.h before any system header"
#endif
#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0           /* macOS: SO_NOSIGPIPE on the socket instead */
#endif

/* What the code shared by both platforms (the TCP transport, the server)
   knows of sockets: a type, "no socket", the last error and its codes. */
typedef int wsr__sock;
#define WSR__NO_SOCK (-1)
typedef struct pollfd wsr__pollfd;
#define wsr__sock_errno() errno
#define WSR__E_INTR EINTR
#define WSR__E_WOULDBLOCK(e) ((e) == EAGAIN || (e) == EWOULDBLOCK)
#define WSR__E_INPROGRESS(e) ((e) == EINPROGRESS || (e) == EINTR)
#define WSR__E_TIMEDOUT ETIMEDOUT
#define WSR__E_CONNABORTED ECONNABORTED
#define WSR__ERRNO_WORD "errno"
#define WSR__SHUT_WR SHUT_WR

/* The system's words for an error code. None on POSIX: the errno name in
   the message says it (strerror's text is not thread-safe everywhere). */
WSR__PRIVATE void wsr__os_text(int os, char *out, size_t cap) { (void)os; if (cap) out[0] = 0; }

WSR__PRIVATE int wsr__net_start(void) { return 0; }
WSR__PRIVATE void wsr__net_stop(void) {}
WSR__PRIVATE void wsr__sock_close(wsr__sock s) { close(s); }
/* Has a non-blocking connect finished (succeeded or failed)? SO_ERROR then
   says which. poll() reports both as writable or hung up. */
#define WSR__CONNECT_RECHECK_MS 0      /* poll() wakes us when it finishes: no need to ask again */
WSR__PRIVATE int wsr__connect_finished(wsr__sock s) {
    struct pollfd p;
    p.fd = s;
    p.events = POLLOUT;
    p.revents = 0;
    return poll(&p, 1, 0) > 0;
}
WSR__PRIVATE int wsr__poll(wsr__pollfd *p, size_t n, int timeout_ms) { return poll(p, (nfds_t)n, timeout_ms); }
WSR__PRIVATE void wsr__sleep_ms(int ms) { if (ms > 0) poll(NULL, 0, ms); }
/* Lets a restarted server bind at once while old connections sit in TIME_WAIT. */
WSR__PRIVATE void wsr__sock_reuse(wsr__sock s) { int one = 1; setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); }

WSR_API uint64_t wsr_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wall-clock seconds since 1970, only for Retry-After given as a date. */
WSR__PRIVATE long long wsr__unix_time(void) { return (long long)time(NULL); }

/* Random bytes for mask keys and Sec-WebSocket-Key, from the OS (never
   rand(): §10.3 wants keys an attacker cannot predict). */
WSR__PRIVATE void wsr__os_random(void *buf, size_t n, void *user) {
    unsigned char *p = (unsigned char *)buf;
    (void)user;
#if defined(WSR__HAVE_ARC4RANDOM)
    arc4random_buf(buf, n);
    return;
#else
#  if defined(WSR__HAVE_GETRANDOM)
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) { if (errno == EINTR) continue; break; }   /* ENOSYS: old kernel, use the file */
        p += got; n -= (size_t)got;
    }
    if (n == 0) return;
#  endif
    {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        while (fd >= 0 && n > 0) {
            ssize_t got = read(fd, p, n);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            p += got; n -= (size_t)got;
        }
        if (fd >= 0) close(fd);
        /* No entropy source at all: better to stop than to send predictable keys. */
        WSR_ASSERT(n == 0 && "no OS random source (getrandom, /dev/urandom)");
    }
#endif
}

/* The errno table: every OS error becomes one wsr_err and one class.
   Transient means a later attempt may succeed (the network or the server may
   come back); permanent means it would fail the same way again. */
typedef struct wsr__os_err { int os; wsr_err code; int transient; const char *name; } wsr__os_err;

static const wsr__os_err wsr__errno_table[] = {
    { ECONNREFUSED, WSR_ERR_REFUSED, 1, "ECONNREFUSED" },
    { ECONNRESET, WSR_ERR_RESET, 1, "ECONNRESET" },
    { ECONNABORTED, WSR_ERR_RESET, 1, "ECONNABORTED" },
    { EPIPE, WSR_ERR_RESET, 1, "EPIPE" },
    { ETIMEDOUT, WSR_ERR_TIMEOUT, 1, "ETIMEDOUT" },
    { ENETUNREACH, WSR_ERR_UNREACHABLE, 1, "ENETUNREACH" },
    { EHOSTUNREACH, WSR_ERR_UNREACHABLE, 1, "EHOSTUNREACH" },
#ifdef EHOSTDOWN
    { EHOSTDOWN, WSR_ERR_UNREACHABLE, 1, "EHOSTDOWN" },
#endif
    { ENETDOWN, WSR_ERR_NETWORK, 1, "ENETDOWN" },
    { ENETRESET, WSR_ERR_NETWORK, 1, "ENETRESET" },
    { EADDRINUSE, WSR_ERR_ADDRESS, 1, "EADDRINUSE" },
    { EADDRNOTAVAIL, WSR_ERR_ADDRESS, 1, "EADDRNOTAVAIL" },
    { ENOBUFS, WSR_ERR_NOMEM, 1, "ENOBUFS" },
    { ENOMEM, WSR_ERR_NOMEM, 1, "ENOMEM" },
    { EMFILE, WSR_ERR_IO, 1, "EMFILE" },
    { ENFILE, WSR_ERR_IO, 1, "ENFILE" },
    { EACCES, WSR_ERR_IO, 0, "EACCES" },
    { EPERM, WSR_ERR_IO, 0, "EPERM" },
    { EAFNOSUPPORT, WSR_ERR_INVALID, 0, "EAFNOSUPPORT" },
    { EINVAL, WSR_ERR_INVALID, 0, "EINVAL" },
};

/* Makes a socket non-blocking and close-on-exec, and stops SIGPIPE. */
WSR__PRIVATE int wsr__sock_prepare(wsr__sock fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
    { int one = 1; setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one); }
#endif
    return 0;
}

/* recv/send with the library's conventions: WSR_ERR_AGAIN for "would block",
   WSR_ERR_EOF for an orderly end of stream, EINTR retried. */
WSR__PRIVATE wsr_err wsr__sock_read(wsr__sock fd, void *buf, size_t cap, size_t *got, wsr_error *err) {
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n > 0) { *got = (size_t)n; return WSR_OK; }
        *got = 0;
        if (n == 0) {
            wsr__error_set(err, WSR_ERR_EOF, 0, NULL);
            err->transient = 1;
            return WSR_ERR_EOF;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return WSR_ERR_AGAIN;
        return wsr__os_error(err, errno, "recv");
    }
}

WSR__PRIVATE wsr_err wsr__sock_write(wsr__sock fd, const void *buf, size_t len, size_t *put, wsr_error *err) {
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) { *put = (size_t)n; return WSR_OK; }
        *put = 0;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return WSR_ERR_AGAIN;
        return wsr__os_error(err, errno, "send");
    }
}

#elif WSR__WIN32
/* Winsock (Windows Vista and later: WSAPoll). Link ws2_32 and bcrypt; with
   WSR_USE_MBEDTLS also the mbedTLS libraries and advapi32 (mbedTLS 2.28's
   entropy source; 3.x uses bcrypt). */
#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0600
#  undef _WIN32_WINNT
#  define _WIN32_WINNT 0x0600
#endif
#include <winsock2.h>                /* before windows.h */
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>
#include <time.h>
#if defined(_MSC_VER)
#  pragma comment(lib, "ws2_32")
#  pragma comment(lib, "bcrypt")
#endif
#if WSR__TLS
#  include <wincrypt.h>              /* the system's trusted roots for wss:// */
#  if defined(_MSC_VER)
#    pragma comment(lib, "crypt32")
#    pragma comment(lib, "advapi32") /* mbedTLS 2.28's entropy: CryptGenRandom */
#  endif
#endif
#ifndef BCRYPT_USE_SYSTEM_PREFERRED_RNG
#  define BCRYPT_USE_SYSTEM_PREFERRED_RNG 0x00000002
#endif
#ifndef ERROR_SEM_TIMEOUT
#  define ERROR_SEM_TIMEOUT 121L
#endif

/* A SOCKET is an unsigned pointer-sized handle; INVALID_SOCKET is ~0, the
   same value as WSR_INVALID_SOCKET. */
typedef SOCKET wsr__sock;
#define WSR__NO_SOCK INVALID_SOCKET
typedef WSAPOLLFD wsr__pollfd;
#define wsr__sock_errno() ((int)WSAGetLastError())
#define WSR__E_INTR WSAEINTR
#define WSR__E_WOULDBLOCK(e) ((e) == WSAEWOULDBLOCK)
/* A non-blocking connect says WSAEWOULDBLOCK, not EINPROGRESS. */
#define WSR__E_INPROGRESS(e) ((e) == WSAEWOULDBLOCK || (e) == WSAEINPROGRESS || (e) == WSAEINTR)
#define WSR__E_TIMEDOUT WSAETIMEDOUT
#define WSR__E_CONNABORTED WSAECONNABORTED
#define WSR__ERRNO_WORD "error"
#define WSR__SHUT_WR SD_SEND

/* Winsock is started by every client and server and stopped when each is
   freed: WSAStartup and WSACleanup count the calls. */
WSR__PRIVATE int wsr__net_start(void) {
    WSADATA wd;
    return WSAStartup(MAKEWORD(2, 2), &wd) == 0 ? 0 : -1;
}
WSR__PRIVATE void wsr__net_stop(void) { WSACleanup(); }
WSR__PRIVATE void wsr__sock_close(wsr__sock s) { closesocket(s); }
/* Has a non-blocking connect finished? WSAPoll on Windows before 10
   version 2004 never reports a connect that failed (the known WSAPoll bug):
   the attempt would sit until its timeout, 10 s where a refusal takes 2. So
   the question goes to select(), which reports a failed connect in
   exceptfds, and the transport asks again every WSR__CONNECT_RECHECK_MS
   while a connect is under way instead of trusting WSAPoll to wake it. */
#define WSR__CONNECT_RECHECK_MS 100
WSR__PRIVATE int wsr__connect_finished(wsr__sock s) {
    fd_set w, e;
    struct timeval zero = {0, 0};
    FD_ZERO(&w);
    FD_ZERO(&e);
    FD_SET(s, &w);
    FD_SET(s, &e);
    return select(0, NULL, &w, &e, &zero) > 0;
}
WSR__PRIVATE void wsr__sleep_ms(int ms) { if (ms > 0) Sleep((DWORD)ms); }
/* WSAPoll fails (WSAEINVAL) when it has nothing to watch, so it cannot
   sleep; an entry without a socket first in the array (the server's resting
   listener) is left out rather than trusting WSAPoll to skip it. */
WSR__PRIVATE int wsr__poll(wsr__pollfd *p, size_t n, int timeout_ms) {
    int r;
    if (n > 0 && p[0].fd == INVALID_SOCKET) { p[0].revents = 0; p++; n--; }
    if (n == 0) { wsr__sleep_ms(timeout_ms < 0 ? 0x7FFFFFFF : timeout_ms); return 0; }
    r = WSAPoll(p, (ULONG)n, timeout_ms);
    return r == SOCKET_ERROR ? -1 : r;
}
/* SO_REUSEADDR on Windows lets another program steal the port; a restarted
   server binds at once anyway. Exclusive use instead. */
WSR__PRIVATE void wsr__sock_reuse(wsr__sock s) {
    BOOL one = TRUE;
    setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof one);
}

WSR_API uint64_t wsr_now_ms(void) {
    static LARGE_INTEGER freq;   /* the same value on every thread: a benign race */
    LARGE_INTEGER c;
    if (freq.QuadPart == 0 && !QueryPerformanceFrequency(&freq)) return (uint64_t)GetTickCount64();
    QueryPerformanceCounter(&c);
    return (uint64_t)(c.QuadPart / freq.QuadPart) * 1000u +
           (uint64_t)(c.QuadPart % freq.QuadPart) * 1000u / (uint64_t)freq.QuadPart;
}

WSR__PRIVATE long long wsr__unix_time(void) { return (long long)time(NULL); }

WSR__PRIVATE void wsr__os_random(void *buf, size_t n, void *user) {
    unsigned char *p = (unsigned char *)buf;
    (void)user;
    while (n > 0) {
        ULONG chunk = n > 0x10000000u ? 0x10000000u : (ULONG)n;
        if (BCryptGenRandom(NULL, p, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) break;
        p += chunk; n -= chunk;
    }
    WSR_ASSERT(n == 0 && "no OS random source (BCryptGenRandom)");
}

/* Windows' own text for a WSA/Win32 code ("An existing connection was
   forcibly closed by the remote host"), in the user's language, as UTF-8 on
   one line without the final period; "" when the system has none (wine has
   no text for many WSAE codes). It is added to the library's own words, so
   a message always says what happened even where this is empty. */
WSR__PRIVATE void wsr__os_text(int os, char *out, size_t cap) {
    wchar_t w[256];
    char u[sizeof w / sizeof w[0] * 3 + 1];     /* a UTF-16 unit is at most 3 UTF-8 bytes */
    DWORD n;
    int m, i;
    if (cap == 0) return;
    out[0] = 0;
    n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS | FORMAT_MESSAGE_MAX_WIDTH_MASK,
                       NULL, (DWORD)os, 0, w, (DWORD)(sizeof w / sizeof w[0]), NULL);
    while (n > 0 && (w[n - 1] == L' ' || w[n - 1] == L'\r' || w[n - 1] == L'\n' || w[n - 1] == L'.')) n--;
    if (n == 0) return;
    m = WideCharToMultiByte(CP_UTF8, 0, w, (int)n, u, (int)sizeof u - 1, NULL, NULL);
    if (m <= 0) return;
    for (i = 0; i < m; i++) if (u[i] == '\r' || u[i] == '\n' || u[i] == '\t') u[i] = ' ';
    m = (int)wsr__utf8_cut((const unsigned char *)u, (size_t)m, cap - 1);
    memcpy(out, u, (size_t)m);
    out[m] = 0;
}

/* The Winsock error table (WSAGetLastError / GetLastError codes). The
   names and words are the library's own and the system's text follows them
   (wsr__os_text); the raw code stays in os_error. */
typedef struct wsr__os_err { int os; wsr_err code; int transient; const char *name; } wsr__os_err;

static const wsr__os_err wsr__errno_table[] = {
    { WSAECONNREFUSED, WSR_ERR_REFUSED, 1, "WSAECONNREFUSED" },
    { WSAECONNRESET, WSR_ERR_RESET, 1, "WSAECONNRESET" },
    { WSAECONNABORTED, WSR_ERR_RESET, 1, "WSAECONNABORTED" },
    { WSAESHUTDOWN, WSR_ERR_RESET, 1, "WSAESHUTDOWN" },
    { WSAETIMEDOUT, WSR_ERR_TIMEOUT, 1, "WSAETIMEDOUT" },
    { ERROR_SEM_TIMEOUT, WSR_ERR_TIMEOUT, 1, "ERROR_SEM_TIMEOUT" },
    { WSAENETUNREACH, WSR_ERR_UNREACHABLE, 1, "WSAENETUNREACH" },
    { WSAEHOSTUNREACH, WSR_ERR_UNREACHABLE, 1, "WSAEHOSTUNREACH" },
    { WSAEHOSTDOWN, WSR_ERR_UNREACHABLE, 1, "WSAEHOSTDOWN" },
    { WSAENETDOWN, WSR_ERR_NETWORK, 1, "WSAENETDOWN" },
    { WSAENETRESET, WSR_ERR_NETWORK, 1, "WSAENETRESET" },
    { WSAEADDRINUSE, WSR_ERR_ADDRESS, 1, "WSAEADDRINUSE" },
    { WSAEADDRNOTAVAIL, WSR_ERR_ADDRESS, 1, "WSAEADDRNOTAVAIL" },
    { WSAHOST_NOT_FOUND, WSR_ERR_DNS, 1, "WSAHOST_NOT_FOUND" },
    { WSATRY_AGAIN, WSR_ERR_DNS, 1, "WSATRY_AGAIN" },
    { WSANO_DATA, WSR_ERR_DNS, 1, "WSANO_DATA" },
    { WSANO_RECOVERY, WSR_ERR_DNS, 1, "WSANO_RECOVERY" },
    { WSAENOBUFS, WSR_ERR_NOMEM, 1, "WSAENOBUFS" },
    { ERROR_NOT_ENOUGH_MEMORY, WSR_ERR_NOMEM, 1, "ERROR_NOT_ENOUGH_MEMORY" },
    { WSAEMFILE, WSR_ERR_IO, 1, "WSAEMFILE" },
    { WSAEACCES, WSR_ERR_IO, 0, "WSAEACCES" },
    { WSANOTINITIALISED, WSR_ERR_IO, 0, "WSANOTINITIALISED" },
    { WSAEAFNOSUPPORT, WSR_ERR_INVALID, 0, "WSAEAFNOSUPPORT" },
    { WSAEINVAL, WSR_ERR_INVALID, 0, "WSAEINVAL" },
    { WSAENOTSOCK, WSR_ERR_INVALID, 0, "WSAENOTSOCK" },
};

WSR__PRIVATE int wsr__sock_prepare(wsr__sock fd) {
    u_long on = 1;
    if (ioctlsocket(fd, FIONBIO, &on) != 0) return -1;
    SetHandleInformation((HANDLE)fd, HANDLE_FLAG_INHERIT, 0);   /* close-on-exec */
    return 0;
}

WSR__PRIVATE wsr_err wsr__sock_read(wsr__sock fd, void *buf, size_t cap, size_t *got, wsr_error *err) {
    for (;;) {
        int n = recv(fd, (char *)buf, (int)WSR__MIN(cap, (size_t)0x7FFFFFFF), 0), e;
        if (n > 0) { *got = (size_t)n; return WSR_OK; }
        *got = 0;
        if (n == 0) {
            wsr__error_set(err, WSR_ERR_EOF, 0, NULL);
            err->transient = 1;
            return WSR_ERR_EOF;
        }
        e = WSAGetLastError();
        if (e == WSAEINTR) continue;
        if (e == WSAEWOULDBLOCK) return WSR_ERR_AGAIN;
        return wsr__os_error(err, e, "recv");
    }
}

WSR__PRIVATE wsr_err wsr__sock_write(wsr__sock fd, const void *buf, size_t len, size_t *put, wsr_error *err) {
    for (;;) {
        int n = send(fd, (const char *)buf, (int)WSR__MIN(len, (size_t)0x7FFFFFFF), 0), e;
        if (n >= 0) { *put = (size_t)n; return WSR_OK; }
        *put = 0;
        e = WSAGetLastError();
        if (e == WSAEINTR) continue;
        if (e == WSAEWOULDBLOCK) return WSR_ERR_AGAIN;
        return wsr__os_error(err, e, "send");
    }
}
#endif /* WSR__WIN32 */

/* mbedTLS, after the platform's own headers (on Windows, winsock2.h must
   come before anything that may pull in windows.h). */
#if WSR__TLS
#include <mbedtls/version.h>
#include <mbedtls/ssl.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/net_sockets.h>   /* for MBEDTLS_ERR_NET_* only */
#include <mbedtls/error.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_USE_PSA_CRYPTO)
#include <psa/crypto.h>
#endif
#endif

/* ---- Shared by both platforms ------------------------------------------- */

/* Fills err for an errno value: the mapped code, the class, and a message
   naming what we were doing, the errno symbol, its number and (Windows) the
   system's own text:
   "recv: connection reset (WSAECONNRESET, error 10054: An existing ...)". */
WSR__PRIVATE wsr_err wsr__os_error(wsr_error *err, int os, const char *doing) {
    const wsr__os_err *t = NULL;
    char text[WSR_ERROR_MESSAGE_SIZE];
    size_t i, len;
    for (i = 0; i < sizeof wsr__errno_table / sizeof wsr__errno_table[0]; i++)
        if (wsr__errno_table[i].os == os) { t = &wsr__errno_table[i]; break; }
    wsr__os_text(os, text, sizeof text);
    if (t) {
        wsr__error_set(err, t->code, os, "%s: %s (%s, " WSR__ERRNO_WORD " %d%s%s)", doing, wsr_strerror(t->code),
                       t->name, os, text[0] ? ": " : "", text);
        err->transient = t->transient;
    } else {
        /* Unknown errors are socket errors worth another try: failing for
           good on a code we did not foresee would break the promise to stay up. */
        wsr__error_set(err, WSR_ERR_IO, os, "%s: socket error (" WSR__ERRNO_WORD " %d%s%s)", doing, os,
                       text[0] ? ": " : "", text);
        err->transient = 1;
    }
    /* A long system text may have been cut short: never in the middle of
       a character. k - 1 is where the last character starts. */
    len = strlen(err->message);
    if (len + 1 == sizeof err->message) {
        size_t k = len;
        unsigned char lead;
        while (k > 0 && ((unsigned char)err->message[k - 1] & 0xC0) == 0x80) k--;
        lead = k > 0 ? (unsigned char)err->message[k - 1] : 0;
        if (lead >= 0xC0 && len - (k - 1) < (size_t)(lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2)) err->message[k - 1] = 0;
    }
    return err->code;
}

/* getaddrinfo's own error codes. A name that does not resolve is transient:
   DNS fails while a laptop wakes up or a VPN reconnects. */
WSR__PRIVATE wsr_err wsr__gai_error(wsr_error *err, int gai, const char *host) {
#if defined(EAI_SYSTEM)
    if (gai == EAI_SYSTEM) return wsr__os_error(err, errno, "host name lookup");
#endif
    if (gai == EAI_MEMORY) {
        wsr__error_set(err, WSR_ERR_NOMEM, 0, "out of memory resolving '%.80s'", host);
        return WSR_ERR_NOMEM;
    }
    wsr__error_set(err, WSR_ERR_DNS, gai, "cannot resolve '%.80s': %s", host,
                   gai == EAI_NONAME ? "no such host" : gai == EAI_AGAIN ? "temporary DNS failure" : "lookup failed");
    err->transient = 1;
    return WSR_ERR_DNS;
}

/* The built-in client transport: TCP to every address the name resolves
   to, in the order getaddrinfo gives, each with its share of the timeout. */
typedef struct wsr__tcp {
    wsr__sock fd;
    int connected;
    int ka_idle_s, ka_interval_s, ka_count, user_timeout_ms;   /* from the client config */
    struct addrinfo *addrs, *next;   /* next: the address after the one being tried */
    int addr_timeout_ms;             /* how long one address may take */
    int connect_timeout_ms;
    uint64_t addr_deadline;
    uint64_t recheck_at;             /* Windows: when to ask about the connect again (WSAPoll may not say) */
    wsr_error last;                  /* the error of the last address that failed */
    char where[80];                  /* "host:port" for messages */
} wsr__tcp;

WSR__PRIVATE void wsr__tcp_close(void *self) {
    wsr__tcp *t = (wsr__tcp *)self;
    if (t->fd != WSR__NO_SOCK) wsr__sock_close(t->fd);
    t->fd = WSR__NO_SOCK;
    t->connected = 0;
    if (t->addrs) freeaddrinfo(t->addrs);
    t->addrs = t->next = NULL;
}

/* Deadlines the kernel enforces even when nobody polls: keepalive probes
   on an idle link, and (Linux) a limit on how long written data may stay
   unacknowledged, so a dead link fails in seconds instead of the 15+
   minutes of TCP's retransmission schedule. Best effort: an option the
   system lacks is skipped. */
WSR__PRIVATE void wsr__tcp_deadlines(wsr__tcp *t) {
    int v;
    if (t->ka_idle_s > 0) {
        v = 1;
        setsockopt(t->fd, SOL_SOCKET, SO_KEEPALIVE, (const char *)&v, sizeof v);
#if defined(TCP_KEEPIDLE)
        v = t->ka_idle_s;
        setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPIDLE, (const char *)&v, sizeof v);
#elif defined(TCP_KEEPALIVE)
        v = t->ka_idle_s;
        setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPALIVE, (const char *)&v, sizeof v);
#endif
#if defined(TCP_KEEPINTVL)
        v = t->ka_interval_s > 0 ? t->ka_interval_s : 10;
        setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPINTVL, (const char *)&v, sizeof v);
#endif
#if defined(TCP_KEEPCNT)
        v = t->ka_count > 0 ? t->ka_count : 3;
        setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPCNT, (const char *)&v, sizeof v);
#endif
    }
#if defined(TCP_USER_TIMEOUT)
    if (t->user_timeout_ms > 0) {
        unsigned int ut = (unsigned int)t->user_timeout_ms;
        setsockopt(t->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (const char *)&ut, sizeof ut);
    }
#endif
}

/* Starts a non-blocking connect to the next address. Returns WSR_OK when a
   connect is under way (or done), an error when no address is left. */
WSR__PRIVATE wsr_err wsr__tcp_try_next(wsr__tcp *t, uint64_t now, wsr_error *err) {
    while (t->next) {
        struct addrinfo *ai = t->next;
        int one = 1;
        t->next = ai->ai_next;
        if (t->fd != WSR__NO_SOCK) { wsr__sock_close(t->fd); t->fd = WSR__NO_SOCK; }
        t->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (t->fd == WSR__NO_SOCK) { wsr__os_error(&t->last, wsr__sock_errno(), "socket"); continue; }
        if (wsr__sock_prepare(t->fd) < 0) { wsr__os_error(&t->last, wsr__sock_errno(), "fcntl"); continue; }
        /* Nagle's algorithm would hold small frames back for an ACK. */
        setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
        wsr__tcp_deadlines(t);
        t->addr_deadline = now + (uint64_t)t->addr_timeout_ms;
        t->recheck_at = WSR__CONNECT_RECHECK_MS ? now + WSR__CONNECT_RECHECK_MS : 0;
        if (connect(t->fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0) { t->connected = 1; return WSR_OK; }
        {
            int e = wsr__sock_errno();
            char doing[112];
            if (WSR__E_INPROGRESS(e)) return WSR_OK;
            snprintf(doing, sizeof doing, "connect to %s", t->where);
            wsr__os_error(&t->last, e, doing);
        }
    }
    if (t->fd != WSR__NO_SOCK) { wsr__sock_close(t->fd); t->fd = WSR__NO_SOCK; }
    *err = t->last;
    return err->code ? err->code : WSR_ERR_IO;
}

WSR__PRIVATE wsr_err wsr__tcp_open(void *self, const char *host, int port, uint64_t now, wsr_error *err) {
    wsr__tcp *t = (wsr__tcp *)self;
    struct addrinfo hints, *ai;
    char service[8];
    int gai, n = 0;
    wsr__tcp_close(t);
    memset(&t->last, 0, sizeof t->last);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;          /* IPv4 and IPv6, as the resolver orders them */
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(service, sizeof service, "%d", port);
    snprintf(t->where, sizeof t->where, "%.60s port %d", host, port);
    gai = getaddrinfo(host, service, &hints, &t->addrs);   /* the one blocking call */
    if (gai != 0) { t->addrs = NULL; return wsr__gai_error(err, gai, host); }
    for (ai = t->addrs; ai; ai = ai->ai_next) n++;
    /* Each address gets an equal share of the connect timeout, at least
       1 s, so one black-holed address cannot use up all of it. */
    t->addr_timeout_ms = t->connect_timeout_ms > 0 ? WSR__MAX(t->connect_timeout_ms / WSR__MAX(n, 1), 1000) : 0x7FFFFFFF;
    t->next = t->addrs;
    return wsr__tcp_try_next(t, now, err);
}

WSR__PRIVATE wsr_err wsr__tcp_connect(void *self, uint64_t now, wsr_error *err) {
    wsr__tcp *t = (wsr__tcp *)self;
    int soerr = 0;
    wsr_err r;
    socklen_t len = sizeof soerr;
    if (t->connected) return WSR_OK;
    if (t->fd == WSR__NO_SOCK) { *err = t->last; return err->code ? err->code : WSR_ERR_IO; }
    if (!wsr__connect_finished(t->fd)) {
        if (now < t->addr_deadline) {
            t->recheck_at = WSR__CONNECT_RECHECK_MS ? now + WSR__CONNECT_RECHECK_MS : 0;
            return WSR_ERR_AGAIN;
        }
        wsr__error_set(&t->last, WSR_ERR_TIMEOUT, WSR__E_TIMEDOUT, "connect to %s timed out", t->where);
        t->last.transient = 1;
    } else {
        /* Writable (or failed): SO_ERROR says which. */
        if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, (char *)&soerr, &len) < 0) soerr = wsr__sock_errno();
        if (soerr == 0) { t->connected = 1; return WSR_OK; }
        {
            char doing[112];
            snprintf(doing, sizeof doing, "connect to %s", t->where);
            wsr__os_error(&t->last, soerr, doing);
        }
    }
    r = wsr__tcp_try_next(t, now, err);
    if (r != WSR_OK) return r;
    return t->connected ? WSR_OK : WSR_ERR_AGAIN;
}

WSR__PRIVATE wsr_err wsr__tcp_read(void *self, void *buf, size_t cap, size_t *got, wsr_error *err) {
    return wsr__sock_read(((wsr__tcp *)self)->fd, buf, cap, got, err);
}

WSR__PRIVATE wsr_err wsr__tcp_write(void *self, const void *buf, size_t len, size_t *put, wsr_error *err) {
    return wsr__sock_write(((wsr__tcp *)self)->fd, buf, len, put, err);
}

WSR__PRIVATE uintptr_t wsr__tcp_socket(void *self) {
    wsr__tcp *t = (wsr__tcp *)self;
    return t->fd != WSR__NO_SOCK ? (uintptr_t)t->fd : WSR_INVALID_SOCKET;
}

WSR__PRIVATE int wsr__tcp_events(void *self) {
    wsr__tcp *t = (wsr__tcp *)self;
    return t->fd != WSR__NO_SOCK && !t->connected ? WSR_POLL_OUT : 0;
}

/* While an address is being tried: when to give up on it for the next one
   or, on Windows, to ask again whether it failed. */
WSR__PRIVATE uint64_t wsr__tcp_timer(void *self) {
    wsr__tcp *t = (wsr__tcp *)self;
    if (t->fd == WSR__NO_SOCK || t->connected) return 0;
    return t->recheck_at ? WSR__MIN(t->addr_deadline, t->recheck_at) : t->addr_deadline;
}

/* Waits for one socket (or just sleeps when there is none). Returns the
   WSR_POLL_* events seen; hang-up and error count as readable, so the
   next read reports what happened. */
WSR__PRIVATE int wsr__wait_one(uintptr_t sock, int events, int timeout_ms) {
    wsr__pollfd pfd;
    int r;
    if (sock == WSR_INVALID_SOCKET) {
        wsr__sleep_ms(timeout_ms);
        return 0;
    }
    pfd.fd = (wsr__sock)sock;
    pfd.events = (short)(((events & WSR_POLL_IN) ? POLLIN : 0) | ((events & WSR_POLL_OUT) ? POLLOUT : 0));
    pfd.revents = 0;
    r = wsr__poll(&pfd, 1, timeout_ms);
    if (r <= 0) return 0;
    return ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) ? WSR_POLL_IN : 0) | ((pfd.revents & POLLOUT) ? WSR_POLL_OUT : 0);
}

/* ---- TLS through mbedTLS (WSR_USE_MBEDTLS) ---------------------------------
   TLS is a layer over a byte transport: the client wraps its transport in
   one that encrypts, and the server wraps each connection's socket. The
   WebSocket code above never knows. mbedTLS is non-blocking here: every
   call may say WANT_READ / WANT_WRITE, which is "try again when the socket
   is ready" (WSR_ERR_AGAIN), never a failure. Tested with 2.28; written for
   3.x too (version checks below). */
#if WSR__TLS

/* Trust, identity and randomness, shared by every connection of a client
   or a server. */
typedef struct wsr__tls_ctx {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    int skip_verify;
} wsr__tls_ctx;

/* Fills err from an mbedTLS error code, with mbedTLS's own words. */
WSR__PRIVATE wsr_err wsr__tls_fail(wsr_error *err, wsr_err code, int ret, const char *doing) {
    char text[96];
#if defined(MBEDTLS_ERROR_C)
    mbedtls_strerror(ret, text, sizeof text);
#else
    snprintf(text, sizeof text, "error");
#endif
    wsr__error_set(err, code, 0, "%s: %s (-0x%04x)", doing, text, (unsigned)-ret);
    return code;
}

/* Reads a PEM file, or takes PEM text, into a certificate chain. */
WSR__PRIVATE int wsr__tls_load_crt(mbedtls_x509_crt *crt, const char *file, const char *pem) {
    if (file) return mbedtls_x509_crt_parse_file(crt, file);
    return mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1);
}

WSR__PRIVATE void wsr__tls_ctx_free(wsr__tls_ctx *t) {
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_pk_free(&t->key);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
}

#if WSR__WIN32
/* Windows keeps its trusted roots in the certificate store, not in a file:
   the "ROOT" system store (Trusted Root Certification Authorities, the
   user's and the machine's) is read once per client, each certificate as
   DER. One mbedTLS cannot parse (an algorithm it lacks) is left out rather
   than failing the rest. Returns how many were loaded. */
WSR__PRIVATE int wsr__tls_load_system_roots(mbedtls_x509_crt *ca) {
    HCERTSTORE store = CertOpenSystemStoreW(0, L"ROOT");
    PCCERT_CONTEXT cert = NULL;
    int loaded = 0;
    if (!store) return 0;
    while ((cert = CertEnumCertificatesInStore(store, cert)) != NULL)
        if ((cert->dwCertEncodingType & X509_ASN_ENCODING) &&
            mbedtls_x509_crt_parse_der(ca, cert->pbCertEncoded, cert->cbCertEncoded) == 0)
            loaded++;
    CertCloseStore(store, 0);
    return loaded;
}
#endif

#if WSR__POSIX
/* The system's CA bundle, where Debian-like systems keep it. */
static const char *const wsr__ca_bundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",   /* Debian, Ubuntu, Alpine */
    "/etc/pki/tls/certs/ca-bundle.crt",     /* Fedora, RHEL */
    "/etc/ssl/cert.pem"                     /* macOS, BSD */
};
#endif

WSR__PRIVATE wsr_err wsr__tls_ctx_init(wsr__tls_ctx *t, const wsr_tls_config *cfg, int server, wsr_error *err) {
    int ret;
    static const char pers[] = "ws_reconnect.h";
    memset(t, 0, sizeof *t);
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_USE_PSA_CRYPTO)
    /* mbedTLS 3 does its cryptography through PSA, which must be started. */
    if (psa_crypto_init() != PSA_SUCCESS) {
        wsr__error_set(err, WSR_ERR_TLS, 0, "psa_crypto_init failed");
        return WSR_ERR_TLS;
    }
#endif
    if ((ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy, (const unsigned char *)pers,
                                     sizeof pers - 1)) != 0)
        return wsr__tls_fail(err, WSR_ERR_TLS, ret, "seeding the random generator");
    if ((ret = mbedtls_ssl_config_defaults(&t->conf, server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                           MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
        return wsr__tls_fail(err, WSR_ERR_TLS, ret, "TLS defaults");
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
    mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
    /* Whom we trust: the given CAs, else (client) the system's bundle. */
    t->skip_verify = cfg && cfg->insecure_skip_verify;
    if (cfg && (cfg->ca_file || cfg->ca_pem || cfg->ca_dir)) {
        if (cfg->ca_file || cfg->ca_pem) {
            if ((ret = wsr__tls_load_crt(&t->ca, cfg->ca_file, cfg->ca_pem)) < 0)
                return wsr__tls_fail(err, WSR_ERR_TLS, ret, cfg->ca_file ? cfg->ca_file : "ca_pem");
        }
        if (cfg->ca_dir && (ret = mbedtls_x509_crt_parse_path(&t->ca, cfg->ca_dir)) < 0)
            return wsr__tls_fail(err, WSR_ERR_TLS, ret, cfg->ca_dir);
    } else if (!server && !t->skip_verify) {
#if WSR__POSIX
        size_t i;
        ret = -1;
        for (i = 0; i < sizeof wsr__ca_bundles / sizeof wsr__ca_bundles[0] && ret < 0; i++)
            ret = mbedtls_x509_crt_parse_file(&t->ca, wsr__ca_bundles[i]);
        if (ret < 0) {
            wsr__error_set(err, WSR_ERR_TLS, 0, "no CA bundle given and none found in the usual places "
                           "(install ca-certificates, or set tls.ca_file)");
            return WSR_ERR_TLS;
        }
#else
        if (wsr__tls_load_system_roots(&t->ca) == 0) {
            wsr__error_set(err, WSR_ERR_TLS, (int)GetLastError(), "no CA given and none readable in the Windows "
                           "certificate store (ROOT): set tls.ca_file, ca_dir or ca_pem");
            return WSR_ERR_TLS;
        }
#endif
    }
    mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
    if (server && cfg && cfg->verify_peer && !(cfg->ca_file || cfg->ca_pem || cfg->ca_dir)) {
        wsr__error_set(err, WSR_ERR_INVALID, 0, "tls.verify_peer needs the CAs that sign client certificates "
                       "(tls.ca_file, ca_dir or ca_pem)");
        return WSR_ERR_INVALID;
    }
    if (server)
        mbedtls_ssl_conf_authmode(&t->conf, cfg && cfg->verify_peer ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
    else
        mbedtls_ssl_conf_authmode(&t->conf, t->skip_verify ? MBEDTLS_SSL_VERIFY_NONE : MBEDTLS_SSL_VERIFY_REQUIRED);
    /* Who we are: the server's certificate, or the client's for mutual TLS. */
    if (cfg && (cfg->cert_file || cfg->cert_pem)) {
        const char *pw = cfg->key_password;
        size_t pwl = pw ? strlen(pw) : 0;
        if ((ret = wsr__tls_load_crt(&t->cert, cfg->cert_file, cfg->cert_pem)) < 0)
            return wsr__tls_fail(err, WSR_ERR_TLS, ret, cfg->cert_file ? cfg->cert_file : "cert_pem");
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
        ret = cfg->key_file ? mbedtls_pk_parse_keyfile(&t->key, cfg->key_file, pw, mbedtls_ctr_drbg_random, &t->drbg)
            : mbedtls_pk_parse_key(&t->key, (const unsigned char *)cfg->key_pem, cfg->key_pem ? strlen(cfg->key_pem) + 1 : 0,
                                   (const unsigned char *)pw, pwl, mbedtls_ctr_drbg_random, &t->drbg);
#else
        ret = cfg->key_file ? mbedtls_pk_parse_keyfile(&t->key, cfg->key_file, pw)
            : mbedtls_pk_parse_key(&t->key, (const unsigned char *)cfg->key_pem, cfg->key_pem ? strlen(cfg->key_pem) + 1 : 0,
                                   (const unsigned char *)pw, pwl);
#endif
        if (ret != 0) return wsr__tls_fail(err, WSR_ERR_TLS, ret, cfg->key_file ? cfg->key_file : "key_pem");
        if ((ret = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key)) != 0)
            return wsr__tls_fail(err, WSR_ERR_TLS, ret, "certificate and key");
    } else if (server) {
        wsr__error_set(err, WSR_ERR_INVALID, 0, "a TLS server needs tls.cert_file/cert_pem and tls.key_file/key_pem");
        return WSR_ERR_INVALID;
    }
    return WSR_OK;
}

/* One TLS session over a byte stream. The stream is reached through
   `inner` (the client's transport) or, when inner is NULL, a socket (a
   server connection). */
typedef struct wsr__tls_conn {
    mbedtls_ssl_context ssl;
    const wsr_transport *inner;
    wsr__sock fd;                 /* a SOCKET (64-bit) on Windows */
    wsr_error io_err;             /* the stream's own error, when it failed under TLS */
    int want;                     /* WSR_POLL_* the last call is waiting for */
    size_t write_pending;         /* length of a write mbedTLS holds, to be repeated as is */
    int handshake_done;
    int end_ret;                  /* the stream ended behind bytes already returned: report it next */
    int ip_host;                  /* verifying an IP address (checked against IP SANs) */
    unsigned char ip[16];
    size_t ip_len;
} wsr__tls_conn;

WSR__PRIVATE int wsr__tls_bio_send(void *ctx, const unsigned char *buf, size_t len) {
    wsr__tls_conn *c = (wsr__tls_conn *)ctx;
    size_t put = 0;
    wsr_err r = c->inner ? c->inner->write_fn(c->inner->self, buf, len, &put, &c->io_err)
                         : wsr__sock_write(c->fd, buf, len, &put, &c->io_err);
    if (r == WSR_OK) return (int)put;
    if (r == WSR_ERR_AGAIN) { c->want = WSR_POLL_OUT; return MBEDTLS_ERR_SSL_WANT_WRITE; }
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

WSR__PRIVATE int wsr__tls_bio_recv(void *ctx, unsigned char *buf, size_t len) {
    wsr__tls_conn *c = (wsr__tls_conn *)ctx;
    size_t got = 0;
    wsr_err r = c->inner ? c->inner->read_fn(c->inner->self, buf, len, &got, &c->io_err)
                         : wsr__sock_read(c->fd, buf, len, &got, &c->io_err);
    if (r == WSR_OK) return (int)got;
    if (r == WSR_ERR_AGAIN) { c->want = WSR_POLL_IN; return MBEDTLS_ERR_SSL_WANT_READ; }
    if (r == WSR_ERR_EOF) return 0;
    return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* mbedTLS 2.28 cannot match an IP address against a certificate's IP SANs,
   so for wss://127.0.0.1 we do it here, on the server's own certificate
   (depth 0): the address must be one of its iPAddress entries. */
WSR__PRIVATE int wsr__tls_verify_ip(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags) {
    wsr__tls_conn *c = (wsr__tls_conn *)ctx;
    const mbedtls_x509_sequence *san;
    int found = 0;
    if (depth != 0 || !c->ip_host) return 0;
    for (san = &crt->subject_alt_names; san && san->buf.p; san = san->next)
        if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && san->buf.len == c->ip_len &&
            memcmp(san->buf.p, c->ip, c->ip_len) == 0)
            found = 1;
    if (!found) *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* Starts a session: host is what we verify (a name is also sent as SNI;
   an IP literal is not, RFC 6066 §3). */
WSR__PRIVATE wsr_err wsr__tls_conn_start(wsr__tls_conn *c, wsr__tls_ctx *ctx, const wsr_transport *inner,
                                         wsr__sock fd, const char *host, wsr_error *err) {
    int ret;
    memset(&c->io_err, 0, sizeof c->io_err);
    c->inner = inner;
    c->fd = fd;
    c->want = 0;
    c->write_pending = 0;
    c->handshake_done = 0;
    c->end_ret = 0;
    mbedtls_ssl_init(&c->ssl);
    if ((ret = mbedtls_ssl_setup(&c->ssl, &ctx->conf)) != 0) return wsr__tls_fail(err, WSR_ERR_TLS, ret, "TLS setup");
    if (host) {
        c->ip_len = 0;
        if (inet_pton(AF_INET, host, c->ip) == 1) c->ip_len = 4;
        else if (inet_pton(AF_INET6, host, c->ip) == 1) c->ip_len = 16;
        c->ip_host = c->ip_len > 0;
        ret = mbedtls_ssl_set_hostname(&c->ssl, c->ip_host ? NULL : host);
        if (ret != 0) return wsr__tls_fail(err, WSR_ERR_TLS, ret, "TLS host name");
        if (c->ip_host) mbedtls_ssl_set_verify(&c->ssl, wsr__tls_verify_ip, c);
    }
    mbedtls_ssl_set_bio(&c->ssl, c, wsr__tls_bio_send, wsr__tls_bio_recv, NULL);
    return WSR_OK;
}

WSR__PRIVATE void wsr__tls_conn_end(wsr__tls_conn *c) {
    /* close_notify tells the peer the stream ended on purpose (best effort). */
    if (c->handshake_done) mbedtls_ssl_close_notify(&c->ssl);
    c->handshake_done = 0;
    mbedtls_ssl_free(&c->ssl);
}

/* Turns an mbedTLS result into ours: the stream's own error when the
   stream failed, a certificate error (permanent, with the reasons), or a
   TLS error. */
WSR__PRIVATE wsr_err wsr__tls_error(wsr__tls_conn *c, int ret, const char *doing, wsr_error *err) {
    if ((ret == MBEDTLS_ERR_NET_SEND_FAILED || ret == MBEDTLS_ERR_NET_RECV_FAILED) && c->io_err.code != WSR_OK) {
        *err = c->io_err;
        return err->code;
    }
    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        char why[160];
        uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
        why[0] = '\0';
        if (flags & MBEDTLS_X509_BADCERT_EXPIRED) strcat(why, ", expired");
        if (flags & MBEDTLS_X509_BADCERT_FUTURE) strcat(why, ", not valid yet");
        if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) strcat(why, ", unknown CA");
        if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) strcat(why, ", wrong host");
        if (flags & MBEDTLS_X509_BADCERT_REVOKED) strcat(why, ", revoked");
        if (!why[0]) snprintf(why, sizeof why, ", flags 0x%x", (unsigned)flags);
        wsr__error_set(err, WSR_ERR_TLS_CERT, 0, "certificate not accepted: %s", why + 2);
        return WSR_ERR_TLS_CERT;
    }
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
        wsr__error_set(err, WSR_ERR_EOF, 0, "%s: the peer ended the TLS stream", doing);
        err->transient = 1;
        return WSR_ERR_EOF;
    }
    wsr__tls_fail(err, WSR_ERR_TLS, ret, doing);
    err->transient = 1;   /* a broken handshake (a proxy, a reset) may go better next time */
    return WSR_ERR_TLS;
}

/* One step of the handshake: WSR_OK once done, WSR_ERR_AGAIN meanwhile. */
WSR__PRIVATE wsr_err wsr__tls_handshake(wsr__tls_conn *c, wsr_error *err) {
    int ret;
    if (c->handshake_done) return WSR_OK;
    ret = mbedtls_ssl_handshake(&c->ssl);
    if (ret == 0) { c->handshake_done = 1; c->want = 0; return WSR_OK; }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ) { c->want = WSR_POLL_IN; return WSR_ERR_AGAIN; }
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) { c->want = WSR_POLL_OUT; return WSR_ERR_AGAIN; }
    return wsr__tls_error(c, ret, "TLS handshake", err);
}

/* Reads decrypted bytes. A TLS record is decrypted whole, so the socket may
   be empty while mbedTLS still holds bytes: keep reading until the buffer is
   full or mbedTLS wants the socket. A short read then means "drained", as
   the callers expect from a plain socket. */
WSR__PRIVATE wsr_err wsr__tls_read(wsr__tls_conn *c, void *buf, size_t cap, size_t *got, wsr_error *err) {
    *got = 0;
    if (c->end_ret) return wsr__tls_error(c, c->end_ret, "TLS read", err);
    while (*got < cap) {
        int ret = mbedtls_ssl_read(&c->ssl, (unsigned char *)buf + *got, cap - *got);
        if (ret > 0) { *got += (size_t)ret; continue; }
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) break;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) continue;   /* TLS 1.3, mbedTLS 3 */
#endif
        if (*got) {
            /* mbedTLS has consumed the end (a close_notify, say) already:
               keep it, and report it at the next read, which the pending
               check below makes come at once. */
            c->end_ret = ret;
            return WSR_OK;
        }
        return wsr__tls_error(c, ret, "TLS read", err);
    }
    return *got ? WSR_OK : WSR_ERR_AGAIN;
}

/* Writes up to one record. After WANT_WRITE mbedTLS holds the record and
   must be called again with the same length, which it then reports. */
WSR__PRIVATE wsr_err wsr__tls_write(wsr__tls_conn *c, const void *buf, size_t len, size_t *put, wsr_error *err) {
    int ret;
    size_t n = c->write_pending ? c->write_pending : WSR__MIN(len, (size_t)16384);
    *put = 0;
    if (n > len) n = len;
    ret = mbedtls_ssl_write(&c->ssl, (const unsigned char *)buf, n);
    if (ret >= 0) { c->write_pending = 0; *put = (size_t)ret; return WSR_OK; }
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) {
        c->write_pending = n;
        return WSR_ERR_AGAIN;
    }
    return wsr__tls_error(c, ret, "TLS write", err);
}

/* The client's TLS transport: the TCP transport inside, TLS around it. */
typedef struct wsr__tls_tr {
    wsr_transport inner;
    void *inner_owned;            /* the built-in TCP transport's state, or NULL for yours */
    void (*inner_free)(void *state, const wsr_allocator *a);
    wsr__tls_ctx ctx;
    wsr__tls_conn conn;
    int session;                  /* conn is set up */
    char host[256];
    const char *server_name;      /* tls.server_name, or NULL for the URL's host */
} wsr__tls_tr;

WSR__PRIVATE void wsr__tls_tr_close(void *self) {
    wsr__tls_tr *t = (wsr__tls_tr *)self;
    if (t->session) wsr__tls_conn_end(&t->conn);
    t->session = 0;
    t->inner.close_fn(t->inner.self);
}

WSR__PRIVATE wsr_err wsr__tls_tr_open(void *self, const char *host, int port, uint64_t now, wsr_error *err) {
    wsr__tls_tr *t = (wsr__tls_tr *)self;
    wsr__tls_tr_close(t);
    if (!t->server_name) snprintf(t->host, sizeof t->host, "%s", host);   /* else host holds server_name */
    return t->inner.open_fn(t->inner.self, host, port, now, err);
}

WSR__PRIVATE wsr_err wsr__tls_tr_connect(void *self, uint64_t now, wsr_error *err) {
    wsr__tls_tr *t = (wsr__tls_tr *)self;
    if (!t->session) {
        wsr_err r = t->inner.connect_fn(t->inner.self, now, err);
        if (r != WSR_OK) return r;
        if ((r = wsr__tls_conn_start(&t->conn, &t->ctx, &t->inner, WSR__NO_SOCK, t->host, err)) != WSR_OK) {
            mbedtls_ssl_free(&t->conn.ssl);
            err->transient = 0;
            return r;
        }
        t->session = 1;
    }
    return wsr__tls_handshake(&t->conn, err);
}

WSR__PRIVATE wsr_err wsr__tls_tr_read(void *self, void *buf, size_t cap, size_t *got, wsr_error *err) {
    return wsr__tls_read(&((wsr__tls_tr *)self)->conn, buf, cap, got, err);
}

WSR__PRIVATE wsr_err wsr__tls_tr_write(void *self, const void *buf, size_t len, size_t *put, wsr_error *err) {
    return wsr__tls_write(&((wsr__tls_tr *)self)->conn, buf, len, put, err);
}

WSR__PRIVATE uintptr_t wsr__tls_tr_socket(void *self) {
    wsr__tls_tr *t = (wsr__tls_tr *)self;
    return t->inner.socket_fn(t->inner.self);
}

WSR__PRIVATE int wsr__tls_tr_events(void *self) {
    wsr__tls_tr *t = (wsr__tls_tr *)self;
    if (!t->session) return t->inner.events_fn(t->inner.self);
    return t->conn.handshake_done ? 0 : t->conn.want;
}

WSR__PRIVATE size_t wsr__tls_tr_pending(void *self) {
    wsr__tls_tr *t = (wsr__tls_tr *)self;
    if (!t->session || !t->conn.handshake_done) return 0;
    return t->conn.end_ret ? 1 : mbedtls_ssl_get_bytes_avail(&t->conn.ssl);
}

WSR__PRIVATE uint64_t wsr__tls_tr_timer(void *self) {
    wsr__tls_tr *t = (wsr__tls_tr *)self;
    return !t->session && t->inner.timer_fn ? t->inner.timer_fn(t->inner.self) : 0;
}

WSR__PRIVATE void wsr__tls_tr_free(void *state, const wsr_allocator *a) {
    wsr__tls_tr *t = (wsr__tls_tr *)state;
    wsr__tls_tr_close(t);
    wsr__tls_ctx_free(&t->ctx);
    if (t->inner_owned) t->inner_free(t->inner_owned, a);
    wsr__free(a, state);
}
#endif /* WSR__TLS */

#if WSR__POSIX && !defined(WSR_NO_THREADS)
#include <pthread.h>
/* What a client's background thread needs: the thread, a recursive lock
   (callbacks on the thread may call the locking API), and a pipe whose
   read end sits in the thread's poll() so other threads can wake it. */
typedef struct wsr__thread {
    pthread_t tid;
    pthread_mutex_t mu;
    int wake_r, wake_w;
    volatile int stop;
    int running;
} wsr__thread;

WSR__PRIVATE void wsr__thread_lock(void *t) { pthread_mutex_lock(&((wsr__thread *)t)->mu); }
WSR__PRIVATE int wsr__thread_is_self(void *self) {
    wsr__thread *t = (wsr__thread *)self;
    return t->running && pthread_equal(pthread_self(), t->tid);
}
WSR__PRIVATE void wsr__thread_unlock(void *t) { pthread_mutex_unlock(&((wsr__thread *)t)->mu); }
/* Wakes the thread from poll(), unless it is the caller. A full pipe
   already holds a wake-up, so EAGAIN is fine. */
WSR__PRIVATE void wsr__thread_wake(void *self) {
    wsr__thread *t = (wsr__thread *)self;
    char b = 1;
    ssize_t n;
    if (t->running && pthread_equal(pthread_self(), t->tid)) return;
    do n = write(t->wake_w, &b, 1); while (n < 0 && errno == EINTR);
}

WSR__PRIVATE wsr__thread *wsr__thread_new(const wsr_allocator *a) {
    wsr__thread *t = (wsr__thread *)wsr__alloc(a, sizeof *t);
    pthread_mutexattr_t attr;
    int fds[2];
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    if (pipe(fds) != 0) { wsr__free(a, t); return NULL; }
    t->wake_r = fds[0];
    t->wake_w = fds[1];
    wsr__sock_prepare(t->wake_r);
    wsr__sock_prepare(t->wake_w);
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&t->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    return t;
}

WSR__PRIVATE void wsr__thread_free(wsr__thread *t, const wsr_allocator *a) {
    close(t->wake_r);
    close(t->wake_w);
    pthread_mutex_destroy(&t->mu);
    wsr__free(a, t);
}

WSR__PRIVATE int wsr__thread_start(wsr__thread *t, void *(*fn)(void *), void *arg) {
    t->running = 1;
    if (pthread_create(&t->tid, NULL, fn, arg) != 0) { t->running = 0; return -1; }
    return 0;
}

WSR__PRIVATE void wsr__thread_join(wsr__thread *t) {
    if (t->running) pthread_join(t->tid, NULL);
    t->running = 0;
}

/* poll() on the client's socket and the wake-up pipe. Returns the socket's
   WSR_POLL_* events; a wake-up only ends the wait (the pipe is emptied). */
WSR__PRIVATE int wsr__thread_wait(wsr__thread *t, uintptr_t sock, int events, int timeout_ms) {
    struct pollfd pfd[2];
    int n = 0, r, out = 0;
    char drain[64];
    pfd[0].fd = t->wake_r;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    if (sock != WSR_INVALID_SOCKET) {
        pfd[1].fd = (int)sock;
        pfd[1].events = (short)(((events & WSR_POLL_IN) ? POLLIN : 0) | ((events & WSR_POLL_OUT) ? POLLOUT : 0));
        pfd[1].revents = 0;
        n = 1;
    }
    r = poll(pfd, (nfds_t)(1 + n), timeout_ms);
    if (r <= 0) return 0;
    if (pfd[0].revents) while (read(t->wake_r, drain, sizeof drain) > 0) {}
    if (n && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) out |= WSR_POLL_IN;
    if (n && (pfd[1].revents & POLLOUT)) out |= WSR_POLL_OUT;
    return out;
}
#elif WSR__WIN32 && !defined(WSR_NO_THREADS)
/* The same runner on Win32 threads. A CRITICAL_SECTION is recursive. Pipes
   cannot be polled with WSAPoll, so the wake-up is a UDP socket on
   127.0.0.1 connected to itself: a datagram sent to it makes it readable. */
typedef struct wsr__thread {
    HANDLE h;
    DWORD tid;
    CRITICAL_SECTION mu;
    SOCKET wake;
    void *(*fn)(void *);
    void *arg;
    volatile LONG stop;
    int running;
} wsr__thread;

WSR__PRIVATE void wsr__thread_lock(void *t) { EnterCriticalSection(&((wsr__thread *)t)->mu); }
WSR__PRIVATE int wsr__thread_is_self(void *self) {
    wsr__thread *t = (wsr__thread *)self;
    return t->running && GetCurrentThreadId() == t->tid;
}
WSR__PRIVATE void wsr__thread_unlock(void *t) { LeaveCriticalSection(&((wsr__thread *)t)->mu); }
/* A full socket buffer already holds a wake-up, so WSAEWOULDBLOCK is fine. */
WSR__PRIVATE void wsr__thread_wake(void *self) {
    wsr__thread *t = (wsr__thread *)self;
    char b = 1;
    if (wsr__thread_is_self(t)) return;
    send(t->wake, &b, 1, 0);
}

WSR__PRIVATE wsr__thread *wsr__thread_new(const wsr_allocator *a) {
    wsr__thread *t = (wsr__thread *)wsr__alloc(a, sizeof *t);
    struct sockaddr_in sa;
    int sl = (int)sizeof sa;
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t->wake = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (t->wake == INVALID_SOCKET || bind(t->wake, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(t->wake, (struct sockaddr *)&sa, &sl) != 0 ||
        connect(t->wake, (struct sockaddr *)&sa, sizeof sa) != 0 || wsr__sock_prepare(t->wake) != 0) {
        if (t->wake != INVALID_SOCKET) closesocket(t->wake);
        wsr__free(a, t);
        return NULL;
    }
    InitializeCriticalSection(&t->mu);
    return t;
}

WSR__PRIVATE void wsr__thread_free(wsr__thread *t, const wsr_allocator *a) {
    closesocket(t->wake);
    DeleteCriticalSection(&t->mu);
    wsr__free(a, t);
}

WSR__PRIVATE DWORD WINAPI wsr__thread_entry(LPVOID arg) {
    wsr__thread *t = (wsr__thread *)arg;
    t->fn(t->arg);
    return 0;
}

WSR__PRIVATE int wsr__thread_start(wsr__thread *t, void *(*fn)(void *), void *arg) {
    t->fn = fn;
    t->arg = arg;
    t->running = 1;
    t->h = CreateThread(NULL, 0, wsr__thread_entry, t, 0, &t->tid);
    if (!t->h) { t->running = 0; return -1; }
    return 0;
}

WSR__PRIVATE void wsr__thread_join(wsr__thread *t) {
    if (t->running) { WaitForSingleObject(t->h, INFINITE); CloseHandle(t->h); }
    t->running = 0;
}

/* WSAPoll on the client's socket and the wake-up socket. POLLERR/POLLHUP
   are never asked for (Windows refuses them in events) but are reported:
   they count as readable, so the next read says what happened. */
WSR__PRIVATE int wsr__thread_wait(wsr__thread *t, uintptr_t sock, int events, int timeout_ms) {
    WSAPOLLFD pfd[2];
    int n = 0, r, out = 0;
    char drain[64];
    pfd[0].fd = t->wake;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    if (sock != WSR_INVALID_SOCKET) {
        pfd[1].fd = (SOCKET)sock;
        pfd[1].events = (short)(((events & WSR_POLL_IN) ? POLLIN : 0) | ((events & WSR_POLL_OUT) ? POLLOUT : 0));
        pfd[1].revents = 0;
        n = 1;
    }
    r = WSAPoll(pfd, (ULONG)(1 + n), timeout_ms);
    if (r <= 0) return 0;
    if (pfd[0].revents) while (recv(t->wake, drain, sizeof drain, 0) > 0) {}
    if (n && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) out |= WSR_POLL_IN;
    if (n && (pfd[1].revents & POLLOUT)) out |= WSR_POLL_OUT;
    return out;
}
#endif /* !WSR_NO_THREADS */

/* ------------------------------------------------------------------------
   Drivers: the poll loop for clients and for the server
   ------------------------------------------------------------------------ */
/* >>driver */

WSR__PRIVATE void wsr__tcp_free(void *state, const wsr_allocator *a) {
    wsr__tcp_close(state);
    wsr__free(a, state);
}

WSR_API wsr_client *wsr_client_new(const wsr_client_config *cfg, wsr_error *err) {
    wsr_client *c;
    wsr_error e;
    const wsr_allocator *a = cfg ? &cfg->allocator : NULL;
    if (!cfg || !cfg->url) {
        wsr__error_set(err, WSR_ERR_INVALID, 0, "configuration without a url");
        return NULL;
    }
    c = (wsr_client *)wsr__alloc(a, sizeof *c);
    if (!c) { wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL); return NULL; }
    memset(c, 0, sizeof *c);
    c->net_started = wsr__net_start() == 0;   /* WSAStartup on Windows; undone in wsr_client_free */
    c->cfg = *cfg;
    c->alloc = cfg->allocator;
    c->rand_fn = cfg->random_fn ? cfg->random_fn : wsr__os_random;
    c->rand_user = cfg->random_fn ? cfg->user : NULL;
    c->rtt_ms = -1;
    /* Our own copies of every string, so the caller's may go away. */
    c->cfg.url = wsr__strdup(a, cfg->url);
    c->cfg.origin = wsr__strdup(a, cfg->origin);
    c->cfg.subprotocols = wsr__strdup(a, cfg->subprotocols);
    c->cfg.headers = wsr__strdup(a, cfg->headers);
    c->cfg.heartbeat_text = wsr__strdup(a, cfg->heartbeat_text);
    c->cfg.heartbeat_reply = wsr__strdup(a, cfg->heartbeat_reply);
    if (!c->cfg.url || (cfg->origin && !c->cfg.origin) || (cfg->subprotocols && !c->cfg.subprotocols) ||
        (cfg->headers && !c->cfg.headers) || (cfg->heartbeat_text && !c->cfg.heartbeat_text) ||
        (cfg->heartbeat_reply && !c->cfg.heartbeat_reply)) {
        wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL);
        wsr_client_free(c);
        return NULL;
    }
    if (wsr_url_parse(c->cfg.url, &c->url, &e) != WSR_OK) {
        if (err) *err = e;
        wsr_client_free(c);
        return NULL;
    }
#if !WSR__TLS
    if (c->url.secure) {
        wsr__error_set(err, WSR_ERR_TLS_UNAVAILABLE, 0,
                       "wss:// needs TLS, which is not compiled in (build with WSR_USE_MBEDTLS)");
        wsr_client_free(c);
        return NULL;
    }
#endif
    /* Check the request once now, so a bad header fails here and not later. */
    {
        char probe[1];
        size_t n;
        if (wsr_handshake_request(probe, 0, &n, &c->url, "x", c->cfg.origin, c->cfg.subprotocols,
                                  c->cfg.headers) == WSR_ERR_INVALID) {
            wsr__error_set(err, WSR_ERR_INVALID, 0, "bad header line in headers/origin/subprotocols");
            wsr_client_free(c);
            return NULL;
        }
    }
    c->host = (char *)wsr__alloc(a, c->url.host_len + 1);
    if (!c->host) { wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL); wsr_client_free(c); return NULL; }
    memcpy(c->host, c->url.host, c->url.host_len);
    c->host[c->url.host_len] = '\0';
    if (cfg->transport) {
        c->tr = *cfg->transport;
    } else {
        wsr__tcp *t = (wsr__tcp *)wsr__alloc(a, sizeof *t);
        if (!t) { wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL); wsr_client_free(c); return NULL; }
        memset(t, 0, sizeof *t);
        t->fd = WSR__NO_SOCK;
        t->connect_timeout_ms = cfg->connect_timeout_ms;
        t->ka_idle_s = cfg->tcp_keepalive_idle_s;
        t->ka_interval_s = cfg->tcp_keepalive_interval_s;
        t->ka_count = cfg->tcp_keepalive_count;
        t->user_timeout_ms = cfg->tcp_user_timeout_ms;
        c->tr_owned = t;
        c->tr_free_fn = wsr__tcp_free;
        c->tr.open_fn = wsr__tcp_open;
        c->tr.connect_fn = wsr__tcp_connect;
        c->tr.read_fn = wsr__tcp_read;
        c->tr.write_fn = wsr__tcp_write;
        c->tr.close_fn = wsr__tcp_close;
        c->tr.socket_fn = wsr__tcp_socket;
        c->tr.events_fn = wsr__tcp_events;
        c->tr.timer_fn = wsr__tcp_timer;
        c->tr.self = t;
    }
#if WSR__TLS
    if (c->url.secure) {
        /* wss://: TLS around the transport chosen above. */
        wsr__tls_tr *t = (wsr__tls_tr *)wsr__alloc(a, sizeof *t);
        wsr_error e;
        if (!t) { wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL); wsr_client_free(c); return NULL; }
        memset(t, 0, sizeof *t);
        t->inner = c->tr;
        t->inner_owned = c->tr_owned;
        t->inner_free = c->tr_free_fn;
        c->tr_owned = t;                    /* from here on, freeing t frees the inner one too */
        c->tr_free_fn = wsr__tls_tr_free;
        if (cfg->tls.server_name) {
            snprintf(t->host, sizeof t->host, "%s", cfg->tls.server_name);
            t->server_name = t->host;
        }
        if (wsr__tls_ctx_init(&t->ctx, &cfg->tls, 0, &e) != WSR_OK) {
            if (err) *err = e;
            wsr_client_free(c);
            return NULL;
        }
        if (t->ctx.skip_verify)
            wsr__log(cfg->log_fn, cfg->user, WSR_LOG_WARN, "TLS certificate verification is OFF (insecure_skip_verify)");
        c->tr.open_fn = wsr__tls_tr_open;
        c->tr.connect_fn = wsr__tls_tr_connect;
        c->tr.read_fn = wsr__tls_tr_read;
        c->tr.write_fn = wsr__tls_tr_write;
        c->tr.close_fn = wsr__tls_tr_close;
        c->tr.socket_fn = wsr__tls_tr_socket;
        c->tr.events_fn = wsr__tls_tr_events;
        c->tr.timer_fn = wsr__tls_tr_timer;
        c->tr.pending_fn = wsr__tls_tr_pending;
        c->tr.self = t;
    }
#endif
    if (err) wsr__error_set(err, WSR_OK, 0, NULL);
    return c;
}

#if !defined(WSR_NO_THREADS)
/* The client's background thread: the same loop as wsr_client_poll, with
   the lock released only while it waits, and a pipe to wake it. */
WSR__PRIVATE void *wsr__client_thread_main(void *arg) {
    wsr_client *c = (wsr_client *)arg;
    wsr__thread *t = (wsr__thread *)c->thread;
    int revents = 0;
    wsr__thread_lock(t);
    /* A client that gave up stays parked here (no socket, no timer) in case
       wsr_client_reconnect() restarts it; one closed by the application is done. */
    while (!t->stop && !(c->state == WSR_STATE_CLOSED && c->close_requested)) {
        int timeout, events;
        uintptr_t sock;
        wsr__client_run(c, wsr_now_ms(), revents);
        if (t->stop || (c->state == WSR_STATE_CLOSED && c->close_requested)) break;
        timeout = wsr_client_timeout_ms(c, wsr_now_ms());
        sock = wsr_client_socket(c);
        events = wsr_client_events(c);
        wsr__thread_unlock(t);
        revents = wsr__thread_wait(t, sock, events, timeout);
        wsr__thread_lock(t);
    }
    wsr__thread_unlock(t);
    return NULL;
}
#endif

WSR_API wsr_err wsr_client_start_thread(wsr_client *c) {
#if defined(WSR_NO_THREADS)
    (void)c;
    return WSR_ERR_INVALID;
#else
    wsr__thread *t;
    if (!c) return WSR_ERR_INVALID;
    if (c->thread || c->state == WSR_STATE_CLOSED) return WSR_ERR_STATE;
    if (!(t = wsr__thread_new(&c->alloc))) return WSR_ERR_NOMEM;
    c->thread = t;
    c->lock_fn = wsr__thread_lock;
    c->unlock_fn = wsr__thread_unlock;
    c->wake_fn = wsr__thread_wake;
    c->is_loop_fn = wsr__thread_is_self;
    /* Started with the lock held, so the thread's first step waits until
       everything above is in place. */
    wsr__thread_lock(t);
    if (wsr__thread_start(t, wsr__client_thread_main, c) != 0) {
        wsr__thread_unlock(t);
        c->thread = NULL;
        c->lock_fn = c->unlock_fn = c->wake_fn = NULL;
        c->is_loop_fn = NULL;
        wsr__thread_free(t, &c->alloc);
        return WSR_ERR_NOMEM;
    }
    wsr__thread_unlock(t);
    return WSR_OK;
#endif
}

/* Waits until done(c) holds: on a threaded client by looking every few
   milliseconds while the thread works, otherwise by polling the client. */
WSR__PRIVATE wsr_err wsr__client_wait_for(wsr_client *c, int timeout_ms, int (*done)(const wsr_client *)) {
    uint64_t start = wsr_now_ms();
    if (!c) return WSR_ERR_INVALID;
    /* From a callback it would wait for itself. */
    if (c->thread ? c->is_loop_fn(c->thread) : c->in_run) return WSR_ERR_STATE;
    for (;;) {
        int ok, left = 50;
        wsr__client_lock(c);
        ok = done(c);
        wsr__client_release(c);
        if (ok) return WSR_OK;
        if (timeout_ms >= 0) {
            uint64_t spent = wsr_now_ms() - start;
            if (spent >= (uint64_t)timeout_ms) return WSR_ERR_TIMEOUT;
            left = (int)WSR__MIN((uint64_t)left, (uint64_t)timeout_ms - spent);
        }
        if (c->thread) wsr__sleep_ms(WSR__MIN(left, 5));
        else wsr_client_poll(c, left);
    }
}

WSR__PRIVATE int wsr__client_flushed(const wsr_client *c) { return c->q_count == 0 || c->state == WSR_STATE_CLOSED; }
WSR__PRIVATE int wsr__client_is_closed(const wsr_client *c) { return c->state == WSR_STATE_CLOSED; }

WSR_API wsr_err wsr_client_flush(wsr_client *c, int timeout_ms) {
    return wsr__client_wait_for(c, timeout_ms, wsr__client_flushed);
}

WSR_API wsr_err wsr_client_wait_closed(wsr_client *c, int timeout_ms) {
    return wsr__client_wait_for(c, timeout_ms, wsr__client_is_closed);
}

WSR_API void wsr_client_free(wsr_client *c) {
    wsr_allocator a;
    if (!c) return;
    a = c->alloc;
#if !defined(WSR_NO_THREADS)
    if (c->thread) {
        wsr__thread *t = (wsr__thread *)c->thread;
        wsr__thread_lock(t);
        t->stop = 1;
        wsr__thread_unlock(t);
        wsr__thread_wake(t);
        wsr__thread_join(t);
        wsr__thread_free(t, &a);
        c->thread = NULL;
        c->lock_fn = c->unlock_fn = c->wake_fn = NULL;
        c->is_loop_fn = NULL;
    }
#endif
    if (c->state != WSR_STATE_IDLE && c->state != WSR_STATE_WAITING && c->state != WSR_STATE_CLOSED &&
        c->tr.close_fn)
        c->tr.close_fn(c->tr.self);
    /* Nothing lost silently: what never went out is reported. */
    c->close_requested = 1;
    wsr__q_unframe(c);
    wsr__q_drop_unframed(c, WSR_DELIVERY_CLOSED);
    if (c->tr_owned) c->tr_free_fn(c->tr_owned, &a);
    wsr_proto_free(c->proto);
    wsr__buf_free(&c->in, &a);
    wsr__buf_free(&c->hs, &a);
    wsr__buf_free(&c->queue, &a);
    wsr__free(&a, (void *)c->cfg.url);
    wsr__free(&a, (void *)c->cfg.origin);
    wsr__free(&a, (void *)c->cfg.subprotocols);
    wsr__free(&a, (void *)c->cfg.headers);
    wsr__free(&a, (void *)c->cfg.heartbeat_text);
    wsr__free(&a, (void *)c->cfg.heartbeat_reply);
    wsr__free(&a, c->host);
    if (c->net_started) wsr__net_stop();
    wsr__free(&a, c);
}

WSR_API wsr_err wsr_client_poll(wsr_client *c, int timeout_ms) {
    uint64_t now;
    int t, revents;
    wsr_err r;
    if (!c) return WSR_ERR_INVALID;
    if (c->thread) return WSR_ERR_STATE;
    if (c->state == WSR_STATE_CLOSED && !(c->reconnect_now && !c->close_requested)) return WSR_OK;
    /* First the work that needs no waiting (start an attempt, timers), then
       wait for the socket or the next timer, then read and write. */
    now = wsr_now_ms();
    if ((r = wsr__client_run(c, now, 0)) != WSR_OK || c->state == WSR_STATE_CLOSED) return r;
    t = wsr_client_timeout_ms(c, now);
    if (t < 0 || (timeout_ms >= 0 && timeout_ms < t)) t = timeout_ms;
    revents = wsr__wait_one(wsr_client_socket(c), wsr_client_events(c), t);
    return wsr__client_run(c, wsr_now_ms(), revents);
}

/* ---- server ---------------------------------------------------------------
   One listening socket and an array of connections, all in one poll() call.
   A connection that ends is marked dead, its socket closed and on_close
   called at once; the memory is reclaimed at the end of wsr_server_poll, so
   callbacks may use any wsr_conn they were given during the same poll.
   Nothing one connection does can stop the others: every failure ends only
   that connection, and a client that reads slowly meets slow_policy instead
   of holding anyone up. */

typedef enum { WSR__CONN_HANDSHAKE, WSR__CONN_OPEN, WSR__CONN_CLOSING, WSR__CONN_DEAD } wsr__conn_state;

struct wsr_conn {
    wsr_server *srv;
    wsr__sock fd;
    wsr__conn_state state;
    wsr_proto *proto;
    wsr__buf in;
    wsr__buf hs;                  /* the 101 answer or a refusal, while it is written */
    int refuse_after_write;       /* a refusal: once hs is written, stop sending and linger */
    int lingering;                /* refusal sent: reading and discarding until the client closes */
    int in_handshake_cb;          /* inside on_handshake: wsr_conn_set_subprotocol allowed */
    char *path;
    char subprotocol[64];
    uint64_t deadline;            /* handshake or close-handshake deadline; 0 = none */
    uint64_t last_rx;             /* when bytes last arrived */
    uint64_t last_msg;            /* when a message last arrived, for idle_timeout_ms */
    uint64_t ping_sent_at;
    uint64_t pong_deadline;       /* 0: no keepalive outstanding */
    int rtt_ms;
    uint64_t wire_written;        /* bytes of frames written on this connection */
    uint64_t ping_wire_end;       /* where the keepalive ping ends in that stream */
    uint64_t last_tx;             /* when the socket last took bytes from us */
    const char *close_note;       /* why we closed (static text), for the error when the client answers */
    wsr_error error;
    void *user;
#if WSR__TLS
    wsr__tls_conn *tls;           /* wss://: the TLS session on this socket, else NULL */
#endif
};

struct wsr_server {
    wsr_server_config cfg;
    wsr_allocator alloc;
    wsr__sock lfd;
    int net_started;              /* wsr__net_start succeeded: wsr__net_stop in wsr_server_free */
    int port;
    uint64_t now;                 /* the time of the current poll */
    uint64_t accept_paused_until; /* accept() failed for lack of descriptors: rest a moment */
    int shutting_down;            /* inside wsr_server_shutdown */
    int polling;                  /* inside wsr_server_poll (so a callback is running) */
    int shutdown_dropped;         /* connections that had to be dropped meanwhile */
    wsr_conn **conns;
    size_t nconns, cap;
    wsr__pollfd *pfds;
    size_t pfd_cap;
#if WSR__TLS
    wsr__tls_ctx *tls;            /* serving wss://: certificate, key and settings */
#endif
};

/* A connection's bytes in and out: through TLS when the server serves
   wss://, straight on the socket otherwise. */
WSR__PRIVATE wsr_err wsr__conn_io_read(wsr_conn *c, void *buf, size_t cap, size_t *got, wsr_error *err) {
#if WSR__TLS
    if (c->tls) return wsr__tls_read(c->tls, buf, cap, got, err);
#endif
    return wsr__sock_read(c->fd, buf, cap, got, err);
}
WSR__PRIVATE wsr_err wsr__conn_io_write(wsr_conn *c, const void *buf, size_t len, size_t *put, wsr_error *err) {
#if WSR__TLS
    if (c->tls) return wsr__tls_write(c->tls, buf, len, put, err);
#endif
    return wsr__sock_write(c->fd, buf, len, put, err);
}
/* Decrypted bytes held inside TLS, which poll() cannot see. */
WSR__PRIVATE int wsr__conn_io_pending(const wsr_conn *c) {
#if WSR__TLS
    /* (Not after a refusal: then nothing more is read through TLS.) */
    return c->tls && c->tls->handshake_done && !c->refuse_after_write &&
           (mbedtls_ssl_get_bytes_avail(&c->tls->ssl) > 0 || c->tls->end_ret != 0);
#else
    (void)c;
    return 0;
#endif
}
/* Still in the TLS handshake (which comes before the HTTP upgrade)? */
WSR__PRIVATE int wsr__conn_tls_pending(const wsr_conn *c) {
#if WSR__TLS
    return c->tls && !c->tls->handshake_done;
#else
    (void)c;
    return 0;
#endif
}

WSR_API void wsr_server_config_init(wsr_server_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->max_message_size = WSR_DEFAULT_MAX_MESSAGE;
    cfg->max_handshake_size = WSR_DEFAULT_MAX_HANDSHAKE;
    cfg->conn_max_queued = (size_t)64 * 1024 * 1024;
    cfg->slow_policy = WSR_SLOW_CLOSE;
    cfg->max_connections = 1024;
    cfg->retry_after_s = 5;
    cfg->handshake_timeout_ms = 10000;
    cfg->close_timeout_ms = 5000;
    cfg->ping_interval_ms = 30000;
    cfg->pong_timeout_ms = 10000;
}

WSR_API wsr_server *wsr_server_new(const wsr_server_config *cfg, wsr_error *err) {
    wsr_server *s;
    struct addrinfo hints, *ai = NULL, *it;
    char service[8];
    int gai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    wsr_error e;
    memset(&e, 0, sizeof e);
    if (!cfg || cfg->port < 0 || cfg->port > 65535) {
        wsr__error_set(err, WSR_ERR_INVALID, 0, "bad server configuration (port must be 0-65535)");
        return NULL;
    }
    s = (wsr_server *)wsr__alloc(&cfg->allocator, sizeof *s);
    if (!s) { wsr__error_set(err, WSR_ERR_NOMEM, 0, NULL); return NULL; }
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->alloc = cfg->allocator;
    s->lfd = WSR__NO_SOCK;
    s->net_started = wsr__net_start() == 0;
    s->cfg.host = NULL;                    /* not kept: only used here */
    s->cfg.subprotocols = wsr__strdup(&s->alloc, cfg->subprotocols);
    if (cfg->tls.cert_file || cfg->tls.cert_pem) {
#if WSR__TLS
        s->tls = (wsr__tls_ctx *)wsr__alloc(&s->alloc, sizeof *s->tls);
        if (!s->tls) { wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL); goto fail; }
        if (wsr__tls_ctx_init(s->tls, &cfg->tls, 1, &e) != WSR_OK) goto fail;
#else
        wsr__error_set(&e, WSR_ERR_TLS_UNAVAILABLE, 0, "a wss:// server needs TLS, which is not compiled in (WSR_USE_MBEDTLS)");
        goto fail;
#endif
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(service, sizeof service, "%d", cfg->port);
    gai = getaddrinfo(cfg->host && *cfg->host ? cfg->host : NULL, service, &hints, &ai);
    if (gai != 0) {
        wsr__gai_error(&e, gai, cfg->host ? cfg->host : "(any)");
        goto fail;
    }
    for (it = ai; it; it = it->ai_next) {
        s->lfd = socket(it->ai_family, it->ai_socktype, it->ai_protocol);
        if (s->lfd == WSR__NO_SOCK) { wsr__os_error(&e, wsr__sock_errno(), "socket"); continue; }
        wsr__sock_reuse(s->lfd);
        if (wsr__sock_prepare(s->lfd) == 0 && bind(s->lfd, it->ai_addr, (socklen_t)it->ai_addrlen) == 0 &&
            listen(s->lfd, 128) == 0)
            break;
        wsr__os_error(&e, wsr__sock_errno(), "bind/listen");
        wsr__sock_close(s->lfd);
        s->lfd = WSR__NO_SOCK;
    }
    freeaddrinfo(ai);
    if (s->lfd == WSR__NO_SOCK) goto fail;
    if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (err) wsr__error_set(err, WSR_OK, 0, NULL);
    return s;
fail:
    if (err) *err = e;
    wsr_server_free(s);
    return NULL;
}

WSR_API int wsr_server_port(const wsr_server *s) { return s ? s->port : 0; }

WSR_API size_t wsr_server_conn_count(const wsr_server *s) {
    size_t i, n = 0;
    for (i = 0; s && i < s->nconns; i++) n += s->conns[i]->state != WSR__CONN_DEAD;
    return n;
}

/* Ends the TLS session (close_notify if the handshake was done). */
WSR__PRIVATE void wsr__conn_tls_end(wsr_conn *c) {
#if WSR__TLS
    if (c->tls) {
        wsr__tls_conn_end(c->tls);
        wsr__free(&c->srv->alloc, c->tls);
        c->tls = NULL;
    }
#else
    (void)c;
#endif
}

WSR__PRIVATE void wsr__conn_free(wsr_conn *c) {
    const wsr_allocator *a = &c->srv->alloc;
    wsr__conn_tls_end(c);
    if (c->fd != WSR__NO_SOCK) wsr__sock_close(c->fd);
    wsr_proto_free(c->proto);
    wsr__buf_free(&c->in, a);
    wsr__buf_free(&c->hs, a);
    wsr__free(a, c->path);
    wsr__free(a, c);
}

/* Ends a connection: socket closed now, on_close (for connections that were
   opened) or on_error (for the others) once, memory later (see above). */
WSR__PRIVATE void wsr__conn_end(wsr_conn *c, const wsr_error *why) {
    int was_open = c->state == WSR__CONN_OPEN || c->state == WSR__CONN_CLOSING;
    wsr_server *s = c->srv;
    if (c->state == WSR__CONN_DEAD) return;
    if (c->error.code == WSR_OK && why) c->error = *why;
    if (c->error.close_code == 0) c->error.close_code = 1006;
    c->state = WSR__CONN_DEAD;
    if (s->shutting_down && was_open && why && why->code == WSR_ERR_TIMEOUT) s->shutdown_dropped++;
    wsr__conn_tls_end(c);
    if (c->fd != WSR__NO_SOCK) { wsr__sock_close(c->fd); c->fd = WSR__NO_SOCK; }
    wsr__log(s->cfg.log_fn, s->cfg.user, WSR_LOG_INFO, "connection %s ended: %s", c->path ? c->path : "(handshake)", c->error.message);
    if (was_open && s->cfg.on_close) s->cfg.on_close(c, &c->error, s->cfg.user);
    else if (!was_open && c->error.code != WSR_OK && s->cfg.on_error) s->cfg.on_error(s, c, &c->error, s->cfg.user);
}

/* Starts our side of the close handshake; note says why, for the error
   reported once the client answers. */
WSR__PRIVATE wsr_err wsr__conn_close(wsr_conn *c, int code, const char *reason, const char *note) {
    wsr_err r;
    size_t rl = reason ? strlen(reason) : 0;
    if (c->state != WSR__CONN_OPEN) return WSR_ERR_STATE;
    if ((r = wsr_proto_close(c->proto, code, reason, rl)) != WSR_OK) return r;
    c->state = WSR__CONN_CLOSING;
    c->close_note = note;
    c->deadline = 0;                       /* set at the next poll */
    return WSR_OK;
}

/* Writes what a connection has pending. Returns 0 if it ended. */
WSR__PRIVATE int wsr__conn_tls_step(wsr_conn *c);
WSR__PRIVATE int wsr__conn_write(wsr_conn *c) {
    wsr_error e;
    memset(&e, 0, sizeof e);
    if (wsr__conn_tls_pending(c)) return wsr__conn_tls_step(c);
    for (;;) {
        const unsigned char *data;
        size_t n, put = 0;
        wsr_err r;
        int from_hs = wsr__buf_avail(&c->hs) > 0;
        if (from_hs) { data = c->hs.data + c->hs.pos; n = wsr__buf_avail(&c->hs); }
        else n = c->proto ? wsr_proto_pending(c->proto, &data) : 0;
        if (n == 0) break;
        r = wsr__conn_io_write(c, data, n, &put, &e);
        if (r == WSR_ERR_AGAIN) return 1;
        if (r != WSR_OK) { e.close_code = 1006; wsr__conn_end(c, &e); return 0; }
        if (from_hs) {
            wsr__buf_consume(&c->hs, put);
            /* The 101 (or a refusal) is out: nothing else goes through hs,
               so an open connection does not keep its memory. */
            if (!wsr__buf_avail(&c->hs)) wsr__buf_free(&c->hs, &c->srv->alloc);
        } else {
            wsr_proto_written(c->proto, put);
            if (put) c->last_tx = c->srv->now;
            /* The keepalive ping just reached the socket: its time starts now. */
            if (c->pong_deadline && c->wire_written < c->ping_wire_end && c->wire_written + put >= c->ping_wire_end)
                c->pong_deadline = WSR__MAX(c->pong_deadline, c->srv->now + (uint64_t)c->srv->cfg.pong_timeout_ms);
            c->wire_written += put;
        }
    }
    if (c->refuse_after_write && !c->lingering) {
        /* Closing now, with the client's request still unread, would send
           a reset that can destroy our answer before the client reads it.
           So: no more sending (FIN), then read and discard until the client
           closes, for at most a second. */
#if WSR__TLS
        if (c->tls && c->tls->handshake_done) {
            mbedtls_ssl_close_notify(&c->tls->ssl);   /* the TLS stream ends properly first */
            c->tls->handshake_done = 0;
        }
#endif
        shutdown(c->fd, WSR__SHUT_WR);
        c->lingering = 1;
        c->deadline = c->srv->now + 1000;
        return 1;
    }
    /* §7.1.1: after the close handshake the server closes the TCP connection first. */
    if (c->state == WSR__CONN_CLOSING && c->proto && wsr_proto_close_sent(c->proto) &&
        wsr_proto_close_received(c->proto)) {
        wsr__conn_end(c, NULL);
        return 0;
    }
    return 1;
}

/* Queues a refusal (status, with Retry-After if retry_after_s > 0); the
   connection ends once it is written. */
WSR__PRIVATE void wsr__conn_refuse(wsr_conn *c, int status, int retry_after_s, const wsr_error *why) {
    size_t n = 0;
    if (wsr__buf_reserve(&c->hs, &c->srv->alloc, 256) == WSR_OK) {
        wsr__refusal((char *)c->hs.data, c->hs.cap, &n, status, retry_after_s);
        c->hs.len = n;
    }
    c->refuse_after_write = 1;
    c->error = *why;
    c->error.http_status = status;
    wsr__buf_consume(&c->in, wsr__buf_avail(&c->in));
}

/* Parses the upgrade request; asks on_handshake; answers 101 or refuses. */
WSR__PRIVATE void wsr__conn_handshake(wsr_conn *c) {
    wsr_server *s = c->srv;
    wsr_request req;
    wsr_error e;
    size_t n = 0;
    int verdict = 0;
    wsr_err r = wsr_handshake_request_parse((const char *)c->in.data + c->in.pos, wsr__buf_avail(&c->in),
                                            s->cfg.max_handshake_size, &req, &e);
    if (r == WSR_ERR_AGAIN) return;
    if (r != WSR_OK) {
        wsr__log(s->cfg.log_fn, s->cfg.user, WSR_LOG_WARN, "refused upgrade with %d: %s", req.status, e.message);
        wsr__conn_refuse(c, req.status, 0, &e);
        return;
    }
    wsr_subprotocol_choose(s->cfg.subprotocols, req.protocols, req.protocols_len, c->subprotocol,
                           sizeof c->subprotocol);
    if (s->cfg.on_handshake) {
        c->in_handshake_cb = 1;
        verdict = s->cfg.on_handshake(c, &req, s->cfg.user);
        c->in_handshake_cb = 0;
        if (c->state != WSR__CONN_HANDSHAKE) return;
    }
    if (verdict != 0) {
        int status = verdict >= 400 && verdict <= 599 ? verdict : 403;
        wsr__error_set(&e, WSR_ERR_HANDSHAKE, 0, "on_handshake refused the upgrade of %.*s with %d",
                       (int)WSR__MIN(req.path_len, (size_t)60), req.path, status);
        wsr__conn_refuse(c, status, 0, &e);
        return;
    }
    c->path = (char *)wsr__alloc(&s->alloc, req.path_len + 1);
    c->proto = wsr_proto_new(WSR_ROLE_SERVER, s->cfg.max_message_size, NULL, NULL, &s->alloc);
    if (!c->path || !c->proto || wsr__buf_reserve(&c->hs, &s->alloc, 512 + sizeof c->subprotocol) != WSR_OK) {
        wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL);
        wsr__conn_end(c, &e);
        return;
    }
    memcpy(c->path, req.path, req.path_len);
    c->path[req.path_len] = '\0';
    wsr_handshake_response((char *)c->hs.data, c->hs.cap, &n, req.key, req.key_len, c->subprotocol);
    c->hs.len = n;
    wsr__buf_consume(&c->in, req.head_len);   /* frames may follow the head at once */
    /* Nothing behind the head (the usual case): the head's buffer goes, and
       the first frame gets a read buffer when it comes. A server's idle
       connections are most of its connections. */
    if (!wsr__buf_avail(&c->in)) wsr__buf_free(&c->in, &s->alloc);
    c->state = WSR__CONN_OPEN;
    c->deadline = 0;
    c->last_rx = c->last_msg = c->last_tx = s->now;
    if (s->cfg.on_open) s->cfg.on_open(c, s->cfg.user);
}

WSR__PRIVATE void wsr__conn_event(wsr_conn *c, const wsr_event *ev) {
    wsr_server *s = c->srv;
    /* Messages that arrive after we sent our close are still delivered: the
       client may have sent them before it saw our close (§7.1.2). */
    if (ev->type == WSR_EVENT_MESSAGE) {
        c->last_msg = s->now;
        if (s->cfg.on_message) s->cfg.on_message(c, ev->msg_type, ev->data, ev->len, s->cfg.user);
    } else if (ev->type == WSR_EVENT_PONG) {
        if (c->ping_sent_at && ev->len == 8) {
            uint64_t sent = 0;
            int i;
            for (i = 0; i < 8; i++) sent = sent << 8 | ev->data[i];
            if (sent == c->ping_sent_at) c->rtt_ms = (int)(s->now - sent);
        }
    } else if (ev->type == WSR_EVENT_CLOSE) {
        if (c->state == WSR__CONN_OPEN) {
            wsr_error e;
            size_t rl = WSR__MIN(ev->len, (size_t)WSR_MAX_CLOSE_REASON);
            wsr__error_set(&e, WSR_ERR_PEER_CLOSED, 0, "client closed the connection with code %d", ev->close_code);
            e.close_code = ev->close_code;
            memcpy(e.close_reason, ev->data, rl);
            e.close_reason[rl] = '\0';
            c->error = e;
            c->state = WSR__CONN_CLOSING;
            c->deadline = 0;                 /* armed at the end of this poll, as for our own close */
        } else if (c->error.code == WSR_OK) {
            /* The client answered our close; recorded only now so that a
               client that never answers is reported as a timeout. */
            if (c->close_note)
                wsr__error_set(&c->error, WSR_ERR_CLOSED, 0, "%s (client answered %d)", c->close_note, ev->close_code);
            else
                wsr__error_set(&c->error, WSR_ERR_CLOSED, 0, "closed by the server application (client answered %d)",
                               ev->close_code);
            c->error.close_code = ev->close_code;
        }
    }
}

/* The client broke the protocol: the close frame with the code goes out if
   the socket takes it, then the connection ends. */
WSR__PRIVATE void wsr__conn_broken(wsr_conn *c, const wsr_error *e) {
    c->error = *e;
    wsr__conn_write(c);
    wsr__conn_end(c, e);
}

/* Reads and handles everything a connection has. */
WSR__PRIVATE void wsr__conn_read(wsr_conn *c) {
    wsr_server *s = c->srv;
    wsr_error e;
    int rounds, drained = 0;
    memset(&e, 0, sizeof e);
    if (c->lingering) {
        char sink[4096];
        size_t got;
        while (wsr__sock_read(c->fd, sink, sizeof sink, &got, &e) == WSR_OK) {}
        if (e.code != WSR_OK) wsr__conn_end(c, NULL);    /* EOF or an error: the client is gone */
        return;
    }
    for (rounds = 0; rounds < 16 && !drained && c->state != WSR__CONN_DEAD && !c->refuse_after_write; rounds++) {
        size_t got = 0;
        wsr_err r;
        /* 64 KiB for a connection that is busy; a small first read for one
           whose buffer went back while it was quiet (a pong, a chat line),
           which grows as soon as a read fills it. The rest of a big frame
           goes straight to where the message is gathered (as in the client). */
        size_t want = c->state == WSR__CONN_HANDSHAKE ? 4096 : c->in.cap == 0 ? 2048 : 65536, room = 0;
        unsigned char *dst = NULL;
        int direct = 0;
        if (wsr__conn_tls_pending(c)) {
            if (wsr__conn_tls_step(c) && !wsr__conn_tls_pending(c)) continue;
            return;
        }
        if (c->proto && !wsr__buf_avail(&c->in) && (room = wsr__proto_direct(c->proto, &dst)) >= WSR__DIRECT_MIN) {
            direct = 1;
        } else {
            if (wsr__buf_reserve(&c->in, &s->alloc, want) != WSR_OK) {
                wsr__error_set(&e, WSR_ERR_NOMEM, 0, NULL);
                wsr__conn_end(c, &e);
                return;
            }
            dst = c->in.data + c->in.len;
            room = c->in.cap - c->in.len;
        }
        r = wsr__conn_io_read(c, dst, room, &got, &e);
        if (r == WSR_ERR_AGAIN) return;
        if (r != WSR_OK) {
            if (!(r == WSR_ERR_EOF && c->proto && wsr_proto_close_sent(c->proto) && wsr_proto_close_received(c->proto)))
                e.close_code = 1006;
            else
                memset(&e, 0, sizeof e);
            wsr__conn_end(c, &e);
            return;
        }
        drained = got < room;                    /* short read: nothing left (see the client) */
        c->last_rx = s->now;                     /* proof of life for the keepalive */
        c->pong_deadline = 0;
        if (direct) {
            wsr_event ev;
            if ((r = wsr__proto_direct_done(c->proto, got, &ev, &e)) != WSR_OK) {
                wsr__conn_broken(c, &e);
                return;
            }
            if (ev.type != WSR_EVENT_NONE) wsr__conn_event(c, &ev);
            continue;
        }
        c->in.len += got;
        if (c->state == WSR__CONN_HANDSHAKE) {
            wsr__conn_handshake(c);
            if (c->state == WSR__CONN_HANDSHAKE) continue;
        }
        while (c->state == WSR__CONN_OPEN || c->state == WSR__CONN_CLOSING) {
            wsr_event ev;
            size_t used = 0;
            r = wsr_proto_parse(c->proto, c->in.data + c->in.pos, wsr__buf_avail(&c->in), &used, &ev, &e);
            wsr__buf_consume(&c->in, used);
            if (r != WSR_OK) {
                wsr__conn_broken(c, &e);
                return;
            }
            if (ev.type == WSR_EVENT_NONE) break;
            wsr__conn_event(c, &ev);
        }
    }
}

/* One step of a connection's TLS handshake. Returns 0 if it ended. */
WSR__PRIVATE int wsr__conn_tls_step(wsr_conn *c) {
#if WSR__TLS
    wsr_error e;
    wsr_err r = wsr__tls_handshake(c->tls, &e);
    if (r == WSR_OK || r == WSR_ERR_AGAIN) return 1;
    e.close_code = 1006;
    wsr__conn_end(c, &e);
    return 0;
#else
    (void)c;
    return 1;
#endif
}

/* Accepts every pending connection. Over max_connections, the newcomer
   gets a 503 with Retry-After and is closed. */
WSR__PRIVATE void wsr__server_accept(wsr_server *s, uint64_t now) {
    for (;;) {
        wsr_conn *c;
        int one = 1, en;
        wsr__sock fd = accept(s->lfd, NULL, NULL);
        if (fd == WSR__NO_SOCK) {
            wsr_error e;
            en = wsr__sock_errno();
            if (en == WSR__E_INTR) continue;
            if (WSR__E_WOULDBLOCK(en) || en == WSR__E_CONNABORTED) return;
            /* Out of descriptors (EMFILE, ENFILE) or memory: the pending
               connection stays pending, and poll would report it again at
               once; rest the listener a moment instead of spinning. */
            wsr__os_error(&e, en, "accept");
            s->accept_paused_until = now + 100;
            if (s->cfg.on_error) s->cfg.on_error(s, NULL, &e, s->cfg.user);
            return;
        }
        if (wsr__sock_prepare(fd) < 0) { wsr__sock_close(fd); continue; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
        if (s->nconns == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            wsr_conn **n = (wsr_conn **)wsr__realloc(&s->alloc, s->conns, s->cap * sizeof *n, cap * sizeof *n);
            if (!n) { wsr__sock_close(fd); continue; }
            s->conns = n;
            s->cap = cap;
        }
        c = (wsr_conn *)wsr__alloc(&s->alloc, sizeof *c);
        if (!c) { wsr__sock_close(fd); continue; }
        memset(c, 0, sizeof *c);
        c->srv = s;
        c->fd = fd;
        c->state = WSR__CONN_HANDSHAKE;
        c->rtt_ms = -1;
        c->deadline = s->cfg.handshake_timeout_ms > 0 ? now + (uint64_t)s->cfg.handshake_timeout_ms : 0;
        s->conns[s->nconns++] = c;
#if WSR__TLS
        if (s->tls) {
            /* wss://: the TLS handshake comes first, within the same deadline. */
            wsr_error e;
            c->tls = (wsr__tls_conn *)wsr__alloc(&s->alloc, sizeof *c->tls);
            if (!c->tls || wsr__tls_conn_start(c->tls, s->tls, NULL, fd, NULL, &e) != WSR_OK) {
                if (c->tls) { mbedtls_ssl_free(&c->tls->ssl); wsr__free(&s->alloc, c->tls); c->tls = NULL; }
                wsr__error_set(&e, WSR_ERR_NOMEM, 0, "no memory for a TLS session");
                wsr__conn_end(c, &e);
                continue;
            }
        }
#endif
        if (s->cfg.max_connections > 0 && wsr_server_conn_count(s) > (size_t)s->cfg.max_connections) {
            wsr_error e;
            wsr__error_set(&e, WSR_ERR_STATE, 0, "connection limit (%d) reached: answered 503", s->cfg.max_connections);
            wsr__conn_refuse(c, 503, s->cfg.retry_after_s, &e);
        }
    }
}

/* Keepalive and idle timers of one open connection. */
WSR__PRIVATE void wsr__conn_timers(wsr_conn *c, uint64_t now) {
    wsr_server *s = c->srv;
    wsr_error e;
    if (c->state != WSR__CONN_OPEN) return;
    /* A ping queued behind a long download to a slow reader: alive while
       the socket takes bytes (as in the client). */
    if (c->pong_deadline && now >= c->pong_deadline && c->wire_written < c->ping_wire_end &&
        now - c->last_tx < (uint64_t)s->cfg.pong_timeout_ms)
        c->pong_deadline = c->last_tx + (uint64_t)s->cfg.pong_timeout_ms;
    if (c->pong_deadline && now >= c->pong_deadline) {
        wsr__error_set(&e, WSR_ERR_TIMEOUT, 0, "no answer to the keepalive ping within %d ms", s->cfg.pong_timeout_ms);
        e.transient = 1;
        e.close_code = 1006;
        wsr__conn_end(c, &e);
        return;
    }
    if (s->cfg.idle_timeout_ms > 0 && now - c->last_msg >= (uint64_t)s->cfg.idle_timeout_ms) {
        wsr__conn_close(c, 1000, "idle timeout", "closed: no message within idle_timeout_ms");
        return;
    }
    if (s->cfg.ping_interval_ms > 0 && !c->pong_deadline && now - c->last_rx >= (uint64_t)s->cfg.ping_interval_ms) {
        /* The payload is the send time, so the pong carries the round trip. */
        unsigned char p[8];
        int i;
        /* Quiet for a whole interval: the 64 KiB read buffer goes back until
           bytes come again (one allocation per quiet spell, none per message). */
        if (!wsr__buf_avail(&c->in)) wsr__buf_free(&c->in, &s->alloc);
        wsr__proto_trim(c->proto);
        for (i = 0; i < 8; i++) p[i] = (unsigned char)(now >> (56 - 8 * i));
        if (wsr_proto_send(c->proto, WSR_OP_PING, p, sizeof p, 0) == WSR_OK) {
            const unsigned char *d;
            c->ping_wire_end = c->wire_written + wsr_proto_pending(c->proto, &d);
            c->ping_sent_at = now;
            c->pong_deadline = s->cfg.pong_timeout_ms > 0 ? now + (uint64_t)s->cfg.pong_timeout_ms : 0;
            if (!c->pong_deadline) c->last_rx = now;   /* no deadline: just ping every interval */
        }
    }
}

/* The earliest timer of a connection, or 0. */
WSR__PRIVATE uint64_t wsr__conn_next_timer(const wsr_conn *c) {
    const wsr_server *s = c->srv;
    uint64_t t = c->deadline;
#define WSR__EARLIER(x) do { uint64_t x_ = (x); if (x_ && (!t || x_ < t)) t = x_; } while (0)
    if (c->state == WSR__CONN_OPEN) {
        WSR__EARLIER(c->pong_deadline);
        if (s->cfg.ping_interval_ms > 0 && !c->pong_deadline) WSR__EARLIER(c->last_rx + (uint64_t)s->cfg.ping_interval_ms);
        if (s->cfg.idle_timeout_ms > 0) WSR__EARLIER(c->last_msg + (uint64_t)s->cfg.idle_timeout_ms);
    }
#undef WSR__EARLIER
    return t;
}

WSR__PRIVATE wsr_err wsr__server_poll(wsr_server *s, int timeout_ms);
WSR_API wsr_err wsr_server_poll(wsr_server *s, int timeout_ms) {
    wsr_err r;
    if (!s) return WSR_ERR_INVALID;
    if (s->polling) return WSR_ERR_STATE;      /* from a callback: it would free what the caller holds */
    s->polling = 1;
    r = wsr__server_poll(s, timeout_ms);
    s->polling = 0;
    return r;
}

WSR__PRIVATE wsr_err wsr__server_poll(wsr_server *s, int timeout_ms) {
    size_t i, n;
    int r;
    uint64_t now, next = 0;
    if (s->pfd_cap < s->nconns + 1) {
        size_t cap = (s->nconns + 1) * 2;
        wsr__pollfd *p = (wsr__pollfd *)wsr__realloc(&s->alloc, s->pfds, s->pfd_cap * sizeof *p, cap * sizeof *p);
        if (!p) return WSR_ERR_NOMEM;
        s->pfds = p;
        s->pfd_cap = cap;
    }
    now = wsr_now_ms();
    /* Slot 0 is the listener (no socket, which wsr__poll skips, once shut
       down or while resting); slot i+1 is conns[i]. */
    s->pfds[0].fd = now < s->accept_paused_until ? WSR__NO_SOCK : s->lfd;
    s->pfds[0].events = POLLIN;
    s->pfds[0].revents = 0;
    if (s->accept_paused_until > now) next = s->accept_paused_until;
    for (i = 0; i < s->nconns; i++) {
        wsr_conn *c = s->conns[i];
        const unsigned char *d;
        uint64_t t = wsr__conn_next_timer(c);
        s->pfds[i + 1].fd = c->fd;
        s->pfds[i + 1].events = (short)(POLLIN | ((wsr__buf_avail(&c->hs) || (c->proto && wsr_proto_pending(c->proto, &d)))
                                                     ? POLLOUT : 0));
#if WSR__TLS
        if (wsr__conn_tls_pending(c)) s->pfds[i + 1].events = (short)(c->tls->want == WSR_POLL_OUT ? POLLOUT : POLLIN);
#endif
        s->pfds[i + 1].revents = 0;
        if (t && (!next || t < next)) next = t;
        if (wsr__conn_io_pending(c)) next = now;     /* bytes waiting inside TLS: no sleeping */
    }
    n = s->nconns;
    if (next) {
        int t = next <= now ? 0 : (int)WSR__MIN(next - now, (uint64_t)0x7FFFFFFF);
        if (timeout_ms < 0 || t < timeout_ms) timeout_ms = t;
    }
    r = wsr__poll(s->pfds, n + 1, timeout_ms);
    s->now = now = wsr_now_ms();
    if (r < 0 && wsr__sock_errno() != WSR__E_INTR) {
        wsr_error e;
        return wsr__os_error(&e, wsr__sock_errno(), "poll");
    }
    for (i = 0; i < n; i++) {          /* (revents are 0 after a timeout) */
        wsr_conn *c = s->conns[i];
        short re = s->pfds[i + 1].revents;
        if (c->state == WSR__CONN_DEAD) continue;
        if ((re & (POLLIN | POLLHUP | POLLERR)) || wsr__conn_io_pending(c)) wsr__conn_read(c);
    }
    if (r > 0 && s->lfd != WSR__NO_SOCK && (s->pfds[0].revents & POLLIN)) wsr__server_accept(s, now);
    /* Timers, then write everything pending (replies queued while reading,
       sends from callbacks, pings). */
    for (i = 0; i < s->nconns; i++) {
        wsr_conn *c = s->conns[i];
        if (c->state == WSR__CONN_DEAD) continue;
        wsr__conn_timers(c, now);
        if (c->state == WSR__CONN_DEAD || !wsr__conn_write(c)) continue;
        if (c->state == WSR__CONN_CLOSING && !c->deadline && s->cfg.close_timeout_ms > 0)
            c->deadline = now + (uint64_t)s->cfg.close_timeout_ms;
        if (c->deadline && now >= c->deadline && c->lingering) {
            wsr__conn_end(c, NULL);
            continue;
        }
        if (c->deadline && now >= c->deadline) {
            wsr_error e;
            if (c->state == WSR__CONN_HANDSHAKE)
                wsr__error_set(&e, WSR_ERR_TIMEOUT, 0, "%s within handshake_timeout_ms (%d ms)",
                               wsr__conn_tls_pending(c) ? "TLS handshake not finished" : "no complete upgrade request",
                               s->cfg.handshake_timeout_ms);
            else
                wsr__error_set(&e, WSR_ERR_TIMEOUT, 0, "close handshake timed out");
            e.close_code = 1006;
            wsr__conn_end(c, &e);
        }
    }
    /* Reclaim dead connections, keeping the order of the others. */
    for (i = 0, n = 0; i < s->nconns; i++) {
        if (s->conns[i]->state == WSR__CONN_DEAD) wsr__conn_free(s->conns[i]);
        else s->conns[n++] = s->conns[i];
    }
    s->nconns = n;
    return WSR_OK;
}

WSR_API wsr_err wsr_server_shutdown(wsr_server *s, int timeout_ms) {
    uint64_t until;
    size_t i;
    if (!s) return WSR_ERR_INVALID;
    if (s->lfd != WSR__NO_SOCK) { wsr__sock_close(s->lfd); s->lfd = WSR__NO_SOCK; }     /* no newcomers */
    for (i = 0; i < s->nconns; i++) {
        wsr_conn *c = s->conns[i];
        if (c->state == WSR__CONN_OPEN) {
            wsr__conn_close(c, 1001, "going away", "closed: the server shut down");
        } else if (c->state == WSR__CONN_HANDSHAKE) {
            wsr_error e;
            wsr__error_set(&e, WSR_ERR_CLOSED, 0, "the server shut down during the upgrade");
            wsr__conn_end(c, &e);
        }
    }
    if (s->polling) {
        /* From a callback: the closes are queued and go out as the caller's
           polls go on; waiting here would free connections under it. */
        return WSR_ERR_AGAIN;
    }
    s->shutting_down = 1;
    s->shutdown_dropped = 0;
    until = wsr_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    while (wsr_server_conn_count(s) > 0) {
        uint64_t now = wsr_now_ms();
        if (now >= until) break;
        wsr_server_poll(s, (int)WSR__MIN(until - now, (uint64_t)100));
    }
    for (i = 0; i < s->nconns; i++) {
        wsr_error e;
        wsr__error_set(&e, WSR_ERR_TIMEOUT, 0, "the server shut down; the close handshake did not finish in time");
        e.close_code = 1006;
        wsr__conn_end(s->conns[i], &e);
    }
    s->shutting_down = 0;
    /* Dropped: by the close timer during the wait, or just now. */
    return s->shutdown_dropped ? WSR_ERR_TIMEOUT : WSR_OK;
}

WSR_API void wsr_server_free(wsr_server *s) {
    size_t i;
    if (!s) return;
    for (i = 0; i < s->nconns; i++) wsr__conn_free(s->conns[i]);
    if (s->lfd != WSR__NO_SOCK) wsr__sock_close(s->lfd);
    if (s->net_started) wsr__net_stop();
    wsr__free(&s->alloc, s->conns);
    wsr__free(&s->alloc, s->pfds);
    wsr__free(&s->alloc, (void *)s->cfg.subprotocols);
#if WSR__TLS
    if (s->tls) { wsr__tls_ctx_free(s->tls); wsr__free(&s->alloc, s->tls); }
#endif
    wsr__free(&s->alloc, s);
}

WSR_API wsr_err wsr_conn_send(wsr_conn *c, wsr_msg_type type, const void *data, size_t len) {
    const unsigned char *d;
    size_t pending;
    if (!c || (len && !data) || (type != WSR_MSG_TEXT && type != WSR_MSG_BINARY)) return WSR_ERR_INVALID;
    if (type == WSR_MSG_TEXT && !wsr__utf8_valid(data, len)) return WSR_ERR_INVALID;   /* §5.6 */
    if (c->state != WSR__CONN_OPEN) return WSR_ERR_STATE;
    pending = wsr_proto_pending(c->proto, &d);
    if (len > c->srv->cfg.conn_max_queued || pending > c->srv->cfg.conn_max_queued - len) {
        /* A slow consumer: it does not read as fast as we send. */
        if (c->srv->cfg.slow_policy == WSR_SLOW_CLOSE) {
            wsr_error e;
            wsr__error_set(&e, WSR_ERR_QUEUE_FULL, 0, "slow consumer: %lu bytes waiting for it; closed with 1008",
                           (unsigned long)pending);
            e.close_code = 1008;
            c->error = e;
            wsr__conn_close(c, 1008, "too slow", NULL);
        }
        return WSR_ERR_QUEUE_FULL;
    }
    return wsr_proto_send(c->proto, (int)type, data, len, c->srv->cfg.send_fragment_size);
}

WSR_API wsr_err wsr_conn_send_ping(wsr_conn *c, const void *data, size_t len) {
    if (!c || (len && !data) || len > WSR_MAX_CONTROL_PAYLOAD) return WSR_ERR_INVALID;
    if (c->state != WSR__CONN_OPEN) return WSR_ERR_STATE;
    return wsr_proto_send(c->proto, WSR_OP_PING, data, len, 0);
}

WSR_API wsr_err wsr_conn_close(wsr_conn *c, int code, const char *reason) {
    if (!c) return WSR_ERR_INVALID;
    return wsr__conn_close(c, code, reason, NULL);
}

WSR_API wsr_err wsr_server_broadcast_if(wsr_server *s, wsr_msg_type type, const void *data, size_t len,
                                        int (*filter)(wsr_conn *conn, void *arg), void *arg) {
    size_t i;
    wsr_err first = WSR_OK;
    if (!s) return WSR_ERR_INVALID;
    for (i = 0; i < s->nconns; i++) {
        wsr_err r;
        if (s->conns[i]->state != WSR__CONN_OPEN) continue;
        if (filter && !filter(s->conns[i], arg)) continue;
        r = wsr_conn_send(s->conns[i], type, data, len);
        if (r != WSR_OK && first == WSR_OK) first = r;
    }
    return first;
}

WSR_API wsr_err wsr_server_broadcast(wsr_server *s, wsr_msg_type type, const void *data, size_t len) {
    return wsr_server_broadcast_if(s, type, data, len, NULL, NULL);
}

WSR_API wsr_server *wsr_conn_server(const wsr_conn *c) { return c->srv; }
WSR_API const char *wsr_conn_path(const wsr_conn *c) { return c->path ? c->path : ""; }
WSR_API const char *wsr_conn_subprotocol(const wsr_conn *c) { return c->subprotocol; }
WSR_API void wsr_conn_set_user(wsr_conn *c, void *user) { c->user = user; }
WSR_API void *wsr_conn_user(const wsr_conn *c) { return c->user; }
WSR_API int wsr_conn_rtt_ms(const wsr_conn *c) { return c ? c->rtt_ms : -1; }
WSR_API size_t wsr_conn_queued_bytes(const wsr_conn *c) {
    const unsigned char *d;
    return c->proto ? wsr_proto_pending(c->proto, &d) : 0;
}

WSR_API wsr_err wsr_conn_set_subprotocol(wsr_conn *c, const char *subprotocol) {
    size_t n = subprotocol ? strlen(subprotocol) : 0;
    if (!c || n >= sizeof c->subprotocol) return WSR_ERR_INVALID;
    if (!c->in_handshake_cb) return WSR_ERR_STATE;
    if (n) memcpy(c->subprotocol, subprotocol, n);
    c->subprotocol[n] = '\0';
    return WSR_OK;
}

#endif /* WSR__IMPLEMENTATION_ONCE */
#endif /* WSR_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the ws_reconnect.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
