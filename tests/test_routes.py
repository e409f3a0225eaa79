"""Scopes mapped to routes (RouteScopes): the map's syntax and meaning, and the authorizer applying it in
every shape, REST answering with a policy that is right for every route of the stage."""

import re

import pytest

from keygate import config
from keygate.routes import InvalidRouteScopes, parse_route_scopes
from tests.conftest import REQUIRED, invoke, mistyped
from tests.helpers.authorizer import API, SHAPES, decide, iam_decision, log_records, routed

MAP = "GET /orders*=orders:read orders:write; POST /orders*=orders:write; * /admin/*=admin; GET /=home"

# (key's scopes, method, path, allowed?)
DECISIONS = [
    (["orders:read"], "GET", "/orders", True),
    (["orders:read"], "GET", "/orders/42/lines", True),
    (["orders:write"], "GET", "/orders", True),  # either scope of the entry will do
    (["orders:read"], "POST", "/orders", False),
    (["orders:write"], "POST", "/orders/42", True),
    (["orders:read"], "DELETE", "/orders/42", False),  # no entry lists DELETE /orders: refused
    (["admin"], "DELETE", "/admin/users/7", True),
    (["admin"], "GET", "/admin", True),  # /admin/* matches /admin/, and so /admin: one "/" more at its end
    (["orders:read"], "GET", "/admin", False),
    (["orders:read", "admin"], "GET", "/orders", True),
    ([], "GET", "/orders", False),
    (["home"], "GET", "/", True),
    (["home"], "GET", "/hello", False),  # a route no entry lists
    (["admin"], "PUT", "/internal/admin/x", False),  # the * method is a method: it never spans a "/"
    (["admin"], "DELETE", "/billing/admin/purge", False),
    (["orders:read"], "GET", "/orders/admin/x", True),
    (["home"], "GET", "/:purge", False),  # a colon in the path is part of it, not the ARN's separator
    (["orders:read"], "GET", "/orders:batch", True),
]
# Overlapping entries: a request matching both needs a scope of each.
OVERLAP = "GET /reports*=reports; GET /reports/finance*=finance"
# Issue 21's map: API Gateway is reported to route /admin/ to /admin, so /admin/ needs what /admin needs.
SLASHED = "GET /*=read; * /admin=admin"
# (map, path): the path differs from the admin entry's only by one "/" at its end.
TWINS = [(SLASHED, "/admin/"), ("GET /*=read; * /admin/=admin", "/admin"), ("GET /*=read; * /admin/*=admin", "/admin")]
# Issue 21's other map: a backend may decode /files/secret%2Fx into /files/secret/x.
FILES = "GET /files/*=read; GET /files/secret/*=secret"
# (map, path, reason): paths a map refuses to every key, as a backend may read them as another path.
UNREADABLE = [
    (FILES, "/files/secret%2Fx", "EncodedSlash"),
    (FILES, "/files/secret%2fx", "EncodedSlash"),
    (FILES, "/files/%2F", "EncodedSlash"),
    (SLASHED, "/admin//", "TrailingSlashes"),
    (FILES, "/files/x///", "TrailingSlashes"),
]


@pytest.mark.parametrize(("scopes", "method", "path", "allowed"), DECISIONS)
def test_a_request_needs_a_scope_of_every_entry_that_matches_it(scopes, method, path, allowed):
    assert parse_route_scopes(MAP).allows(scopes, method, path) is allowed


@pytest.mark.parametrize(
    ("scopes", "path", "allowed"),
    [(["reports"], "/reports/sales", True), (["reports"], "/reports/finance/q3", False),
     (["finance"], "/reports/finance/q3", False), (["reports", "finance"], "/reports/finance/q3", True)],
)  # fmt: skip
def test_overlapping_entries_all_apply(scopes, path, allowed):
    assert parse_route_scopes(OVERLAP).allows(scopes, "GET", path) is allowed


@pytest.mark.parametrize(("text", "path"), TWINS)
def test_a_path_with_one_slash_more_or_fewer_at_its_end_needs_what_the_entry_needs(text, path):
    assert not parse_route_scopes(text).allows(["read"], "GET", path)
    assert parse_route_scopes(text).allows(["read", "admin"], "GET", path)


def test_an_empty_map_allows_every_route():
    assert parse_route_scopes("").allows([], "DELETE", "/anything")
    assert parse_route_scopes(" ; ").rules == ()


@pytest.mark.parametrize(
    ("text", "named"),
    [("GET /orders", "GET /orders"), ("FETCH /x=a", "FETCH"), ("GET orders=a", "GET orders=a"),
     ("GET /x=", "names no scope"), ("GET /x?y=a", "GET /x?y=a"), ("GET /x=a b!", "'b!'"),
     ("GET /ok=a; POST /bad path=b", "POST /bad path=b"), ("get /x=a", "'get'")],
)  # fmt: skip
def test_a_malformed_map_is_refused_naming_the_entry(text, named):
    with pytest.raises(InvalidRouteScopes, match=re.escape(named)):
        parse_route_scopes(text)


def test_a_malformed_map_fails_the_function_at_start(stack, load):
    with pytest.raises(Exception, match="ROUTE_SCOPES: entry 'POST /orders' is not") as raised:
        load("AuthorizerFunction", ROUTE_SCOPES="GET /orders=orders:read; POST /orders")
    assert type(raised.value).__name__ == "ConfigError"  # the container's own class, imported afresh
    assert config.load(REQUIRED | {"ROUTE_SCOPES": MAP}).route_scopes == parse_route_scopes(MAP)
    with pytest.raises(config.ConfigError, match="ROUTE_SCOPES: entry 'GET /x' is not"):
        config.load(REQUIRED | {"ROUTE_SCOPES": "GET /x"})


DECIDERS = {"AuthorizerFunction", "ExplainKeyFunction"}  # explain answers what the authorizer would decide


def test_the_template_passes_the_parameter_to_the_authorizer_and_explain_only(template):
    assert template["Parameters"]["RouteScopes"]["Default"] == ""
    for name, resource in template["Resources"].items():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        assert ("ROUTE_SCOPES" in variables) == (name in DECIDERS), name
    for name in DECIDERS:
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["ROUTE_SCOPES"] == {"Ref": "RouteScopes"}, name


# --- the authorizer ---


@pytest.fixture
def scoped(load):
    """The authorizer with MAP, in a fresh container."""
    return load("AuthorizerFunction", ROUTE_SCOPES=MAP)


@pytest.mark.parametrize(("scopes", "method", "path", "allowed"), DECISIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_the_authorizer_decides_each_route_by_the_map(shape, scopes, method, path, allowed, issued, scoped, capsys):
    key = issued(scopes=scopes)
    capsys.readouterr()
    decided, response = decide(scoped, routed(shape, key["api_key"], method, path))
    assert decided is allowed
    (record,) = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert (record["reason"], record["route"]) == ("Allowed" if allowed else "MissingScope", f"{method} {path}")
    if shape == "http-api":
        assert response == ({"isAuthorized": False} if not allowed else response)
    else:
        assert response is not None, "a valid key without the scope gets a policy (403), never Unauthorized (401)"


@pytest.mark.parametrize("shape", ["rest-token", "rest-request"])
def test_one_rest_policy_is_right_for_every_route_as_api_gateway_reuses_it(shape, issued, scoped):
    """The policy answered for one route decides every other route exactly as the map does."""
    for scopes in (["orders:read"], ["orders:write"], ["admin"], ["home", "orders:read"], ["nothing"]):
        key = issued(scopes=scopes)
        _, policy = decide(scoped, routed(shape, key["api_key"], "GET", "/orders"))
        for _, method, path, _ in DECISIONS:
            expected = parse_route_scopes(MAP).allows(scopes, method, path)
            assert (iam_decision(policy, f"{API}/{method}{path}") == "Allow") is expected, (scopes, method, path)
        assert iam_decision(policy, f"{API.replace('demo', 'prod')}/GET/orders") == "ImplicitDeny"


def test_a_key_without_the_scope_is_refused_with_403_and_a_bad_key_with_401(issued, scoped):
    key = issued(scopes=["orders:read"])
    _, policy = decide(scoped, routed("rest-token", key["api_key"], "POST", "/orders"))
    assert iam_decision(policy, f"{API}/POST/orders") == "Deny"  # API Gateway: 403
    with pytest.raises(Exception, match="^Unauthorized$"):  # API Gateway: 401
        invoke(scoped, routed("rest-token", mistyped(key["api_key"]), "POST", "/orders"))


@pytest.mark.parametrize("shape", SHAPES)
def test_the_context_names_the_scopes_that_matched_this_route(shape, issued, scoped):
    key = issued(scopes=["admin", "orders:read", "orders:write"])
    _, response = decide(scoped, routed(shape, key["api_key"], "POST", "/orders/9"))
    context = response["context"]
    assert (context["scopes"], context["matched_scopes"]) == ("admin orders:read orders:write", "orders:write")


def test_without_a_map_the_policy_allows_every_route_as_before(issued, authorizer):
    _, policy = decide(authorizer, routed("rest-token", issued()["api_key"], "GET", "/orders"))
    assert iam_decision(policy, f"{API}/DELETE/anything/at/all") == "Allow"


def test_http_api_answers_are_cached_per_method_and_path(template):
    """HTTP API caches an answer under its identity sources: with the method and path among them, two
    requests that RouteScopes may decide differently never share a cache entry."""
    identity = template["Resources"]["DemoHttpApi"]["Properties"]["Auth"]["Authorizers"]["KeygateLambda"]["Identity"]
    assert identity["Headers"] == ["Authorization"] and identity["Context"] == ["httpMethod", "path"]


def test_a_deny_statement_keeps_an_overlapping_entry_from_allowing(issued, load):
    authorizer = load("AuthorizerFunction", ROUTE_SCOPES=OVERLAP)
    key = issued(scopes=["reports"])
    _, policy = decide(authorizer, routed("rest-token", key["api_key"], "GET", "/reports/sales"))
    assert iam_decision(policy, f"{API}/GET/reports/sales") == "Allow"
    assert iam_decision(policy, f"{API}/GET/reports/finance/q3") == "Deny"  # the Allow of /reports* matches too


@pytest.mark.parametrize(("text", "path"), TWINS)
@pytest.mark.parametrize("shape", SHAPES)
def test_a_slash_more_or_fewer_at_the_end_of_the_path_does_not_escape_an_entry(shape, text, path, issued, load):
    authorizer = load("AuthorizerFunction", ROUTE_SCOPES=text)
    assert decide(authorizer, routed(shape, issued(scopes=["read"])["api_key"], "GET", path))[0] is False
    assert decide(authorizer, routed(shape, issued(scopes=["read", "admin"])["api_key"], "GET", path))[0] is True


@pytest.mark.parametrize(("text", "path"), TWINS)
def test_a_cached_rest_policy_gives_a_slash_more_or_fewer_what_the_entry_needs(text, path, issued, load):
    """The policy answered for another route decides the twin path as the authorizer does."""
    authorizer = load("AuthorizerFunction", ROUTE_SCOPES=text)
    for scopes, effect in ((["read"], "Deny"), (["read", "admin"], "Allow")):
        _, policy = decide(authorizer, routed("rest-token", issued(scopes=scopes)["api_key"], "GET", "/hello"))
        assert iam_decision(policy, f"{API}/GET{path}") == effect, scopes
        assert iam_decision(policy, f"{API}/GET/hello/") == "Allow", "/* covers /hello/"


@pytest.mark.parametrize(("text", "path", "reason"), UNREADABLE)
@pytest.mark.parametrize("shape", SHAPES)
def test_a_path_a_backend_may_read_as_another_is_refused_to_a_key_with_every_scope(
    shape, text, path, reason, issued, load, capsys
):
    authorizer = load("AuthorizerFunction", ROUTE_SCOPES=text)
    key = issued(scopes=["read", "secret", "admin"])
    capsys.readouterr()
    decided, response = decide(authorizer, routed(shape, key["api_key"], "GET", path))
    assert decided is False
    assert response is not None, "a valid key refused for the route gets 403, never 401"
    assert [r["reason"] for r in log_records(capsys.readouterr().out) if "reason" in r] == [reason]


@pytest.mark.parametrize(("text", "path", "reason"), UNREADABLE)
def test_a_cached_rest_policy_denies_such_a_path_on_every_route(text, path, reason, issued, load):
    """The policy answered for a route the key may call denies the path for every method, not the routes beside it."""
    authorizer = load("AuthorizerFunction", ROUTE_SCOPES=text)
    key = issued(scopes=["read", "secret", "admin"])
    _, policy = decide(authorizer, routed("rest-token", key["api_key"], "GET", "/files/a"))
    assert iam_decision(policy, f"{API}/GET/files/a") == "Allow"
    for method in ("GET", "DELETE"):
        assert iam_decision(policy, f"{API}/{method}{path}") == "Deny", method
    assert iam_decision(policy, f"{API}/GET/files/a/") == "Allow", "one trailing slash is the same route"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("path", ["/files/secret%2Fx", "/admin//"])
def test_without_a_map_such_a_path_is_allowed_as_every_path_is(shape, path, issued, authorizer):
    assert decide(authorizer, routed(shape, issued()["api_key"], "GET", path))[0] is True


@pytest.mark.parametrize(("text", "path", "reason"), UNREADABLE)
def test_the_rest_answer_refusing_such_a_path_still_allows_the_keys_other_routes(text, path, reason, issued, load):
    """API Gateway caches the answer for the key's every route: a deny-all would lock it out for the TTL."""
    authorizer = load("AuthorizerFunction", ROUTE_SCOPES=text)
    key = issued(scopes=["read", "secret", "admin"])
    _, policy = decide(authorizer, routed("rest-token", key["api_key"], "GET", path))
    assert iam_decision(policy, f"{API}/GET{path}") == "Deny"
    assert iam_decision(policy, f"{API}/GET/files/a") == "Allow"
