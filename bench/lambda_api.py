#!/usr/bin/env python3
"""What the Lambda-compatible front end costs: a warm Python echo through Lambda's `Invoke`
(SigV4-signed, as boto3 sends it) against the native invoke (`POST /v1/functions/echo/invoke`
with a bearer key), side by side in one run, alternating, with oha.

Run as root from the repository root after `cargo build --release -p lambent` and
`scripts/test.sh` (which installs botocore into target/fixtures/aws; botocore signs the request):

    python3 bench/lambda_api.py

Prints a markdown report, also written to bench/results/lambda-api-latest.md. One signed request
is replayed for each measurement (a SigV4 signature stays valid for 15 minutes), so the server
verifies the full signature on every call: canonical request, body hash, HMAC.
"""

import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "target", "fixtures", "aws"))
import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402

LAMBENT = os.path.join(ROOT, "target", "release", "lambent")
SECONDS = os.environ.get("SECONDS_PER_POINT", "6")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
KEY_ID = "LKBENCHADMIN00000001"
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
BEARER = "Bearer %s:%s" % (KEY_ID, SECRET)
BODY = '{"k": 1}'


def start_server(data_dir):
    proc = subprocess.Popen(
        [LAMBENT, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn", LAMBENT_ACCESS_KEY_ID=KEY_ID,
                 LAMBENT_SECRET_ACCESS_KEY=SECRET))
    base = re.search(r"(http://\S+)", proc.stdout.readline()).group(1)
    return proc, base


def call(base, path, data, headers):
    req = urllib.request.Request(base + path, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(req) as r:
        return r.status, r.read()


def signed_headers(base, path):
    req = botocore.awsrequest.AWSRequest(method="POST", url=base + path, data=BODY.encode())
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY_ID, SECRET), "lambda",
                            "us-east-1").add_auth(req)
    return ["%s: %s" % (k, v) for k, v in req.headers.items()]


def oha(url, concurrency, headers):
    cmd = ["oha", "--no-tui", "--output-format", "json", "-z", SECONDS + "s",
           "-c", str(concurrency), "-m", "POST", "-d", BODY]
    for h in headers:
        cmd += ["-H", h]
    out = json.loads(subprocess.run(cmd + [url], check=True, capture_output=True,
                                    text=True).stdout)
    codes = out.get("statusCodeDistribution", {})
    assert set(codes) <= {"200"}, "non-200 answers: %s" % codes
    return (out["summary"]["requestsPerSec"], out["latencyPercentiles"]["p50"] * 1e3,
            out["latencyPercentiles"]["p99"] * 1e3)


def main():
    work = tempfile.mkdtemp(prefix="lambent-bench-lambda-")
    proc, base = start_server(os.path.join(work, "data"))
    try:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", "def handler(event, context):\n    return event\n")
        create = json.dumps({"FunctionName": "echo", "Runtime": "python3.12",
                             "Handler": "app.handler", "Role": "arn:aws:iam::000000000000:role/x",
                             "Code": {"ZipFile": __import__("base64").b64encode(
                                 buf.getvalue()).decode()}}).encode()
        call(base, "/2015-03-31/functions", create,
             {"Authorization": BEARER, "Content-Type": "application/json"})
        native_path = "/v1/functions/echo/invoke"
        lambda_path = "/2015-03-31/functions/echo/invocations"
        targets = {
            "native invoke, bearer key": (native_path, lambda: ["Authorization: " + BEARER]),
            "Lambda Invoke, bearer key": (lambda_path, lambda: ["Authorization: " + BEARER]),
            "Lambda Invoke, SigV4 (as boto3 signs it)": (
                lambda_path, lambda: signed_headers(base, lambda_path)),
        }
        for path, headers in targets.values():
            hdrs = dict(h.split(": ", 1) for h in headers())
            status, out = call(base, path, BODY.encode(), hdrs)
            assert status == 200 and json.loads(out) == json.loads(BODY), (status, out)
        results = {(name, c): [] for name in targets for c in (1, 16)}
        for _ in range(ROUNDS):
            for c in (1, 16):
                for name, (path, headers) in targets.items():
                    results[(name, c)].append(oha(base + path, c, headers()))
    finally:
        proc.terminate()
        proc.wait()
    med = lambda runs, i: statistics.median(r[i] for r in runs)
    report = ["# Lambda API overhead", "",
              "Warm Python echo (`return event`), %d rounds of %s s per point, targets alternating"
              " within each round; medians of the rounds." % (ROUNDS, SECONDS), "",
              "| callers | path | req/s | p50 | p99 | p50 over native |",
              "| --- | --- | --- | --- | --- | --- |"]
    for c in (1, 16):
        base_p50 = med(results[("native invoke, bearer key", c)], 1)
        for name in targets:
            runs = results[(name, c)]
            report.append("| %d | %s | %.0f | %.3f ms | %.3f ms | %+.3f ms |" % (
                c, name, med(runs, 0), med(runs, 1), med(runs, 2), med(runs, 1) - base_p50))
    text = "\n".join(report) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "lambda-api-latest.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
