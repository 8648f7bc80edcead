# Garage, the S3 store of docker-compose.yml, built from crates.io at the version CI tests
# against (.ci/garage.sh): one node with SQLite metadata, run by an unprivileged user that can
# read the compose file's shared secrets (group 10001, as the node's image). Stages as in
# ./Dockerfile: `runtime` first, so a machine without a registry builds only it and adds a binary
# built outside Docker (docker/prebuilt.Dockerfile, .ci/compose-test.sh).
FROM debian:bookworm-slim AS runtime
RUN groupadd --gid 10001 confab && useradd --uid 10002 --gid confab --no-create-home --shell /usr/sbin/nologin garage \
    && mkdir -p /var/lib/garage && chown garage:confab /var/lib/garage
COPY garage.toml /etc/garage.toml
VOLUME /var/lib/garage
EXPOSE 3900
# Up when S3 answers at all (an unsigned request gets 403), with bash alone (no curl).
HEALTHCHECK --interval=2s --timeout=2s --retries=30 CMD ["bash", "-c", \
  "exec 3<>/dev/tcp/127.0.0.1/3900 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && read -r proto _ <&3 && [ \"${proto%%/*}\" = HTTP ]"]
USER garage
ENTRYPOINT ["garage"]
CMD ["server"]

FROM rust:1.95-bookworm AS build
RUN cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite --root /out

FROM runtime
COPY --from=build /out/bin/garage /usr/local/bin/garage
