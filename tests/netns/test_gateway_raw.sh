#!/usr/bin/env bash
# The gateway test again with net.ipv4.ping_group_range left closed in the
# relay's namespace: ICMP NAT must fall back to a raw ICMP socket.
ICMP_MODE=raw exec bash "$(dirname "$0")/test_gateway.sh"
