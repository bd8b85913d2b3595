#!/usr/bin/env python3
"""Process-tier benchmark: Python cold starts against `python3 -c pass`, warm invokes against the
hyper ceiling, sandboxes started per second, and memory per idle warm instance.

Run as root from the repository root after `cargo build --release -p lambent -p hyper-hello
-p hello-lambda-rust`:  python3 bench/sandbox.py  (prints a markdown report, also written to
bench/results/sandbox-latest.md). Ratios inside one run are what carries over; see bench/README.md.
"""

import glob
import json
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
REL = os.path.join(ROOT, "target", "release")
LAMBENT = os.path.join(REL, "lambent")
COLD_STARTS = int(os.environ.get("COLD_STARTS", "60"))
WARM_SECONDS = os.environ.get("WARM_SECONDS", "8")

ECHO = "def handler(event, context):\n    return event\n"

# The benchmark's admin key: lambent needs one on every call but /healthz.
KEY_ID = "LKBENCHADMIN00000001"
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
KEY_ENV = {"LAMBENT_ACCESS_KEY_ID": KEY_ID, "LAMBENT_SECRET_ACCESS_KEY": SECRET}
BEARER = "Bearer %s:%s" % (KEY_ID, SECRET)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_server(data_dir, extra=()):
    proc = subprocess.Popen(
        [LAMBENT, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn", **KEY_ENV))
    line = proc.stdout.readline()
    base = re.search(r"(http://\S+)", line).group(1)
    return proc, base


def cli(base, *args):
    subprocess.run([LAMBENT, *args], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, LAMBENT_ENDPOINT=base, **KEY_ENV))


def invoke(base, name, body=b"{}"):
    req = urllib.request.Request(base + "/v1/functions/%s/invoke" % name, data=body, method="POST",
                                 headers={"Authorization": BEARER})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req) as resp:
        resp.read()
        elapsed = time.perf_counter() - t0
        return elapsed, float(resp.headers.get("x-lambent-init-ms", "0")), resp.headers.get(
            "x-lambent-cold-start")


def oha(url, concurrency, body=None, headers=()):
    cmd = ["oha", "--no-tui", "--output-format", "json", "-z", WARM_SECONDS + "s",
           "-c", str(concurrency), url]
    for h in headers:
        cmd[1:1] = ["-H", h]
    if body is not None:
        cmd[1:1] = ["-m", "POST", "-d", body]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    return j["summary"]["requestsPerSec"], j["latencyPercentiles"]["p50"] * 1e3, \
        j["latencyPercentiles"]["p99"] * 1e3


def sandbox_processes():
    pids = []
    for procs in glob.glob("/sys/fs/cgroup/**/lambent-sandboxes/sb-*/cgroup.procs", recursive=True):
        if "/memory/" in procs or "/unified/" in procs or procs.count("lambent-sandboxes") == 1:
            with open(procs) as f:
                pids.extend(int(p) for p in f.read().split())
    return sorted(set(pids))


def rollup(pid):
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                m = re.match(r"(Rss|Pss):\s+(\d+) kB", line)
                if m:
                    out[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    return out


def main():
    report = []
    work = tempfile.mkdtemp(prefix="lambent-bench-")
    fn_dir = os.path.join(work, "echo")
    os.makedirs(fn_dir)
    with open(os.path.join(fn_dir, "app.py"), "w") as f:
        f.write(ECHO)
    proc, base = start_server(os.path.join(work, "data"))
    try:
        # 1. The floor: the host's Python starting and exiting.
        floor = []
        for _ in range(COLD_STARTS):
            t0 = time.perf_counter()
            subprocess.run(["/usr/bin/python3", "-c", "pass"], check=True)
            floor.append(time.perf_counter() - t0)
        # 2. Python cold starts: every config change retires the warm instance.
        cli(base, "deploy", "echo", fn_dir, "--runtime", "python3.12", "--handler", "app.handler")
        cold, init = [], []
        for i in range(COLD_STARTS):
            cli(base, "deploy", "echo", fn_dir, "--runtime", "python3.12", "--handler",
                "app.handler", "--description", "round %d" % i)
            elapsed, init_ms, was_cold = invoke(base, "echo")
            assert was_cold == "true", was_cold
            cold.append(elapsed)
            init.append(init_ms / 1e3)
        ms = lambda v: "%.1f ms" % (v * 1e3)
        report += [
            "## Python cold start (%d each, sequential)" % COLD_STARTS, "",
            "| | p50 | p99 |", "| --- | --- | --- |",
            "| `python3 -c pass` (floor) | %s | %s |" % (ms(pct(floor, 50)), ms(pct(floor, 99))),
            "| lambent invoke, client side (sandbox + interpreter + import + response) | %s | %s |"
            % (ms(pct(cold, 50)), ms(pct(cold, 99))),
            "| lambent init (server side: sandbox built until the runtime asked for work) | %s | %s |"
            % (ms(pct(init, 50)), ms(pct(init, 99))),
            "", "Cold start p50 is **%.2fx** the bare interpreter's start." % (
                pct(cold, 50) / pct(floor, 50)), ""]

        # 3. Warm invokes against the transport ceiling (hyper-hello).
        hyper = subprocess.Popen([os.path.join(REL, "hyper-hello"), "127.0.0.1:18099"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        invoke(base, "echo")
        rows = []
        for c in (1, 16):
            rps, p50, p99 = oha(base + "/v1/functions/echo/invoke", c, body='{"k":1}',
                                headers=["Authorization: " + BEARER])
            hrps, hp50, hp99 = oha("http://127.0.0.1:18099/", c)
            rows.append("| %d | %.0f | %.3f ms | %.3f ms | %.0f | %.3f ms | %.2f ms |" % (
                c, rps, p50, p99, hrps, hp50, p50 - hp50))
        hyper.kill()
        report += [
            "## Warm invoke of the Python echo function (%s s per point)" % WARM_SECONDS, "",
            "| callers | lambent req/s | p50 | p99 | hyper-hello req/s | hyper p50 | p50 over hyper |",
            "| --- | --- | --- | --- | --- | --- | --- |", *rows, "",
            "At 16 callers lambent runs one warm sandbox per concurrent caller.", ""]

        # 4. Memory per idle warm Python instance.
        time.sleep(0.5)
        pids = sandbox_processes()
        rss = sum(rollup(p).get("Rss", 0) for p in pids)
        pss = sum(rollup(p).get("Pss", 0) for p in pids)
        metrics = urllib.request.Request(base + "/metrics", headers={"Authorization": BEARER})
        idle = int(re.search(r"^lambent_sandboxes_idle (\d+)", urllib.request.urlopen(
            metrics).read().decode(), re.M).group(1))
        if idle:
            report += [
                "## Memory per idle warm Python instance", "",
                "%d idle instances, %d processes (helper, init, python3 each): RSS %.1f MB, "
                "PSS %.1f MB per instance." % (idle, len(pids), rss / idle / 1024,
                                                 pss / idle / 1024), ""]

        # 5. Sandboxes per second: 32 concurrent cold starts of a provided bootstrap.
        rust_dir = os.path.join(work, "rust")
        os.makedirs(rust_dir)
        shutil.copy(os.path.join(REL, "bootstrap"), os.path.join(rust_dir, "bootstrap"))
        rates = []
        for round_ in range(3):
            cli(base, "deploy", "rusty", rust_dir, "--runtime", "provided.al2023",
                "--description", "round %d" % round_)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(32) as pool:
                results = list(pool.map(lambda _: invoke(base, "rusty"), range(32)))
            wall = time.perf_counter() - t0
            # A call that arrives after another finished may reuse its instance: count starts.
            started = sum(1 for r in results if r[2] == "true")
            rates.append(started / wall)
        report += [
            "## Sandboxes started per second (32 concurrent cold starts of the Rust "
            "`lambda_runtime` hello, 3 rounds)", "",
            "%s sandboxes/s (median %.1f)." % (", ".join("%.1f" % r for r in rates),
                                               statistics.median(rates)), ""]
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "sandbox-latest.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
