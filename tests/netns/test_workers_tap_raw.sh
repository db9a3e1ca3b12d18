#!/usr/bin/env bash
# test_workers_tap.sh with net.ipv4.ping_group_range closed in the relay's
# namespace: each worker's ICMP NAT falls back to a raw socket, and the
# per-worker echo id slices keep one worker from taking another's replies.
ICMP_MODE=raw exec bash "$(dirname "$0")/test_workers_tap.sh"
