#!/usr/bin/env python3
"""Two lambent binaries side by side on the wasm hello function: `python3 bench/ab.py OLD NEW`.

Both serve `examples/hello-c/hello.wasm` as a public function URL; oha alternates between them
(ROUNDS rounds of SECONDS_PER_POINT s, CONNECTIONS connections) so drift hits both alike. Prints
req/s and latency per binary and the ratio NEW/OLD, and the server's CPU time per call (user +
system, from /proc/PID/stat around each measurement), which holds up better than req/s when other
work shares the machine. For A/B checks of changes on the hot path. More binaries may follow
(`bench/ab.py A B C ...`, e.g. one per commit to find which change cost what): all share each
round, and each is compared with the first.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = os.environ.get("SECONDS_PER_POINT", "8")
ROUNDS = int(os.environ.get("ROUNDS", "4"))
CONNECTIONS = os.environ.get("CONNECTIONS", "32")
KEY = {"LAMBENT_ACCESS_KEY_ID": "LKBENCHADMIN00000001",
       "LAMBENT_SECRET_ACCESS_KEY": "bench-secret-0123456789abcdefghijklmnopq"}


def serve(binary, work):
    data = tempfile.mkdtemp(dir=work)
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, RUST_LOG="warn", **KEY))
    base = re.search(r"(http://\S+)", proc.stdout.readline()).group(1)
    hello = os.path.join(ROOT, "examples", "hello-c", "hello.wasm")
    deploy = [binary, "--endpoint", base, "deploy", "hello", hello]
    # Binaries from before access keys (issue 4) have no --public and need no key.
    help_text = subprocess.run([binary, "deploy", "--help"], capture_output=True, text=True).stdout
    if "--public" in help_text:
        deploy.append("--public")
    subprocess.run(deploy, check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, **KEY))
    return proc, base + "/fn/hello/"


def cpu_seconds(pid):
    """User plus system CPU time of a process so far, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def oha(url, pid=None):
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-z", SECONDS + "s",
                          "-c", CONNECTIONS, url], check=True, capture_output=True, text=True)
    j = json.loads(out.stdout)
    assert set(j.get("statusCodeDistribution", {})) <= {"200"}, j["statusCodeDistribution"]
    calls = sum(j.get("statusCodeDistribution", {}).values()) or 1
    cpu_us = (cpu_seconds(pid) - before) * 1e6 / calls if pid else 0.0
    return j["summary"]["requestsPerSec"], j["latencyPercentiles"]["p50"] * 1e3, \
        j["latencyPercentiles"]["p99"] * 1e3, cpu_us


def main():
    binaries = sys.argv[1:]
    if len(binaries) < 2:
        sys.exit("usage: bench/ab.py OLD NEW [MORE...]  (ratios are to OLD, the first)")
    work = tempfile.mkdtemp(prefix="lambent-ab-")
    # Several binaries (e.g. one per commit, to find which change cost what) share each round.
    servers = [serve(b, work) for b in binaries]
    try:
        for _, url in servers:
            oha(url)  # warm up
        runs = [[] for _ in servers]
        for _ in range(ROUNDS):
            for i, (proc, url) in enumerate(servers):
                runs[i].append(oha(url, proc.pid))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait()
    med = lambda i, f: statistics.median(r[f] for r in runs[i])
    print("| binary | req/s (median of %d) | p50 ms | p99 ms | server CPU us/call | per-round req/s "
          "| req/s vs first | CPU/call first/this |" % ROUNDS)
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, path in enumerate(binaries):
        print("| `%s` | %.0f | %.3f | %.3f | %.1f | %s | %.3f | %.3f |" % (
            path, med(i, 0), med(i, 1), med(i, 2), med(i, 3),
            ", ".join("%.0f" % r[0] for r in runs[i]), med(i, 0) / med(0, 0),
            med(0, 3) / med(i, 3)))
    print("\nnew/old req/s: %.3f" % (med(len(binaries) - 1, 0) / med(0, 0)))
    print("old/new server CPU per call: %.3f" % (med(0, 3) / med(len(binaries) - 1, 3)))


if __name__ == "__main__":
    main()
