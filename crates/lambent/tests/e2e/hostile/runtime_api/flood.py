"""A hostile function: from inside its sandbox it floods its own Runtime API for event["seconds"]
with held connections (forked holders, each keeping event["hold"] connections open and replacing
the ones lambent closes) and with parallel stalled uploads of its own current invocation's answer
(a Content-Length just under the 6 MB limit, filled to event["fill"] bytes, then left hanging).
It prints what it managed as one "FLOOD {...}" log line (its own answer may not get through)."""
import json
import os
import socket
import time

HOST, _, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
PORT = int(PORT)
PREFIX = "/2018-06-01/runtime"
CHUNK = b"x" * 65536


def connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((HOST, PORT))
    except (BlockingIOError, InterruptedError):
        pass
    return s


def closed(s):
    """True when lambent closed (or answered) the connection."""
    try:
        return s.recv(4096) is not None
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def hold(seconds, n, out):
    made = refused = peak = 0
    socks = []
    end = time.time() + seconds
    while time.time() < end:
        while len(socks) < n:
            try:
                socks.append(connect())
                made += 1
            except OSError:
                break
        peak = max(peak, len(socks))
        time.sleep(0.1)
        alive = []
        for s in socks:
            if closed(s):
                s.close()
                refused += 1
            else:
                alive.append(s)
        socks = alive
    os.write(out, json.dumps({"made": made, "refused": refused, "peak": peak}).encode())


def upload(request_id, seconds, n, fill):
    head = ("POST %s/invocation/%s/response HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (PREFIX, request_id, 6 * 1000 * 1000)).encode()
    total = len(head) + fill
    conns = {}
    started = refused = sent = peak_full = 0
    answers = {}
    end = time.time() + seconds
    while time.time() < end:
        while len(conns) < n:
            try:
                conns[connect()] = 0
                started += 1
            except OSError:
                break
        progress = False
        full = 0
        for s, pos in list(conns.items()):
            if pos >= total:
                full += 1
            try:
                data = s.recv(4096)
                if data:
                    line = data.split(b"\r\n", 1)[0].decode("latin-1")
                    answers[line] = answers.get(line, 0) + 1
                s.close()
                del conns[s]
                refused += 1
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                s.close()
                del conns[s]
                refused += 1
                continue
            if pos >= total:
                continue
            piece = head[pos:] if pos < len(head) else CHUNK[:total - pos]
            try:
                k = s.send(piece)
                conns[s] = pos + k
                sent += k
                progress = True
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                s.close()
                del conns[s]
                refused += 1
        peak_full = max(peak_full, full)
        if not progress:
            time.sleep(0.005)
    for s in conns:
        s.close()
    return {"started": started, "refused": refused, "bytes": sent, "peak_full": peak_full,
            "answers": answers}


def handler(event, context):
    seconds = event["seconds"]
    holders = []
    for _ in range(event["holders"]):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                hold(seconds, event["hold"], w)
            finally:
                os._exit(0)
        os.close(w)
        holders.append((pid, r))
    uploads = upload(context.aws_request_id, seconds, event["uploads"], event["fill"])
    held = []
    for pid, r in holders:
        data = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        held.append(json.loads(data or b"{}"))
    report = {"uploads": uploads, "holders": held}
    # Not part of the attack: give lambent a moment to see the uploads go, so that the runtime's
    # own answer (this report) is not refused as a second answer still in flight.
    time.sleep(0.5)
    print("FLOOD " + json.dumps(report), flush=True)
    return report
