"""The local gateway glue: one API per port, each with exactly the routes that point at it."""

import json

import pytest

from keygate import keys
from keygate_local import gateway
from keygate_local.local_stack import DEMO
from keygate_local.template import Stack


@pytest.fixture(scope="module")
def served(template) -> dict:
    """The template as the local stack hands it to SAM CLI: conditions decided, the authorizer's alias served
    as the function."""
    return Stack(template, DEMO).template


def _events(template: dict) -> dict[str, dict]:
    return template["Resources"]["DemoFunction"]["Properties"]["Events"]


def test_the_template_has_the_leak_report_api_and_a_rest_and_an_http_demo_api(template):
    assert gateway.api_ids(template) == ["LeakReportApi", "DemoRestApi", "DemoHttpApi"]


def test_the_leak_report_route_has_no_keygate_authorizer(template):
    api = gateway.ApiProvider(gateway.load_stacks(gateway.only_api(template, "LeakReportApi"), "us-east-1")).api
    routes = {(method, route.path, route.authorizer_name) for route in api.routes for method in route.methods}
    assert routes == {("POST", "/github/secret-scanning", None)}  # GitHub's signature is its authentication


def test_each_api_keeps_only_its_own_routes(template):
    rest, http = gateway.only_api(template, "DemoRestApi"), gateway.only_api(template, "DemoHttpApi")
    assert "DemoHttpApi" not in rest["Resources"] and "DemoRestApi" not in http["Resources"]
    assert set(_events(rest)) == {
        "RestHello", "RestWhoami", "RestApiKeyWhoami", "RestListOrders", "RestCreateOrder", "RestMetered",
    }  # fmt: skip
    assert set(_events(http)) == {"HttpHello", "HttpWhoami", "HttpListOrders", "HttpCreateOrder"}
    assert set(_events(template)) == set(_events(rest)) | set(_events(http))  # the original is untouched


def test_the_routes_and_authorizers_sam_cli_reads_for_each_api(served):
    rest = gateway.ApiProvider(gateway.load_stacks(gateway.only_api(served, "DemoRestApi"), "us-east-1")).api
    http = gateway.ApiProvider(gateway.load_stacks(gateway.only_api(served, "DemoHttpApi"), "us-east-1")).api
    rest_routes = {(method, route.path, route.authorizer_name) for route in rest.routes for method in route.methods}
    assert rest_routes == {
        ("GET", "/hello", "KeygateToken"),
        ("GET", "/whoami", "KeygateToken"),
        ("GET", "/orders", "KeygateToken"),
        ("POST", "/orders", "KeygateToken"),
        ("GET", "/x-api-key/whoami", "KeygateRequest"),
        ("GET", "/metered", "KeygateToken"),
    }
    http_routes = {(method, route.path, route.authorizer_name) for route in http.routes for method in route.methods}
    assert http_routes == {
        ("GET", "/hello", "KeygateLambda"),
        ("GET", "/whoami", "KeygateLambda"),
        ("GET", "/orders", "KeygateLambda"),
        ("POST", "/orders", "KeygateLambda"),
    }
    assert rest.stage_name == "demo"


class RecordingRunner:
    """Stands in for the functions: records who is invoked; the authorizer allows, the route answers 200."""

    def __init__(self):
        self.invoked: list[str] = []

    def is_debugging(self) -> bool:
        return False

    def invoke(self, name, event, stdout, stderr, tenant_id=None):
        self.invoked.append(name)
        if name == "AuthorizerFunction":
            statement = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}
            answer = {"principalId": "p", "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}}
        else:
            answer = {"statusCode": 200, "body": "ok"}
        stdout.write_str(json.dumps(answer))


def test_the_token_authorizer_is_not_invoked_for_a_value_that_is_not_bearer_and_a_key(served):
    runner = RecordingRunner()
    api = gateway.ApiProvider(gateway.load_stacks(gateway.only_api(served, "DemoRestApi"), "us-east-1")).api
    service = gateway.ApiGateway(
        api=api, lambda_runner=runner, static_dir=None, port=3000, host="127.0.0.1", stderr=None, api_id="a1b2c3d4e5"
    )
    service.create()
    client = service._app.test_client()
    api_key = keys.generate("kg").api_key
    for value in ("Bearer hello", "Basic dXNlcjpwYXNz", api_key, f"Bearer {api_key[:-1]}", f"Token {api_key}"):
        assert client.get("/hello", headers={"Authorization": value}).status_code == 401, value
    assert runner.invoked == []
    assert client.get("/hello", headers={"Authorization": f"bearer  {api_key}"}).status_code == 200
    assert runner.invoked == ["AuthorizerFunction", "DemoFunction"]


@pytest.mark.parametrize(
    ("request_text", "line"),
    [
        ("GET /orders/caf\u00e9", "GET /orders/caf\u00e9"),  # printable text is kept as it is
        ("GET /a\nGET /b: 200", "GET /a\\nGET /b: 200"),  # a decoded %0A cannot start a line of its own
        ("GET /a\r\x1b[2K\x00", "GET /a\\r\\x1b[2K\\x00"),  # nor return over one, or send a terminal escape
        ("GET /" + "a" * 300, "GET /" + "a" * 251),  # at most 256 characters of it
    ],
)
def test_a_refusal_line_shows_the_request_escaped_on_one_line(request_text, line):
    assert gateway._printable(request_text) == line
