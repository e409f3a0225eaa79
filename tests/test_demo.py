"""The demo route echoes the authorizer context that API Gateway passes on, in both payload versions."""

import json

from tests.conftest import invoke

CONTEXT = {"key_id": "AAAAAAAAAAAAAAAA", "owner": "team-a", "scopes": "read write"}


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
