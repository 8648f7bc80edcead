# Image of the Confab node. Stages, in order:
#   runtime  Debian slim, CA certificates, an unprivileged `confab` user, the health check
#   build    the release binary, built with the Rust image
#   (last)   runtime + the binary: what `docker build .` and `docker compose up --build` make
# Without an image registry (as in CI, .ci/compose-test.sh): build only the runtime stage, then
# put a binary built outside Docker into it with docker/prebuilt.Dockerfile:
#   docker build --target runtime -t confab-runtime .
#   cargo build --release -p confab && cp target/release/confab ctx/
#   docker build -f docker/prebuilt.Dockerfile --build-arg RUNTIME=confab-runtime \
#     --build-arg BINARY=confab -t confab:latest ctx
FROM debian:bookworm-slim AS runtime
# (A base made with ca-certificates already, as CI's is, needs no package index.)
RUN [ -s /etc/ssl/certs/ca-certificates.crt ] || { apt-get update \
      && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*; } \
    && groupadd --gid 10001 confab && useradd --uid 10001 --gid confab --no-create-home --shell /usr/sbin/nologin confab \
    && mkdir -p /data /secrets && chown confab:confab /data /secrets
ENV CONFAB_LISTEN=0.0.0.0:8080 CONFAB_DATA_DIR=/data
VOLUME /data
EXPOSE 8080 7946/udp 7947
# Healthy once the node serves and its database answers (GET /readyz), with bash alone (no curl).
HEALTHCHECK --interval=2s --timeout=2s --start-period=60s --retries=5 CMD ["bash", "-c", \
  "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
USER confab
ENTRYPOINT ["confab"]
CMD ["serve"]

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p confab && cp target/release/confab /confab

FROM runtime
COPY --from=build /confab /usr/local/bin/confab
