# syntax=docker/dockerfile:1
#
# The reshost image: `docker build -t reshost:0.1.0 .` (BuildKit; see
# deploy/README.md). Two stages: the build (the toolchain, the guest components
# and the host) and a slim runtime with the tools sandboxed shell commands use.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The toolchain rust-toolchain.toml pins, with its wasm32-wasip2 target: the
# host's build script compiles the guest components (components/) with it.
COPY rust-toolchain.toml ./
RUN rustup toolchain install
COPY . .
# One build command; the caches keep the registry and both target dirs (the
# components build under target/ too) between builds. The binary is copied out
# of the cache mount, which is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p reshost --bin reshost \
 && install -D -m 0755 target/release/reshost /out/reshost

FROM debian:bookworm-slim AS runtime
# What sandboxed shell commands and terminals find on their PATH (the sandbox
# grants /usr, /bin, /etc, ... read-only): a shell, the core tools, git, curl.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bash ca-certificates coreutils curl git procps tini \
 && rm -rf /var/lib/apt/lists/*
# Nothing in reshost needs root (docs/security.md): a user of its own, owning
# the data dir. A default config serves on every address with the data dir
# below; with no tenants in it the one tenant `default` takes $RESHOST_TOKEN.
# Kubernetes mounts its own config (a Secret) over /etc/reshost.
RUN groupadd --gid 10001 reshost \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/reshost \
      --shell /usr/sbin/nologin reshost \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/reshost \
 && install -d -m 0755 /etc/reshost \
 && printf 'listen = "0.0.0.0:6767"\ndata_dir = "/var/lib/reshost"\n' > /etc/reshost/reshost.toml
COPY --from=build /out/reshost /usr/local/bin/reshost
USER 10001:10001
WORKDIR /var/lib/reshost
EXPOSE 6767
# SIGTERM drains (cluster.drain_ms), then finishes in-flight requests
# (limits.shutdown_grace_ms) and exits.
STOPSIGNAL SIGTERM
# tini is PID 1: it passes SIGTERM on and reaps what is orphaned (a sandbox's
# init outliving its launcher), which reshost, reaping only its own children,
# would leave as zombies.
ENTRYPOINT ["/usr/bin/tini", "--", "reshost"]
CMD ["serve", "--config", "/etc/reshost/reshost.toml"]
