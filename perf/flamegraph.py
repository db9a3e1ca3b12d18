#!/usr/bin/env python3
"""Folds `perf script` call stacks and draws a flame graph as SVG.

Debian 12 ships no flame graph tool, so this is a small one of our own.

    perf script -i perf.data | perf/flamegraph.py --svg out.svg --top 25 [--per-frame-ns NS]

Reads perf script's text output (one sample: a header line, then one
"addr symbol (dso)" line per frame, innermost first, then a blank line).
Writes the SVG (widths proportional to samples, root at the bottom) and
prints the functions with the most self samples and the most inclusive
samples, which is the reading that goes into docs/perf.md, and every
sample's self time by where it is spent (see CATEGORIES; with
--per-frame-ns, the relay's CPU per delivered frame, also in ns per frame).
"""
import argparse
import collections
import html
import re
import sys

FRAME = re.compile(r"^\s*[0-9a-f]+\s+(.+?)\s+\((.*)\)\s*$")


def clean(sym, dso):
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    if sym == "[unknown]":
        base = dso.rsplit("/", 1)[-1]
        return f"[{base}]"
    return sym


# Where a sample's self time goes, by the innermost frame's library and,
# for the kernel, by what the stack is doing. Order matters: the first
# match wins.
KERNEL_WAIT = re.compile(r"^(io_cqring_wait|schedule|__schedule|schedule_hrtimeout_range|"
                         r"finish_task_switch|io_run_task_work|__io_run_local_work|"
                         r"io_cqring_wait_schedule)")
KERNEL_NET = re.compile(r"(udp|^ip_|^ip6_|__ip_|sock_|skb|^__sys_sendmsg|^__sys_recvmsg|"
                        r"io_sendmsg|io_recvmsg|io_recv|io_send|^net_rx|^__netif|^loopback|"
                        r"^__dev_queue|^dev_hard|^process_backlog|^__napi|copy_to_iter|"
                        r"copy_from_iter|csum)")
CATEGORIES = [
    "AEAD and TLS (GnuTLS, nettle)",
    "QUIC and HTTP/3 (ngtcp2, nghttp3)",
    "ours (wtrelay)",
    "libc (memcpy, malloc, ...)",
    "kernel: UDP send and receive path",
    "kernel: waiting on the ring, wake-ups, scheduling",
    "kernel: other (io_uring submission, timers, syscalls)",
    "other (liburing, vDSO, unresolved)",
]


def category(raw):
    """raw: [(symbol, dso)], innermost first."""
    sym, dso = raw[0]
    base = dso.rsplit("/", 1)[-1]
    if re.search(r"gnutls|nettle|hogweed|gmp", base):
        return CATEGORIES[0]
    if re.search(r"ngtcp2|nghttp3", base):
        return CATEGORIES[1]
    if base.startswith("wtrelay") or base.startswith("wtbench"):
        return CATEGORIES[2]
    if base.startswith("libc") or base.startswith("ld-linux"):
        return CATEGORIES[3]
    if "kernel" in base or base.startswith("[k"):
        names = [s for s, d in raw if "kernel" in d]
        if any(KERNEL_WAIT.match(n) for n in names):
            return CATEGORIES[5]
        if any(KERNEL_NET.search(n) for n in names):
            return CATEGORIES[4]
        return CATEGORIES[6]
    return CATEGORIES[7]


def read_stacks(f, cats=None):
    stacks = collections.Counter()
    frames = []
    raw = []

    def done():
        stacks[tuple(reversed(frames))] += 1
        if cats is not None:
            cats[category(raw)] += 1

    for line in f:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                done()
            frames = []
            raw = []
            continue
        m = FRAME.match(line)
        if m:
            frames.append(clean(m.group(1), m.group(2)))
            raw.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    if frames:
        done()
    return stacks


class Node:
    __slots__ = ("name", "count", "children")

    def __init__(self, name):
        self.name = name
        self.count = 0
        self.children = {}


def build(stacks):
    root = Node("all")
    for stack, n in stacks.items():
        root.count += n
        node = root
        for fr in stack:
            node = node.children.setdefault(fr, Node(fr))
            node.count += n
    return root


def color(name):
    h = 0
    for ch in name:
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    r = 200 + h % 55
    g = 80 + (h >> 8) % 120
    b = 40 + (h >> 16) % 40
    return f"rgb({r},{g},{b})"


def svg(root, width=1400, row=16):
    rects = []
    depth_max = [0]

    def walk(node, x, depth):
        depth_max[0] = max(depth_max[0], depth)
        w = node.count / root.count * width
        if w >= 0.3:
            rects.append((x, depth, w, node.name, node.count))
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            walk(child, cx, depth + 1)
            cx += child.count / root.count * width

    walk(root, 0.0, 0)
    height = (depth_max[0] + 2) * row + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="11">',
           f'<text x="4" y="14">wtrelay flame graph: {root.count} samples</text>']
    for x, depth, w, name, count in rects:
        y = height - (depth + 1) * row
        pct = 100.0 * count / root.count
        label = html.escape(name)
        out.append(f'<g><title>{label} ({count} samples, {pct:.2f}%)</title>'
                   f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 1}" '
                   f'fill="{color(name)}"/>')
        if w > 40:
            chars = int(w / 7)
            text = label if len(name) <= chars else html.escape(name[:max(chars - 2, 1)]) + ".."
            out.append(f'<text x="{x + 2:.2f}" y="{y + row - 4}">{text}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--svg", help="write the flame graph here")
    ap.add_argument("--folded", help="write folded stacks here")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--per-frame-ns", type=float, default=0,
                    help="the relay's CPU per delivered frame: the breakdown also in ns per frame")
    a = ap.parse_args()
    cats = collections.Counter()
    stacks = read_stacks(sys.stdin, cats)
    total = sum(stacks.values())
    if not total:
        sys.exit("no samples with call stacks in the input")
    if a.folded:
        with open(a.folded, "w") as f:
            for st, n in stacks.most_common():
                f.write(";".join(st) + f" {n}\n")
    if a.svg:
        with open(a.svg, "w") as f:
            f.write(svg(build(stacks)))
    self_c = collections.Counter()
    incl = collections.Counter()
    for st, n in stacks.items():
        self_c[st[-1]] += n
        for fr in set(st):
            incl[fr] += n
    print(f"{total} samples")
    print(f"top {a.top} by self time:")
    for name, n in self_c.most_common(a.top):
        print(f"  {100.0 * n / total:6.2f}%  {name}")
    print(f"top {a.top} by inclusive time:")
    for name, n in incl.most_common(a.top):
        print(f"  {100.0 * n / total:6.2f}%  {name}")
    print("self time by where it is spent" +
          (f" (of {a.per_frame_ns:.0f} ns of relay CPU per delivered frame):" if a.per_frame_ns else ":"))
    for c in CATEGORIES:
        if cats[c]:
            share = cats[c] / total
            ns = f"  {share * a.per_frame_ns:7.0f} ns/frame" if a.per_frame_ns else ""
            print(f"  {100.0 * share:6.2f}%{ns}  {c}")


if __name__ == "__main__":
    main()
