#!/usr/bin/env python3
"""Hostile frames from a VM namespace for the LAN guard test (AF_PACKET).

  rawframes.py arp DEV DST_MAC CLAIM_IP TARGET_IP RATE SECONDS
        ARP spoof: every 1/RATE s one ARP reply to DST_MAC and one broadcast
        ARP request for TARGET_IP, both claiming CLAIM_IP with DEV's own MAC;
        prints the number of frames sent
  rawframes.py udp DEV DST_MAC DST_IP PORT SRC_IP [SRC_IP...]
        one UDP datagram to DST_IP:PORT from each SRC_IP (forged or not),
        payload "from SRC_IP"; prints the number sent
  rawframes.py storm DEV SECONDS
        1514-byte broadcast frames (ethertype 0x88b5) as fast as the socket
        takes them for SECONDS; prints the number sent
  rawframes.py ra DEV PREFIX COUNT
        COUNT rogue IPv6 Router Advertisements to all nodes from DEV's
        link-local address: default router, PREFIX (a /64, "2001:db8:bad::")
        on-link and autonomous; prints the number sent
  rawframes.py listen ADDR PORT SECONDS OUT
        counts UDP datagrams on ADDR:PORT for SECONDS; writes one line per
        datagram ("<payload>") to OUT

Only the test's own namespaces are reached: frames leave through DEV, the
TAP device of the VM namespace this runs in. Bounded by SECONDS.
"""
import socket
import struct
import sys
import time


def mac_bytes(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip_bytes(s):
    return socket.inet_aton(s)


def own_mac(dev):
    with open(f"/sys/class/net/{dev}/address") as f:
        return mac_bytes(f.read().strip())


def raw(dev):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    return s


def arp_frame(eth_dst, mac, op, spa, tha, tpa):
    eth = eth_dst + mac + struct.pack("!H", 0x0806)
    return eth + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + spa + tha + tpa


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(eth_dst, mac, src, dst, port, payload):
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return eth_dst + mac + struct.pack("!H", 0x0800) + hdr + udp


def ra_frame(mac, prefix):
    """A Router Advertisement from fe80::<EUI-64 of mac> to ff02::1."""
    iid = bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    src = b"\xfe\x80" + bytes(6) + iid
    dst = b"\xff\x02" + bytes(13) + b"\x01"
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    body += struct.pack("!BB", 1, 1) + mac
    body += struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, prefix)
    pseudo = src + dst + struct.pack("!I", len(body)) + b"\x00\x00\x00\x3a"
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    ip6 = struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + src + dst
    return b"\x33\x33\x00\x00\x00\x01" + mac + b"\x86\xdd" + ip6 + body


def main():
    cmd = sys.argv[1]
    if cmd == "arp":
        dev, dst, claim, target = sys.argv[2], mac_bytes(sys.argv[3]), ip_bytes(sys.argv[4]), ip_bytes(sys.argv[5])
        rate, secs = float(sys.argv[6]), float(sys.argv[7])
        s, mac = raw(dev), own_mac(dev)
        reply = arp_frame(dst, mac, 2, claim, dst, target)
        request = arp_frame(b"\xff" * 6, mac, 1, claim, b"\0" * 6, target)
        n, end = 0, time.monotonic() + secs
        while time.monotonic() < end:
            s.send(reply)
            s.send(request)
            n += 2
            time.sleep(1 / rate)
        print(n)
    elif cmd == "udp":
        dev, dst, dst_ip, port = sys.argv[2], mac_bytes(sys.argv[3]), ip_bytes(sys.argv[4]), int(sys.argv[5])
        s, mac = raw(dev), own_mac(dev)
        n = 0
        for src in sys.argv[6:]:
            s.send(udp_frame(dst, mac, ip_bytes(src), dst_ip, port, f"from {src}".encode()))
            n += 1
            time.sleep(0.05)
        print(n)
    elif cmd == "storm":
        dev, secs = sys.argv[2], float(sys.argv[3])
        s, mac = raw(dev), own_mac(dev)
        frame = b"\xff" * 6 + mac + struct.pack("!H", 0x88B5) + bytes(1500)
        n, end = 0, time.monotonic() + secs
        while time.monotonic() < end:
            for _ in range(64):
                try:
                    s.send(frame)
                    n += 1
                except BlockingIOError:
                    pass
                except OSError:  # ENOBUFS: the TAP queue is full, go on
                    pass
        print(n)
    elif cmd == "ra":
        dev, prefix, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        s = raw(dev)
        frame = ra_frame(own_mac(dev), prefix)
        for _ in range(count):
            s.send(frame)
            time.sleep(0.05)
        print(count)
    elif cmd == "listen":
        addr, port, secs, out = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        end = time.monotonic() + secs
        with open(out, "w") as f:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    data, _ = s.recvfrom(2048)
                except socket.timeout:
                    break
                f.write(data.decode(errors="replace") + "\n")
                f.flush()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
