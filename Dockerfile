# syntax=docker/dockerfile:1
#
# shipgate as a container image. A Rust stage builds the release binary; the
# runtime stage is Debian slim with only that binary, the default
# configuration and the status maps, run as an unprivileged user.
#
#   docker build -t shipgate .
#   docker run -p 8080:8080 \
#     -e SHIPGATE__ADMIN__TOKENS=... -e SHIPGATE__STORES__ACME__ENABLED=false \
#     -v $PWD/prod.toml:/etc/shipgate/shipgate.toml:ro \
#     shipgate serve --config /etc/shipgate/shipgate.toml

FROM rust:1-slim-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY providers ./providers
# The registry and target caches survive between builds (BuildKit), so a
# code change does not download and rebuild every dependency.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin shipgate \
    && cp target/release/shipgate /usr/local/bin/shipgate

FROM debian:bookworm-slim
# curl is only for the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin shipgate
COPY --from=builder /usr/local/bin/shipgate /usr/local/bin/shipgate
# The default configuration is compiled into the binary; this copy is the
# commented reference to start a deployment's own file from. The status
# maps are read from here (not the built-in copies), so a deployment can
# extend them by mounting its own directory over /etc/shipgate/providers.
COPY config/default.toml /etc/shipgate/default.toml
COPY providers /etc/shipgate/providers
ENV SHIPGATE__SERVER__HOST=0.0.0.0 \
    SHIPGATE__SERVER__PORT=8080 \
    SHIPGATE__PROVIDERS__DIR=/etc/shipgate/providers \
    SHIPGATE__TELEMETRY__FORMAT=json
USER shipgate:shipgate
EXPOSE 8080
# /health answers while the process serves; /ready also touches storage,
# which is for a load balancer to decide on, not for restarting the
# container when Redis blips.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl --fail --silent --show-error --max-time 2 http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["shipgate"]
CMD ["serve"]
