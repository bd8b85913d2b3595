#!/usr/bin/env bash
# Trace replay: cold-start percentage and idle warm memory-time of the keep-alive policies
# (fixed 10 min, fixed 20 min, adaptive hybrid histogram) on one synthetic trace shaped like the
# Azure Functions trace, side by side. Usage: bench/keepalive.sh [FUNCTIONS] [HOURS] [SEEDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p bench/results
out=bench/results/keepalive-latest.md
{
    echo "## Keep-alive trace replay ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD))"
    echo
    cargo run -q --release -p lambent-control --example keepalive_replay -- "$@"
} | tee "$out"
echo "written to $out" >&2
