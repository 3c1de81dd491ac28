# syntax=docker/dockerfile:1
# The ferum image: the one binary on a small Debian runtime, run as an unprivileged user.
#
#   docker build -t ferum .
#   docker run --rm -p 8080:8080 -v ferum-data:/var/lib/ferum ferum
#
# Stages: `chef` has the toolchain and cargo-chef; `planner` reduces the tree to a recipe of
# manifests; `builder` compiles the dependencies from that recipe alone (a layer that is reused
# until Cargo.toml, Cargo.lock or .cargo/ change), then the project itself; `runtime` is what ships.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# .cargo/config.toml sets LIBSQLITE3_FLAGS for the bundled SQLite; it must be present when the
# dependencies are cooked, or libsqlite3-sys is built without it (and rebuilt later).
COPY .cargo .cargo
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin ferum \
    && install -D -m 0755 target/release/ferum /out/ferum

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ferum" \
      org.opencontainers.image.description="Service management for fire-safety maintenance companies" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# ca-certificates: TLS to S3, Sentry and mail servers. Nothing else: the health check is the
# binary's own `ferum healthcheck`, so there is no curl in the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid so that volumes and bind mounts can be owned by it on the host (10001:10001).
# Mount a volume on /var/lib/ferum (database if SQLite, keys, files) and on /var/backups/ferum.
RUN groupadd --system --gid 10001 ferum \
    && useradd --system --uid 10001 --gid ferum --home-dir /var/lib/ferum --no-create-home \
       --shell /usr/sbin/nologin ferum \
    && install -d -o ferum -g ferum -m 0750 /var/lib/ferum /var/backups/ferum

COPY --from=builder /out/ferum /usr/local/bin/ferum

ENV FERUM_BIND=0.0.0.0:8080 \
    FERUM_METRICS_BIND=0.0.0.0:9464 \
    FERUM_DATA_DIR=/var/lib/ferum \
    FERUM_BACKUP_TARGET=/var/backups/ferum \
    FERUM_LOG_FORMAT=json

USER ferum:ferum
WORKDIR /var/lib/ferum
# 8080: the API and web pages (behind Nginx). 9464: /metrics, for Prometheus on the internal
# network only; never publish it.
EXPOSE 8080 9464

# `ferum healthcheck` asks /readyz on the port of FERUM_BIND and exits 0 only on 200: the
# database answers and no migration is pending.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["ferum", "healthcheck"]

ENTRYPOINT ["ferum"]
CMD ["serve"]
