#!/usr/bin/env bash
# Connection migration with the SK_REUSEPORT program attached (steering by
# the DCID's worker byte; needs CAP_BPF, which the netns tier has as root):
# test_workers_migrate.sh with STEER=bpf.
STEER=bpf exec bash "$(dirname "$0")/test_workers_migrate.sh"
