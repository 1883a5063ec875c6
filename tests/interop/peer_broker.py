"""peer_broker.py - starts the interop peers for a test that cannot start
them itself: tests/test_interop.c built for Windows and run under wine,
where a Windows process can neither start Node nor Python nor kill them.

  /usr/bin/python3 peer_broker.py

Listens on 127.0.0.1 port 0 and prints the port as its first line. It ends
when its stdin closes or on SIGTERM (tools/test-windows.sh stops it by its
PID), killing every process it started. Its stdin must be a pipe someone
holds: a non-interactive shell gives a background job /dev/null, which
would end it at once. SIGKILL would leave its processes running.

Each TCP connection is one peer process:
  request   one line: a JSON array, the command. "node" and "python" as its
            first element mean $WSR_NODE (default /usr/bin/node) and
            /usr/bin/python3; the process runs in this directory, stdin from
            /dev/null.
  answer    records of one type byte, a 4-byte big-endian length, the data:
              O  bytes the process wrote to stdout
              E  bytes it wrote to stderr
              X  its end: the exit code, or -N when killed by signal N
                 (the last record; the connection closes after it)
  stop      any byte from the test (even one sent with the command), or the
            test closing the connection, kills the process (SIGKILL) at once;
            the X record still follows when the connection is open to read it.
A process that cannot be started (or a request that is not a non-empty JSON
array of strings) ends at once with "E" saying why and "X 127".
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = {"node": os.environ.get("WSR_NODE") or "/usr/bin/node", "python": "/usr/bin/python3"}

MAX_REQUEST = 1 << 20                          # a command line longer than this is not one of ours
procs = set()
procs_lock = threading.Lock()


def record(conn, lock, kind, data):
    try:
        with lock:
            conn.sendall(kind + struct.pack(">I", len(data)) + data)
    except OSError:
        pass                                   # the test went away: the process is being killed


def pump(stream, conn, lock, kind):
    while True:
        data = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not data:
            return
        record(conn, lock, kind, data)


def parse(line):
    """The command: a non-empty JSON array of strings; its first one mapped
    through PROGRAMS. ValueError if it is not that."""
    argv = json.loads(line.decode("utf-8"))
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("not a non-empty JSON array of strings")
    return [PROGRAMS.get(argv[0], argv[0])] + argv[1:]


def serve(conn):
    lock = threading.Lock()
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > MAX_REQUEST:
            conn.close()
            return
        data += chunk
    line, _, early = data.partition(b"\n")
    try:
        argv = parse(line)
        proc = subprocess.Popen(argv, cwd=HERE, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except (ValueError, OSError) as e:
        record(conn, lock, b"E", ("peer_broker: cannot start %r: %s\n" % (line, e)).encode())
        record(conn, lock, b"X", b"127")
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()
        return
    with procs_lock:
        procs.add(proc)

    def watch_test():
        # Anything from the test, or its end, means: stop the process now.
        # It reads on to the end, so that closing never leaves unread bytes
        # (which would make the close a reset, losing what the test has not
        # read yet).
        try:
            while conn.recv(4096):
                if proc.poll() is None:
                    proc.kill()
        except OSError:
            pass
        if proc.poll() is None:
            proc.kill()

    readers = [threading.Thread(target=pump, args=(proc.stdout, conn, lock, b"O"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, conn, lock, b"E"), daemon=True)]
    for t in readers:
        t.start()
    watcher = threading.Thread(target=watch_test, daemon=True)
    watcher.start()
    if early:                                  # the stop byte came with the command
        proc.kill()
    code = proc.wait()
    for t in readers:
        t.join()
    with procs_lock:
        procs.discard(proc)
    record(conn, lock, b"X", str(code).encode())
    # The socket is closed only once the watcher is done with it: closing it
    # under a blocked recv() would neither wake that nor send our FIN. The
    # test closes its end after the X record; if it does not, shutting down
    # the read side wakes the watcher.
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    watcher.join(10)
    if watcher.is_alive():
        try:
            conn.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        watcher.join()
    conn.close()


def main():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    sys.stdout.write("%d\n" % ls.getsockname()[1])
    sys.stdout.flush()

    def accept_loop():
        while True:
            conn, _ = ls.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        with procs_lock:
            for p in procs:
                if p.poll() is None:
                    p.kill()


if __name__ == "__main__":
    main()
