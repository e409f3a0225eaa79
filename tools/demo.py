"""The lifecycle, end to end, in-process: the template's table and secret on moto, the real handlers
with the template's environment, every authorizer shape. `make demo` runs this."""

import json
import os
import sys
import time

import boto3
from moto import mock_aws

from keygate_local.template import ROOT, Stack, import_handler, load_template

EVENTS = ROOT / "events"


class Context:
    function_name = "keygate-demo"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:keygate-demo"
    aws_request_id = "demo"


def _event(name: str, api_key: str) -> dict:
    return json.loads((EVENTS / name).read_text().replace("PASTE_API_KEY_HERE", api_key))


def _load(stack: Stack, function: str):
    os.environ.update(stack.function_environment(function) | {"POWERTOOLS_LOG_LEVEL": "WARNING"})
    return import_handler(stack, function)


def _authorize(authorizer, event: dict) -> str:
    started = time.perf_counter()
    try:
        answer = authorizer(event, Context())
    except Exception as error:
        verdict = f"refused ({error})"
    else:
        allowed = answer.get("isAuthorized") or answer.get("policyDocument", {}).get("Statement", [{}])[0].get("Effect")
        verdict = "allowed" if allowed in (True, "Allow") else f"refused ({answer})"
    return f"{verdict:<26} {1000 * (time.perf_counter() - started):6.1f} ms"


def main() -> int:
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
        POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_DISABLED="true",
    )  # fmt: skip
    with mock_aws():
        stack = Stack(load_template())
        stack.create_keys_table(boto3.client("dynamodb"))
        stack.create_pepper_secret(boto3.client("secretsmanager"))
        print(f"1. Created {stack.physical_ids['KeysTable']} and the pepper secret from template.yaml (moto).")
        issue, revoke, get = (_load(stack, f"{name}Function") for name in ("IssueKey", "RevokeKey", "GetKey"))
        authorizer = _load(stack, "AuthorizerFunction")

        issued = issue(json.loads((EVENTS / "issue-key.json").read_text()), Context())
        api_key, key_id = issued["api_key"], issued["key_id"]
        print(f"2. Issued key {key_id} for {issued['owner']}: {api_key[:24]}... (shown once)")
        mistyped = api_key[:-7] + ("Z" if api_key[-7] != "Z" else "Y") + api_key[-6:]  # checksum fails
        shapes = {
            "REST TOKEN  ": "authorizer-rest-token.json",
            "REST REQUEST": "authorizer-rest-request.json",
            "HTTP API    ": "authorizer-http-api.json",
        }
        print("3. The key, through each authorizer shape:")
        for label, name in shapes.items():
            print(f"   {label} the key:  {_authorize(authorizer, _event(name, api_key))}")
            print(f"   {label} mistyped: {_authorize(authorizer, _event(name, mistyped))}")
        revoked = revoke({"key_id": key_id}, Context())
        print(f"4. Revoked {key_id}: status={revoked['status']} at {revoked['revoked_at']}")
        print("5. The revoked key, on the very next call:")
        for label, name in shapes.items():
            print(f"   {label} revoked:  {_authorize(authorizer, _event(name, api_key))}")
        shown = get({"key_id": key_id}, Context())
        print(f"6. get_key shows metadata only: {json.dumps(shown)}")
        outcomes = [_authorize(authorizer, _event(name, api_key)).startswith("refused") for name in shapes.values()]
    print("Done: issue, allow, refuse, revoke, refuse." if all(outcomes) else "UNEXPECTED: a revoked key was allowed")
    return 0 if all(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
