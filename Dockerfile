# syntax=docker/dockerfile:1
# Build:  docker build -t medmij-vert-proxy .
# Demo:   docker run --rm -p 8080:8080 medmij-vert-proxy demo
# Run:    docker run -p 8080:8080 -p 9901:9901 \
#           -v "$PWD/config:/config:ro" -v "$PWD/secrets:/secrets:ro" medmij-vert-proxy
#         with config/ocl.xml and secrets/state.key (see deploy/container.toml; the upstream
#         is http://as:9000 unless you mount your own proxy.toml and set MEDMIJ_VERT_CONFIG).

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
COPY deploy/container.toml /etc/medmij-vert-proxy/proxy.toml
COPY deploy/demo.toml /etc/medmij-vert-proxy/demo.toml
ENV MEDMIJ_VERT_CONFIG=/etc/medmij-vert-proxy/proxy.toml \
    MEDMIJ_VERT_DEMO_CONFIG=/etc/medmij-vert-proxy/demo.toml
USER nonroot:nonroot
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
# Liveness (the proxy answers), not readiness: an AS outage must not make an orchestrator that
# replaces unhealthy containers (Swarm, ECS) restart a healthy proxy. /ready stays readiness,
# for load balancers and Kubernetes. distroless has no curl: the binary asks its own admin
# listener.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/medmij-vert-proxy", "health", "--live"]
ENTRYPOINT ["/usr/local/bin/medmij-vert-proxy"]
