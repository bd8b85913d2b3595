#!/usr/bin/env python3
"""What freezing idle sandboxes costs a warm call: a warm Python echo on a server that freezes
idle sandboxes (the default: frozen after each reply, thawed before the next event) against one
started with `--no-freeze-idle`, side by side in one run, alternating rounds.

Run as root from the repository root after `cargo build --release -p lambent`:

    python3 bench/freeze.py            # LAMBENT=target/debug/lambent to use another binary

Each round makes CALLS sequential calls to each server over one keep-alive connection, one
caller, in two ways: back to back, and with GAP_MS (10) ms of idle time before each call. lambent
freezes an instance once it has idled 2 ms after its reply, so back-to-back calls mostly skip the
freeze, while every call after a gap thaws a frozen sandbox first. The report gives the medians
over ROUNDS rounds of each round's p50 and p99, and the p50 differences. Prints a markdown report,
also written to bench/results/freeze-latest.md.
"""

import http.client
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAMBENT = os.environ.get("LAMBENT", os.path.join(ROOT, "target", "release", "lambent"))
CALLS = int(os.environ.get("CALLS", "400"))
ROUNDS = int(os.environ.get("ROUNDS", "7"))
KEY_ID = "LKBENCHADMIN00000001"
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
BEARER = "Bearer %s:%s" % (KEY_ID, SECRET)
BODY = b'{"k": 1}'
GAP = float(os.environ.get("GAP_MS", "10")) / 1e3
MODES = [("back to back", 0.0), ("after %g ms idle" % (GAP * 1e3), GAP)]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_server(data_dir, extra):
    proc = subprocess.Popen(
        [LAMBENT, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn", LAMBENT_ACCESS_KEY_ID=KEY_ID,
                 LAMBENT_SECRET_ACCESS_KEY=SECRET))
    base = re.search(r"(http://\S+)", proc.stdout.readline()).group(1)
    return proc, base


class Target:
    def __init__(self, name, base):
        self.name = name
        host, port = base[len("http://"):].rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port))
        self.p50 = {m: [] for m, _ in MODES}
        self.p99 = {m: [] for m, _ in MODES}

    def request(self, method, path, body):
        self.conn.request(method, path, body=body, headers={
            "Authorization": BEARER, "Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        assert resp.status in (200, 201), (resp.status, data)
        return data

    def deploy(self):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", "def handler(event, context):\n    return event\n")
        create = json.dumps({
            "FunctionName": "echo", "Runtime": "python3.12", "Handler": "app.handler",
            "Role": "arn:aws:iam::000000000000:role/x",
            "Code": {"ZipFile": __import__("base64").b64encode(buf.getvalue()).decode()}})
        self.request("POST", "/2015-03-31/functions", create.encode())
        out = self.request("POST", "/v1/functions/echo/invoke", BODY)
        assert json.loads(out) == json.loads(BODY), out

    def round(self, mode, gap):
        times = []
        for _ in range(CALLS):
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter()
            self.request("POST", "/v1/functions/echo/invoke", BODY)
            times.append((time.perf_counter() - t0) * 1e3)
        self.p50[mode].append(pct(times, 50))
        self.p99[mode].append(pct(times, 99))


def main():
    work = tempfile.mkdtemp(prefix="lambent-bench-freeze-")
    procs = []
    try:
        targets = []
        for name, extra in [("frozen while idle (default)", []),
                            ("not frozen (--no-freeze-idle)", ["--no-freeze-idle"])]:
            proc, base = start_server(os.path.join(work, str(len(procs))), extra)
            procs.append(proc)
            t = Target(name, base)
            t.deploy()
            targets.append(t)
        for t in targets:  # warm-up
            t.round(*MODES[0])
            t.p50[MODES[0][0]].clear()
            t.p99[MODES[0][0]].clear()
        for i in range(ROUNDS):
            for mode, gap in MODES:
                for t in (targets if i % 2 == 0 else reversed(targets)):
                    t.round(mode, gap)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    frozen, running = targets
    med = statistics.median
    report = ["# Freezing idle sandboxes", "",
              "Warm Python echo (`return event`), one caller over one keep-alive connection, "
              "%d calls per round, %d rounds alternating between the servers; medians of the "
              "rounds' p50 and p99. Binary: `%s`." % (CALLS, ROUNDS, os.path.relpath(LAMBENT, ROOT)),
              "", "| calls | server | p50 | p99 | p50 added by freezing (per-round medians) |",
              "| --- | --- | --- | --- | --- |"]
    for mode, _ in MODES:
        diffs = [f - r for f, r in zip(frozen.p50[mode], running.p50[mode])]
        for t in targets:
            added = "%+.3f ms (rounds: %s)" % (med(diffs), ", ".join("%+.3f" % d for d in diffs)) \
                if t is frozen else ""
            report.append("| %s | %s | %.3f ms | %.3f ms | %s |" % (
                mode, t.name, med(t.p50[mode]), med(t.p99[mode]), added))
    report.append("")
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "freeze-latest.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
