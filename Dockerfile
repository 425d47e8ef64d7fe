# TART: multi-stage build; the runtime image holds only the binaries and the default config.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin tart-backend --bin tart-sim --bin tart-dash \
 && strip target/release/tart-backend target/release/tart-sim target/release/tart-dash

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin tart
COPY --from=build /src/target/release/tart-backend /src/target/release/tart-sim \
     /src/target/release/tart-dash /usr/local/bin/
COPY config/default.toml /etc/tart/default.toml
USER tart
# 9000: JIP-3 telemetry from nodes; 8080: REST API, WebSocket, /metrics.
EXPOSE 9000 8080
# MIMALLOC_ALLOW_THP=0: no transparent huge pages for the allocator, even where the host sets THP to "always".
ENV TELEMETRY_BIND=0.0.0.0:9000 API_BIND=0.0.0.0:8080 RUST_LOG=info MIMALLOC_ALLOW_THP=0
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["tart-backend", "healthcheck", "--url", "http://127.0.0.1:8080/api/health"]
ENTRYPOINT ["tart-backend"]
CMD ["serve"]
