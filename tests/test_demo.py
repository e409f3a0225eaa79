"""The demo route echoes the authorizer context that API Gateway passes on, in every payload shape."""

import copy
import json

import pytest

from keygate_local.local_stack import DEMO
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
