# houston-auth container image.
#
# Stage 1 builds on debian:bookworm-slim with the same dependency script the README uses
# (scripts/deps.sh) and the same CMake build. Stage 2 is FROM scratch: the stripped binary,
# exactly the shared libraries `ldd` names for it, the CA certificates, and one passwd line
# for the numeric non-root user; scripts/copy-closure.sh stages them, nothing is listed by
# hand. No shell, no package manager, no curl: the binary is its own health check
# (--probe). It writes no files, so it runs with a read-only root filesystem.
#
#   docker build -t houston-auth .          (or scripts/image.sh, which builds and tests it
#                                            with buildah where no Docker engine runs)

FROM debian:bookworm-slim AS build
WORKDIR /src
# Dependencies first, so a source change does not reinstall them: the `build` group only,
# what the sidecar alone needs (no test framework, no libjwt: those are for the dev peers
# and the tests, which this image neither builds nor carries).
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DHA_WERROR=ON \
      -DHA_BUILD_TESTS=OFF -DHA_BUILD_DEV_TOOLS=OFF -DHA_BUILD_BENCH=OFF >/dev/null \
 && cmake --build /build -j"$(nproc)" --target houston-auth \
 && strip --strip-unneeded /build/houston-auth \
 && /build/houston-auth --version \
 && scripts/copy-closure.sh /build/houston-auth /rootfs

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
EXPOSE 8872
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/houston-auth", "--probe", "http://127.0.0.1:8872/healthz"]
# No CMD: give the config with --config PATH or HOUSTON_AUTH_CONFIG (deploy/ does).
ENTRYPOINT ["/houston-auth"]
