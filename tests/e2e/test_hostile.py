"""The hostile corpus (tests/hostile/keys.json) over real HTTP, through the local stack's API Gateway:
each case on the REST API's TOKEN route, its REQUEST route and the HTTP API, with the status API Gateway
answers. A case reaches the authorizer only where its identity header is there (else 401 without it); the
TOKEN route's ValidationExpression comes first; then the authorizer's answer for that shape decides."""

import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass

import pytest

from keygate_local.template import Stack, load_template
from tests.hostile.corpus import KeyCase, case_ids, key_cases, presented_tokens
from tests.secrecy_sweep import checked_answer

TIMEOUT = 30
TOO_LARGE = 431  # the gateway's answer to a header over its limit, before any authorizer


@dataclass(frozen=True)
class Target:
    api: str  # "rest" or "http"
    path: str
    identity: str  # the authorizer's identity source header
    shape: str  # the event its authorizer gets


TARGETS = [
    Target("rest", "/whoami", "authorization", "rest-token"),
    Target("rest", "/x-api-key/whoami", "x-api-key", "rest-request"),
    Target("http", "/whoami", "authorization", "http-api"),
]


def validation_expression() -> re.Pattern:
    template = load_template()
    token = template["Resources"]["DemoRestApi"]["Properties"]["Auth"]["Authorizers"]["KeygateToken"]
    return re.compile(Stack(template).resolve(token["Identity"]["ValidationExpression"]))


def expected_status(case: KeyCase, target: Target, by_shape: dict[str, dict[str, KeyCase]]) -> int | None:
    """API Gateway's status for the case on the target, or None where the target cannot see the case as
    the corpus means it (a TOKEN authorizer never sees x-api-key)."""
    if case.big:
        return TOO_LARGE
    values = case.headers.get(target.identity, [])
    if not any(value.strip(" \t") for value in values):  # none, or empty once HTTP's optional whitespace goes
        return 401  # without calling the authorizer
    if target.shape == "rest-token":
        if "x-api-key" in case.headers:
            return None
        # a header sent twice reaches a TOKEN authorizer's ValidationExpression joined ("a, b"): refused
        if len(values) > 1 or not validation_expression().fullmatch(values[0]):
            return 401
    shaped = by_shape[target.shape].get(case.id)
    if shaped is None:
        return None
    if shaped.expect == "allow":
        return 200
    if shaped.expect == "forbid" or target.api == "http":
        return 403  # a REST Deny policy; an HTTP API's isAuthorized false
    return 401


def send(base_url: str, path: str, headers: dict[str, list[str]]) -> int:
    """GET with each header value sent as its own header line, UTF-8 encoded as a client would."""
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT)
    try:
        connection.putrequest("GET", path)
        for name, values in headers.items():
            for value in values:
                connection.putheader(name, value.encode("utf-8", "surrogatepass"))
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def presented(lambda_client) -> dict[str, str]:
    def call(function: str, payload: dict) -> dict:
        response = lambda_client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
        answer = checked_answer(json.loads(response["Payload"].read()))
        assert "FunctionError" not in response, answer
        return answer

    return presented_tokens(call)


@pytest.mark.parametrize("case_id", case_ids(over_http=True))
def test_a_hostile_header_gets_api_gateway_s_answer_on_every_route(case_id, local_stack, presented):
    by_shape = {target.shape: {case.id: case for case in key_cases(target.shape, presented)} for target in TARGETS}
    case = by_shape["rest-request"][case_id]  # every case has a REST REQUEST form
    base = {"rest": local_stack.rest, "http": local_stack.http}
    answers = {}
    for target in TARGETS:
        expected = expected_status(case, target, by_shape)
        if expected is not None:
            answers[target.path, target.api] = (send(base[target.api], target.path, case.headers), expected)
    assert answers and all(got == expected for got, expected in answers.values()), answers
