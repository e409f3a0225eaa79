"""One warm Lambda execution environment for one function, without a container.

Started by ``keygate_local.runtime`` with the function's environment and ``PYTHONPATH`` set to its
CodeUri: imports the handler on the first invocation (the init phase), then answers invocations, one JSON line in, one
JSON line out, for as long as it lives, so module-level state (clients, caches) is reused across calls
exactly as in a warm Lambda container. Everything the handler prints goes to stderr.
"""

import importlib
import json
import os
import sys
import time
import traceback
from decimal import Decimal

# API Gateway's contract: an authorizer that fails with exactly this message refuses the request (401). That is
# an answer, not a fault, and the handler's own log says why: the worker prints no traceback for it.
REFUSAL = "Unauthorized"


class Context:
    """The Lambda context object, as much of it as handlers and powertools read."""

    def __init__(self, request_id: str, deadline: float):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{self.function_name}"
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _lambda_json(value: object) -> object:
    """What Lambda's Python runtime also serialises: DynamoDB's Decimals, as numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def error_payload(error: BaseException) -> dict:
    """The error shape the Lambda runtime reports, which SAM CLI's emulator recognises."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def load_handler(handler_path: str):
    module_name, _, attribute = handler_path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def serve(handler_path: str, requests, replies) -> None:
    handler = None
    for line in requests:
        request = json.loads(line)
        try:
            if handler is None:  # the init phase; after a failure, Lambda tries it again on the next call
                handler = load_handler(handler_path)
            context = Context(request["request_id"], request["deadline"])
            reply = json.dumps(handler(json.loads(request["event"]), context), default=_lambda_json, ensure_ascii=False)
        except Exception as error:  # an unserialisable answer too: an error here, not in the parent
            if str(error) != REFUSAL:
                traceback.print_exc()
            reply = json.dumps(error_payload(error))
        replies.write(reply + "\n")
        replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")  # the protocol keeps the real stdout ...
    os.dup2(2, 1)  # ... and whatever the handler prints goes to stderr
    serve(sys.argv[1], sys.stdin, replies)


if __name__ == "__main__":
    main()
