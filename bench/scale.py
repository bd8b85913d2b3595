#!/usr/bin/env python3
"""Elastic scaling benchmark: 1000 concurrent clients on the wasm hello, and bursts from zero.

Build, then run as root from the repository root (Python 3 standard library only):

    cargo build --release -p lambent -p hyper-hello -p hello-lambda-rust
    cargo install --locked oha            # if `oha` is not on PATH or in ~/.cargo/bin
    /usr/bin/python3 bench/scale.py       # as root; DURATION=10 for a quick run

It prints a markdown report and writes it to bench/results/scale-latest.md. Every figure comes
with a baseline measured in the same run, and the ratio is what carries over (bench/README.md).

1. Many clients. `examples/hello-c/hello.wasm` deployed as a public function, called at
   `/fn/hello/` with `oha -c 1000 -z DURATIONs` against the single-function figure, the same
   function at the wasm benchmark's usual 32 connections (bench/run.sh) for the same duration,
   alternating in ROUNDS rounds. Reports req/s (200s over oha's wall time), the ratio 1000/32
   (target >= 0.90), p50/p99, every non-200 status, oha's connection errors, lambent's throttle
   counter, lambent's peak RSS (VmRSS sampled every 50 ms, VmHWM) and lambent's CPU time per
   request. If `lambent scaling --help` works, `lambent scaling hello --instance-concurrency 100`
   is applied first and noted.
2. Burst from zero. BURST (500) first calls sent at once to a freshly deployed function with no
   instance, for a Python echo function (python3.12), a `provided` function (the Rust
   `lambda_runtime` hello, target/release/bootstrap) and the wasm hello; each burst on a fresh
   `lambent serve --max-sandboxes 600` (plus `--memory-budget-mb 80000` where that flag exists).
   The client opens BURST keep-alive-less TCP connections first, then writes one request on each
   in a tight loop (5-30 ms for 500 on the 2-core box) and collects the answers with epoll; its
   floor is the same burst against bench/hyper-hello, which matters only for the wasm figure
   (tens of ms; the process tier takes seconds). Reported: time
   until all answered, statuses, sandboxes started (`lambent_sandboxes_started_total` before and
   after; for wasm every call is a fresh instance) and instances started per second. Baselines in
   the same round: BURST `/usr/bin/python3 -c pass` processes and BURST runs of the bootstrap
   binary (pointed at a closed runtime API port, so it starts, fails its first /next and exits),
   started by BURST threads released at once. Rounds alternate all targets (BURST_ROUNDS).

Environment: DURATION (s, default 60), WARMUP (s, 2), CLIENTS (1000), CONNECTIONS (32), ROUNDS (1),
BURST (500), BURST_ROUNDS (3), MAX_SANDBOXES (600), PARTS ("clients burst": which parts),
BURST_TARGETS (comma-separated subset of "python3 -c pass,bootstrap direct,hyper-hello,python,
provided,wasm"), OHA (path), KEEP_WORK=1 (keep the scratch directory: oha JSON, server logs).
About 5 minutes with the defaults.
"""

import glob
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
LAMBENT = os.path.join(REL, "lambent")
HELLO_WASM = os.path.join(ROOT, "examples", "hello-c", "hello.wasm")
DURATION = int(os.environ.get("DURATION", "60"))
WARMUP = int(os.environ.get("WARMUP", "2"))
CLIENTS = int(os.environ.get("CLIENTS", "1000"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("ROUNDS", "1"))
BURST = int(os.environ.get("BURST", "500"))
BURST_ROUNDS = int(os.environ.get("BURST_ROUNDS", "3"))
MAX_SANDBOXES = int(os.environ.get("MAX_SANDBOXES", "600"))
PARTS = os.environ.get("PARTS", "clients burst").split()

ECHO = "def handler(event, context):\n    return event\n"

# The benchmark's admin key: lambent needs one on every call but /healthz and public URLs.
KEY_ID = "LKBENCHADMIN00000001"
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
KEY_ENV = {"LAMBENT_ACCESS_KEY_ID": KEY_ID, "LAMBENT_SECRET_ACCESS_KEY": SECRET}
BEARER = "Bearer %s:%s" % (KEY_ID, SECRET)


def log(msg):
    print("scale: " + msg, file=sys.stderr, flush=True)


def raise_fd_limit():
    """1000 client connections, 1000 server sockets and 500 sandboxes' pipes need more than the
    usual 1024 descriptors; children (oha, lambent) inherit the limit. Raising the hard limit
    needs CAP_SYS_RESOURCE; without it the soft limit goes up to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1 << 20, 1 << 20))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def find_oha():
    for cand in (os.environ.get("OHA"), shutil.which("oha"),
                 os.path.expanduser("~/.cargo/bin/oha")):
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("oha not found: cargo install --locked oha")


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- /proc sampling ------------------------------------------------------------------------------

def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                m = re.match(r"(VmRSS|VmHWM|Threads):\s+(\d+)", line)
                if m:
                    out[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def system_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


def mem_available_kb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


class Sampler:
    """Samples a process's VmRSS (and the machine's MemAvailable) every 50 ms while running."""

    def __init__(self, pid):
        self.pid, self.peak_rss, self.min_avail = pid, 0, mem_available_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, proc_status(self.pid).get("VmRSS", 0))
            self.min_avail = min(self.min_avail, mem_available_kb())
            self._stop.wait(0.05)

    def __enter__(self):
        self.avail0 = mem_available_kb()
        self.cpu0, self.sys0 = cpu_seconds(self.pid), system_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.cpu = cpu_seconds(self.pid) - self.cpu0
        busy1, total1 = system_cpu()
        self.machine_busy = (busy1 - self.sys0[0]) / max(1, total1 - self.sys0[1])
        self.hwm = proc_status(self.pid).get("VmHWM", 0)


# --- lambent -------------------------------------------------------------------------------------

def help_text(*args):
    r = subprocess.run([LAMBENT, *args, "--help"], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


class Server:
    def __init__(self, work, label, extra=()):
        self.data = tempfile.mkdtemp(prefix=label + "-", dir=work)
        self.log_path = self.data + ".log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [LAMBENT, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data, *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True,
            env=dict(os.environ, RUST_LOG="warn", **KEY_ENV))
        line = self.proc.stdout.readline()
        m = re.search(r"(http://\S+)", line)
        if not m:
            self.stop()
            sys.exit("lambent serve did not start: %r; log: %s" % (line, self.log_path))
        self.base = m.group(1).rstrip("/")
        self.host, self.port = re.match(r"http://([^:/]+):(\d+)", self.base).groups()
        self.port = int(self.port)
        # Keep draining stdout so that the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def cli(self, *args, check=True):
        r = subprocess.run([LAMBENT, *args], capture_output=True, text=True,
                           env=dict(os.environ, LAMBENT_ENDPOINT=self.base, **KEY_ENV))
        if check and r.returncode != 0:
            raise RuntimeError("lambent %s failed: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def metrics(self):
        req = urllib.request.Request(self.base + "/metrics", headers={"Authorization": BEARER})
        text = urllib.request.urlopen(req, timeout=30).read().decode()
        return {m.group(1): float(m.group(2))
                for m in re.finditer(r"^(lambent_\w+) ([0-9.e+-]+)$", text, re.M)}

    def stop(self):
        """SIGTERM (in-flight calls finish, sandboxes stop), then SIGKILL the process group."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                log("lambent did not exit in 60 s after SIGTERM; killing its process group")
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def own_cgroups(pid):
    """Sandbox cgroup directories made by the lambent process `pid` (named sb-PID-...)."""
    return [d for d in glob.glob("/sys/fs/cgroup/**/lambent-sandboxes/sb-%d-*" % pid,
                                 recursive=True) if os.path.isdir(d)]


def sandbox_processes():
    pids = set()
    for procs in glob.glob("/sys/fs/cgroup/**/lambent-sandboxes/sb-*/cgroup.procs", recursive=True):
        try:
            with open(procs) as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return sorted(pids)


# --- part 1: many clients -------------------------------------------------------------------------

def established(port):
    """TCP connections in state ESTABLISHED whose local port is `port` (the server's side)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def oha_run(oha, url, conns, seconds, out_path):
    cmd = [oha, "--no-tui", "--output-format", "json", "-z", "%ds" % seconds, "-c", str(conns),
           url]
    r = subprocess.run(cmd, capture_output=True, text=True)
    with open(out_path, "w") as f:
        f.write(r.stdout)
    if r.returncode != 0:
        raise RuntimeError("oha failed (%d): %s" % (r.returncode, r.stderr.strip()[-2000:]))
    d = json.loads(r.stdout)
    codes = {str(k): v for k, v in d.get("statusCodeDistribution", {}).items()}
    # oha aborts the requests in flight when the duration ends; those are not errors.
    errors = {e: n for e, n in d.get("errorDistribution", {}).items()
              if e != "aborted due to deadline"}
    lat = d.get("latencyPercentiles", {})
    return {
        "rps": codes.get("200", 0) / d["summary"]["total"],
        "ok": codes.get("200", 0),
        "codes": codes,
        "errors": errors,
        "p50": (lat.get("p50") or float("nan")) * 1e3,
        "p99": (lat.get("p99") or float("nan")) * 1e3,
    }


def part_clients(work, oha, serve_extra, report):
    server = Server(work, "clients", serve_extra)
    notes = []
    try:
        server.cli("deploy", "hello", HELLO_WASM, "--public")
        code, _ = help_text("scaling")
        if code == 0:
            r = server.cli("scaling", "hello", "--instance-concurrency", "100", check=False)
            notes.append("`lambent scaling hello --instance-concurrency 100`: %s" % (
                "applied" if r.returncode == 0 else "failed: " + r.stderr.strip()))
        else:
            notes.append("`lambent scaling` does not exist in this build; "
                         "no instance concurrency set")
        url = server.base + "/fn/hello/"
        with urllib.request.urlopen(url) as resp:
            body = resp.read()
        assert body == b"Hello from lambent!\n", body
        runs = {CONNECTIONS: [], CLIENTS: []}
        log("warm-up %d s" % WARMUP)
        oha_run(oha, url, CONNECTIONS, WARMUP, os.path.join(work, "warmup.json"))
        for rnd in range(ROUNDS):
            for conns in (CONNECTIONS, CLIENTS):
                log("round %d: %d connections for %d s" % (rnd + 1, conns, DURATION))
                m0 = server.metrics()
                mid = []
                timer = threading.Timer(DURATION / 2, lambda: mid.append(established(server.port)))
                timer.start()
                with Sampler(server.proc.pid) as s:
                    res = oha_run(oha, url, conns, DURATION,
                                  os.path.join(work, "oha-%d-%d.json" % (conns, rnd)))
                timer.cancel()
                m1 = server.metrics()
                res["established"] = mid[0] if mid else 0
                res.update(peak_rss=s.peak_rss, hwm=s.hwm, cpu=s.cpu, busy=s.machine_busy,
                           throttles=m1.get("lambent_throttles_total", 0)
                           - m0.get("lambent_throttles_total", 0),
                           threads=proc_status(server.proc.pid).get("Threads", 0))
                runs[conns].append(res)
                log("  %.0f req/s, p50 %.2f ms, p99 %.2f ms, codes %s, errors %s" % (
                    res["rps"], res["p50"], res["p99"], res["codes"], res["errors"]))
        # A last check that the server still answers after the many-clients run.
        with urllib.request.urlopen(url) as resp:
            assert resp.status == 200
    finally:
        server.stop()

    def med(conns, key):
        return statistics.median(r[key] for r in runs[conns])

    rows = []
    for conns in (CONNECTIONS, CLIENTS):
        rs = runs[conns]
        codes, errors = {}, {}
        for r in rs:
            for k, v in r["codes"].items():
                codes[k] = codes.get(k, 0) + v
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        non200 = ", ".join("%s: %d" % (k, v) for k, v in sorted(codes.items()) if k != "200")
        errs = "; ".join("%s: %d" % (k, v) for k, v in sorted(errors.items()))
        ok = sum(r["ok"] for r in rs)
        rows.append("| %d%s | %s | %.0f | %s | %.2f | %.2f | %s | %s | %d | %.1f MB (HWM %.1f MB) "
                    "| %.1f |" % (
                        conns, " (single-function figure)" if conns == CONNECTIONS else "",
                        ", ".join(str(r["established"]) for r in rs),
                        med(conns, "rps"),
                        "1.00" if conns == CONNECTIONS else "**%.2f**" % (
                            med(CLIENTS, "rps") / med(CONNECTIONS, "rps")),
                        med(conns, "p50"), med(conns, "p99"), non200 or "none", errs or "none",
                        sum(r["throttles"] for r in rs),
                        max(r["peak_rss"] for r in rs) / 1024, max(r["hwm"] for r in rs) / 1024,
                        sum(r["cpu"] for r in rs) / max(1, ok) * 1e6))
    ratio = med(CLIENTS, "rps") / med(CONNECTIONS, "rps")
    report += [
        "## %d concurrent clients on the wasm hello (`/fn/hello/`, %d round%s of %d s, "
        "medians)" % (CLIENTS, ROUNDS, "" if ROUNDS == 1 else "s", DURATION), "",
        "| connections | open mid-run | req/s (200s) | vs %d | p50 ms | p99 ms | non-200 statuses | "
        "oha errors | throttles (429) | lambent peak RSS | lambent CPU us/req |" % CONNECTIONS,
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | ---: |", *rows, "",
        "Target: %d-client throughput >= 90%% of the %d-connection figure: **%s (%.2f)**." % (
            CLIENTS, CONNECTIONS, "met" if ratio >= 0.9 else "not met", ratio),
        "Per round req/s: %s. Machine CPU busy during the runs: %s." % (
            "; ".join("%d: %s" % (c, ", ".join("%.0f" % r["rps"] for r in runs[c]))
                      for c in (CONNECTIONS, CLIENTS)),
            "; ".join("%d: %s" % (c, ", ".join("%.0f%%" % (r["busy"] * 100) for r in runs[c]))
                      for c in (CONNECTIONS, CLIENTS))), ""]
    report += ["- " + n for n in notes] + [""]
    return runs


# --- part 2: bursts from zero ----------------------------------------------------------------------

def http_burst(host, port, requests, timeout=180.0):
    """Opens one TCP connection per request, then writes every request in a tight loop and reads
    each answer to EOF (the requests say `Connection: close`). Returns (start, sent, answers) with
    answers[i] = (end time or None, status or None, headers dict)."""
    socks = []
    for _ in requests:
        s = socket.create_connection((host, port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    time.sleep(0.2)  # let the server accept them all before the clock starts
    sel = selectors.DefaultSelector()
    bufs = [bytearray() for _ in requests]
    ends = [None] * len(requests)
    t0 = time.perf_counter()
    for s, req in zip(socks, requests):
        s.sendall(req)
    sent = time.perf_counter()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    pending = len(socks)
    deadline = t0 + timeout
    while pending and time.perf_counter() < deadline:
        for key, _ in sel.select(timeout=1.0):
            i = key.data
            try:
                data = key.fileobj.recv(65536)
            except (ConnectionResetError, BlockingIOError) as e:
                if isinstance(e, BlockingIOError):
                    continue
                data = b""
            if data:
                bufs[i] += data
            else:
                ends[i] = time.perf_counter()
                sel.unregister(key.fileobj)
                key.fileobj.close()
                pending -= 1
    for s in socks:
        if s.fileno() != -1:
            s.close()
    answers = []
    for end, buf in zip(ends, bufs):
        head = bytes(buf).split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.\d (\d{3})", head[0]) if head and head[0] else None
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = bytes(buf).split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in buf else b""
        answers.append((end, int(m.group(1)) if m else None, headers, body))
    return t0, sent, answers


def invoke_request(host, port, name, i):
    body = json.dumps({"i": i}).encode()
    return (("POST /v1/functions/%s/invoke HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n")
            % (name, host, port, BEARER, len(body))).encode() + body


def get_request(host, port, path):
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
            % (path, host, port)).encode()


def summarize(t0, sent, answers):
    done = [a for a in answers if a[0] is not None]
    statuses = {}
    for a in answers:
        k = str(a[1]) if a[0] is not None else "no answer"
        statuses[k] = statuses.get(k, 0) + 1
    lat = [a[0] - t0 for a in done]
    samples = {}
    for a in answers:
        if a[0] is not None and a[1] != 200 and str(a[1]) not in samples:
            samples[str(a[1])] = a[3][:300].decode("utf-8", "replace")
    return {
        "samples": samples,
        "wall": max(lat) if lat else float("nan"),
        "send": sent - t0,
        "ok": statuses.get("200", 0),
        "statuses": statuses,
        "p50": pct(lat, 50),
        "cold_hdr": sum(1 for a in answers if a[2].get("x-lambent-cold-start") == "true"),
    }


def process_burst(argv, n, env=None):
    """n threads, released at once by a barrier, each start argv and wait for it to exit."""
    ends, codes = [None] * n, [None] * n
    start = []
    barrier = threading.Barrier(n, action=lambda: start.append(time.perf_counter()))

    def one(i):
        barrier.wait()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        codes[i] = p.wait()
        ends[i] = time.perf_counter()

    old = threading.stack_size(256 * 1024)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    threading.stack_size(old)
    sys0 = system_cpu()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys1 = system_cpu()
    wall = max(ends) - start[0]
    return {"wall": wall, "ok": n, "started": n, "rate": n / wall,
            "busy": (sys1[0] - sys0[0]) / max(1, sys1[1] - sys0[1]),
            "statuses": {"exit %d" % c: codes.count(c) for c in sorted(set(codes))},
            "p50": pct([e - start[0] for e in ends], 50)}


def function_burst(work, serve_extra, kind, fn_dirs):
    """A fresh server, one freshly deployed function, BURST first calls at once."""
    server = Server(work, "burst-" + kind, serve_extra)
    try:
        if kind == "python":
            server.cli("deploy", "fn", fn_dirs["python"], "--runtime", "python3.12", "--handler",
                       "app.handler", "--memory", "128", "--timeout", "60")
        elif kind == "provided":
            server.cli("deploy", "fn", fn_dirs["provided"], "--runtime", "provided.al2023",
                       "--memory", "128", "--timeout", "60")
        else:
            server.cli("deploy", "fn", HELLO_WASM, "--public")
        if kind == "wasm":
            reqs = [get_request(server.host, server.port, "/fn/fn/") for _ in range(BURST)]
        else:
            reqs = [invoke_request(server.host, server.port, "fn", i) for i in range(BURST)]
        m0 = server.metrics()
        with Sampler(server.proc.pid) as s:
            t0, sent, answers = http_burst(server.host, server.port, reqs)
        m1 = server.metrics()
        res = summarize(t0, sent, answers)
        if kind == "wasm":
            res["started"] = res["ok"]
        else:
            res["started"] = int(m1["lambent_sandboxes_started_total"]
                                 - m0["lambent_sandboxes_started_total"])
        res.update(rate=res["started"] / res["wall"], peak_rss=s.peak_rss, cpu=s.cpu,
                   busy=s.machine_busy, mem_used=(s.avail0 - s.min_avail),
                   throttles=m1.get("lambent_throttles_total", 0)
                   - m0.get("lambent_throttles_total", 0))
        bad = [a for a in answers if a[1] != 200]
        if bad:
            with open(server.log_path) as f:
                res["log_tail"] = f.read()[-1500:]
    finally:
        server.stop()
        wait_sandboxes_gone(kind)
        # lambent removes a sandbox's cgroup right after killing it; when the processes are
        # still exiting that fails (EBUSY) and the empty directory stays until the next
        # `lambent serve` sweeps it. Count those and sweep them here.
        with open(server.log_path) as f:
            res_cg = f.read().count("cannot remove sandbox cgroup")
        left = own_cgroups(server.proc.pid)
        for d in left:
            try:
                os.rmdir(d)
            except OSError as e:
                log("cannot remove %s: %s" % (d, e))
        if "res" in locals():
            res.update(cgroup_warnings=res_cg, cgroups_left=len(left))
    return res


def wait_sandboxes_gone(kind, limit=30.0):
    """After the server exits, the kernel still tears down the killed sandboxes (their PID
    namespaces and cgroups) for a moment; wait for that so the next burst starts clean."""
    t0 = time.perf_counter()
    while sandbox_processes() and time.perf_counter() - t0 < limit:
        time.sleep(0.05)
    left = sandbox_processes()
    if left:
        log("warning: %d sandbox processes still alive %.0f s after the %s server exited" % (
            len(left), limit, kind))


def part_burst(work, serve_extra, report):
    fn_dirs = {"python": os.path.join(work, "echo"), "provided": os.path.join(work, "rust")}
    os.makedirs(fn_dirs["python"])
    with open(os.path.join(fn_dirs["python"], "app.py"), "w") as f:
        f.write(ECHO)
    os.makedirs(fn_dirs["provided"])
    bootstrap = os.path.join(fn_dirs["provided"], "bootstrap")
    shutil.copy(os.path.join(REL, "bootstrap"), bootstrap)
    # The bootstrap run directly: a closed runtime API port, so it starts, fails /next, exits.
    closed = free_port()
    boot_env = dict(os.environ, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % closed,
                    AWS_LAMBDA_FUNCTION_NAME="fn", AWS_LAMBDA_FUNCTION_VERSION="1",
                    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_LOG_STREAM_NAME="s",
                    AWS_LAMBDA_LOG_GROUP_NAME="g")
    hyper_port = free_port()
    hyper = subprocess.Popen([os.path.join(REL, "hyper-hello"), "127.0.0.1:%d" % hyper_port],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    targets = [
        ("python3 -c pass", "baseline: %d bare `/usr/bin/python3 -c pass` processes" % BURST),
        ("bootstrap direct", "baseline: %d runs of the bootstrap binary itself" % BURST),
        ("hyper-hello", "client floor: the same HTTP burst against hyper-hello"),
        ("python", "lambent, Python echo (python3.12)"),
        ("provided", "lambent, `provided` (Rust `lambda_runtime` hello)"),
        ("wasm", "lambent, wasm hello (`/fn/fn/`)"),
    ]
    only = os.environ.get("BURST_TARGETS")
    if only:
        targets = [(t, label) for t, label in targets if t in only.split(",")]
    results = {t: [] for t, _ in targets}
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", hyper_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for rnd in range(BURST_ROUNDS):
            for t, _ in targets:
                log("burst round %d: %s" % (rnd + 1, t))
                if t == "python3 -c pass":
                    res = process_burst(["/usr/bin/python3", "-c", "pass"], BURST)
                elif t == "bootstrap direct":
                    res = process_burst([bootstrap], BURST, boot_env)
                elif t == "hyper-hello":
                    reqs = [get_request("127.0.0.1", hyper_port, "/") for _ in range(BURST)]
                    res = summarize(*http_burst("127.0.0.1", hyper_port, reqs))
                    res["started"] = 0
                    res["rate"] = float("nan")
                else:
                    res = function_burst(work, serve_extra, t, fn_dirs)
                results[t].append(res)
                log("  all answered in %.3f s, %s, %d started, %.1f/s" % (
                    res["wall"], res["statuses"], res["started"], res["rate"]))
                for code, body in res.get("samples", {}).items():
                    log("  a %s answer: %s" % (code, body))
                if res.get("log_tail"):
                    log("  server log tail:\n" + res["log_tail"])
    finally:
        hyper.kill()
        hyper.wait()

    def med(t, key):
        return statistics.median(r[key] for r in results[t])

    rows = []
    for t, label in targets:
        rs = results[t]
        statuses = {}
        for r in rs:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        extra = ""
        if t in ("python", "provided", "wasm"):
            extra = " | %.1f MB | %.0f MB | %.2f s | %.0f%%" % (
                max(r["peak_rss"] for r in rs) / 1024, max(r["mem_used"] for r in rs) / 1024,
                med(t, "cpu"), med(t, "busy") * 100)
        elif t == "hyper-hello":
            extra = " | | | | "
        else:
            extra = " | | | | %.0f%%" % (med(t, "busy") * 100)
        rate = "n/a" if t == "hyper-hello" else "**%.0f** (%s)" % (
            med(t, "rate"), ", ".join("%.0f" % r["rate"] for r in rs))
        rows.append("| %s | %.3f s (%s) | %.3f s | %s | %s | %s%s |" % (
            label, med(t, "wall"), ", ".join("%.2f" % r["wall"] for r in rs), med(t, "p50"),
            ", ".join("%s: %d" % kv for kv in sorted(statuses.items())),
            " / ".join(str(r["started"]) for r in rs), rate, extra))
    ratios = []
    for t, base in (("python", "python3 -c pass"), ("provided", "bootstrap direct"),
                    ("provided", "python3 -c pass"), ("wasm", "python3 -c pass")):
        if not (results.get(t) and results.get(base)):
            continue
        ratios.append("- %s / %s: **%.2fx** the instance start rate" % (
            t, base, med(t, "rate") / med(base, "rate")))
    notes = []
    for t, label in targets:
        for r in results[t]:
            for code, body in r.get("samples", {}).items():
                notes.append("- %s, a %s answer: `%s`" % (t, code, body.strip()))
    cg = sum(r.get("cgroup_warnings", 0) for t, _ in targets for r in results[t])
    cg_left = sum(r.get("cgroups_left", 0) for t, _ in targets for r in results[t])
    if cg_left:
        notes.append("- After the servers' SIGTERM shutdowns, %d empty sandbox cgroup directories "
                     "of theirs remained in all (the next `lambent serve` sweeps them, and this "
                     "script removed them)." % cg_left)
    if cg:
        notes.append("- lambent logged `cannot remove sandbox cgroup` %d times (EBUSY: a cgroup's "
                     "processes were still exiting after its 0.5 s of retries, as when 500 "
                     "sandboxes stop at once); %d directories were left after shutdown."
                     % (cg, cg_left))
    targets_line = []
    for t in ("provided", "wasm"):
        if not results.get(t):
            continue
        r = med(t, "rate")
        targets_line.append("%s %.0f/s (%s)" % (t, r, "met" if r >= 200 else "not met"))
    send = max([r["send"] for t in ("python", "provided", "wasm", "hyper-hello")
                for r in results.get(t, [])] or [float("nan")])
    report += [
        "## Burst from zero: %d concurrent first calls (%d round%s, fresh `lambent serve` per "
        "burst, medians)" % (BURST, BURST_ROUNDS, "" if BURST_ROUNDS == 1 else "s"), "",
        "| target | all answered (per round) | p50 answer | statuses (all rounds) | "
        "instances started (per round) | instances/s (per round) | lambent peak RSS | "
        "machine memory used | lambent CPU | machine CPU busy |",
        "| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |", *rows, "",
        *ratios, "", *notes, *([""] if notes else []),
        "Target 200 instances/s for `provided` and wasm: %s. Lambda's published scaling rate is "
        "1000 new instances per 10 s per function (100/s)." % "; ".join(targets_line),
        "The client wrote all %d requests within %.1f ms of the start in every burst; the "
        "hyper-hello row is its floor." % (BURST, send * 1e3), ""]
    return results


def main():
    if os.geteuid() != 0:
        sys.exit("run as root: the process tier needs it (see docs/sandbox.md)")
    nofile = raise_fd_limit()
    oha = find_oha()
    work = tempfile.mkdtemp(prefix="lambent-scale-")
    code, serve_help = help_text("serve")
    serve_extra = ["--max-sandboxes", str(MAX_SANDBOXES)]
    budget = "--memory-budget-mb" in serve_help
    if budget:
        serve_extra += ["--memory-budget-mb", "80000"]
    version = subprocess.run([LAMBENT, "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    oha_version = subprocess.run([oha, "--version"], capture_output=True, text=True).stdout.strip()
    report = [
        "# Elastic scaling (`bench/scale.py`)", "",
        "Run of %s, commit %s%s, %s, %d cores, %s; open files limit %d; `lambent serve "
        "--listen 127.0.0.1:0 %s`%s." % (
            time.strftime("%Y-%m-%d %H:%M"), commit or "?",
            " (uncommitted changes)" if subprocess.run(
                ["git", "-C", ROOT, "diff", "--quiet", "HEAD"]).returncode else "",
            version, os.cpu_count(), oha_version, nofile, " ".join(serve_extra),
            "" if budget else " (`--memory-budget-mb` does not exist in this build)"), ""]
    try:
        if "clients" in PARTS:
            part_clients(work, oha, serve_extra, report)
        if "burst" in PARTS:
            part_burst(work, serve_extra, report)
    finally:
        left = sandbox_processes()
        if left:
            log("warning: sandbox processes left: %s" % left[:20])
        if os.environ.get("KEEP_WORK") == "1":
            log("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "scale-latest.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
