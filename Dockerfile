# Build stage: Debian 12 with the -dev packages; cmake --install stages the
# programs, the systemd unit, the docs, the man pages and the bash
# completions (cli_docs: printed by the programs just built) under
# /out/usr/local.
FROM debian:bookworm AS build
# clang, libbpf-dev, linux-libc-dev: the BPF steering program (-DBPF=ON, so
# a missing one fails the build instead of leaving steering out).
RUN apt-get update && apt-get install -y --no-install-recommends \
      cmake make gcc pkg-config liburing-dev libngtcp2-dev \
      libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev libjansson-dev \
      libjwt-gnutls-dev libnats-dev libwslay-dev clang llvm libbpf-dev linux-libc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release -DBPF=ON \
    && cmake --build build --target wtrelay wtrelay-tap wtclient cli_docs -j "$(nproc)" \
    && DESTDIR=/out cmake --install build --prefix /usr/local

# Runtime stage: only the shared libraries the binaries link. User and group
# wtrelay have the fixed id 10001, so a mounted key can be given to them on
# the host (chown 10001:10001 privkey.pem; chmod 0600).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      liburing2 libngtcp2-9 libngtcp2-crypto-gnutls2 libnghttp3-3 libgnutls30 \
      libjansson4 libjwt-gnutls0 libnats3.4 libwslay1 libbpf1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wtrelay \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
         --home-dir /var/lib/wtrelay --shell /usr/sbin/nologin wtrelay \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/wtrelay
COPY --from=build /out/usr/local/ /usr/local/
# State that outlives the container (address leases: a VM that comes back
# after a relay restart gets its old address). Mount a named volume here.
ENV RELAY_LEASE_FILE=/var/lib/wtrelay/leases
VOLUME /var/lib/wtrelay
USER 10001:10001
# io_uring: Docker 25+ and containerd block it in their default seccomp
# profile; run with --security-opt seccomp=scripts/seccomp-wtrelay.json
# (docker-compose.yml does). Without it the relay exits 1 saying so.
# BPF steering of datagrams to workers needs CAP_BPF, which a non-root USER
# never gets effective, and bpf() in the seccomp profile; without them the
# relay uses the kernel's 4-tuple hash (docs/architecture.md, "Steering").
# 4433/udp: WebTransport. 8433/tcp: /metrics, /healthz, /readyz, /cert-hash
# (bound to 127.0.0.1 inside the container unless --http-listen says otherwise).
EXPOSE 4433/udp 4433/tcp 8433/tcp
# No curl in the image: the binary probes itself, at the /healthz of the
# ops listener RELAY_HTTP_LISTEN names (default 127.0.0.1:8433; 0.0.0.0 is
# probed at 127.0.0.1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/wtrelay", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/wtrelay"]
