"""The local stack, started once for these tests as `make local` starts it (a separate process, on
free ports), and stopped afterwards."""

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import boto3
import pytest
import requests

from keygate_local.github import FakeGitHub
from keygate_local.template import ROOT
from tests.conftest import DYNAMODB_LOCAL, MOTO
from tests.secrecy_sweep import SWEEP, checked_answer

READY_SECONDS = 60


@dataclass
class Running:
    rest: str
    http: str
    lambda_endpoint: str
    aws: dict[str, str]
    api_stages: dict[str, str]  # API logical id -> API_ID/STAGE
    usage_plans: dict[str, str]  # usage plan logical id -> its id
    cached_stages: dict[str, str]  # API logical id -> its CachedStages entry
    leak_report: str  # LeakReportApi's base URL


def start_stack(
    extra_environment: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
    parameters: dict[str, str] | None = None,
    output: IO | None = None,
) -> tuple[subprocess.Popen, dict]:
    """The local stack as `make local` starts it, with the demo APIs (DeployDemo=true), on free ports;
    ``parameters`` override the template's (and ``options``' --demo-parameters). What it prints (stderr)
    goes to ``output``, else to this process's stderr."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
    environment |= {"SAM_CLI_TELEMETRY": "0", "PYTHONUNBUFFERED": "1"} | (extra_environment or {})
    command = [sys.executable, "-m", "keygate_local", "--rest-port", "0", "--http-port", "0", "--lambda-port", "0"]
    overrides = {"DeployDemo": "true"} | (parameters or {})
    command += [*options, "--parameter-overrides", *(f"{name}={value}" for name, value in overrides.items())]
    process = subprocess.Popen(
        [*command, "--ready-json"], stdout=subprocess.PIPE, stderr=output, cwd=ROOT, env=environment, text=True
    )
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(READY_SECONDS):
            stop_stack(process)
            raise TimeoutError(f"the local stack was not ready within {READY_SECONDS} s")
    line = process.stdout.readline()
    if not line:
        stop_stack(process)
        raise RuntimeError(f"the local stack exited with {process.wait()} before it was ready")
    return process, json.loads(line)


def stop_stack(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def running_stack(*options: str, parameters: dict[str, str] | None = None, environment: dict[str, str] | None = None):
    started = time.perf_counter()
    process, ready = start_stack(environment, options=options, parameters=parameters)
    print(f"local stack ready in {time.perf_counter() - started:.1f} s: {ready}")
    secretsmanager = local_client("secretsmanager", ready["aws"]["secretsmanager"])
    for secret in secretsmanager.list_secrets()["SecretList"]:  # made by the stack's process: not seen written
        ring = json.loads(secretsmanager.get_secret_value(SecretId=secret["ARN"])["SecretString"])
        for version, value in ring.items():
            if version != "current":
                SWEEP.remember_pepper(value)  # for the secrecy sweep (tests/secrecy_sweep.py)
    apis = ready["apis"]
    yield Running(
        apis["DemoRestApi"], apis["DemoHttpApi"], ready["lambda"], ready["aws"], ready["api_stages"],
        ready["usage_plans"], ready["cached_stages"], apis["LeakReportApi"],
    )  # fmt: skip
    assert stop_stack(process) == 0


def pytest_generate_tests(metafunc) -> None:
    """A test marked dynamodb_local runs on a local stack whose DynamoDB is moto, then on one whose DynamoDB
    is DynamoDB Local; every other test on the first alone (one parameter for all: pytest keeps one stack)."""
    if "local_stack" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker("dynamodb_local")
        metafunc.parametrize("local_stack", [MOTO, DYNAMODB_LOCAL] if marked else [MOTO], indirect=True)


def dynamodb_environment(request) -> dict[str, str]:
    """What points a local stack's DynamoDB at DynamoDB Local, for that parameter; nothing for moto."""
    if request.param == DYNAMODB_LOCAL:
        return {"AWS_ENDPOINT_URL_DYNAMODB": request.getfixturevalue("dynamodb_local").endpoint}
    return {}


@pytest.fixture(scope="session")
def local_stack(request):
    yield from running_stack(environment=dynamodb_environment(request))


@pytest.fixture(scope="session")
def github():
    """GitHub's secret scanning keys, served by this test process (which signs alerts with their private key)."""
    fake = FakeGitHub()
    server = fake.serve()
    yield fake
    server.stop()


@pytest.fixture(scope="session")
def scoped_stack(github):
    """A second local stack, with make demo's parameters: its RouteScopes, API Gateway's authorizer cache
    with both stages in CachedStages, and a quota of 3 a day on the demo usage plan; and GitHub's secret
    scanning keys served by this process."""
    yield from running_stack("--demo-parameters", parameters={"GitHubPublicKeysUrl": github.keys_url})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_client(service: str, endpoint: str):
    """A boto3 client for a local endpoint (which checks no signature)."""
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="e2e", aws_secret_access_key="e2e"
    )


def keys_table(dynamodb) -> str:
    """The name of the local stack's keys table (the audit table sits beside it)."""
    (table,) = [name for name in dynamodb.list_tables()["TableNames"] if "-KeysTable-" in name]
    return table


@pytest.fixture(scope="session")
def lambda_client(local_stack):
    return local_client("lambda", local_stack.lambda_endpoint)


@pytest.fixture
def invoke(lambda_client):
    def call(function: str, payload: dict) -> dict:
        response = lambda_client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
        answer = checked_answer(json.loads(response["Payload"].read()))
        assert "FunctionError" not in response, answer
        return answer

    return call


@pytest.fixture
def issued(invoke):
    def issue(**fields) -> dict:
        answer = invoke("IssueKeyFunction", {"name": "e2e-client", "owner": "team-e2e"} | fields)
        assert "api_key" in answer, answer
        return answer

    return issue


# --- what the end-to-end tests share ---

TIMEOUT = 30  # seconds, for any one HTTP request to the local stack
KEYGATE = str(Path(sys.executable).parent / "keygate")  # the console script pip installed


def keygate(local_stack, *arguments: str, endpoint: str | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    """The CLI against the stack, answering JSON whatever KEYGATE_OUTPUT says (a later --output wins)."""
    command = [KEYGATE, "--endpoint-url", endpoint or local_stack.lambda_endpoint, "--output", "json", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, input=stdin)


def run(stack, *arguments: str) -> dict:
    """A keygate command that must succeed, and its JSON answer."""
    done = keygate(stack, *arguments)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status_of(url: str, api_key: str) -> int:
    """The status of a GET of ``url`` with ``api_key`` as a Bearer key."""
    return requests.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=TIMEOUT).status_code
