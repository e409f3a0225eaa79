"""keygate explain (ExplainKeyFunction): the authorizer's decision for a key on a route, and the evidence,
without the secret. The decisive test: for keys in every state and routes of every kind, explain's
reason is exactly the one the authorizer logs for a request presenting the key."""

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from keygate.apis import ApiStage
from keygate.authorize import Reason
from keygate.explain import WHY, Settings, explain, parse_route
from keygate.field_scopes import parse_field_scopes
from keygate.records import KeyRecord
from keygate.routes import parse_route_scopes
from tests.conftest import add_pepper_version, event, invoke, remove_pepper_version
from tests.helpers.authorizer import APPSYNC_API, appsync, service_of, shaped, websocket

ROUTE_SCOPES = (
    "GET /orders*=orders:read orders:write; POST /orders*=orders:write; * /admin/*=admin; GET /hello=demo; "
    "GET /$connect=demo; POST /graphql=demo"
)
HTTP_API = "qwerty5678/$default"
CACHED = {"AUTHORIZER_CACHE_TTL": "300", "CACHED_STAGES": f"http:{HTTP_API}"}


@pytest.fixture
def explain_key(load):
    return load("ExplainKeyFunction", ROUTE_SCOPES=ROUTE_SCOPES, **CACHED)


@pytest.fixture
def scoped_authorizer(load):
    return load("AuthorizerFunction", ROUTE_SCOPES=ROUTE_SCOPES)


def logged_reason(handler, request: dict, capsys) -> str:
    capsys.readouterr()
    with contextlib.suppress(Exception):  # a REST refusal raises Unauthorized; the log has the reason either way
        invoke(handler, request)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (reason,) = [line["reason"] for line in lines if "reason" in line and "message" in line]
    return reason


def http_request(api_key: str, method: str, path: str, api_id: str = "qwerty5678") -> dict:
    request = shaped("http-api", authorization=f"Bearer {api_key}")
    request["routeArn"] = f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/$default/{method}{path}"
    request["requestContext"]["apiId"] = api_id
    return request


def rest_request(api_key: str, method: str, path: str) -> dict:
    request = shaped("rest-token", authorization=f"Bearer {api_key}")
    request["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:abcdef1234/demo/{method}{path}"
    return request


ROUTES = [
    "GET /orders/7",
    "POST /orders",
    "DELETE /admin/users/1",
    "GET /hello",
    "GET /nowhere",
    "POST /v1/items:purge",
    "GET /hello/",  # as GET /hello: one "/" more at its end
    "GET /orders%2F7",  # an encoded "/": refused whatever the key's scopes
    "GET /hello//",  # more than one "/" at its end: refused too
]
SHAPES = {  # shape -> (the API explain is asked about, its routes, the authorizer's event for a route)
    "http-api": (HTTP_API, ROUTES, http_request),
    "rest": ("abcdef1234/demo", ROUTES, rest_request),
    "websocket": ("wsapi12345/demo", ["GET /$connect"], lambda key, method, path: websocket(f"Bearer {key}")),
    "appsync": (f"{APPSYNC_API}/graphql", ["POST /graphql"], lambda key, method, path: appsync(f"Bearer {key}")),
}
STATES = [
    "active", "disabled", "revoked", "other API only", "admin", "no scopes", "in grace", "expired",
    "pepper version removed", "previous secret's pepper removed",
]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("state", STATES)
def test_explain_gives_exactly_the_authorizer_s_reason(
    state, shape, stack, issued, admin, explain_key, scoped_authorizer, capsys, monkeypatch
):
    fields = {"scopes": ["orders:read", "demo"]}
    if state == "other API only":
        fields["apis"] = ["zzzzzzzzzz/prod"]
    elif state == "admin":
        fields["scopes"] = ["admin", "orders:write"]
    elif state == "no scopes":
        fields["scopes"] = []
    elif state == "expired":
        fields["expires_at"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    key = issued(**fields)
    api_key = key["api_key"]
    if state == "disabled":
        invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": False})
    elif state == "revoked":
        invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    elif state == "in grace":  # the old secret, still verifying, is what the request presents
        invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 3600})
    elif state == "expired":
        later = datetime.now(UTC) + timedelta(hours=2)
        for handler in (explain_key, scoped_authorizer):
            monkeypatch.setattr(service_of(handler), "_clock", lambda: later)
    elif state == "pepper version removed":
        add_pepper_version(stack, "v2")
        remove_pepper_version(stack, "v1")  # the key's secret was hashed with v1
    elif state == "previous secret's pepper removed":  # a grace period whose old secret used a removed version
        add_pepper_version(stack, "v2")
        api_key = invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 3600})["api_key"]
        remove_pepper_version(stack, "v1")
    api, routes, request_for = SHAPES[shape]
    for route in routes:
        method, path = route.split(" ")
        answer = invoke(explain_key, {"key_id": key["key_id"], "route": route, "api": api})
        reason = logged_reason(scoped_authorizer, request_for(api_key, method, path), capsys)
        assert answer["reason"] == reason, route
        assert answer["decision"] == ("allow" if answer["reason"] == "Allowed" else "refuse")


def test_explain_names_the_missing_pepper_version(stack, issued, explain_key):
    key = issued(scopes=["demo"])
    add_pepper_version(stack, "v2")
    remove_pepper_version(stack, "v1")
    answer = invoke(explain_key, {"key_id": key["key_id"], "route": "GET /hello", "api": HTTP_API})
    assert (answer["decision"], answer["reason"], answer["pepper_versions_missing"]) == ("refuse", "Fault", ["v1"])
    assert "pepper version" in answer["why"]


def test_the_evidence_names_each_matching_entry_and_the_scope_that_satisfies_it(issued, explain_key):
    key = issued(scopes=["orders:read"])
    allowed = invoke(explain_key, {"key_id": key["key_id"], "route": "GET /orders/7", "api": HTTP_API})
    assert allowed["route_scopes"]["entries"] == [
        {"entry": "GET /orders*", "needs_one_of": ["orders:read", "orders:write"], "satisfied_by": ["orders:read"]}
    ]
    refused = invoke(explain_key, {"key_id": key["key_id"], "route": "POST /orders", "api": HTTP_API})
    assert (refused["decision"], refused["reason"]) == ("refuse", "MissingScope")
    assert refused["route_scopes"]["verdict"] == "not satisfied: POST /orders*"
    nowhere = invoke(explain_key, {"key_id": key["key_id"], "route": "GET /nowhere"})
    assert nowhere["route_scopes"]["verdict"] == "no RouteScopes entry matches this route: it is refused to every key"
    assert nowhere["apis"]["allows_this_api"] is None  # no API asked about


def test_the_answer_shows_grace_usage_plan_and_revocation_bound_but_never_a_secret(issued, admin, explain_key):
    key = issued(scopes=["demo"])
    rotated = invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 600})
    answer = invoke(explain_key, {"key_id": key["key_id"], "route": "GET /hello", "api": HTTP_API})
    assert answer["grace"] == {
        "previous_secret_verifies_until": rotated["previous_key_stops_working_at"],
        "previous_secret_verifies_now": True,
    }
    assert answer["usage_plan"] is None
    assert answer["revocation_bound"].endswith("this stage is in CachedStages")
    elsewhere = invoke(explain_key, {"key_id": key["key_id"], "route": "GET /hello", "api": "other12345/prod"})
    assert elsewhere["revocation_bound"].startswith("up to 300 s")
    shown = json.dumps(answer)
    assert key["api_key"] not in shown and rotated["api_key"] not in shown and "argon2" not in shown


def test_the_event_file_explains_a_key(issued, explain_key):
    key = issued(scopes=["orders:read"])
    answer = invoke(explain_key, event("explain-key.json", key_id=key["key_id"]))
    assert (answer["route"], answer["api"], answer["apis"]["allows_this_api"]) == (
        "GET /orders/7",
        "a1b2c3d4e5/prod",
        True,
    )
    assert answer["reason"] == "Allowed"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"key_id": "A" * 16, "route": "FETCH /x"}, "route"),
        ({"key_id": "A" * 16, "route": "/orders"}, "route"),
        ({"key_id": "A" * 16, "route": "GET orders"}, "route"),
        ({"key_id": "A" * 16, "route": "GET /orders*"}, "route"),
        ({"key_id": "A" * 16, "route": "GET /x", "api": "a1b2/*"}, "api"),
        ({"key_id": "nope", "route": "GET /x"}, "key_id"),
    ],
)
def test_a_question_the_authorizer_could_not_see_is_refused_naming_the_field(request_, field, explain_key):
    answer = invoke(explain_key, request_)
    assert answer["error"]["type"] == "InvalidRequest"
    assert field in answer["error"]["fields"]


def test_an_unknown_key_is_key_not_found(explain_key):
    assert invoke(explain_key, {"key_id": "A" * 16, "route": "GET /x"})["error"]["type"] == "KeyNotFound"


def _record(**fields) -> KeyRecord:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    return KeyRecord("K" * 16, "$argon2id$...", "v1", "n", "o", now - timedelta(days=1), **fields)


def test_an_expired_key_is_explained_as_the_authorizer_refuses_it():
    now = datetime(2026, 11, 25, tzinfo=UTC)
    record = _record(expires_at=now - timedelta(seconds=1))
    answer = explain(record, "GET", "/x", None, Settings(parse_route_scopes("")), now)
    assert (answer["reason"], answer["state"]) == ("ExpiredKey", "expired")


@pytest.mark.parametrize(
    ("path", "reason", "words"),
    [("/files/a%2fb", "EncodedSlash", "encoded '/' (%2F)"), ("/files/a//", "TrailingSlashes", "more than one '/'")],
)
def test_a_path_a_backend_may_read_as_another_is_explained_as_refused_whatever_the_scopes(path, reason, words):
    now = datetime(2026, 11, 25, tzinfo=UTC)
    settings = Settings(parse_route_scopes("GET /files/*=read"))
    answer = explain(_record(scopes=("read",)), "GET", path, None, settings, now)
    assert (answer["decision"], answer["reason"]) == ("refuse", reason)
    assert words in answer["why"]


@pytest.mark.parametrize(
    ("settings", "api", "bound"),
    [
        (Settings(), None, "the next request: AuthorizerCacheTtl is 0"),
        (Settings(ttl=300), ApiStage("a", "b"), "up to 300 s (AuthorizerCacheTtl): this stage is not in"),
        (Settings(appsync_ttl=60), ApiStage("a", "graphql"), "up to 60 s (AppSyncCacheTtl)"),
        (Settings(ttl=300), ApiStage("a", "b"), "the next connect; a connection already open stays open"),
    ],
)
def test_the_revocation_bound_follows_the_cache_settings(settings, api, bound):
    route = ("GET", "/$connect") if "connect" in bound else ("GET", "/x")
    assert settings.revocation_bound(api, route).startswith(bound)


@pytest.mark.parametrize("text", ["GET /$connect", "post /graphql", "PATCH /v1/items/{id}"])
def test_routes_of_every_authorizer_shape_parse(text):
    method, path = parse_route(text)
    assert method.isupper() and path.startswith("/")


def test_an_appsync_request_is_explained_with_the_fields_the_key_is_denied():
    now = datetime(2026, 11, 25, tzinfo=UTC)
    settings = Settings(field_scopes=parse_field_scopes("Mutation.createOrder=orders:write; Query.orders=orders:read"))
    record = _record(scopes=("orders:read",))
    answer = explain(record, "POST", "/graphql", ApiStage("appsyncapi1", "graphql"), settings, now)
    assert (answer["reason"], answer["appsync_denied_fields"]) == ("Allowed", ["Mutation.createOrder"])
    assert answer["revocation_bound"] == "the next request: AppSyncCacheTtl is 0, AppSync caches nothing"


def test_without_an_api_the_answer_says_which_apis_it_assumed():
    now = datetime(2026, 11, 25, tzinfo=UTC)
    answer = explain(_record(apis=("a1b2c3d4e5/prod",)), "GET", "/x", None, Settings(), now)
    assert answer["assumes"].endswith("on an API its apis allow (a1b2c3d4e5/prod): pass api to check one")


def test_every_reason_the_authorizer_can_give_has_its_words():
    """explain answers with WHY[reason]: a new Reason without its text would be a KeyError there."""
    assert set(WHY) == set(Reason)
    for reason, text in WHY.items():
        assert text.startswith("allowed: " if reason is Reason.ALLOWED else "refused: "), reason
