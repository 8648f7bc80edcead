# A binary built outside Docker, put into the runtime stage of an image's Dockerfile (the node's
# ./Dockerfile, docker/garage.Dockerfile): the path that needs no image registry, for machines
# that cannot pull the Rust image (.ci/compose-test.sh). The build context holds the binary alone.
ARG RUNTIME
FROM ${RUNTIME}
ARG BINARY
COPY ${BINARY} /usr/local/bin/${BINARY}
