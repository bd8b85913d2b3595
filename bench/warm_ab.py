#!/usr/bin/env python3
"""The warm Python path of two lambent binaries side by side: `python3 bench/warm_ab.py OLD NEW`.

Each binary serves the Python echo function (bench/sandbox.py's) from its own data dir; oha
alternates between them (ROUNDS rounds of SECONDS_PER_POINT s at 1 and at 16 callers, POST
/v1/functions/echo/invoke with a bearer key) so drift hits both alike. Prints req/s, p50 and
lambent's own CPU time per call (the sandbox's Python is not counted) per binary, and NEW/OLD.
For A/B checks of changes on the process tier's path (pool, executor, Runtime API). Run as root.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab import cpu_seconds  # noqa: E402

SECONDS = os.environ.get("SECONDS_PER_POINT", "6")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
KEY = {"LAMBENT_ACCESS_KEY_ID": "LKBENCHADMIN00000001",
       "LAMBENT_SECRET_ACCESS_KEY": "bench-secret-0123456789abcdefghijklmnopq"}
BEARER = "Bearer %s:%s" % (KEY["LAMBENT_ACCESS_KEY_ID"], KEY["LAMBENT_SECRET_ACCESS_KEY"])
ECHO = "def handler(event, context):\n    return event\n"


def serve(binary, work):
    data = tempfile.mkdtemp(dir=work)
    fn_dir = os.path.join(data, "echo-src")
    os.makedirs(fn_dir)
    with open(os.path.join(fn_dir, "app.py"), "w") as f:
        f.write(ECHO)
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                             os.path.join(data, "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, RUST_LOG="warn", **KEY))
    base = re.search(r"(http://\S+)", proc.stdout.readline()).group(1)
    subprocess.run([binary, "--endpoint", base, "deploy", "echo", fn_dir, "--runtime",
                    "python3.12", "--handler", "app.handler"], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, **KEY))
    return proc, base + "/v1/functions/echo/invoke"


def oha(url, callers, pid):
    before = cpu_seconds(pid)
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-z", SECONDS + "s",
                          "-c", str(callers), "-m", "POST", "-d", '{"k":1}',
                          "-H", "Authorization: " + BEARER, url],
                         check=True, capture_output=True, text=True)
    j = json.loads(out.stdout)
    codes = j.get("statusCodeDistribution", {})
    assert set(codes) <= {"200"}, codes
    calls = sum(codes.values()) or 1
    return (j["summary"]["requestsPerSec"], j["latencyPercentiles"]["p50"] * 1e3,
            (cpu_seconds(pid) - before) * 1e6 / calls)


def main():
    old, new = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="lambent-warm-ab-")
    servers = {"old": serve(old, work), "new": serve(new, work)}
    try:
        for proc, url in servers.values():
            oha(url, 16, proc.pid)  # warm up: 16 sandboxes started
        runs = {(k, c): [] for k in servers for c in (1, 16)}
        for _ in range(ROUNDS):
            for callers in (1, 16):
                for k, (proc, url) in servers.items():
                    runs[(k, callers)].append(oha(url, callers, proc.pid))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
    med = lambda key, i: statistics.median(r[i] for r in runs[key])
    print("| callers | binary | req/s (median of %d) | p50 ms | lambent CPU us/call |" % ROUNDS)
    print("| --- | --- | --- | --- | --- |")
    for callers in (1, 16):
        for k, path in (("old", old), ("new", new)):
            key = (k, callers)
            print("| %d | %s `%s` | %.0f | %.3f | %.1f |" % (
                callers, k, path, med(key, 0), med(key, 1), med(key, 2)))
    for callers in (1, 16):
        print("\n%d callers: new/old req/s %.3f, old/new lambent CPU per call %.3f" % (
            callers, med(("new", callers), 0) / med(("old", callers), 0),
            med(("old", callers), 2) / med(("new", callers), 2)))


if __name__ == "__main__":
    main()
