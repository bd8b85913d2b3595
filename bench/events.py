#!/usr/bin/env python3
"""Asynchronous invocation benchmark: durable accepts per second with 64 concurrent producers
(oha against `POST /v1/functions/noop/events`), against a plain SQLite insert loop with the same
durability settings (WAL, synchronous=FULL, one committed transaction per event) in the same run;
then end-to-end events per second to a wasm no-op function (accept to success, all stored).

Run from the repository root after `cargo build --release -p lambent`:
    python3 bench/events.py
Prints a markdown report, also written to bench/results/events-latest.md.

Settings (environment): EVENTS (events per accept run, default 50000), PRODUCERS (default 64),
ROUNDS (default 3), BASELINE_SECONDS (default 5), E2E_EVENTS (default 20000).
"""

import json
import os
import re
import sqlite3
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAMBENT = os.path.join(ROOT, "target", "release", "lambent")
EVENTS = int(os.environ.get("EVENTS", "50000"))
PRODUCERS = int(os.environ.get("PRODUCERS", "64"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
BASELINE_SECONDS = float(os.environ.get("BASELINE_SECONDS", "5"))
E2E_EVENTS = int(os.environ.get("E2E_EVENTS", "20000"))
PAYLOAD = json.dumps({"order": 12345, "items": ["a", "b", "c"], "note": "x" * 64})

KEY_ID = "LKBENCHADMIN00000001"
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
KEY_ENV = {"LAMBENT_ACCESS_KEY_ID": KEY_ID, "LAMBENT_SECRET_ACCESS_KEY": SECRET}
BEARER = "Bearer %s:%s" % (KEY_ID, SECRET)


def log(msg):
    print("==> " + msg, file=__import__("sys").stderr, flush=True)


def start_server(data_dir, extra=()):
    proc = subprocess.Popen(
        [LAMBENT, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn", **KEY_ENV))
    base = re.search(r"(http://\S+)", proc.stdout.readline()).group(1)
    return proc, base


def api(base, path, method="GET", body=None):
    req = urllib.request.Request(base + path, data=body, method=method,
                                 headers={"Authorization": BEARER,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def metric(base, name):
    req = urllib.request.Request(base + "/metrics", headers={"Authorization": BEARER})
    text = urllib.request.urlopen(req).read().decode()
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1))


def oha_accepts(base, n):
    """Accepted events per second, p50 and p99 ms, and the status counts."""
    out = subprocess.run(
        ["oha", "--no-tui", "--output-format", "json", "-n", str(n), "-c", str(PRODUCERS),
         "-m", "POST", "-d", PAYLOAD, "-H", "Authorization: " + BEARER,
         "-H", "Content-Type: application/json", base + "/v1/functions/noop/events"],
        check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    codes = j.get("statusCodeDistribution", {})
    return (j["summary"]["requestsPerSec"], j["latencyPercentiles"]["p50"] * 1e3,
            j["latencyPercentiles"]["p99"] * 1e3, codes)


def baseline(path):
    """A plain SQLite insert loop with the same durability: one transaction (one fsync) per
    event, WAL, synchronous=FULL, a similar row."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, function TEXT, "
                 "qualifier TEXT, payload BLOB, headers TEXT, state TEXT, accepted_ms INTEGER)")
    payload = PAYLOAD.encode()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < BASELINE_SECONDS:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events VALUES (?, 'noop', '$LATEST', ?, '[]', 'queued', ?)",
                     (str(uuid.uuid4()), payload, int(time.time() * 1000)))
        conn.execute("COMMIT")
        n += 1
    rate = n / (time.perf_counter() - t0)
    conn.close()
    return rate


def deploy_noop(base):
    subprocess.run([LAMBENT, "deploy", "noop", os.path.join(ROOT, "examples", "hello-c")],
                   check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, LAMBENT_ENDPOINT=base, **KEY_ENV))


def main():
    work = tempfile.mkdtemp(prefix="lambent-events-bench-")
    report = []
    # Durable accepts alone: `--event-pollers 0` stores events and runs none.
    proc, base = start_server(os.path.join(work, "accept"), ["--event-pollers", "0"])
    rows = []
    try:
        deploy_noop(base)
        for r in range(ROUNDS):
            log("round %d: SQLite insert loop baseline" % (r + 1))
            base_rate = baseline(os.path.join(work, "baseline-%d.db" % r))
            log("round %d: %d accepts from %d producers" % (r + 1, EVENTS, PRODUCERS))
            rate, p50, p99, codes = oha_accepts(base, EVENTS)
            rows.append((base_rate, rate, p50, p99, codes))
            log("  baseline %.0f/s, lambent %.0f/s (%s)" % (base_rate, rate, codes))
    finally:
        proc.terminate()
        proc.wait()

    # End to end: accept E2E_EVENTS and time until every one has succeeded.
    proc, base = start_server(os.path.join(work, "e2e"))
    try:
        deploy_noop(base)
        log("end to end: %d events to the wasm no-op" % E2E_EVENTS)
        t0 = time.perf_counter()
        e2e_rate, _, _, e2e_codes = oha_accepts(base, E2E_EVENTS)
        accepted_at = time.perf_counter()
        while metric(base, "lambent_async_events_succeeded_total") < E2E_EVENTS:
            time.sleep(0.05)
        done = time.perf_counter()
        failed = metric(base, "lambent_async_events_failed_total")
    finally:
        proc.terminate()
        proc.wait()
    base_med = statistics.median(r[0] for r in rows)
    acc_med = statistics.median(r[1] for r in rows)
    report.append("## Issue 5: durable asynchronous accepts and end-to-end events\n")
    report.append("%d rounds; each: a plain SQLite insert loop (WAL, synchronous=FULL, one "
                  "commit per event, %.0f s) then %d accepts from %d concurrent producers "
                  "(oha) to a server started with `--event-pollers 0` (it stores events and runs none).\n"
                  % (ROUNDS, BASELINE_SECONDS, EVENTS, PRODUCERS))
    report.append("| round | SQLite loop events/s | lambent accepted/s | ratio | p50 ms | p99 ms | statuses |")
    report.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for i, (b, a, p50, p99, codes) in enumerate(rows):
        report.append("| %d | %.0f | %.0f | %.1fx | %.2f | %.2f | %s |"
                      % (i + 1, b, a, a / b, p50, p99, codes))
    report.append("| **median** | **%.0f** | **%.0f** | **%.1fx** | | | |\n"
                  % (base_med, acc_med, acc_med / base_med))
    total = done - t0
    report.append("End to end, %d events to the wasm no-op (`examples/hello-c`): accepted at "
                  "%.0f/s (%s); all succeeded %.2f s after the first was sent: **%.0f events/s** "
                  "end to end (running continued %.2f s after the last accept); failed events: %d.\n"
                  % (E2E_EVENTS, e2e_rate, e2e_codes, total, E2E_EVENTS / total,
                     done - accepted_at, failed))
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "events-latest.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
