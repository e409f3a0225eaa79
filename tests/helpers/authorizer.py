"""Authorizer events in every shape, and how API Gateway would read the authorizer's answers: what the
authorizer's tests share."""

import inspect
import json
import re
from collections.abc import Callable
from datetime import datetime

import boto3
import botocore.client
import pytest
from argon2 import PasswordHasher
from botocore.exceptions import ClientError

from keygate import keys
from tests.conftest import event, invoke, wrong_secret

SHAPES = ["rest-token", "rest-request", "http-api"]


METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/demo/GET/hello"


def shaped(shape: str, authorization: str | None = None, api_key: str | None = None) -> dict:
    """An authorizer event of ``shape`` presenting the given header values (None: header absent)."""
    if shape == "rest-token":
        request = event("authorizer-rest-token.json")
        request["authorizationToken"] = authorization if authorization is not None else (api_key or "")
        return request
    headers = {"Authorization": authorization, "x-api-key": api_key}
    present = {name: value for name, value in headers.items() if value is not None}
    if shape == "rest-request":
        request = event("authorizer-rest-request.json")
        request["headers"] = {"Host": "abcdef1234.execute-api.us-east-1.amazonaws.com"} | present
        request["multiValueHeaders"] = {name: [value] for name, value in request["headers"].items()}
        return request
    request = event("authorizer-http-api.json")
    request["headers"] = {"host": "qwerty5678.execute-api.us-east-1.amazonaws.com"} | {
        name.lower(): value for name, value in present.items()
    }
    request["identitySource"] = list(present.values())
    return request


def decide(handler, request: dict) -> tuple[bool, dict | None]:
    """(allowed, response) in any shape; a REST refusal is exactly the Unauthorized error (401) or a
    Deny policy (403)."""
    try:
        response = invoke(handler, request)
    except Exception as error:
        assert str(error) == "Unauthorized" and request.get("version") != "2.0"
        return False, None
    if "isAuthorized" in response:
        assert set(response) <= {"isAuthorized", "context"}
        return response["isAuthorized"], response
    return iam_decision(response, request["methodArn"]) == "Allow", response


def iam_evaluator(policy: dict) -> Callable[[str], str]:
    """How IAM decides an execute-api:Invoke of an ARN under an authorizer's policy: an explicit Deny wins,
    then an Allow, else an implicit deny. In a resource ``*`` matches any run of characters (a line break,
    which a path may hold, too), ``?`` any one. Compiled once, for the many ARNs a property asks."""
    rules = []
    for statement in policy["policyDocument"]["Statement"]:
        assert set(statement) == {"Action", "Effect", "Resource"}, statement  # nothing this evaluator ignores
        assert statement["Action"] == "execute-api:Invoke" and statement["Effect"] in ("Allow", "Deny"), statement
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        for resource in resources:
            pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource)
            rules.append((statement["Effect"], re.compile(pattern, re.DOTALL)))

    def effect(arn: str) -> str:
        effects = {effect for effect, resource in rules if resource.fullmatch(arn)}
        return "Deny" if "Deny" in effects else "Allow" if "Allow" in effects else "ImplicitDeny"

    return effect


def iam_decision(policy: dict, method_arn: str) -> str:
    return iam_evaluator(policy)(method_arn)


def refused_as_a_fault(handler, request: dict) -> None:
    """A fault's answer is an error, never an answer API Gateway could cache: REST gets ``Unauthorized``
    (401), an HTTP API a function error, which it answers with 500 (``isAuthorized: false`` would be
    cached for the TTL and lock a good key out after one throttle)."""
    with pytest.raises(Exception) as raised:
        invoke(handler, request)
    if request.get("version") == "2.0":
        assert str(raised.value) != "Unauthorized" and type(raised.value).__name__ == "AuthorizerFault"
    else:
        assert str(raised.value) == "Unauthorized"


def log_records(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def reasons(capsys) -> list[str]:
    return [record["reason"] for record in log_records(capsys.readouterr().out) if "reason" in record]


def service_of(handler):
    """The KeyService of the container a handler was loaded in."""
    return inspect.unwrap(handler).__globals__["KEYS"]


def refusals(key: dict, other_key: dict) -> list[tuple[str, dict, str]]:
    """(case, headers, logged reason) for every way a request is refused."""
    api_key = key["api_key"]
    unknown = keys.generate("kg").api_key
    return [
        ("no header", {}, "MissingKey"),
        ("empty bearer", {"authorization": "Bearer "}, "MalformedKey"),
        ("other scheme", {"authorization": "Basic dXNlcjpwYXNz"}, "MalformedKey"),
        ("not a key", {"authorization": "Bearer hello"}, "MalformedKey"),
        (
            "bad checksum",
            {"authorization": f"Bearer {api_key[:-1]}{'A' if api_key[-1] != 'A' else 'B'}"},
            "MalformedKey",
        ),
        ("other prefix", {"authorization": f"Bearer {keys.generate('acme').api_key}"}, "MalformedKey"),
        ("two keys", {"authorization": f"Bearer {api_key}", "api_key": other_key["api_key"]}, "MalformedKey"),
        ("unknown key id", {"authorization": f"Bearer {unknown}"}, "UnknownKey"),
        ("wrong secret", {"authorization": f"Bearer {wrong_secret(api_key)}"}, "WrongSecret"),
    ]


def fail_get_item(monkeypatch, code: str):
    real = botocore.client.BaseClient._make_api_call

    def failing(self, operation, params):
        if operation == "GetItem":
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", failing)


FAULTS = [
    "table missing", "secret missing", "throttled", "access denied", "corrupt hash", "item missing attributes",
    "bug in verify",
]  # fmt: skip


def faults(stack, monkeypatch, key: dict) -> dict:
    """case -> arrange, for every fault the authorizer must survive by refusing."""
    dynamodb, secrets = boto3.client("dynamodb"), boto3.client("secretsmanager")
    table = stack.physical_ids["KeysTable"]

    def corrupt_item():
        dynamodb.update_item(
            TableName=table,
            Key={"key_id": {"S": key["key_id"]}},
            UpdateExpression="SET #hash = :bad",
            ExpressionAttributeNames={"#hash": "hash"},
            ExpressionAttributeValues={":bad": {"S": "$argon2id$garbage"}},
        )

    def missing_attributes():
        dynamodb.update_item(
            TableName=table, Key={"key_id": {"S": key["key_id"]}}, UpdateExpression="REMOVE pepper_version"
        )

    def broken_verify():
        monkeypatch.setattr(PasswordHasher, "verify", lambda *args: (_ for _ in ()).throw(RuntimeError("bug")))

    faults = {
        "table missing": lambda: (dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False),
                                  dynamodb.delete_table(TableName=table)),
        "secret missing": lambda: secrets.delete_secret(
            SecretId=stack.physical_ids["PepperSecret"], ForceDeleteWithoutRecovery=True),
        "throttled": lambda: fail_get_item(monkeypatch, "ProvisionedThroughputExceededException"),
        "access denied": lambda: fail_get_item(monkeypatch, "AccessDeniedException"),
        "corrupt hash": corrupt_item,
        "item missing attributes": missing_attributes,
        "bug in verify": broken_verify,
    }  # fmt: skip
    assert sorted(faults) == sorted(FAULTS)
    return faults


APPSYNC_API = "abcdefghijklmnopqrstuvwxyz"


def websocket(authorization: str | None = None, api_key: str | None = None) -> dict:
    """A WebSocket $connect authorizer event presenting the given header values (None: header absent)."""
    request = event("authorizer-websocket-connect.json")
    present = {name: value for name, value in {"Authorization": authorization, "x-api-key": api_key}.items() if value}
    kept = {name: value for name, value in request["headers"].items() if name != "Authorization"}
    request["headers"] = kept | present
    request["multiValueHeaders"] = {name: [value] for name, value in request["headers"].items()}
    return request


def appsync(token: str) -> dict:
    """An AppSync authorization request whose Authorization header is ``token``."""
    request = event("authorizer-appsync.json")
    request["authorizationToken"] = token
    request["requestHeaders"]["authorization"] = token
    return request


API = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/demo"


def routed(shape: str, api_key: str, method: str, path: str) -> dict:
    """An authorizer event of ``shape`` for a request to ``method path``."""
    request = shaped(shape, authorization=f"Bearer {api_key}")
    arn = f"{API}/{method}{path}"
    if shape == "http-api":
        request["routeArn"] = arn.replace("abcdef1234/demo", "qwerty5678/$default")
        request["requestContext"]["http"] |= {"method": method, "path": path}
    else:
        request["methodArn"] = arn
    return request


def at(handler, moment: datetime) -> None:
    """Set the clock of a function's container."""
    inspect.unwrap(handler).__globals__["KEYS"]._clock = lambda: moment
