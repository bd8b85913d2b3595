"""lambent's Python runtime: runs a Lambda handler (`module.function`) over the Lambda Runtime API.

Standard library only. It imports the handler once (the init phase), then loops: fetch the next
event, call the handler with the event and a context object shaped like Lambda's, and post the
result or the exception (type, message and stack trace) back. A failed import is reported to
`/runtime/init/error`, as Lambda's own runtime does.
"""

import json
import os
import socket
import sys
import time

_API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
_PREFIX = "/2018-06-01/runtime"


class _RuntimeClient:
    """A small HTTP/1.1 client with one kept-alive connection (http.client costs ~10 ms to import)."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self._addr = (host or "127.0.0.1", int(port))
        self._sock = None
        self._buf = b""

    def _connect(self):
        self._sock = socket.create_connection(self._addr)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def request(self, method, path, body=b"", headers=None):
        for attempt in (0, 1):
            if self._sock is None:
                self._connect()
            try:
                return self._exchange(method, path, body, headers or {})
            except (ConnectionError, OSError):
                self._sock = None
                if attempt:
                    raise

    def _exchange(self, method, path, body, headers):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + _API,
                 "Content-Length: %d" % len(body)]
        lines.extend("%s: %s" % kv for kv in headers.items())
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = self._read_until(b"\r\n\r\n")
        status_line, _, rest = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        resp_headers = {}
        for line in rest.split(b"\r\n"):
            if line:
                k, _, v = line.partition(b":")
                resp_headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        length = int(resp_headers.get("content-length", "0"))
        payload = self._read_exact(length)
        return status, resp_headers, payload

    def _read_until(self, marker):
        while marker not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("runtime API closed the connection")
            self._buf += chunk
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _read_exact(self, n):
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("runtime API closed the connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


class LambdaContext:
    """The `context` argument, with the attributes and methods of Lambda's Python runtime."""

    def __init__(self, headers):
        self.aws_request_id = headers.get("lambda-runtime-aws-request-id", "")
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn", "")
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.tenant_id = headers.get("lambda-runtime-aws-tenant-id")
        cognito = headers.get("lambda-runtime-cognito-identity")
        self.identity = _Obj(json.loads(cognito)) if cognito else None
        client_context = headers.get("lambda-runtime-client-context")
        self.client_context = _Obj(json.loads(client_context)) if client_context else None

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def __repr__(self):
        return "LambdaContext([aws_request_id=%s,function_name=%s])" % (
            self.aws_request_id, self.function_name)


class _Obj:
    def __init__(self, d):
        for k, v in (d or {}).items():
            setattr(self, k, v)


def _error_document(exc, error_type=None):
    import traceback

    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


def _load_handler(spec):
    import importlib

    module_path, _, function_name = spec.rpartition(".")
    module_name = module_path.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, ("Runtime.ImportModuleError",
                      "Unable to import module '%s': %s" % (module_path, exc), exc)
    except SyntaxError as exc:
        return None, ("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s"
                      % (module_path, exc), exc)
    except Exception as exc:  # the module raised at import time
        return None, (type(exc).__name__, str(exc), exc)
    handler = getattr(module, function_name, None)
    if handler is None:
        return None, ("Runtime.HandlerNotFound",
                      "Handler '%s' missing on module '%s'" % (function_name, module_path), None)
    return handler, None


def main():
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    for path in (task_root, "/opt/python"):
        if path not in sys.path:
            sys.path.insert(0, path)
    client = _RuntimeClient(_API)
    handler, failure = _load_handler(os.environ.get("_HANDLER", ""))
    if failure:
        error_type, message, exc = failure
        doc = _error_document(exc, error_type) if exc else {
            "errorMessage": message, "errorType": error_type, "stackTrace": []}
        doc["errorMessage"] = message
        print("[ERROR] %s: %s" % (error_type, message), file=sys.stderr, flush=True)
        client.request("POST", _PREFIX + "/init/error", json.dumps(doc).encode(),
                       {"Lambda-Runtime-Function-Error-Type": error_type})
        sys.exit(1)
    while True:
        status, headers, event_bytes = client.request("GET", _PREFIX + "/invocation/next")
        if status != 200:
            print("runtime API answered %d to /next" % status, file=sys.stderr, flush=True)
            time.sleep(0.1)
            continue
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        try:
            event = json.loads(event_bytes) if event_bytes else None
        except ValueError:
            event = event_bytes.decode("utf-8", "replace")
        try:
            result = handler(event, LambdaContext(headers))
            body = json.dumps(result).encode()
        except Exception as exc:  # the handler's error goes back to the caller
            doc = _error_document(exc)
            doc["requestId"] = request_id
            sys.stdout.flush()
            print("[ERROR] %s: %s" % (doc["errorType"], doc["errorMessage"]),
                  file=sys.stderr, flush=True)
            client.request("POST", "%s/invocation/%s/error" % (_PREFIX, request_id),
                           json.dumps(doc).encode(),
                           {"Lambda-Runtime-Function-Error-Type": "Unhandled",
                            "Content-Type": "application/json"})
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        client.request("POST", "%s/invocation/%s/response" % (_PREFIX, request_id), body,
                       {"Content-Type": "application/json"})


if __name__ == "__main__":
    main()
