# syntax=docker/dockerfile:1
# Build: docker build -t medmij-vert-proxy .
# Run:   docker run -p 8080:8080 -v "$PWD/deploy:/etc/medmij-vert-proxy:ro" medmij-vert-proxy
#        with deploy/proxy.toml (listen.addr = "0.0.0.0:8080", your upstream, clients and
#        state.key_file) and the files it names.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
RUN cargo build --release --locked \
 && strip target/release/medmij-vert-proxy

# Runtime: glibc and CA roots only, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/medmij-vert-proxy /usr/local/bin/medmij-vert-proxy
# A default configuration (the demo's); mount your own over /etc/medmij-vert-proxy.
COPY proxy.toml /etc/medmij-vert-proxy/proxy.toml
COPY examples/ocl.xml /etc/medmij-vert-proxy/examples/ocl.xml
USER nonroot:nonroot
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/medmij-vert-proxy"]
CMD ["--config", "/etc/medmij-vert-proxy/proxy.toml"]
