# Garage, the S3 store of docker-compose.yml, built from crates.io at the version CI tests
# against (.ci/garage.sh): one node with SQLite metadata.
FROM rust:1.95-bookworm AS build
RUN cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite --root /out

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/garage /usr/local/bin/garage
COPY garage.toml /etc/garage.toml
VOLUME /var/lib/garage
EXPOSE 3900
ENTRYPOINT ["garage"]
CMD ["server"]
