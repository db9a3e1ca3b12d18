# Build stage: Debian 12 with the -dev packages.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      cmake make gcc pkg-config liburing-dev libngtcp2-dev \
      libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev libjansson-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
    && cmake --build build --target wtrelay -j "$(nproc)"

# Runtime stage: only the shared libraries the binary links.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      liburing2 libngtcp2-9 libngtcp2-crypto-gnutls2 libnghttp3-3 libgnutls30 \
      libjansson4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --shell /usr/sbin/nologin wtrelay
COPY --from=build /src/build/wtrelay /usr/local/bin/wtrelay
USER wtrelay
# 4433/udp: WebTransport. 9090/tcp: /metrics, /healthz, /readyz, /cert-hash
# (bound to 127.0.0.1 inside the container unless --http-listen says otherwise).
EXPOSE 4433/udp 9090/tcp
# No curl in the image: the binary probes itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/wtrelay", "--healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/wtrelay"]
