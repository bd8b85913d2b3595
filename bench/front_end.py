#!/usr/bin/env python3
"""What slow-header callers cost everyone else: `/healthz` latency (p50, p99) on fresh
connections, alone and while SLOW connections each hold half a request head, in one run,
alternating; and lambent's RSS idle and with the slow connections held.

Run from the repository root after `cargo build --release -p lambent` (or set LAMBENT to another
binary, e.g. target/debug/lambent):

    python3 bench/front_end.py

Environment: SLOW (default 2000 held connections), REQUESTS (default 2000 per measurement),
ROUNDS (default 3), MAX_CONNECTIONS (default 4096; SLOW above it shows the cap refusing).
Prints a markdown report, also written to bench/results/front-end-latest.md.
"""

import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAMBENT = os.environ.get("LAMBENT", os.path.join(ROOT, "target", "release", "lambent"))
SLOW = int(os.environ.get("SLOW", "2000"))
REQUESTS = int(os.environ.get("REQUESTS", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
MAX_CONNECTIONS = int(os.environ.get("MAX_CONNECTIONS", "4096"))
# Long enough that the slow connections are still held while latency is measured.
HEADER_TIMEOUT = "120"


def start_server(data_dir):
    proc = subprocess.Popen(
        [LAMBENT, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--no-sandbox", "--header-timeout", HEADER_TIMEOUT,
         "--max-connections", str(MAX_CONNECTIONS)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn"))
    base = re.search(r"http://(\S+)", proc.stdout.readline()).group(1)
    host, port = base.rsplit(":", 1)
    return proc, (host, int(port))


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def healthz(addr):
    """One GET /healthz on a fresh connection; seconds to the whole answer."""
    start = time.perf_counter()
    with socket.create_connection(addr, timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    return time.perf_counter() - start


def measure(addr):
    times = sorted(healthz(addr) for _ in range(REQUESTS))
    return (statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3)


def hold_slow(addr, n):
    """Opens n connections that each send half a request head; returns them and how many the
    server refused (answered 503 or closed at once)."""
    held, refused = [], 0
    for _ in range(n):
        s = socket.create_connection(addr, timeout=30)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
        held.append(s)
    time.sleep(0.5)
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(64) is not None:
                refused += 1
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
    return held, refused


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="lambent-bench-front-end-")
    proc, addr = start_server(work)
    try:
        for _ in range(50):
            healthz(addr)
        idle_rss = rss_mb(proc.pid)
        rows = []
        peak_rss = idle_rss
        refused_seen = 0
        for r in range(ROUNDS):
            alone = measure(addr)
            held, refused = hold_slow(addr, SLOW)
            refused_seen = max(refused_seen, refused)
            peak_rss = max(peak_rss, rss_mb(proc.pid))
            loaded = measure(addr)
            for s in held:
                s.close()
            time.sleep(1)
            rows.append((alone, loaded))
            print("round %d: alone p50 %.2f p99 %.2f ms; with %d slow p50 %.2f p99 %.2f ms"
                  % (r + 1, alone[0], alone[1], SLOW, loaded[0], loaded[1]), file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    p99_alone = statistics.median(a[1] for a, _ in rows)
    p99_loaded = statistics.median(l[1] for _, l in rows)
    p50_alone = statistics.median(a[0] for a, _ in rows)
    p50_loaded = statistics.median(l[0] for _, l in rows)
    report = "\n".join([
        "# /healthz while slow-header connections are held",
        "",
        "binary: `%s`; %d fresh-connection requests per point, median of %d rounds; "
        "%d connections each holding half a request head (--max-connections %d, "
        "--header-timeout %s)." % (os.path.relpath(LAMBENT, ROOT), REQUESTS, ROUNDS, SLOW,
                                   MAX_CONNECTIONS, HEADER_TIMEOUT),
        "",
        "| | p50 ms | p99 ms |",
        "| --- | --- | --- |",
        "| alone | %.2f | %.2f |" % (p50_alone, p99_alone),
        "| with %d slow connections | %.2f | %.2f |" % (SLOW, p50_loaded, p99_loaded),
        "| ratio | %.2fx | %.2fx |" % (p50_loaded / p50_alone, p99_loaded / p99_alone),
        "",
        "RSS: %.1f MB idle, %.1f MB with the slow connections held (%.1f KB per connection); "
        "%d of them refused by the cap." % (idle_rss, peak_rss,
                                            (peak_rss - idle_rss) * 1024 / max(SLOW, 1),
                                            refused_seen),
        "",
    ])
    print(report)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "front-end-latest.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
