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

# Debian packages for the OCI client tests (skopeo, umoci, containerd, runc, busybox-static).
# OCI-SETUP-BEGIN
OCI_PACKAGES="skopeo umoci containerd runc busybox-static"
oci_missing=""
for p in $OCI_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || oci_missing="$oci_missing $p"
done
if [ -n "$oci_missing" ]; then
    step "installing Debian packages for the OCI client tests:$oci_missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $oci_missing
fi
step "oci clients: $(skopeo --version), umoci $(umoci --version | awk '{print $3}'), containerd $(containerd --version | awk '{print $3}')"
# OCI-SETUP-END

# Debian's Chromium for the web catalog's browser test (tests/catalog.rs), driven by the
# venv's Playwright through its executable path: Playwright never downloads a browser here.
if ! dpkg -s chromium >/dev/null 2>&1; then
    step "installing Debian's chromium for the catalog browser test"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
CHROMIUM="$(command -v chromium)"
step "browser: $("$CHROMIUM" --version 2>/dev/null | head -n1)"

# Real Python clients in a virtualenv (pip, uv, twine), a twine that still honours
# --skip-existing for non-PyPI indexes, and a setuptools wheel so sdists build offline.
VENV="$PWD/target/test-venv"
if [ ! -x "$VENV/bin/uv" ] || [ ! -x "$VENV/bin/twine" ]; then
    step "python clients: pip, uv, twine into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check uv twine
fi
TWINE61="$PWD/target/test-venv-twine61"
if [ ! -x "$TWINE61/bin/twine" ]; then
    python3 -m venv "$TWINE61"
    "$TWINE61/bin/pip" install --quiet --disable-pip-version-check twine==6.1.0
fi
WHEELHOUSE="$PWD/target/test-wheelhouse"
if ! ls "$WHEELHOUSE"/setuptools-*.whl >/dev/null 2>&1; then
    "$VENV/bin/pip" download --quiet --disable-pip-version-check --only-binary :all: --no-deps -d "$WHEELHOUSE" setuptools
fi
# Hugging Face clients: the newest huggingface_hub with transformers and datasets (and the
# safetensors/tokenizers packages that write the test model), plus a 1.x and a 0.36 venv.
if [ ! -x "$VENV/bin/hf" ] || ! "$VENV/bin/python" -c "import transformers, datasets, safetensors, tokenizers" 2>/dev/null; then
    step "python clients: huggingface_hub, transformers, datasets into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check huggingface_hub transformers datasets safetensors tokenizers numpy
fi
# Playwright (the Python package only: `playwright install` would fetch browsers from the
# internet; the test hands it Debian's chromium instead).
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    step "python clients: playwright into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check playwright
fi
HF1="$PWD/target/test-venv-hf1"
if [ ! -x "$HF1/bin/python" ] || ! "$HF1/bin/python" -c "import huggingface_hub" 2>/dev/null; then
    python3 -m venv "$HF1"
    "$HF1/bin/pip" install --quiet --disable-pip-version-check "huggingface_hub>=1,<2"
fi
HF0="$PWD/target/test-venv-hf0"
if [ ! -x "$HF0/bin/python" ] || ! "$HF0/bin/python" -c "import huggingface_hub" 2>/dev/null; then
    python3 -m venv "$HF0"
    "$HF0/bin/pip" install --quiet --disable-pip-version-check "huggingface_hub==0.36.*"
fi
# huggingface_hub 1.19, the last release that negotiates Xet through the LFS batch API
# (1.20 and later go straight to Xet).
HF119="$PWD/target/test-venv-hf119"
if [ ! -x "$HF119/bin/python" ] || ! "$HF119/bin/python" -c "import huggingface_hub, hf_xet" 2>/dev/null; then
    python3 -m venv "$HF119"
    "$HF119/bin/pip" install --quiet --disable-pip-version-check "huggingface_hub==1.19.*" hf_xet
fi
# S3 clients for tests/s3api.rs and KServe's storage initializer for its s3:// and oci://
# downloads (tests/s3api.rs, tests/model_images.rs): boto3 and kserve-storage (pinned: its
# environment variables are what the tests set) in a venv of their own; Debian's awscli
# and rclone.
S3VENV="$PWD/target/test-venv-s3"
if [ ! -x "$S3VENV/bin/python" ] || ! "$S3VENV/bin/python" -c "import boto3, kserve_storage, oras" 2>/dev/null; then
    step "python clients: boto3, kserve-storage into $S3VENV"
    python3 -m venv "$S3VENV"
    "$S3VENV/bin/pip" install --quiet --disable-pip-version-check boto3 kserve-storage==0.21.0
fi
if ! dpkg -s rclone awscli >/dev/null 2>&1; then
    step "installing Debian's awscli and rclone for the S3 API tests"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq awscli rclone
fi
AWS=/usr/bin/aws
RCLONE="$(command -v rclone)"
step "s3 clients: $("$AWS" --version 2>&1 | cut -d' ' -f1), $("$RCLONE" version 2>/dev/null | head -n1)"
export AIRLOCK_TEST_VENV_S3="$S3VENV" AIRLOCK_TEST_AWS="$AWS" AIRLOCK_TEST_RCLONE="$RCLONE"
export AIRLOCK_TEST_VENV="$VENV" AIRLOCK_TEST_WHEELHOUSE="$WHEELHOUSE" AIRLOCK_TEST_TWINE_SKIP_EXISTING="$TWINE61/bin/twine"
export AIRLOCK_TEST_VENV_HF1="$HF1" AIRLOCK_TEST_VENV_HF0="$HF0" AIRLOCK_TEST_VENV_HF119="$HF119" AIRLOCK_TEST_CHROMIUM="$CHROMIUM"
step "clients: pip $("$VENV/bin/pip" --version | cut -d' ' -f2), $("$VENV/bin/uv" --version), twine $("$VENV/bin/twine" --version | head -n1 | cut -d' ' -f3)"
for v in "$VENV" "$HF1" "$HF119" "$HF0"; do
    "$v/bin/python" -c "import huggingface_hub; print('huggingface_hub', huggingface_hub.__version__)"
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test, including the suites that need Garage and real clients"
log="$PWD/target/test-run.log"
set +e
cargo test --locked --no-fail-fast --lib --bins --tests -- --include-ignored 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
