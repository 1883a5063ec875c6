/* Raw sockets for the tests that play a hand-written peer: the POSIX calls
   on POSIX; on Windows, thin wrappers with the same names over Winsock, so
   the tests keep their int descriptors, errno, close() and poll(). Include
   after ws_reconnect.h. Test code only: the library never does this. */
#ifndef WSR_TEST_SOCK_H
#define WSR_TEST_SOCK_H
#include <errno.h>
#if !defined(_WIN32)
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#define OS_ECONNREFUSED ECONNREFUSED   /* the raw code the library reports in os_error */
#else
#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <io.h>
#include <fcntl.h>
#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0
#endif
#define F_GETFL 3
#define F_SETFL 4
#define O_NONBLOCK 0x4000
typedef ULONG nfds_t;
#define OS_ECONNREFUSED WSAECONNREFUSED /* os_error keeps the raw Winsock code */
/* SOCKET values fit in an int in practice; INVALID_SOCKET becomes -1. */
static __attribute__((unused)) void ts_init(void) {
    static int done;
    WSADATA wd;
    if (!done) { done = 1; WSAStartup(MAKEWORD(2, 2), &wd); }
}
static __attribute__((unused)) int ts_errno(void) {
    switch (WSAGetLastError()) {
    case WSAEWOULDBLOCK: return EWOULDBLOCK;
    case WSAEINTR: return EINTR;
    case WSAECONNRESET: return ECONNRESET;
    case WSAECONNABORTED: return ECONNABORTED;
    case WSAECONNREFUSED: return ECONNREFUSED;
    case WSAETIMEDOUT: return ETIMEDOUT;
    case WSAEINPROGRESS: return EINPROGRESS;
    default: return WSAGetLastError();
    }
}
static __attribute__((unused)) int ts_socket(int d, int t, int p) { SOCKET s; ts_init(); s = socket(d, t, p); return s == INVALID_SOCKET ? -1 : (int)s; }
static __attribute__((unused)) int ts_accept(int l, struct sockaddr *a, socklen_t *al) { SOCKET s = accept((SOCKET)l, a, al); return s == INVALID_SOCKET ? -1 : (int)s; }
static __attribute__((unused)) int ts_close(int fd) { return closesocket((SOCKET)fd); }
static __attribute__((unused)) int ts_send(int fd, const void *b, size_t n, int f) { return send((SOCKET)fd, (const char *)b, (int)n, f); }
static __attribute__((unused)) int ts_recv(int fd, void *b, size_t n, int f) { return recv((SOCKET)fd, (char *)b, (int)n, f); }
static __attribute__((unused)) int ts_setsockopt(int fd, int l, int o, const void *v, socklen_t n) { return setsockopt((SOCKET)fd, l, o, (const char *)v, n); }
static __attribute__((unused)) int ts_getsockopt(int fd, int l, int o, void *v, socklen_t *n) { return getsockopt((SOCKET)fd, l, o, (char *)v, n); }
static __attribute__((unused)) int ts_fcntl(int fd, int cmd, int v) { u_long on = 1; if (cmd == F_SETFL && (v & O_NONBLOCK)) return ioctlsocket((SOCKET)fd, FIONBIO, &on); return 0; }
static __attribute__((unused)) int ts_poll(struct pollfd *p, nfds_t n, int t) { if (n == 0) { Sleep((DWORD)t); return 0; } return WSAPoll(p, n, t); }
#define socket ts_socket
#define accept ts_accept
#define close ts_close
#define send ts_send
#define recv ts_recv
#define setsockopt ts_setsockopt
#define getsockopt ts_getsockopt
#define fcntl ts_fcntl
#define poll ts_poll
#undef errno
/* An lvalue, as tests assign it; reading maps WSAGetLastError() to errno
   values, so what was assigned is not kept (the Winsock error is). */
static __attribute__((unused)) int *ts_errno_ptr(void) { static int v; v = ts_errno(); return &v; }
#define errno (*ts_errno_ptr())
#endif
#endif
