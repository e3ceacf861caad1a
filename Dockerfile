# Airlock container image.
#   docker build -t airlock .
#   docker run -p 8080:8080 -v airlock-data:/var/lib/airlock airlock
# The embedded store lives in the /var/lib/airlock volume; for S3 set AIRLOCK_STORE=s3://...
# plus AIRLOCK_S3_ENDPOINT and AWS credentials.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/blob_throughput.rs \
    && cargo build --release --locked --bin airlock \
    && rm -rf src benches
COPY src src
COPY static static
COPY benches benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin airlock \
    && strip target/release/airlock

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/airlock --create-home airlock
COPY --from=build /src/target/release/airlock /usr/local/bin/airlock
COPY config/airlock.toml /etc/airlock/airlock.toml.example
USER 10001:10001
ENV AIRLOCK_LISTEN=0.0.0.0:8080 \
    AIRLOCK_STORE=/var/lib/airlock \
    AIRLOCK_LOG_FORMAT=json
VOLUME ["/var/lib/airlock"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["airlock", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["airlock"]
CMD ["serve"]
