#!/usr/bin/env python3
"""Fake internet servers for the netns tier (run inside a namespace).

  inetsrv.py [--echo ADDR:PORT] [--greet ADDR:PORT[:TEXT]]
             [--answer ADDR:PORT:TEXT] [--dns ADDR:PORT]
             [--dns-log FILE] [--dns-silent NAME]

--echo    UDP: answers each datagram with b"echo:" + the datagram
--greet   TCP: sends TEXT (default "hello") to each connection, closes it
--answer  UDP: answers each datagram with TEXT
--dns     DNS: test.example -> 198.18.0.2 (A), every other name NXDOMAIN;
          --dns-log appends "id source-port qname-hex" a query,
          --dns-silent never answers names under NAME (e.g. flood.example)
Each option may be given more than once; the servers run until killed.
"""
import argparse, socket, struct, threading


def addr(spec):
    host, port, *rest = spec.split(":", 2)
    return (host, int(port)), (rest[0] if rest else None)


def udp(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(a)
    return s


def echo(a):
    s = udp(a)
    while True:
        d, p = s.recvfrom(65535)
        s.sendto(b"echo:" + d, p)


def answer(a, text):
    s = udp(a)
    while True:
        _, p = s.recvfrom(65535)
        s.sendto(text.encode(), p)


def greet(a, text):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(a)
    s.listen(64)
    while True:
        c, _ = s.accept()
        c.sendall(text.encode())
        c.close()


def qname(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"


def dns(a, log, silent):
    s = udp(a)
    out = open(log, "a", buffering=1) if log else None
    silent = qname(silent) if silent else None
    while True:
        q, p = s.recvfrom(4096)
        qid = struct.unpack("!H", q[:2])[0]
        i = 12
        while q[i]:
            i += q[i] + 1
        name = q[12:i + 1].lower()
        question = q[12:i + 5]
        if silent and name.endswith(silent):
            continue
        if out:
            out.write("%d %d %s\n" % (qid, p[1], name.hex()))
        if name == qname("test.example"):
            ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([198, 18, 0, 2])
            s.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + ans, p)
        else:
            s.sendto(struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question, p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--echo", action="append", default=[])
    ap.add_argument("--greet", action="append", default=[])
    ap.add_argument("--answer", action="append", default=[])
    ap.add_argument("--dns", action="append", default=[])
    ap.add_argument("--dns-log")
    ap.add_argument("--dns-silent")
    o = ap.parse_args()
    jobs = []
    for spec in o.echo:
        jobs.append((echo, (addr(spec)[0],)))
    for spec in o.greet:
        a, text = addr(spec)
        jobs.append((greet, (a, text or "hello")))
    for spec in o.answer:
        a, text = addr(spec)
        jobs.append((answer, (a, text or "")))
    for spec in o.dns:
        jobs.append((dns, (addr(spec)[0], o.dns_log, o.dns_silent)))
    ts = [threading.Thread(target=f, args=args, daemon=True) for f, args in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


if __name__ == "__main__":
    main()
