"""Fixtures: moto in-process, the template's resources created from template.yaml, and each
function's handler imported with the template's environment, as a fresh Lambda container would."""

import copy
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.client
import pytest
from argon2 import PasswordHasher
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from samtranslator.translator.transform import transform

from keygate import keys
from keygate_local.github import FakeGitHub
from keygate_local.template import Stack, import_handler, load_template
from tests.dynamodb_local import DynamoDBLocal, DynamoDBLocalMissing, delete_tables
from tests.faults import FaultProxy

pytest.register_assert_rewrite("tests.secrecy_sweep")  # a plugin, imported here before pytest loads it
from tests.secrecy_sweep import SWEEP, checked_answer, checked_error  # noqa: E402

pytest_plugins = ["tests.secrecy_sweep", "pytester"]
EVENTS = Path(__file__).resolve().parent.parent / "events"
API_KEY_PLACEHOLDER = "PASTE_API_KEY_HERE"
KEY_ID_PLACEHOLDER = "PASTE_KEY_ID_HERE"


@dataclass
class FakeContext:
    function_name: str = "keygate-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:keygate-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 600_000  # an invocation just begun, of a function with a long timeout

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def event(name: str, api_key: str | None = None, key_id: str | None = None) -> dict:
    """A file from events/, with the operator's placeholders filled in."""
    text = (EVENTS / name).read_text()
    if api_key is not None:
        text = text.replace(API_KEY_PLACEHOLDER, api_key)
    if key_id is not None:
        text = text.replace(KEY_ID_PLACEHOLDER, key_id)
    return json.loads(text)


# The environment variables keygate's configuration cannot do without, with stand-in values.
REQUIRED = {"KEYS_TABLE": "keys", "PEPPER_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:p"}


def wrong_secret(api_key: str, n: int = 0) -> str:
    """The same key id with another secret (the n-th) and a valid checksum: well-formed, and wrong."""
    key_id = keys.parse(api_key, "kg").key_id
    body = f"kg_{key_id}_{(str(n) if n else '').rjust(keys.SECRET_LENGTH, 'x')}"
    made_up = body + keys.checksum(body)
    SWEEP.remember_key(made_up)
    return made_up


def mistyped(api_key: str) -> str:
    """The key with its last character changed (never to itself): its checksum no longer holds."""
    return api_key[:-1] + ("x" if api_key[-1] != "x" else "y")


def add_pepper_version(stack, version: str = "v2") -> None:
    """Rotate the pepper as the runbook says: add a version and make it current, keeping the old ones."""
    secrets = boto3.client("secretsmanager")
    arn = stack.physical_ids["PepperSecret"]
    ring = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    ring |= {version: version[0] * 64, "current": version}
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(ring))


def remove_pepper_version(stack, version: str) -> None:
    """Retire a version as the runbook allows once no live key uses it."""
    secrets = boto3.client("secretsmanager")
    arn = stack.physical_ids["PepperSecret"]
    ring = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    del ring[version]
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(ring))


def fail_calls(
    monkeypatch, operation: str, code: str = "InternalServerError", message: str = "injected", times: int = -1
) -> None:
    """Every AWS call of ``operation`` (or only the next ``times``) fails from here on, with the error AWS
    would answer (at botocore's API call, so the code under test runs unchanged)."""
    real = botocore.client.BaseClient._make_api_call
    left = [times]

    def failing(self, called, params):
        if called == operation and left[0] != 0:
            left[0] -= 1
            raise ClientError({"Error": {"Code": code, "Message": message}}, called)
        return real(self, called, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", failing)


FLUSH_OPERATIONS = ("FlushStageAuthorizersCache", "ResetAuthorizersCache")


@pytest.fixture
def flushes(monkeypatch) -> list[tuple[str, dict]]:
    """Each flush call that reaches AWS, answered as API Gateway answers it (moto has no authorizer cache)."""
    calls = []
    real = botocore.client.BaseClient._make_api_call

    def answering(self, operation, params):
        if operation in FLUSH_OPERATIONS:
            calls.append((operation, params))
            return {}
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", answering)
    return calls


@pytest.fixture
def argon2_calls(monkeypatch) -> list[int]:
    """One entry per Argon2 verify from here on (each still runs)."""
    calls: list[int] = []
    real = PasswordHasher.verify

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


@pytest.fixture
def aws_calls(monkeypatch) -> list[str]:
    """The name of every AWS call made from here on, in order (recorded at botocore's API call)."""
    calls: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        calls.append(operation)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return calls


def invoke(handler: Callable, payload) -> dict:
    """A handler's answer to ``payload``, swept for secrets (tests/secrecy_sweep.py), as is its error."""
    try:
        return checked_answer(handler(payload, FakeContext()))
    except Exception as error:
        checked_error(error)
        raise


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template()


class _NoManagedPolicies:
    def load(self) -> dict:
        return {}


PACKAGED_CODE = "s3://bucket/code.zip"  # sam package's job, not what is tested


def sam_transform(template: dict, parameters: dict | None = None, code: str = PACKAGED_CODE) -> dict:
    """``template`` after SAM's transform, offline, as CloudFormation receives it with these parameter values:
    every generated resource (versions, aliases, deployments, stages, roles, permissions) with the
    Condition SAM carried over to it."""
    template = copy.deepcopy(template)
    template["Globals"]["Function"]["CodeUri"] = code
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(template, parameters or {}, _NoManagedPolicies())


@pytest.fixture(scope="session")
def transformed(template) -> dict:
    return sam_transform(template)


def references(value, conditions: dict | None = None) -> set[str]:
    """The names (parameters, resources, pseudo parameters) a template value reads: Ref, GetAtt, the variables
    of a Sub (not its ${!escapes}), and, given the template's ``conditions``, what the conditions its Fn::If
    and Condition test read."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item, conditions)
    elif isinstance(value, dict):
        for function, argument in value.items():
            if function == "Ref":
                found.add(argument)
            elif function == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else argument.split(".")[0])
            elif function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text)} - set(variables)
                found |= references(list(variables.values()), conditions)
            elif function in ("Fn::If", "Condition") and conditions is not None:
                name, rest = (argument[0], argument[1:]) if function == "Fn::If" else (argument, [])
                found |= references(conditions[name], conditions) | references(rest, conditions)
            else:
                found |= references(argument, conditions)
    return found


# --- DynamoDB on moto, and on DynamoDB Local for the tests marked dynamodb_local ---

MOTO, DYNAMODB_LOCAL = "moto", "dynamodb-local"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "dynamodb_local: run the test with DynamoDB on moto and again on DynamoDB Local")


def pytest_generate_tests(metafunc) -> None:
    """A test marked dynamodb_local that uses DynamoDB (the ``dynamodb`` fixture, through ``aws`` or
    ``served``) runs once per backend: test_x[moto] and test_x[dynamodb-local]."""
    if "dynamodb" in metafunc.fixturenames and metafunc.definition.get_closest_marker("dynamodb_local"):
        metafunc.parametrize("dynamodb", [MOTO, DYNAMODB_LOCAL], indirect=True)


@pytest.fixture(scope="session")
def dynamodb_local() -> DynamoDBLocal:
    """DynamoDB Local on 127.0.0.1, started when a test first asks for it, stopped at the end of the session."""
    try:
        running = DynamoDBLocal.start()
    except DynamoDBLocalMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    print(f"DynamoDB Local answered {running.started_in:.1f} s after launch, at {running.endpoint}")
    yield running
    running.stop()


@pytest.fixture
def dynamodb(request) -> str | None:
    """Where the test's DynamoDB calls go: None for moto (the other services' backend), else DynamoDB
    Local's endpoint."""
    if getattr(request, "param", MOTO) == MOTO:
        return None
    return request.getfixturevalue("dynamodb_local").endpoint


@pytest.fixture
def aws(monkeypatch, dynamodb):
    """moto in process; DynamoDB on DynamoDB Local instead when the test runs there (moto passes a call
    to an endpoint it does not know through unchanged)."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_REGION"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    if dynamodb is not None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
    with mock_aws():
        yield


def create_stack(template: dict, client: Callable = boto3.client, parameters: dict | None = None) -> Stack:
    """The template's tables, pepper secret and topics, made with ``client`` (boto3.client, or one bound to
    an endpoint), with ``parameters`` overriding the defaults. The secrecy sweep remembers the pepper as it
    is written."""
    return create_resources(Stack(template, parameters), client)


def create_resources(stack: Stack, client: Callable = boto3.client) -> Stack:
    """As ``create_stack``, into a given stack, which names whatever got made should this fail half-way."""
    stack.create_tables(client("dynamodb"))
    stack.create_pepper_secret(client("secretsmanager"))
    stack.create_topics(client("sns"))
    stack.create_log_groups(client("logs"))
    return stack


def snapshot_of_writes(stack: Stack, client: Callable = boto3.client) -> Callable[[], tuple]:
    """A snapshot of everything an admin function could write: the keys, the audit records and API
    Gateway's keys."""
    dynamodb, apigateway = client("dynamodb"), client("apigateway")

    def snapshot() -> tuple:
        tables = [dynamodb.scan(TableName=stack.physical_ids[name])["Items"] for name in ("KeysTable", "AuditTable")]
        return *tables, apigateway.get_api_keys()["items"]

    return snapshot


def tables_of(stack: Stack) -> list[str]:
    return [stack.physical_ids[logical_id] for logical_id in stack.tables() if logical_id in stack.physical_ids]


@pytest.fixture
def stack(aws, template, dynamodb) -> Stack:
    made = Stack(template)
    try:
        yield create_resources(made)
    finally:
        if dynamodb is not None:  # moto forgets its tables when mock_aws ends; DynamoDB Local keeps them
            delete_tables(boto3.client("dynamodb"), tables_of(made))


class _CurrentStdout:
    def write(self, text: str) -> None:
        sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _forget_logger_setup(service: str) -> None:
    """A new container starts with no logging set up; powertools configures a service's logger once
    per process, so undo that, and the next Logger() writes to the stdout of the test at hand."""
    service_logger = logging.getLogger(service)
    for handler in list(service_logger.handlers):
        service_logger.removeHandler(handler)
    for attribute in ("init", "powertools_handler", "logger_handler"):
        if hasattr(service_logger, attribute):
            delattr(service_logger, attribute)


def load_function(stack: Stack, monkeypatch, logical_id: str, **overrides: str) -> Callable:
    """A function's handler in a fresh container, with the template's environment and ``overrides``."""
    environment = stack.function_environment(logical_id) | {"POWERTOOLS_TRACE_DISABLED": "true"} | overrides
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _forget_logger_setup(environment["POWERTOOLS_SERVICE_NAME"])
    handler = import_handler(stack, logical_id)
    for log_handler in logging.getLogger(environment["POWERTOOLS_SERVICE_NAME"]).handlers:
        log_handler.setStream(_CurrentStdout())  # so capsys sees log lines as Lambda's stdout would
    return handler


@pytest.fixture
def load(stack, monkeypatch) -> Callable:
    """load("AuthorizerFunction", **env_overrides) -> the handler, in a fresh container."""
    return lambda logical_id, **overrides: load_function(stack, monkeypatch, logical_id, **overrides)


@pytest.fixture
def authorizer(load) -> Callable:
    return load("AuthorizerFunction")


class _AdminFunctions(dict):
    """admin["IssueKey"] etc., each loaded on first use (a function's cold start costs ~0.1 s)."""

    def __init__(self, load: Callable):
        super().__init__()
        self._load = load

    def __missing__(self, action: str) -> Callable:
        self[action] = self._load(f"{action}Function")
        return self[action]


@pytest.fixture
def admin(load) -> dict[str, Callable]:
    return _AdminFunctions(load)


@pytest.fixture
def issued(admin) -> Callable[..., dict]:
    """issued(**fields) -> the IssueKey answer for a valid request, defaults filled in."""

    def issue(**fields) -> dict:
        request = {"name": "test-client", "owner": "team-test"} | fields
        answer = invoke(admin["IssueKey"], request)
        assert "error" not in answer, answer
        return answer

    return issue


@pytest.fixture
def github():
    """GitHub's secret scanning keys served on 127.0.0.1 (``github.keys_url``); it signs alerts as GitHub does."""
    fake = FakeGitHub()
    server = fake.serve()
    yield fake
    server.stop()


@pytest.fixture
def apigateway(stack):
    return boto3.client("apigateway")


@pytest.fixture
def plan(apigateway) -> str:
    """A usage plan with a quota, for keys metered on it."""
    return apigateway.create_usage_plan(name="gold", quota={"limit": 1000, "period": "DAY"})["id"]


@pytest.fixture
def table_items(stack) -> Callable[[], list[dict]]:
    client = boto3.client("dynamodb")
    return lambda: client.scan(TableName=stack.physical_ids["KeysTable"])["Items"]


# --- AWS over real HTTP: moto server behind a fault-injecting proxy ---


@pytest.fixture(scope="session")
def moto_server():
    """moto server on 127.0.0.1, for tests whose AWS calls must cross real HTTP (tests/faults.py)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server.get_host_and_port()
    server.stop()


@pytest.fixture
def fault_proxy(moto_server) -> FaultProxy:
    """A fault-injecting proxy in front of moto server (tests/faults.py)."""
    faults = FaultProxy(moto_server)
    server, url = faults.serve()
    faults.url = url
    yield faults
    server.shutdown()
    server.server_close()


@pytest.fixture
def served(moto_server, fault_proxy, template, monkeypatch, dynamodb) -> Stack:
    """The template's tables, pepper and topics on moto server; every function's AWS calls go through the proxy.
    On DynamoDB Local, DynamoDB calls go to it directly: it applies each write and transaction whole on its own
    (one request at a time: TransactionConflict never arises there; tests/test_faults.py injects it)."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_REGION"):
            monkeypatch.delenv(name)
    direct = f"http://{moto_server[0]}:{moto_server[1]}"
    credentials = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.url)
    if dynamodb is not None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)

    def direct_client(service: str):
        """A client that reaches the service itself, not through the proxy."""
        return boto3.client(service, endpoint_url=dynamodb if service == "dynamodb" and dynamodb else direct)

    stack = Stack(template)
    stack.direct, stack.direct_client = direct, direct_client
    try:
        yield create_resources(stack, direct_client)
    finally:
        if dynamodb is not None:
            delete_tables(direct_client("dynamodb"), tables_of(stack))


@pytest.fixture
def served_load(served, monkeypatch) -> Callable:
    """As ``load``, for the served stack."""
    return lambda logical_id, **overrides: load_function(served, monkeypatch, logical_id, **overrides)


@pytest.fixture
def served_written(served) -> Callable[[], tuple]:
    """As ``snapshot_of_writes``, of the served stack (read directly, not through the proxy)."""
    return snapshot_of_writes(served, served.direct_client)
