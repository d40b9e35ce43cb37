# syntax=docker/dockerfile:1
# Image of the Teleport email plugin: the same binary as the release tarball, on a minimal glibc
# base, running as a non-root user. Built and pushed by .github/workflows/release.yml; see README.md.
#
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg GIT_REF=$(git describe --tags --always) -t teleport-plugin-email .
#   docker run -v /etc/teleport-email.toml:/etc/teleport-email.toml:ro teleport-plugin-email start
#   docker run -p 127.0.0.1:3000:3000 -v …:ro teleport-plugin-email start --diag-addr=0.0.0.0:3000
#
# The build stage runs on the build machine's platform and cross-compiles for TARGETARCH with
# `deno task release`, which fetches denort (the Deno runtime) for that target from dl.deno.land.
# Offline: put denort-<triple>.zip of Deno 2.9.6 in ./denort/ and build with --build-arg DENORT_DIR=denort
# (passed to the release script as --runtime-dir, which refuses a zip of another Deno release).

FROM --platform=$BUILDPLATFORM node:20.20.2-bookworm-slim AS build
ARG TARGETARCH
ARG GIT_REF=""
ARG DENORT_DIR=""
ENV DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 DENO_DIR=/deno-dir
RUN npm install -g deno@2.9.6 && deno --version
WORKDIR /src
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY . .
RUN set -eu; \
    deno run --allow-all scripts/release.ts --target "$TARGETARCH" --git-ref "$GIT_REF" --out /dist \
      ${DENORT_DIR:+--runtime-dir "$DENORT_DIR"}; \
    mkdir -p /out/usr/local/bin; \
    tar -xzf /dist/teleport-access-email-v*-linux-"$TARGETARCH"-bin.tar.gz -C /tmp; \
    cp /tmp/teleport-access-email/teleport-email /out/usr/local/bin/teleport-email; \
    ln -s teleport-email /out/usr/local/bin/teleport-plugin

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
USER 65532:65532
# The diagnostics endpoint (/healthz, /readyz, /metrics) listens only when `start` is given
# --diag-addr, e.g. `start --diag-addr=0.0.0.0:3000` (the Helm chart's diagnostics.enabled);
# without the flag nothing listens and the default CMD is unchanged.
EXPOSE 3000
# `teleport-plugin` is the entrypoint name the upstream images and Helm charts use.
ENTRYPOINT ["/usr/local/bin/teleport-plugin"]
CMD ["start"]
