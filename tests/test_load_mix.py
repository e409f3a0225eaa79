"""make load's pure part: the decision it expects for each key on each route, how it judges an answer, and
its report. A bug here could make the load run pass whatever the stack answers."""

from collections import Counter

import pytest
import requests

from bench.load_mix import (
    CASES,
    DEFAULT_ROUNDS,
    HTTP,
    REST,
    ROUTE_SCOPES,
    ROUTES,
    X_API_KEY,
    Kind,
    Outcome,
    Presented,
    _call,
    check,
    expected_status,
    failures,
    forged,
    key_headers,
    mistyped,
    plan,
    render,
    summarize,
)
from bench.report import percentile
from keygate import keys
from keygate.routes import parse_route_scopes
from keygate_local.template import load_template

CASE = {case.label: case for case in CASES}
ROUTE = {(route.api, route.method, route.path): route for route in ROUTES}
REFUSED = [case for case in CASES if case.kind not in (Kind.VALID, Kind.MISSING)]

EXPECTED = [  # (key, API, method, path, API Gateway's answer)
    ("valid, every scope", REST, "GET", "/hello", 200),
    ("valid, every scope", HTTP, "POST", "/orders", 200),
    ("valid, every scope", REST, "GET", "/metered", 403),  # ApiKeyRequired, on no usage plan
    ("valid, on the usage plan", REST, "GET", "/metered", 200),
    ("valid, read-only (demo, orders:read)", REST, "GET", "/orders", 200),
    ("valid, read-only (demo, orders:read)", REST, "POST", "/orders", 403),  # the Deny policy
    ("valid, read-only (demo, orders:read)", HTTP, "POST", "/orders", 403),
    ("valid, no scope of these routes", REST, "GET", "/x-api-key/whoami", 403),
    ("valid, no scope of these routes", HTTP, "GET", "/hello", 403),
    ("valid, bound to the REST API", REST, "GET", "/whoami", 200),
    ("valid, bound to the REST API", HTTP, "GET", "/whoami", 403),
    ("valid, rotated: its new secret", HTTP, "GET", "/orders", 200),
    ("missing: no key header", REST, "GET", "/x-api-key/whoami", 401),
    ("missing: no key header", HTTP, "GET", "/hello", 401),  # no identity source: API Gateway's own 401
]


@pytest.mark.parametrize(("label", "api", "method", "path", "status"), EXPECTED)
def test_the_expected_decision_is_api_gateways(label, api, method, path, status):
    assert expected_status(CASE[label], ROUTE[(api, method, path)]) == status


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.label)
def test_a_refused_key_is_401_on_the_rest_api_and_403_on_the_http_api_on_every_route(case):
    for route in ROUTES:
        assert expected_status(case, route) == (401 if route.api == REST else 403), route


def test_the_mix_holds_every_answer_on_both_apis_and_at_least_2000_requests_a_phase():
    for api, answers in ((REST, {200, 401, 403}), (HTTP, {200, 401, 403})):
        assert {expected_status(case, route) for case in CASES for route in ROUTES if route.api == api} == answers
    work = plan(CASES, ROUTES, DEFAULT_ROUNDS, seed=7)
    assert len(work) >= 2000
    assert set(Counter(work).values()) == {DEFAULT_ROUNDS}  # each key on each route, as often
    assert (
        work == plan(CASES, ROUTES, DEFAULT_ROUNDS, seed=7) != [(c, r) for c in CASES for r in ROUTES] * DEFAULT_ROUNDS
    )


def test_the_routes_are_the_demo_apis_protected_routes_in_the_template():
    events = load_template()["Resources"]["DemoFunction"]["Properties"]["Events"].values()
    in_template = set()
    for event in events:
        properties = event["Properties"]
        api = (properties.get("RestApiId") or properties.get("ApiId") or {}).get("Ref")
        if api in (REST, HTTP):
            auth = properties.get("Auth", {})
            header = X_API_KEY if auth.get("Authorizer") == "KeygateRequest" else "Authorization"
            in_template.add((api, properties["Method"], properties["Path"], header, bool(auth.get("ApiKeyRequired"))))
    assert {(r.api, r.method, r.path, r.header, r.metered) for r in ROUTES} == in_template


def test_the_routes_scopes_are_what_route_scopes_says():
    route_scopes = parse_route_scopes(ROUTE_SCOPES)
    every_scope = set().union(*(route.scopes for route in ROUTES)) | {"billing"}
    for route in ROUTES:
        for scope in every_scope:
            assert route_scopes.allows({scope}, route.method, route.path) == (scope in route.scopes), (route, scope)


def test_the_bad_keys_are_what_they_say():
    issued = keys.generate("kg")
    with pytest.raises(keys.MalformedKey, match="checksum"):
        keys.parse(mistyped(issued.api_key), "kg")
    assert len(mistyped(issued.api_key)) == len(issued.api_key)
    other = keys.parse(forged(issued.key_id), "kg")
    assert other.key_id == issued.key_id and other.secret != issued.secret


def test_the_key_goes_in_the_routes_identity_header():
    assert key_headers(ROUTE[(REST, "GET", "/x-api-key/whoami")], "kg_x") == {"x-api-key": "kg_x"}
    assert key_headers(ROUTE[(HTTP, "GET", "/hello")], "kg_x") == {"Authorization": "Bearer kg_x"}
    assert key_headers(ROUTE[(HTTP, "GET", "/hello")], None) == {}


def test_a_wrong_status_or_another_callers_200_is_a_wrong_decision():
    body = {"key_id": "A" * 16, "route": "GET /hello"}
    assert check(200, 200, body, "A" * 16, "GET /hello") is None
    assert check(401, 401, {"message": "Unauthorized"}, None, "GET /hello") is None
    assert check(401, 200, body, None, "GET /hello") == "expected 401, got 200"
    assert check(403, 500, None, "A" * 16, "GET /hello") == "expected 403, got 500"
    assert "the route saw key_id" in check(200, 200, body | {"key_id": "B" * 16}, "A" * 16, "GET /hello")
    assert "the route saw key_id" in check(200, 200, body, "A" * 16, "GET /whoami")
    assert "the route saw key_id" in check(200, 200, None, "A" * 16, "GET /hello")


def outcome(status: int | None, expected: int = 200, api: str = "REST API", latency: float = 10.0) -> Outcome:
    problem = None if status == expected else f"expected {expected}, got {status}"
    return Outcome(api, "GET /hello", "revoked", expected, status, latency, problem)


def test_a_wrong_decision_fails_the_run_and_is_named_in_the_report():
    outcomes = [outcome(200), outcome(401, expected=401, api="HTTP API"), outcome(200, expected=401)]
    phase = summarize("cache off", {}, outcomes, elapsed_s=1.0, planned=3)
    assert phase["apis"]["both"] | {"latency_ms": None} == {
        "requests": 3, "wrong_decisions": 1, "server_errors": 0, "no_answer": 0, "requests_per_second": 3.0,
        "latency_ms": None,
    }  # fmt: skip
    found = failures([phase])
    assert found[0].startswith("cache off: 1 wrong decision(s)")
    assert found[1] == "  REST API GET /hello with 'revoked': expected 401, got 200"
    report = {"date": "2026-01-01", "machine": {"description": "x", "nproc": 3}, "command": "make load",
              "module_command": "python -m bench.load_mix", "run_seconds": 1, "clients": 8, "rounds": 1,
              "phases": [phase]}  # fmt: skip
    lines = render(report)
    assert "| cache off | both | 3 | 1 | 0 | 0 | 3.0 | 10.0 | 10.0 | 10.0 | 10.0 |" in lines
    assert "| cache off | REST API | 2 | 1 | 0 | 0 | 2.0 | 10.0 | 10.0 | 10.0 | 10.0 |" in lines
    assert "| revoked | 200: 2, 401: 1 |" in lines
    assert any("this shared 3-core machine" in line for line in lines)  # measured, not assumed


def test_a_5xx_or_no_answer_is_a_wrong_decision_and_a_short_phase_fails():
    phase = summarize("cache on", {}, [outcome(502, expected=403), outcome(None, expected=403)], 2.0, planned=2)
    both = phase["apis"]["both"]
    assert (both["wrong_decisions"], both["server_errors"], both["no_answer"]) == (2, 1, 1)
    assert failures([summarize("cache on", {}, [outcome(200)], 1.0, planned=1)]) == []
    assert failures([summarize("cache on", {}, [outcome(200)], 1.0, planned=2)]) == [
        "cache on: stopped at its deadline, 1 of 2 requests"
    ]


def test_a_request_with_no_answer_is_named_by_its_error_type_never_its_text_which_may_hold_the_key():
    api_key = keys.generate("kg").api_key

    class Refusing:
        def request(self, method, url, headers, timeout):
            raise requests.exceptions.InvalidHeader(f"Invalid header value {headers}")  # as requests words it

    presented = Presented(CASES[0], api_key, keys.parse(api_key, "kg").key_id)
    urls = {route.api: "http://127.0.0.1:9" for route in ROUTE.values()}
    answer = _call(Refusing(), urls, presented, ROUTE[(HTTP, "GET", "/hello")])
    assert (answer.status, answer.problem) == (None, "no answer: InvalidHeader")


def test_percentiles_are_nearest_rank():
    samples = [float(n) for n in range(1, 101)]
    assert [percentile(samples, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
