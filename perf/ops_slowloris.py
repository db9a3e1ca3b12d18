#!/usr/bin/env python3
"""Slowloris against the ops listener, with a health probe alongside.

    perf/ops_slowloris.py PORT [HELD] [SECONDS]

Holds HELD (256) half-sent request heads open on 127.0.0.1:PORT, re-opening
any the relay closes, and probes /healthz twice a second for SECONDS (20)
with a 2 s timeout, as a container health check would. Prints how many
probes got 200. Loopback only.
"""
import socket
import sys
import time
import urllib.request

port = int(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 256
secs = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0


def hold():
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    s.setblocking(False)
    return s


held = [hold() for _ in range(n)]
time.sleep(0.3)
ok = total = reopened = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    for i, s in enumerate(held):  # refill what the relay closed
        try:
            if s.recv(1) == b"":
                raise ConnectionResetError
        except BlockingIOError:
            continue
        except OSError:
            pass
        s.close()
        held[i] = hold()
        reopened += 1
    total += 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            ok += r.status == 200
    except OSError:
        pass
    time.sleep(0.5)
print(f"held={n} probes={total} ok={ok} failed={total - ok} reopened={reopened}")
