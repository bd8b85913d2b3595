"""The AWS Lambda API of lambent, driven by the real boto3 and AWS CLI.

Run by the Rust end-to-end test `aws::boto3_and_the_aws_cli_work_unchanged`, which starts
`lambent serve` and passes its address and admin key in the environment:

    LAMBENT_ENDPOINT, LAMBENT_ACCESS_KEY_ID, LAMBENT_SECRET_ACCESS_KEY, LAMBENT_REGION

boto3 and awscli come from PyPI (scripts/test.sh installs them into target/fixtures/aws).
"""

import base64
import concurrent.futures
import datetime
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import zipfile
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["LAMBENT_ENDPOINT"]
KEY_ID = os.environ["LAMBENT_ACCESS_KEY_ID"]
SECRET = os.environ["LAMBENT_SECRET_ACCESS_KEY"]
REGION = os.environ.get("LAMBENT_REGION", "us-east-1")
ROLE = "arn:aws:iam::000000000000:role/lambda-role"

HANDLER = '''
import json, os, time

def handler(event, context):
    print("handling", json.dumps(event))
    if isinstance(event, dict) and "requestContext" in event:
        http = event["requestContext"]["http"]
        return {
            "statusCode": 201,
            "headers": {"x-from": "handler"},
            "body": json.dumps({"method": http["method"], "path": event["rawPath"],
                                "query": event.get("queryStringParameters", {})}),
        }
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"echo": event, "mark": MARK, "version": context.function_version,
            "greeting": os.environ.get("GREETING", "")}
'''


def package(mark):
    """A zip of the handler; the same mark always gives the same bytes (and CodeSha256), since
    the entry's time is fixed rather than the moment it was built."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        entry = zipfile.ZipInfo("app.py", date_time=(2026, 1, 1, 0, 0, 0))
        entry.external_attr = 0o644 << 16
        z.writestr(entry, f"MARK = {mark!r}\n" + HANDLER)
    return buf.getvalue()


def client(retries=0, secret=SECRET, key_id=KEY_ID):
    return boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": retries + 1, "mode": "standard"},
                      read_timeout=60),
    )


def concurrent_executions():
    req = urllib.request.Request(f"{ENDPOINT}/metrics",
                                 headers={"Authorization": f"Bearer {KEY_ID}:{SECRET}"})
    with urllib.request.urlopen(req) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("lambent_concurrent_executions "):
                return int(line.split()[1])
    raise AssertionError("no lambent_concurrent_executions in /metrics")


def error_code(e):
    return e.response["Error"]["Code"]


def native(method, path, body=None):
    """A call to lambent's native API (`/v1/...`) with the admin key; returns (status, JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{ENDPOINT}{path}", data=data, method=method, headers={
        "Authorization": f"Bearer {KEY_ID}:{SECRET}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


class LambdaApi(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.l = client()

    def create(self, name, mark="a", **extra):
        args = dict(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                    Code={"ZipFile": package(mark)}, Timeout=10)
        args.update(extra)
        return self.l.create_function(**args)

    def invoke(self, name, event, **extra):
        r = self.l.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **extra)
        body = r["Payload"].read()
        return r, json.loads(body) if body else None

    def test_life_cycle(self):
        l = self.l
        created = self.create("life", "a", Description="first", MemorySize=256,
                              Environment={"Variables": {"GREETING": "hello"}},
                              EphemeralStorage={"Size": 1024})
        self.assertEqual(created["FunctionName"], "life")
        self.assertEqual(created["FunctionArn"],
                         f"arn:aws:lambda:{REGION}:000000000000:function:life")
        self.assertEqual(created["Version"], "$LATEST")
        self.assertEqual(created["State"], "Active")
        self.assertEqual(created["LastUpdateStatus"], "Successful")
        self.assertEqual(created["Role"], ROLE)
        self.assertEqual(created["MemorySize"], 256)
        self.assertEqual(created["EphemeralStorage"], {"Size": 1024})
        import hashlib
        self.assertEqual(created["CodeSha256"],
                         base64.b64encode(hashlib.sha256(package("a")).digest()).decode())
        self.assertEqual(created["CodeSize"], len(package("a")))

        # A synchronous call, with the tail of its log.
        r, out = self.invoke("life", {"n": 1}, LogType="Tail")
        self.assertEqual(r["StatusCode"], 200)
        self.assertEqual(r["ExecutedVersion"], "$LATEST")
        self.assertNotIn("FunctionError", r)
        self.assertEqual(out, {"echo": {"n": 1}, "mark": "a", "version": "$LATEST",
                               "greeting": "hello"})
        log = base64.b64decode(r["LogResult"]).decode()
        self.assertIn("handling", log)
        self.assertIn("REPORT RequestId", log)

        # A function error.
        r, out = self.invoke("life", {"fail": True})
        self.assertEqual(r["StatusCode"], 200)
        self.assertEqual(r["FunctionError"], "Unhandled")
        self.assertEqual(out["errorType"], "ValueError")
        self.assertEqual(out["errorMessage"], "asked to fail")

        # A dry run checks without running.
        r = l.invoke(FunctionName="life", InvocationType="DryRun")
        self.assertEqual(r["StatusCode"], 204)

        # An asynchronous call answers 202 at once and runs: its request id shows in the logs.
        r = l.invoke(FunctionName="life", InvocationType="Event", Payload=b'{"async": true}')
        self.assertEqual(r["StatusCode"], 202)
        request_id = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        self.wait_for_log("life", request_id)

        # Code and configuration updates.
        up = l.update_function_code(FunctionName="life", ZipFile=package("b"))
        self.assertEqual(up["CodeSize"], len(package("b")))
        conf = l.update_function_configuration(FunctionName="life", Timeout=20,
                                               Environment={"Variables": {"GREETING": "hi"}})
        self.assertEqual(conf["Timeout"], 20)
        got = l.get_function_configuration(FunctionName="life")
        self.assertEqual(got["Environment"]["Variables"], {"GREETING": "hi"})
        self.assertEqual(got["MemorySize"], 256, "untouched settings stay")
        _, out = self.invoke("life", {})
        self.assertEqual((out["mark"], out["greeting"]), ("b", "hi"))

        # Versions.
        v1 = l.publish_version(FunctionName="life", Description="b")
        self.assertEqual(v1["Version"], "1")
        self.assertTrue(v1["FunctionArn"].endswith(":life:1"))
        l.update_function_code(FunctionName="life", ZipFile=package("c"))
        v2 = l.publish_version(FunctionName="life")
        self.assertEqual(v2["Version"], "2")
        versions = [v["Version"] for v in
                    l.list_versions_by_function(FunctionName="life")["Versions"]]
        self.assertEqual(versions, ["$LATEST", "1", "2"])
        _, out = self.invoke("life", {}, Qualifier="1")
        self.assertEqual((out["mark"], out["version"]), ("b", "1"))
        arn = f"arn:aws:lambda:{REGION}:000000000000:function:life:2"
        _, out = self.invoke(arn, {})
        self.assertEqual((out["mark"], out["version"]), ("c", "2"))

        # An alias that splits traffic between two versions really splits it.
        alias = l.create_alias(FunctionName="life", Name="live", FunctionVersion="1",
                               RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
        self.assertEqual(alias["AliasArn"],
                         f"arn:aws:lambda:{REGION}:000000000000:function:life:live")
        seen = {}
        for _ in range(60):
            r, out = self.invoke("life", {}, Qualifier="live")
            seen[r["ExecutedVersion"]] = seen.get(r["ExecutedVersion"], 0) + 1
            self.assertEqual(out["version"], r["ExecutedVersion"])
        self.assertEqual(set(seen), {"1", "2"}, f"both versions take traffic: {seen}")
        got = l.get_alias(FunctionName="life", Name="live")
        self.assertEqual(got["RoutingConfig"]["AdditionalVersionWeights"], {"2": 0.5})
        l.update_alias(FunctionName="life", Name="live", FunctionVersion="2",
                       RoutingConfig={"AdditionalVersionWeights": {}})
        for _ in range(5):
            r, _ = self.invoke("life:live", {})
            self.assertEqual(r["ExecutedVersion"], "2")
        self.assertEqual([a["Name"] for a in l.list_aliases(FunctionName="life")["Aliases"]],
                         ["live"])
        # A version an alias uses cannot be deleted; one nobody uses can.
        with self.assertRaises(ClientError) as e:
            l.delete_function(FunctionName="life", Qualifier="2")
        self.assertEqual(error_code(e.exception), "ResourceConflictException")
        l.delete_function(FunctionName="life", Qualifier="1")
        self.assertEqual([v["Version"] for v in
                          l.list_versions_by_function(FunctionName="life")["Versions"]],
                         ["$LATEST", "2"])
        l.delete_alias(FunctionName="life", Name="live")
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            l.get_alias(FunctionName="life", Name="live")

        full = l.get_function(FunctionName="life")
        self.assertEqual(full["Configuration"]["FunctionName"], "life")
        self.assertIn("/v1/functions/life/code", full["Code"]["Location"])

        # Delete, and the function is gone.
        l.delete_function(FunctionName="life")
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            l.get_function(FunctionName="life")
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            self.invoke("life", {})

    def test_event_invoke_configs(self):
        l = self.l
        self.create("asyncfg")
        status, body = native("POST", "/v1/queues", {"name": "asyncfg-dlq"})
        self.assertEqual(status, 201, body)
        dlq = f"arn:aws:sqs:{REGION}:000000000000:asyncfg-dlq"
        latest_arn = f"arn:aws:lambda:{REGION}:000000000000:function:asyncfg:$LATEST"

        # Put: fields not given take Lambda's defaults.
        put = l.put_function_event_invoke_config(
            FunctionName="asyncfg", MaximumRetryAttempts=1,
            DestinationConfig={"OnFailure": {"Destination": dlq}})
        self.assertEqual(put["FunctionArn"], latest_arn)
        self.assertEqual(put["MaximumRetryAttempts"], 1)
        self.assertEqual(put["MaximumEventAgeInSeconds"], 21600)
        self.assertEqual(put["DestinationConfig"]["OnFailure"], {"Destination": dlq})
        self.assertNotIn("Destination", put["DestinationConfig"].get("OnSuccess", {}))
        self.assertIsInstance(put["LastModified"], datetime.datetime)
        age = datetime.datetime.now(datetime.timezone.utc) - put["LastModified"]
        self.assertLess(abs(age.total_seconds()), 300, put["LastModified"])

        got = l.get_function_event_invoke_config(FunctionName="asyncfg")
        for k in ["FunctionArn", "MaximumRetryAttempts", "MaximumEventAgeInSeconds",
                  "DestinationConfig", "LastModified"]:
            self.assertEqual(got[k], put[k], k)
        # The same configuration by ARN and by an explicit $LATEST.
        by_arn = l.get_function_event_invoke_config(
            FunctionName=f"arn:aws:lambda:{REGION}:000000000000:function:asyncfg",
            Qualifier="$LATEST")
        self.assertEqual(by_arn["MaximumRetryAttempts"], 1)

        # Update merges: the destination and the retries stay.
        up = l.update_function_event_invoke_config(FunctionName="asyncfg",
                                                   MaximumEventAgeInSeconds=120)
        self.assertEqual(up["MaximumEventAgeInSeconds"], 120)
        self.assertEqual(up["MaximumRetryAttempts"], 1)
        self.assertEqual(up["DestinationConfig"]["OnFailure"], {"Destination": dlq})
        # Put replaces: what is not given goes back to the defaults.
        again = l.put_function_event_invoke_config(FunctionName="asyncfg",
                                                   MaximumRetryAttempts=0)
        self.assertEqual(again["MaximumEventAgeInSeconds"], 21600)
        self.assertNotIn("Destination", again["DestinationConfig"].get("OnFailure", {}))
        l.put_function_event_invoke_config(
            FunctionName="asyncfg", MaximumRetryAttempts=1,
            DestinationConfig={"OnFailure": {"Destination": dlq}})

        # Update with no configuration yet creates one from the defaults, as Lambda does.
        l.publish_version(FunctionName="asyncfg")
        v1 = l.update_function_event_invoke_config(FunctionName="asyncfg:1",
                                                   MaximumRetryAttempts=0)
        self.assertEqual(v1["FunctionArn"],
                         f"arn:aws:lambda:{REGION}:000000000000:function:asyncfg:1")
        self.assertEqual((v1["MaximumRetryAttempts"], v1["MaximumEventAgeInSeconds"]),
                         (0, 21600))

        # List, whole and page by page.
        listed = l.list_function_event_invoke_configs(FunctionName="asyncfg")
        self.assertEqual([c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]],
                         [latest_arn, v1["FunctionArn"]])
        self.assertNotIn("NextMarker", listed)
        first = l.list_function_event_invoke_configs(FunctionName="asyncfg", MaxItems=1)
        self.assertEqual(len(first["FunctionEventInvokeConfigs"]), 1)
        second = l.list_function_event_invoke_configs(FunctionName="asyncfg", MaxItems=1,
                                                      Marker=first["NextMarker"])
        self.assertEqual([c["FunctionArn"] for c in second["FunctionEventInvokeConfigs"]],
                         [v1["FunctionArn"]])
        paged = [c["FunctionArn"] for p in
                 l.get_paginator("list_function_event_invoke_configs").paginate(
                     FunctionName="asyncfg", PaginationConfig={"PageSize": 1})
                 for c in p["FunctionEventInvokeConfigs"]]
        self.assertEqual(paged, [latest_arn, v1["FunctionArn"]])

        # Errors say what to fix, with Lambda's types.
        with self.assertRaises(l.exceptions.InvalidParameterValueException) as e:
            l.put_function_event_invoke_config(FunctionName="asyncfg", MaximumRetryAttempts=3)
        self.assertIn("MaximumRetryAttempts", str(e.exception))
        with self.assertRaises(l.exceptions.InvalidParameterValueException):
            l.update_function_event_invoke_config(FunctionName="asyncfg",
                                                  MaximumEventAgeInSeconds=21601)
        with self.assertRaises(l.exceptions.InvalidParameterValueException) as e:
            l.put_function_event_invoke_config(
                FunctionName="asyncfg",
                DestinationConfig={"OnFailure": {
                    "Destination": f"arn:aws:sqs:{REGION}:000000000000:no-such-queue"}})
        self.assertIn("no-such-queue", str(e.exception))
        with self.assertRaises(l.exceptions.InvalidParameterValueException):
            l.put_function_event_invoke_config(
                FunctionName="asyncfg",
                DestinationConfig={"OnSuccess": {
                    "Destination": f"arn:aws:lambda:{REGION}:000000000000:function:nobody"}})
        with self.assertRaises(l.exceptions.InvalidParameterValueException):
            l.put_function_event_invoke_config(
                FunctionName="asyncfg",
                DestinationConfig={"OnSuccess": {
                    "Destination": f"arn:aws:sns:{REGION}:000000000000:topic"}})
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            l.put_function_event_invoke_config(FunctionName="no-such-function")
        # A refused change leaves the configuration as it was.
        kept = l.get_function_event_invoke_config(FunctionName="asyncfg")
        self.assertEqual((kept["MaximumRetryAttempts"], kept["DestinationConfig"]["OnFailure"]),
                         (1, {"Destination": dlq}))
        # Unknown fields are refused rather than ignored.
        status, body, _ = send(signed_api_request(
            "PUT", "/2019-09-25/functions/asyncfg/event-invoke-config",
            json.dumps({"MaximumRetryAttempts": 1, "Retries": 5}).encode()))
        self.assertEqual(status, 400, body)

        # Delete, and the configuration is gone.
        l.delete_function_event_invoke_config(FunctionName="asyncfg")
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            l.get_function_event_invoke_config(FunctionName="asyncfg")
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            l.delete_function_event_invoke_config(FunctionName="asyncfg")
        self.assertEqual([c["FunctionArn"] for c in l.list_function_event_invoke_configs(
            FunctionName="asyncfg")["FunctionEventInvokeConfigs"]], [v1["FunctionArn"]])
        l.delete_function(FunctionName="asyncfg")
        native("DELETE", "/v1/queues/asyncfg-dlq")

    def test_an_async_invoke_is_an_event(self):
        l = self.l
        self.create("asyncev")
        r = l.invoke(FunctionName="asyncev", InvocationType="Event", Payload=b'{"n": 7}')
        self.assertEqual(r["StatusCode"], 202)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 202)
        event_id = r["ResponseMetadata"]["RequestId"]
        self.assertTrue(event_id)
        deadline = time.time() + 30
        while True:
            status, event = native("GET", f"/v1/events/{event_id}")
            self.assertEqual(status, 200, event)
            if event["state"] == "succeeded":
                break
            self.assertNotEqual(event["state"], "failed", event)
            self.assertLess(time.time(), deadline, f"the event never succeeded: {event}")
            time.sleep(0.1)
        self.assertEqual(event["function"], "asyncev")
        self.assertEqual(event["result"]["echo"], {"n": 7})
        l.delete_function(FunctionName="asyncev")

    def wait_for_log(self, function, request_id):
        deadline = time.time() + 30
        req = urllib.request.Request(f"{ENDPOINT}/v1/functions/{function}/logs?limit=100",
                                     headers={"Authorization": f"Bearer {KEY_ID}:{SECRET}"})
        while time.time() < deadline:
            with urllib.request.urlopen(req) as r:
                ids = [i["id"] for i in json.load(r)["invocations"]]
            if request_id in ids:
                return
            time.sleep(0.1)
        self.fail(f"the async invocation {request_id} never ran")

    def test_reserved_concurrency_throttles(self):
        l = self.l
        self.create("narrow")
        self.assertEqual(l.put_function_concurrency(
            FunctionName="narrow", ReservedConcurrentExecutions=1)["ReservedConcurrentExecutions"], 1)
        self.assertEqual(l.get_function_concurrency(FunctionName="narrow")
                         ["ReservedConcurrentExecutions"], 1)
        self.assertEqual(l.get_function(FunctionName="narrow")["Concurrency"],
                         {"ReservedConcurrentExecutions": 1})
        settings = l.get_account_settings()
        self.assertEqual(settings["AccountLimit"]["ConcurrentExecutions"], 1000)
        self.assertEqual(settings["AccountLimit"]["UnreservedConcurrentExecutions"], 999)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            slow = pool.submit(lambda: client().invoke(FunctionName="narrow",
                                                       Payload=b'{"sleep": 3}'))
            # Once the slow call holds the only slot, a second call is throttled.
            deadline = time.time() + 20
            while concurrent_executions() < 1:
                self.assertLess(time.time(), deadline, "the slow call never started")
                time.sleep(0.02)
            with self.assertRaises(ClientError) as e:
                client().invoke(FunctionName="narrow", Payload=b"{}")
            throttled = e.exception
            self.assertEqual(error_code(throttled), "TooManyRequestsException")
            self.assertEqual(throttled.response["ResponseMetadata"]["HTTPStatusCode"], 429)
            self.assertEqual(throttled.response["Reason"],
                             "ReservedFunctionConcurrentInvocationLimitExceeded")
            self.assertEqual(slow.result()["StatusCode"], 200)
        # Zero reserved stops the function entirely; removing the reservation brings it back.
        l.put_function_concurrency(FunctionName="narrow", ReservedConcurrentExecutions=0)
        with self.assertRaises(l.exceptions.TooManyRequestsException):
            self.invoke("narrow", {})
        with self.assertRaises(ClientError) as e:
            l.put_function_concurrency(FunctionName="narrow", ReservedConcurrentExecutions=950)
        self.assertEqual(error_code(e.exception), "InvalidParameterValueException")
        l.delete_function_concurrency(FunctionName="narrow")
        self.assertNotIn("ReservedConcurrentExecutions",
                         l.get_function_concurrency(FunctionName="narrow"))
        r, _ = self.invoke("narrow", {})
        self.assertEqual(r["StatusCode"], 200)
        l.delete_function(FunctionName="narrow")

    def test_provisioned_concurrency(self):
        l = self.l
        self.create("kept")
        with self.assertRaises(ClientError) as e:
            l.put_provisioned_concurrency_config(
                FunctionName="kept", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
        self.assertEqual(error_code(e.exception), "InvalidParameterValueException")
        l.publish_version(FunctionName="kept")
        put = l.put_provisioned_concurrency_config(
            FunctionName="kept", Qualifier="1", ProvisionedConcurrentExecutions=1)
        self.assertEqual(put["RequestedProvisionedConcurrentExecutions"], 1)
        self.assertIn(put["Status"], ("IN_PROGRESS", "READY"))
        deadline = time.time() + 30
        while True:
            got = l.get_provisioned_concurrency_config(FunctionName="kept", Qualifier="1")
            if got["Status"] == "READY":
                break
            self.assertLess(time.time(), deadline, got)
            time.sleep(0.1)
        self.assertEqual(got["AllocatedProvisionedConcurrentExecutions"], 1)
        listed = l.list_provisioned_concurrency_configs(
            FunctionName="kept")["ProvisionedConcurrencyConfigs"]
        self.assertEqual([c["FunctionArn"] for c in listed],
                         [f"arn:aws:lambda:{REGION}:000000000000:function:kept:1"])
        # The provisioned instance serves the first call of the version.
        r, _ = self.invoke("kept:1", {})
        self.assertEqual(r["StatusCode"], 200)
        l.delete_provisioned_concurrency_config(FunctionName="kept", Qualifier="1")
        with self.assertRaises(l.exceptions.ProvisionedConcurrencyConfigNotFoundException):
            l.get_provisioned_concurrency_config(FunctionName="kept", Qualifier="1")
        l.delete_function(FunctionName="kept")

    def test_listing_pages(self):
        l = self.l
        names = [f"page-{i}" for i in range(5)]
        for n in names:
            self.create(n)
        seen, marker, pages = [], None, 0
        while True:
            args = {"MaxItems": 2}
            if marker:
                args["Marker"] = marker
            page = l.list_functions(**args)
            pages += 1
            self.assertLessEqual(len(page["Functions"]), 2)
            seen += [f["FunctionName"] for f in page["Functions"]]
            marker = page.get("NextMarker")
            if not marker:
                break
        self.assertGreaterEqual(pages, 3)
        for n in names:
            self.assertIn(n, seen)
        paginated = [f["FunctionName"] for p in l.get_paginator("list_functions").paginate(
            PaginationConfig={"PageSize": 2}) for f in p["Functions"]]
        self.assertEqual(sorted(set(paginated)), sorted(set(seen)))
        usage = l.get_account_settings()["AccountUsage"]
        self.assertGreaterEqual(usage["FunctionCount"], 5)
        for n in names:
            l.delete_function(FunctionName=f"arn:aws:lambda:{REGION}:000000000000:function:{n}")

    def test_errors_have_lambdas_types(self):
        l = self.l
        self.create("dup")
        with self.assertRaises(l.exceptions.ResourceConflictException):
            self.create("dup")
        with self.assertRaises(l.exceptions.InvalidParameterValueException):
            self.create("toobig", MemorySize=20000)
        with self.assertRaises(l.exceptions.InvalidParameterValueException):
            l.create_function(FunctionName="badzip", Runtime="python3.12", Role=ROLE,
                              Handler="app.handler", Code={"ZipFile": b"PK\x03\x04 not a zip"})
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            l.get_function_configuration(FunctionName="dup", Qualifier="7")
        with self.assertRaises(l.exceptions.RequestTooLargeException):
            l.invoke(FunctionName="dup", Payload=b'"' + b"x" * (6 * 1024 * 1024 + 10) + b'"')
        with self.assertRaises(ClientError) as e:
            l.invoke(FunctionName="dup", InvocationType="Event",
                     Payload=b'"' + b"x" * (1024 * 1024 + 10) + b'"')
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 413)
        with self.assertRaises(l.exceptions.InvalidParameterValueException):
            l.create_function(FunctionName="img", PackageType="Image", Role=ROLE,
                              Code={"ImageUri": "example/image:latest"})
        # Nothing was half-created.
        names = [f["FunctionName"] for f in l.list_functions()["Functions"]]
        for n in ["toobig", "badzip", "img"]:
            self.assertNotIn(n, names)
        l.delete_function(FunctionName="dup")

    def test_function_urls(self):
        l = self.l
        self.create("web")
        cfg = l.create_function_url_config(FunctionName="web", AuthType="NONE",
                                           Cors={"AllowOrigins": ["https://app.example"]})
        url = cfg["FunctionUrl"]
        self.assertTrue(url.startswith(ENDPOINT) and url.endswith("/fn/web/"), url)
        self.assertEqual(l.get_function_url_config(FunctionName="web")["AuthType"], "NONE")
        # Public: no credentials needed; the handler's statusCode/headers/body come back.
        req = urllib.request.Request(url + "items/7?color=red", method="POST", data=b"{}",
                                     headers={"Origin": "https://app.example"})
        with urllib.request.urlopen(req) as r:
            self.assertEqual(r.status, 201)
            self.assertEqual(r.headers["x-from"], "handler")
            self.assertEqual(r.headers["access-control-allow-origin"], "https://app.example")
            self.assertEqual(json.load(r), {"method": "POST", "path": "/items/7",
                                            "query": {"color": "red"}})
        # AWS_IAM: unsigned calls are refused, signed ones pass.
        l.update_function_url_config(FunctionName="web", AuthType="AWS_IAM")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url)
        self.assertEqual(e.exception.code, 403)
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY_ID}:{SECRET}"})
        with urllib.request.urlopen(req) as r:
            self.assertEqual(r.status, 201)
        # A browser's CORS preflight carries no credentials; lambent answers it itself.
        pre = urllib.request.Request(url, method="OPTIONS", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        with urllib.request.urlopen(pre) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["access-control-allow-origin"], "https://app.example")
            self.assertEqual(r.read(), b"", "the function is not called")
        l.delete_function_url_config(FunctionName="web")
        with self.assertRaises(l.exceptions.ResourceNotFoundException):
            l.get_function_url_config(FunctionName="web")
        l.delete_function(FunctionName="web")


def signed_request(body, when, secret=SECRET):
    """An Invoke request signed by botocore's own signer as if it were `when`."""
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=f"{ENDPOINT}/2015-03-31/functions/sigtest/invocations", data=body,
        headers={"Content-Type": "application/json"})
    creds = botocore.credentials.Credentials(KEY_ID, secret)
    with mock.patch.object(botocore.auth, "get_current_datetime",
                           lambda *a, **k: when.replace(tzinfo=None)):
        botocore.auth.SigV4Auth(creds, "lambda", REGION).add_auth(req)
    return req


def signed_api_request(method, path, body):
    """A Lambda API request signed by botocore's own signer, for bodies boto3 would not send."""
    req = botocore.awsrequest.AWSRequest(method=method, url=f"{ENDPOINT}{path}", data=body,
                                         headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY_ID, SECRET), "lambda",
                            REGION).add_auth(req)
    return req


def send(req, body=None):
    r = urllib.request.Request(req.url, data=body if body is not None else req.body,
                               method=req.method, headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


class Signatures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.l = client()
        cls.l.create_function(FunctionName="sigtest", Runtime="python3.12", Role=ROLE,
                              Handler="app.handler", Code={"ZipFile": package("s")})

    @classmethod
    def tearDownClass(cls):
        cls.l.delete_function(FunctionName="sigtest")

    def now(self):
        return datetime.datetime.now(datetime.timezone.utc)

    def test_a_correct_signature_passes(self):
        status, body, _ = send(signed_request(b'{"x": 1}', self.now()))
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["echo"], {"x": 1})

    def test_a_wrong_secret_is_refused(self):
        with self.assertRaises(ClientError) as e:
            client(secret="not-the-secret").list_functions()
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertEqual(error_code(e.exception), "AccessDeniedException")
        status, body, _ = send(signed_request(b"{}", self.now(), secret="wrong"))
        self.assertEqual(status, 403, body)

    def test_an_unknown_key_is_refused(self):
        with self.assertRaises(ClientError) as e:
            client(key_id="LKNOSUCHKEY000000000").list_functions()
        self.assertEqual(error_code(e.exception), "AccessDeniedException")

    def test_a_wrong_date_is_refused(self):
        status, body, headers = send(signed_request(b"{}", self.now() - datetime.timedelta(hours=1)))
        self.assertEqual(status, 403, body)
        self.assertEqual(headers.get("x-amzn-ErrorType") or headers.get("x-amzn-errortype"),
                         "AccessDeniedException")
        self.assertIn("clock", json.loads(body)["message"])

    def test_a_tampered_body_is_refused(self):
        req = signed_request(b'{"amount": 1}', self.now())
        status, body, _ = send(req, body=b'{"amount": 9}')
        self.assertEqual(status, 403, body)

    def test_unsigned_requests_are_refused(self):
        status, body, _ = send(botocore.awsrequest.AWSRequest(
            method="GET", url=f"{ENDPOINT}/2015-03-31/functions/", headers={}))
        self.assertEqual(status, 403, body)
        self.assertEqual(json.loads(body)["Type"], "User")


class AwsCli(unittest.TestCase):
    def aws(self, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        out = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", ENDPOINT,
                              "--output", "json", "lambda", *args],
                             env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout) if out.stdout.strip() else None

    def test_create_invoke_list(self):
        with tempfile.TemporaryDirectory() as d:
            zpath = os.path.join(d, "fn.zip")
            with open(zpath, "wb") as f:
                f.write(package("cli"))
            made = self.aws("create-function", "--function-name", "from-cli",
                            "--runtime", "python3.12", "--handler", "app.handler",
                            "--role", ROLE, "--zip-file", f"fileb://{zpath}")
            self.assertEqual(made["FunctionName"], "from-cli")
            outfile = os.path.join(d, "out.json")
            # AWS CLI v1 takes --payload as it is (v2 would need --cli-binary-format).
            res = self.aws("invoke", "--function-name", "from-cli",
                           "--payload", '{"via": "cli"}', outfile)
            self.assertEqual(res["StatusCode"], 200)
            with open(outfile) as f:
                self.assertEqual(json.load(f)["echo"], {"via": "cli"})
            listed = self.aws("list-functions")
            self.assertIn("from-cli", [f["FunctionName"] for f in listed["Functions"]])
            self.aws("delete-function", "--function-name", "from-cli")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
