# syntax=docker/dockerfile:1
#
# One image for every promocodes deployable (api, generator, shovel, migrate and
# the admin/SRE tools): the subcommand is the container's argument.
#
#   docker build -t promocodes .
#   docker run --rm promocodes --help
#
# Build stage: a pure-Go, static binary (CGO_ENABLED=0). Runs on the build host's
# platform and cross-compiles, so `docker buildx build --platform linux/arm64,linux/amd64`
# does not emulate the compiler.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
# Dependencies first, so editing source does not re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/promocodes ./cmd/promocodes

# Final stage: no shell, no package manager; CA certificates and tzdata are
# included; runs as uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/promocodes /promocodes
USER 65532:65532
# http.addr (":8080" by default): API, /healthz, /readyz, /metrics.
EXPOSE 8080
ENTRYPOINT ["/promocodes"]
CMD ["--help"]
