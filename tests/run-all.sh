#!/usr/bin/env bash
# The whole test suite, as CI runs it and as a newcomer runs it: `bash tests/run-all.sh`.
#
# Installs what the real-client and real-S3 tests need when it is missing (Garage, an
# S3 server, via `cargo install`), then runs every test — including those that `cargo
# test` alone skips with a reason because they need those servers — plus fmt and clippy.
# Everything the tests start listens on loopback only and is stopped by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

GARAGE_VERSION=2.5.0
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

if ! command -v garage >/dev/null 2>&1; then
    step "installing Garage $GARAGE_VERSION (a real S3 server for the S3 store tests; about 12 minutes on 2 cores)"
    cargo install garage --locked --version "$GARAGE_VERSION"
fi
step "garage: $(garage --version 2>/dev/null | head -n1)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test, including the suites that need Garage"
cargo test --locked -- --include-ignored
