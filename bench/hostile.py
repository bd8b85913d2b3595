#!/usr/bin/env python3
"""Hostile-function benchmark: lambent's own memory and /healthz latency while one 128 MB function
floods its Runtime API from inside its sandbox (thousands of held connections and hundreds of
parallel stalled uploads of its answer), against the same figures with no flood, in one run.

Run as root from the repository root after `cargo build --release -p lambent`:
python3 bench/hostile.py (prints a markdown report, also written to
bench/results/hostile-latest.md). LAMBENT=path/to/lambent runs another build (e.g. a debug one);
FLOOD_SECONDS (default 10), HOLDERS/HOLD (3 x 900 held connections) and UPLOADS (200) size the
flood. The flooding function is the e2e suite's (crates/lambent/tests/e2e/hostile/runtime_api).
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAMBENT = os.environ.get("LAMBENT", os.path.join(ROOT, "target", "release", "lambent"))
FLOOD_PY = os.path.join(ROOT, "crates", "lambent", "tests", "e2e", "hostile", "runtime_api",
                        "flood.py")
FLOOD_SECONDS = int(os.environ.get("FLOOD_SECONDS", "10"))
HOLDERS = int(os.environ.get("HOLDERS", "3"))
HOLD = int(os.environ.get("HOLD", "900"))
UPLOADS = int(os.environ.get("UPLOADS", "200"))
IDLE_SECONDS = 3

ECHO = "def handler(event, context):\n    return event\n"

KEY_ID = "LKBENCHADMIN00000001"
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
KEY_ENV = {"LAMBENT_ACCESS_KEY_ID": KEY_ID, "LAMBENT_SECRET_ACCESS_KEY": SECRET}
BEARER = "Bearer %s:%s" % (KEY_ID, SECRET)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_server(data_dir):
    proc = subprocess.Popen(
        [LAMBENT, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="error", **KEY_ENV))
    line = proc.stdout.readline()
    base = re.search(r"(http://\S+)", line).group(1)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(base + "/healthz", timeout=5).status == 200:
                return proc, base
        except OSError:
            time.sleep(0.05)
    sys.exit("lambent did not become healthy")


def deploy(base, name, source, *args):
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "app.py"), "w") as f:
        f.write(source)
    subprocess.run([LAMBENT, "deploy", name, d, "--runtime", "python3.12", "--handler",
                    "app.handler", *args], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, LAMBENT_ENDPOINT=base, **KEY_ENV))
    shutil.rmtree(d)


def invoke(base, name, event, timeout=120):
    req = urllib.request.Request(base + "/v1/functions/%s/invoke" % name,
                                 data=json.dumps(event).encode(), method="POST",
                                 headers={"Authorization": BEARER})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_mb(pid):
    return int(status(pid)["VmRSS"].split()[0]) / 1024


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def probe(base, pid, seconds=None, until=None):
    """/healthz latencies (ms), peak RSS (MB) and peak descriptors while the window lasts."""
    lat, peak_rss, peak_fds = [], 0.0, 0
    end = time.time() + seconds if seconds else None
    while (end and time.time() < end) or (until and not until.is_set()):
        t = time.perf_counter()
        with urllib.request.urlopen(base + "/healthz", timeout=60) as r:
            r.read()
        lat.append((time.perf_counter() - t) * 1e3)
        peak_rss = max(peak_rss, rss_mb(pid))
        peak_fds = max(peak_fds, fds(pid))
        time.sleep(0.002)
    return lat, peak_rss, peak_fds


def main():
    if os.geteuid() != 0:
        sys.exit("run as root: process sandboxes need it")
    data = tempfile.mkdtemp(prefix="lambent-bench-hostile-")
    proc, base = start_server(data)
    try:
        deploy(base, "victim", ECHO, "--timeout", "60")
        deploy(base, "flooder", open(FLOOD_PY).read(), "--memory", "128", "--timeout", "120")
        invoke(base, "victim", {"warm": True})
        pid = proc.pid
        idle_rss = rss_mb(pid)
        idle_lat, idle_peak, idle_fds = probe(base, pid, seconds=IDLE_SECONDS)

        done = threading.Event()
        outcome = {}

        def attack():
            try:
                outcome["status"], outcome["body"] = invoke(base, "flooder", {
                    "seconds": FLOOD_SECONDS, "holders": HOLDERS, "hold": HOLD,
                    "uploads": UPLOADS, "fill": 5_900_000})
            except Exception as e:  # the flooder's own answer may not get through
                outcome["error"] = str(e)
            done.set()

        victim_ok = [0, 0]

        def victim():
            while not done.is_set():
                try:
                    s, _ = invoke(base, "victim", {"n": 1}, timeout=60)
                    victim_ok[0 if s == 200 else 1] += 1
                except Exception:
                    victim_ok[1] += 1

        threading.Thread(target=attack).start()
        v = threading.Thread(target=victim)
        v.start()
        flood_lat, flood_peak, flood_fds = probe(base, pid, until=done)
        v.join()
        report = None
        if outcome.get("status") == 200:
            report = json.loads(outcome["body"])
        logs = json.loads(urllib.request.urlopen(urllib.request.Request(
            base + "/v1/functions/flooder/logs", headers={"Authorization": BEARER})).read())
        for inv in logs.get("invocations", []):
            for line in (inv.get("logs") or "").splitlines():
                if line.startswith("FLOOD ") and report is None:
                    report = json.loads(line[6:])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)

    made = sum(h.get("made", 0) for h in (report or {}).get("holders", []))
    up = (report or {}).get("uploads", {})
    lines = [
        "## Runtime API flood (one 128 MB function against its own Runtime API)",
        "",
        "Flood: %d s, %d holders x %d held connections (%d connections opened in all), "
        "%d parallel uploads of a 6 MB answer filled to 5.9 MB then stalled (%d started, "
        "%.0f MB sent, at most %d full at once)." % (
            FLOOD_SECONDS, HOLDERS, HOLD, made, UPLOADS, up.get("started", 0),
            up.get("bytes", 0) / 1e6, up.get("peak_full", 0)),
        "",
        "| | idle | during the flood |",
        "| --- | --- | --- |",
        "| lambent RSS (MB) | %.1f (peak %.1f) | peak %.1f (%.2fx idle) |" % (
            idle_rss, idle_peak, flood_peak, flood_peak / idle_rss),
        "| lambent open descriptors (peak) | %d | %d |" % (idle_fds, flood_fds),
        "| /healthz p50 (ms) | %.2f | %.2f |" % (statistics.median(idle_lat),
                                                 statistics.median(flood_lat)),
        "| /healthz p99 (ms) | %.2f | %.2f |" % (pct(idle_lat, 99), pct(flood_lat, 99)),
        "| /healthz samples | %d | %d |" % (len(idle_lat), len(flood_lat)),
        "",
        "Another function answered %d calls during the flood (%d failed); the flooder's own "
        "invocation: %s." % (victim_ok[0], victim_ok[1],
                             outcome.get("status") or outcome.get("error")),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "hostile-latest.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
