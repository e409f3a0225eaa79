"""The demo route echoes the authorizer context that API Gateway passes on, in every payload shape."""

import copy
import json
import subprocess

import pytest

from keygate_local.local_stack import DEMO
from keygate_local.template import ROOT
from tests.conftest import create_stack, invoke

CONTEXT = {"key_id": "AAAAAAAAAAAAAAAA", "owner": "team-a", "scopes": "read write"}


@pytest.fixture
def stack(aws, template):
    """The stack with its demo (DeployDemo=true), which ``load`` loads DemoFunction from."""
    return create_stack(template, parameters=DEMO)


def test_rest_route_echoes_the_authorizer_context(load):
    demo = load("DemoFunction")
    request = {
        "resource": "/whoami",
        "path": "/whoami",
        "httpMethod": "GET",
        "requestContext": {"authorizer": CONTEXT | {"principalId": "AAAAAAAAAAAAAAAA"}},
    }
    answer = invoke(demo, request)
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    assert {field: body[field] for field in CONTEXT} == CONTEXT
    assert body["route"] == "GET /whoami"


def test_http_api_route_echoes_the_lambda_authorizer_context(load):
    demo = load("DemoFunction")
    request = {"version": "2.0", "routeKey": "GET /hello", "requestContext": {"authorizer": {"lambda": CONTEXT}}}
    body = json.loads(invoke(demo, request)["body"])
    assert {field: body[field] for field in CONTEXT} == CONTEXT
    assert body["route"] == "GET /hello"


def test_the_demo_function_accepts_a_connect_and_echoes_the_caller_to_a_message(load):
    demo = load("DemoFunction")
    context = {"key_id": "AAAAAAAAAAAAAAAA", "owner": "team-a", "scopes": "chat", "principalId": "AAAAAAAAAAAAAAAA"}
    base = {"isBase64Encoded": False, "requestContext": {"connectionId": "c", "authorizer": context}}
    connect = copy.deepcopy(base)
    connect["requestContext"] |= {"routeKey": "$connect", "eventType": "CONNECT"}
    assert invoke(demo, connect)["statusCode"] == 200
    message = copy.deepcopy(base) | {"body": "hello"}
    message["requestContext"] |= {"routeKey": "$default", "eventType": "MESSAGE"}
    body = json.loads(invoke(demo, message)["body"])
    assert (body["route"], body["key_id"], body["owner"]) == ("$default", "AAAAAAAAAAAAAAAA", "team-a")


def test_make_local_serves_the_demo_with_its_parameters():
    """So the README's scopes (orders:read, demo) mean something on `make local`, as on `make demo`."""
    dry_run = subprocess.run(["make", "-n", "local"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert "-m keygate_local --demo-parameters" in dry_run.stdout


def _make_variables(path: str, *names: str) -> list[str]:
    """What the Makefile sets these variables to, with ``path`` as PATH."""
    printed = subprocess.run(
        ["make", "-s", "--eval", "print-%: ; @echo $($*)", *(f"print-{name}" for name in names)],
        cwd=ROOT, env={"PATH": path, "HOME": str(ROOT)}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return printed.stdout.splitlines()


def test_make_takes_pyenvs_newest_313_release_whichever_it_is(tmp_path):
    root, bin_dir = tmp_path / "pyenv-root", tmp_path / "bin"
    for release in ("3.13.1", "3.13.10", "3.12.8"):
        (root / "versions" / release / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    (bin_dir / "pyenv").write_text(f"#!/bin/sh\necho {root}\n")
    (bin_dir / "pyenv").chmod(0o755)
    python, version = _make_variables(f"{bin_dir}:/usr/bin:/bin", "PYTHON313", "PYENV_VERSION")
    assert (python, version) == (f"{root}/versions/3.13.10/bin/python3", "3.13.10")


def test_without_pyenv_make_takes_python313_from_the_path(tmp_path):
    (tmp_path / "python3.13").write_text("#!/bin/sh\n")
    (tmp_path / "python3.13").chmod(0o755)
    python, version = _make_variables(f"{tmp_path}:/usr/bin:/bin", "PYTHON313", "PYENV_VERSION")
    assert (python, version) == (f"{tmp_path}/python3.13", "")
