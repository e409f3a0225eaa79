"""Revocation across warm containers: two authorizer workers of the local stack, each with the key in its
verified-key cache, both refuse it on their very next call once revoke has returned."""

import json
import os
import tempfile

import pytest

from keygate_local.local_stack import SERVICES, LocalStack
from keygate_local.runtime import Worker
from tests.e2e.conftest import local_client
from tests.helpers.authorizer import shaped


@pytest.fixture(scope="module")
def stack_and_log():
    with tempfile.TemporaryFile("w+") as log, LocalStack(log=log) as local:
        yield local, log


def authorizer_worker(local: LocalStack, log) -> Worker:
    """A warm authorizer container as the local stack's runtime starts one: the function's environment
    from the template, the stack's AWS endpoints, the code directory on the path."""
    code_dir, module, attribute = local.stack.handler_path("AuthorizerFunction")
    environment = local.stack.function_environment("AuthorizerFunction") | {
        SERVICES[service]: url for service, url in local.urls.aws_endpoints.items()
    }
    environment |= {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(code_dir),
        "AWS_ACCESS_KEY_ID": "e2e",
        "AWS_SECRET_ACCESS_KEY": "e2e",
        "AWS_DEFAULT_REGION": local.region,
        "AWS_LAMBDA_FUNCTION_NAME": "AuthorizerFunction",
    }
    return Worker(f"{module}.{attribute}", str(code_dir), environment, log)


def decisions(log, since: int) -> list[dict]:
    log.seek(since)
    lines = [json.loads(line) for line in log.read().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") in ("key allowed", "key refused")]


def test_once_revoke_returns_no_warm_container_allows_the_key(stack_and_log):
    local, log = stack_and_log
    lambda_api = local_client("lambda", local.urls.lambda_endpoint)

    def admin(function: str, payload: dict) -> dict:
        return json.loads(lambda_api.invoke(FunctionName=function, Payload=json.dumps(payload))["Payload"].read())

    key = admin("IssueKeyFunction", {"name": "e2e", "owner": "e2e"})
    request = json.dumps(shaped("rest-token", authorization=f"Bearer {key['api_key']}"))
    workers = [authorizer_worker(local, log), authorizer_worker(local, log)]
    try:
        log.seek(0, os.SEEK_END)
        start = log.tell()
        answers = [json.loads(worker.invoke(request, 30)) for worker in workers for _ in range(2)]
        assert all(answer["principalId"] == key["key_id"] for answer in answers)
        first = decisions(log, start)
        assert [line["verified_by"] for line in first] == ["argon2", "cache", "argon2", "cache"]
        assert admin("RevokeKeyFunction", {"key_id": key["key_id"]})["status"] == "revoked"
        log.seek(0, os.SEEK_END)
        start = log.tell()
        answers = [json.loads(worker.invoke(request, 30)) for worker in workers]
        assert [answer.get("errorMessage") for answer in answers] == ["Unauthorized", "Unauthorized"]
        assert [line["reason"] for line in decisions(log, start)] == ["RevokedKey", "RevokedKey"]
    finally:
        for worker in workers:
            worker.stop()
