#!/usr/bin/env python3
"""Two lambent binaries side by side on the wasm hello function: `python3 bench/ab.py OLD NEW`.

Both serve `examples/hello-c/hello.wasm` as a public function URL; oha alternates between them
(ROUNDS rounds of SECONDS_PER_POINT s, CONNECTIONS connections) so drift hits both alike. Prints
req/s and latency per binary and the ratio NEW/OLD, and the server's CPU time per call (user +
system, from /proc/PID/stat around each measurement), which holds up better than req/s when other
work shares the machine. For A/B checks of changes on the hot path.
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
    old, new = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="lambent-ab-")
    servers = {"old": serve(old, work), "new": serve(new, work)}
    try:
        for _, url in servers.values():
            oha(url)  # warm up
        runs = {k: [] for k in servers}
        for _ in range(ROUNDS):
            for k, (proc, url) in servers.items():
                runs[k].append(oha(url, proc.pid))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
    med = lambda k, i: statistics.median(r[i] for r in runs[k])
    print("| binary | req/s (median of %d) | p50 ms | p99 ms | server CPU us/call | per-round req/s |"
          % ROUNDS)
    print("| --- | --- | --- | --- | --- | --- |")
    for k, path in (("old", old), ("new", new)):
        print("| %s `%s` | %.0f | %.3f | %.3f | %.1f | %s |" % (
            k, path, med(k, 0), med(k, 1), med(k, 2), med(k, 3),
            ", ".join("%.0f" % r[0] for r in runs[k])))
    print("\nnew/old req/s: %.3f" % (med("new", 0) / med("old", 0)))
    print("old/new server CPU per call: %.3f" % (med("old", 3) / med("new", 3)))


if __name__ == "__main__":
    main()
