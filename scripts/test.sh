#!/usr/bin/env bash
# lambent's test suite, as CI runs it: installs what the tests need on a fresh Debian machine,
# builds the Python example (the C ones are committed), then checks formatting and lints and
# runs every test (unit tests and end-to-end tests that start the real `lambent serve`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }

# componentize-py builds the Python example component that the end-to-end tests deploy.
if ! command -v componentize-py >/dev/null 2>&1; then
    log "installing componentize-py (PyPI)"
    python3 -m pip install --quiet componentize-py==0.25.1 \
        || python3 -m pip install --quiet --break-system-packages componentize-py==0.25.1
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    export PATH
fi
if [[ ! -f examples/hello-python/hello.wasm ]]; then
    log "building examples/hello-python"
    examples/build.sh --python-only
fi

# The process-tier tests run real Node.js functions and a Python function carrying AWS's own
# runtime client (awslambdaric, from PyPI) for the host's Python.
if ! command -v node >/dev/null 2>&1 || [[ ! -x /usr/bin/node ]]; then
    log "installing Node.js (Debian)"
    apt-get update -qq && apt-get install -y -qq nodejs >/dev/null
fi
# Egress sandboxes are linked to the host through nftables NAT (`nft`) and iproute2 (`ip`).
if ! command -v nft >/dev/null 2>&1; then
    log "installing nftables (Debian)"
    apt-get update -qq && apt-get install -y -qq nftables >/dev/null
fi
if ! command -v ip >/dev/null 2>&1; then
    log "installing iproute2 (Debian)"
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi
ric=target/fixtures/awslambdaric
if [[ ! -d $ric/awslambdaric ]]; then
    host_py=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    log "fetching awslambdaric for Python $host_py (PyPI)"
    python3 -m pip install --quiet --target "$ric" --only-binary=:all: \
        --python-version "$host_py" --implementation cp \
        --platform "manylinux2014_$(uname -m)" awslambdaric==4.2.2
fi

# The Lambda-compatible API is tested with AWS's own clients: boto3 and the AWS CLI (PyPI).
aws=target/fixtures/aws
if [[ ! -d $aws/boto3 || ! -d $aws/awscli ]]; then
    log "fetching boto3 and awscli (PyPI)"
    python3 -m pip install --quiet --target "$aws" boto3==1.40.40 awscli==1.42.40
fi

# The tests move the clock of events and schedules through `/v1/debug/clock`, which exists only
# with the `test-clock` feature; release builds (and `cargo run --release`) do not have it.
features=(--features lambent/test-clock)

rustup component add rustfmt clippy >/dev/null 2>&1 || true
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (as released, and with the test features)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked "${features[@]}" -- -D warnings
log "building the Rust lambda_runtime example (examples/rust-hello)"
cargo build -p hello-lambda-rust --locked
log "cargo test"
cargo test --workspace --locked "${features[@]}"
