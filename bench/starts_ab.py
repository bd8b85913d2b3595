#!/usr/bin/env python3
"""Sandbox starts per second, two lambent binaries side by side: `bench/starts_ab.py OLD NEW`.

Each round, for each binary in turn (the order alternates), a fresh server deploys the Rust
`lambda_runtime` hello as `provided.al2023` and takes 32 concurrent first calls, each of which
builds a sandbox; the rate is sandboxes started over the wall time of the burst. A sequential
Python cold start (a new configuration each time) is measured the same way. Run as root from the
repository root after both binaries are built in release mode with `bootstrap`
(`cargo build --release -p hello-lambda-rust`). Prints markdown, also written to
bench/results/starts-ab-latest.md. Only the ratio NEW/OLD carries over (see bench/README.md).
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAP = os.path.join(ROOT, "target", "release", "bootstrap")
ROUNDS = int(os.environ.get("ROUNDS", "4"))
BURST = int(os.environ.get("BURST", "32"))
COLD = int(os.environ.get("COLD_STARTS", "20"))

KEY_ID = "LKBENCHADMIN00000001"
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
KEY_ENV = {"LAMBENT_ACCESS_KEY_ID": KEY_ID, "LAMBENT_SECRET_ACCESS_KEY": SECRET}
BEARER = "Bearer %s:%s" % (KEY_ID, SECRET)
ECHO = "def handler(event, context):\n    return event\n"


def start_server(binary, data_dir):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn", **KEY_ENV))
    base = re.search(r"(http://\S+)", proc.stdout.readline()).group(1)
    return proc, base


def cli(binary, base, *args):
    subprocess.run([binary, *args], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, LAMBENT_ENDPOINT=base, **KEY_ENV))


def invoke(base, name):
    req = urllib.request.Request(base + "/v1/functions/%s/invoke" % name, data=b"{}",
                                 method="POST", headers={"Authorization": BEARER})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        return time.perf_counter() - t0, r.headers.get("x-lambent-cold-start")


def one_round(binary, work):
    data = tempfile.mkdtemp(dir=work)
    proc, base = start_server(binary, data)
    try:
        rust = os.path.join(data, "..", os.path.basename(data) + "-rust")
        os.makedirs(rust)
        shutil.copy(BOOTSTRAP, os.path.join(rust, "bootstrap"))
        cli(binary, base, "deploy", "rusty", rust, "--runtime", "provided.al2023")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(BURST) as pool:
            results = list(pool.map(lambda _: invoke(base, "rusty"), range(BURST)))
        wall = time.perf_counter() - t0
        rate = sum(1 for r in results if r[1] == "true") / wall
        py = os.path.join(data, "..", os.path.basename(data) + "-py")
        os.makedirs(py)
        with open(os.path.join(py, "app.py"), "w") as f:
            f.write(ECHO)
        cold = []
        for i in range(COLD):
            cli(binary, base, "deploy", "echo", py, "--runtime", "python3.12", "--handler",
                "app.handler", "--description", "round %d" % i)
            elapsed, was_cold = invoke(base, "echo")
            assert was_cold == "true", was_cold
            cold.append(elapsed)
        return rate, statistics.median(cold)
    finally:
        proc.terminate()
        proc.wait()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old, new = (os.path.abspath(p) for p in sys.argv[1:])
    work = tempfile.mkdtemp(prefix="lambent-starts-")
    rates = {old: [], new: []}
    colds = {old: [], new: []}
    try:
        for r in range(ROUNDS):
            for binary in ((old, new) if r % 2 == 0 else (new, old)):
                rate, cold = one_round(binary, work)
                rates[binary].append(rate)
                colds[binary].append(cold)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = lambda v: statistics.median(v)
    lines = [
        "## Sandbox starts, %s against %s (%d rounds, alternating)" % (new, old, ROUNDS), "",
        "| binary | sandboxes/s (%d concurrent first calls), per round | median | "
        "Python cold start p50 (median of rounds) |" % BURST,
        "| --- | --- | ---: | ---: |",
    ]
    for name, b in (("OLD", old), ("NEW", new)):
        lines.append("| %s | %s | %.1f | %.1f ms |" % (
            name, ", ".join("%.1f" % x for x in rates[b]), med(rates[b]), med(colds[b]) * 1e3))
    lines += ["", "NEW/OLD sandboxes per second: **%.2fx**; Python cold start NEW/OLD: %.2fx." % (
        med(rates[new]) / med(rates[old]), med(colds[new]) / med(colds[old])), ""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "starts-ab-latest.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
