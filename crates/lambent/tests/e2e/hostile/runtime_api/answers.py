"""A hostile function that answers invocations it should not: an unknown id, the previous
invocation's id, and the current one twice at once, each time sending only the request head
first, so that any answer it gets proves lambent decided without reading the body."""
import json
import os
import select
import socket

HOST, _, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
PORT = int(PORT)
PREFIX = "/2018-06-01/runtime"
PREVIOUS = []
# A hang guard only: a lambent that waits for a body never answers at all.
PATIENCE = 20
LENGTH = 4096


def head(request_id, length):
    return ("POST %s/invocation/%s/response HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (PREFIX, request_id, length)).encode()


def opened(data):
    s = socket.create_connection((HOST, PORT))
    s.sendall(data)
    return s


def answer(s):
    """The status line and body of what lambent answered, or None if it never did."""
    s.settimeout(PATIENCE)
    data = b""
    try:
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                length = 0
                for line in data[:head_end].split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                if len(data) >= head_end + 4 + length:
                    break
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return None
    if not data:
        return "closed"
    return data.decode("latin-1")


def handler(event, context):
    if event.get("mode") == "oversized":
        # Only a head declaring 7 MB: lambent must refuse it from Content-Length alone.
        s = opened(head(context.aws_request_id, 7 * 1024 * 1024))
        got = answer(s)
        s.close()
        return {"oversized": got}
    if not PREVIOUS:
        PREVIOUS.append(context.aws_request_id)
        return {"first": True}
    result = {}
    s = opened(head("no-such-invocation", 1000000))
    result["unknown"] = answer(s)
    s.close()
    s = opened(head(PREVIOUS[0], 1000))
    result["previous"] = answer(s)
    s.close()
    # Two answers for the current invocation at once: A sends its head and the body's first
    # byte, B only its head. Exactly one of them may be read; the other must be refused.
    a = opened(head(context.aws_request_id, LENGTH) + b"{")
    b = opened(head(context.aws_request_id, LENGTH))
    ready, _, _ = select.select([a, b], [], [], PATIENCE)
    if len(ready) != 1:
        result["concurrent"] = "%d of the two answers were refused" % len(ready)
        return result
    refused, pending, sent = (a, b, b"") if ready[0] is a else (b, a, b"{")
    result["concurrent"] = answer(refused)
    result["refused_was"] = "A" if refused is a else "B"
    refused.close()
    # The one being read delivers this invocation's answer: the results, padded to LENGTH.
    doc = json.dumps(result).encode()
    rest = doc[len(sent):]
    rest += b" " * (LENGTH - len(doc))
    pending.sendall(rest)
    result["delivered"] = answer(pending)
    pending.close()
    return result
