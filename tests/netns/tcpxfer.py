#!/usr/bin/env python3
"""TCP transfers for the netns tier, with a stall meter.

  tcpxfer.py serve ADDR PORT FILE [RATE]
                                    serve FILE to every connection (after a
                                    request line), many connections at once;
                                    RATE bytes/s at most when given
  tcpxfer.py get ADDR PORT OUT      download to OUT; prints
                                    "<bytes> <sha256> <seconds> <max_gap>"
                                    where max_gap is the longest time (s) in
                                    which no byte arrived (a stall)
  tcpxfer.py sink ADDR PORT         read each connection to its end, answer
                                    "<bytes> <sha256>"
  tcpxfer.py put ADDR PORT FILE     upload FILE to a sink; prints
                                    "<bytes> <sha256 the sink saw> <seconds>"

Bounded: socket timeouts, and the caller runs it under `timeout`.
"""
import hashlib
import socket
import sys
import threading
import time


def listener(addr, port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    return s


def accept_loop(s, one):
    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def serve(addr, port, path, rate=0):
    data = open(path, "rb").read()
    s = listener(addr, port)

    def one(c):
        try:
            c.settimeout(120)
            c.recv(4096)
            if rate:
                t0 = time.monotonic()
                step = max(1024, rate // 20)
                for off in range(0, len(data), step):
                    c.sendall(data[off:off + step])
                    ahead = (off + step) / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            else:
                c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            c.recv(1)
        except OSError:
            pass
        c.close()

    accept_loop(s, one)


def get(addr, port, out):
    t0 = time.monotonic()
    s = socket.create_connection((addr, port), timeout=30)
    s.settimeout(60)
    s.sendall(b"GET\n")
    h = hashlib.sha256()
    n = 0
    last = time.monotonic()
    gap = 0.0
    with open(out, "wb") as f:
        while True:
            b = s.recv(262144)
            now = time.monotonic()
            gap = max(gap, now - last)
            last = now
            if not b:
                break
            h.update(b)
            f.write(b)
            n += len(b)
    s.close()
    print(n, h.hexdigest(), "%.4f" % (time.monotonic() - t0), "%.2f" % gap)


def sink(addr, port):
    s = listener(addr, port)

    def one(c):
        try:
            c.settimeout(120)
            h = hashlib.sha256()
            n = 0
            while True:
                b = c.recv(262144)
                if not b:
                    break
                h.update(b)
                n += len(b)
            c.sendall(b"%d %s" % (n, h.hexdigest().encode()))
        except OSError:
            pass
        c.close()

    accept_loop(s, one)


def put(addr, port, path):
    data = open(path, "rb").read()
    t0 = time.monotonic()
    s = socket.create_connection((addr, port), timeout=30)
    s.settimeout(60)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        b = s.recv(200)
        if not b:
            break
        answer += b
    print(answer.decode(), "%.4f" % (time.monotonic() - t0))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif sys.argv[1] == "get":
        get(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "sink":
        sink(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "put":
        put(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit("usage: tcpxfer.py serve|get|sink|put ...")
