# One image per ferroshop service from one file. Two ways to build it:
#
#   docker build --build-arg SERVICE=users -t localhost/ferroshop/users:0.1.0 .
#       compiles the workspace inside Docker (needs the rust and distroless
#       base images, so a registry, and BuildKit: Docker 23+ or
#       `docker compose build`);
#
#   scripts/images.sh
#       builds the binaries on the host with cargo and packs each into the
#       `prebuilt` target below; works with no registry at all (it builds
#       stand-ins of the base images from Debian's packages).
#
# SERVICE is one of users, catalog, cart, orders, payments, web, gateway:
# the package shop-${SERVICE}, whose binary has the package's name (web's
# templates are compiled in and its assets embedded, so the binary is all
# of it). The builder stages do not depend on SERVICE, so building all
# seven images compiles the workspace once (BuildKit shares the layers) and
# only the last stage differs.
#
# Stages: runtime-base (distroless cc: glibc and libgcc only, no shell, no
# package manager, runs as uid 65532) -> prebuilt (a binary from the build
# context); chef (toolchain + cargo-chef + protoc) -> planner (dependency
# recipe) -> builder (dependencies cached in their own layer, then our
# crates) -> runtime (the default target: the binary the builder made).
# `prebuilt` comes before the toolchain stages so that the classic builder,
# which builds every stage up to its target, never needs them for it.

ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM ${RUNTIME_IMAGE} AS runtime-base
ARG SERVICE
LABEL org.opencontainers.image.title="shop-${SERVICE}" \
      org.opencontainers.image.description="ferroshop ${SERVICE} service" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
# A numeric user so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# Configuration comes from SHOP_* environment variables (see
# docs/operations.md); secrets are mounted at run time, never baked in.
ENV SHOP_LOG_FORMAT=json
# No shell or curl here: the binary probes its own /readyz on the port its
# configuration names. (Kubernetes ignores this and uses its own probes.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/shop-service", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/shop-service"]

# The build context holds the binary shop-${SERVICE}, built on the host
# (scripts/images.sh).
FROM runtime-base AS prebuilt
ARG SERVICE
COPY shop-${SERVICE} /usr/local/bin/shop-service

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# protoc and the well-known .proto files are needed by etcd-client's build
# script (the etcd registry backend used under docker compose).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
    && rm -rf /var/lib/apt/lists/*
# DL3008 (pin apt versions) is ignored above on purpose: these packages exist
# only in the build stage, Debian's stable archive removes superseded
# versions (a pinned version would break the build on the next point
# release), and the Rust toolchain itself is pinned by RUST_VERSION.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The same features in `cook` and `build`, or the cached dependencies would
# be rebuilt: the etcd backend of shop-discovery is on in containers.
ARG CARGO_FEATURES=shop-discovery/etcd
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --workspace --features "${CARGO_FEATURES}" --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --workspace --features "${CARGO_FEATURES}" --bins

FROM runtime-base AS runtime
ARG SERVICE
COPY --from=builder /app/target/release/shop-${SERVICE} /usr/local/bin/shop-service
