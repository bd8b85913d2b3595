"""A Lambda-style Python handler, unchanged from what runs on AWS Lambda (runtime python3.12)."""

import json
import os

INVOCATIONS = 0  # module state survives between calls on a warm instance


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    print("event:", json.dumps(event))
    return {
        "message": "hello from Python in a lambent sandbox",
        "event": event,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "warm_invocations": INVOCATIONS,
        "greeting": os.environ.get("GREETING"),
    }
