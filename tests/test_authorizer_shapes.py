"""The authorizer's other two shapes, WebSocket $connect and AppSync: allows, every refusal, failing
closed, and that telling the shapes apart never reads an event as another shape."""

import copy
import json
import re
from datetime import UTC, datetime

import pytest

from authorizer.request import Shape, UnrecognizedEvent, shape_of
from keygate import config, policy
from keygate.field_scopes import FieldScopes, InvalidFieldScopes, parse_field_scopes
from keygate.records import KeyRecord
from keygate.routes import parse_route_scopes
from tests.conftest import REQUIRED, event, invoke, references
from tests.helpers.authorizer import (
    APPSYNC_API,
    FAULTS,
    appsync,
    fail_get_item,
    faults,
    iam_decision,
    log_records,
    reasons,
    refusals,
    service_of,
    shaped,
    websocket,
)

CONNECT_ARN = "arn:aws:execute-api:us-east-1:123456789012:wsapi12345/demo/$connect"
FIELDS = "Mutation.createOrder=orders:write; Query.orders=orders:read orders:write; Query.audit=admin"


def connects(handler, request: dict) -> tuple[str, dict | None]:
    """How API Gateway answers a WebSocket connect: "Allow" or "Deny" (403) by the policy for the $connect
    ARN, or "Unauthorized" (401) for exactly that error."""
    try:
        response = invoke(handler, request)
    except Exception as error:
        assert str(error) == "Unauthorized"
        return "Unauthorized", None
    assert response["principalId"] and set(response) <= {"principalId", "policyDocument", "context"}
    decision = iam_decision(response, request["methodArn"])
    return ("Deny" if decision == "ImplicitDeny" else decision), response


def authorized(handler, request: dict) -> tuple[bool, dict]:
    """AppSync's answer, which always says how long it may be cached."""
    response = invoke(handler, request)
    assert set(response) <= {"isAuthorized", "resolverContext", "deniedFields", "ttlOverride"}, response
    assert isinstance(response["ttlOverride"], int)
    return response["isAuthorized"], response


# --- WebSocket $connect ---


@pytest.mark.parametrize("header", ["authorization", "api_key", "both"])
def test_a_websocket_connect_with_a_valid_key_is_allowed_with_its_context(header, issued, authorizer):
    key = issued(owner="team-a", scopes=["chat:read", "chat:write"])
    headers = {"authorization": f"Bearer {key['api_key']}", "api_key": key["api_key"]}
    if header != "both":
        headers = {header: headers[header]}
    decision, response = connects(authorizer, websocket(**headers))
    assert decision == "Allow"
    assert response["principalId"] == key["key_id"]
    assert response["context"] == {
        "key_id": key["key_id"], "owner": "team-a", "scopes": "chat:read chat:write", "matched_scopes": ""
    }  # fmt: skip


def test_a_websocket_allow_names_exactly_the_connect_route_of_this_api_and_stage(issued, authorizer):
    _, response = connects(authorizer, websocket(authorization=f"Bearer {issued()['api_key']}"))
    assert response["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [CONNECT_ARN]}
    ]
    for other in ("wsapi12345/demo/$default", "wsapi12345/prod/$connect", "otherapi99/demo/$connect"):
        assert iam_decision(response, f"arn:aws:execute-api:us-east-1:123456789012:{other}") == "ImplicitDeny", other


def test_the_websocket_event_file_works_with_a_pasted_key(issued, authorizer):
    key = issued()
    assert connects(authorizer, event("authorizer-websocket-connect.json", api_key=key["api_key"]))[0] == "Allow"


def test_a_websocket_policy_keeps_the_partition_of_the_method_arn(issued, authorizer):
    request = websocket(authorization=f"Bearer {issued()['api_key']}")
    request["methodArn"] = "arn:aws-cn:execute-api:cn-north-1:123456789012:wsapi12345/demo/$connect"
    _, response = connects(authorizer, request)
    assert response["policyDocument"]["Statement"][0]["Resource"] == [request["methodArn"]]


def test_every_bad_key_on_a_websocket_connect_is_a_401(issued, authorizer, capsys):
    key, other_key = issued(), issued()
    for case, headers, reason in refusals(key, other_key):
        capsys.readouterr()
        assert connects(authorizer, websocket(**headers)) == ("Unauthorized", None), case
        assert reasons(capsys) == [reason], case


@pytest.mark.parametrize("name", ["api_key", "x-api-key", "apiKey", "token", "Authorization", "access_token"])
def test_a_key_in_the_websocket_query_string_is_never_read(name, issued, authorizer, capsys):
    key = issued()["api_key"]
    request = websocket()
    value = f"Bearer {key}" if name == "Authorization" else key
    request["queryStringParameters"] = {name: value}
    request["multiValueQueryStringParameters"] = {name: [value]}
    capsys.readouterr()
    assert connects(authorizer, request) == ("Unauthorized", None)
    assert reasons(capsys) == ["MissingKey"]


def test_a_revoked_key_cannot_open_a_websocket_on_the_very_next_connect(issued, admin, authorizer, capsys):
    key = issued()
    request = websocket(authorization=f"Bearer {key['api_key']}")
    assert connects(authorizer, request)[0] == "Allow"
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    capsys.readouterr()
    assert connects(authorizer, request) == ("Unauthorized", None)
    assert reasons(capsys) == ["RevokedKey"]


def test_a_disabled_key_cannot_open_a_websocket_until_enabled(issued, admin, authorizer, capsys):
    key = issued()
    request = websocket(api_key=key["api_key"])
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": False})
    capsys.readouterr()
    assert connects(authorizer, request) == ("Unauthorized", None)
    assert reasons(capsys) == ["DisabledKey"]
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": True})
    assert connects(authorizer, request)[0] == "Allow"


def test_an_expired_key_cannot_open_a_websocket(issued, authorizer, capsys, monkeypatch):
    key = issued(expires_at="2030-01-01T00:00:00Z")
    request = websocket(authorization=f"Bearer {key['api_key']}")
    service = service_of(authorizer)
    expires = service._clock().replace(year=2030, month=1, day=1, hour=0, minute=0, second=0)
    monkeypatch.setattr(service, "_clock", lambda: expires)
    capsys.readouterr()
    assert connects(authorizer, request) == ("Unauthorized", None)
    assert reasons(capsys) == ["ExpiredKey"]


def test_a_live_key_for_another_api_gets_an_explicit_deny_on_connect(issued, authorizer, capsys):
    key = issued(apis=["otherapi99/*"])
    capsys.readouterr()
    decision, response = connects(authorizer, websocket(authorization=f"Bearer {key['api_key']}"))
    assert decision == "Deny" and "context" not in response
    assert response == {
        "principalId": key["key_id"],
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [CONNECT_ARN]}],
        },
    }
    assert reasons(capsys) == ["ApiNotAllowed"]
    bound = issued(apis=["wsapi12345/demo"])
    assert connects(authorizer, websocket(authorization=f"Bearer {bound['api_key']}"))[0] == "Allow"


def test_a_connect_is_the_route_get_connect_in_route_scopes(issued, load, capsys):
    scoped = load("AuthorizerFunction", ROUTE_SCOPES="GET /$connect=chat; GET /hello=hello")
    chatty, quiet = issued(scopes=["chat"]), issued(scopes=["hello"])
    capsys.readouterr()
    decision, response = connects(scoped, websocket(authorization=f"Bearer {chatty['api_key']}"))
    assert decision == "Allow" and response["context"]["matched_scopes"] == "chat"
    assert connects(scoped, websocket(authorization=f"Bearer {quiet['api_key']}"))[0] == "Deny"
    records = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert [(r["reason"], r["route"], r["api"]) for r in records] == [
        ("Allowed", "GET /$connect", "wsapi12345/demo"),
        ("MissingScope", "GET /$connect", "wsapi12345/demo"),
    ]


# --- REST beside WebSocket entries in RouteScopes ---


@pytest.mark.parametrize("scopes", [["chat"], ["hello"], ["chat", "hello"], []])
def test_a_rest_policy_beside_websocket_entries_decides_every_route_as_route_scopes(scopes, issued, load):
    scoped = load("AuthorizerFunction", ROUTE_SCOPES="GET /$connect=chat; * /$default=chat; GET /hello=hello")
    key = issued(scopes=scopes)
    request = shaped("rest-token", authorization=f"Bearer {key['api_key']}")
    try:
        response = invoke(scoped, request)
    except Exception as error:
        pytest.fail(f"a REST policy with a WebSocket entry in the map failed: {error}")
    assert iam_decision(response, request["methodArn"]) == ("Allow" if "hello" in scopes else "Deny")
    stage = request["methodArn"].rsplit("/", 2)[0]
    assert iam_decision(response, f"{stage}/GET/$connect") == ("Allow" if "chat" in scopes else "Deny")


@pytest.mark.parametrize(("scopes", "batch"), [(["read"], "Deny"), (["read", "batch"], "Allow")])
def test_a_rest_path_holding_a_dollar_is_decided_by_its_entry_cached_policy_or_not(scopes, batch, issued, load):
    """OData's /$batch: the policy API Gateway caches for the key must deny it to a key without batch,
    even though the key may read every other /odata route (the builder cannot write a "$" path)."""
    scoped = load("AuthorizerFunction", ROUTE_SCOPES="* /odata/*=read; POST /odata/$batch=batch")
    key = issued(scopes=scopes)
    request = shaped("rest-token", authorization=f"Bearer {key['api_key']}")
    stage = request["methodArn"].rsplit("/", 2)[0]
    request["methodArn"] = f"{stage}/GET/odata/orders"
    response = invoke(scoped, request)  # the policy cached for the key, built on another route
    assert iam_decision(response, f"{stage}/GET/odata/orders") == "Allow"
    assert iam_decision(response, f"{stage}/POST/odata/$batch") == batch


def test_with_only_websocket_entries_every_rest_route_is_denied_not_faulted(issued, load, capsys):
    scoped = load("AuthorizerFunction", ROUTE_SCOPES="GET /$connect=chat")
    key = issued(scopes=["chat"])
    request = shaped("rest-token", authorization=f"Bearer {key['api_key']}")
    capsys.readouterr()
    response = invoke(scoped, request)
    assert response["principalId"] == key["key_id"]
    assert iam_decision(response, request["methodArn"]) in ("Deny", "ImplicitDeny")  # API Gateway: 403 either way
    assert reasons(capsys) == ["MissingScope"]
    assert connects(scoped, websocket(authorization=f"Bearer {key['api_key']}"))[0] == "Allow"


@pytest.mark.parametrize(("scopes", "expected"), [(["batch"], "Allow"), (["read"], "Deny")])
def test_with_only_dollar_entries_an_allowed_route_is_allowed_by_the_policy(scopes, expected, issued, load, capsys):
    """Every entry a "$" path: the policy must still allow what RouteScopes allows (no deny-all beside it,
    which would win over the Allow and answer 403 to a request the authorizer logged as allowed)."""
    scoped = load("AuthorizerFunction", ROUTE_SCOPES="POST /odata/$batch=batch")
    key = issued(scopes=scopes)
    request = shaped("rest-token", authorization=f"Bearer {key['api_key']}")
    stage = request["methodArn"].rsplit("/", 2)[0]
    request["methodArn"] = f"{stage}/POST/odata/$batch"
    capsys.readouterr()
    response = invoke(scoped, request)
    assert iam_decision(response, request["methodArn"]) == expected
    assert reasons(capsys) == ["Allowed" if expected == "Allow" else "MissingScope"]
    assert iam_decision(response, f"{stage}/GET/hello") != "Allow"  # a route no entry lists


def test_route_scopes_take_a_dollar_in_a_path_and_match_it_literally():
    scopes = parse_route_scopes("GET /$connect=chat")
    assert scopes.allows(["chat"], "GET", "/$connect")
    assert not scopes.allows(["chat"], "GET", "/xconnect") and not scopes.allows(["chat"], "POST", "/$connect")


# --- AppSync ---


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", ""])
def test_an_appsync_request_with_a_valid_key_is_authorized_with_its_resolver_context(scheme, issued, authorizer):
    key = issued(owner="team-a", scopes=["orders:read"])
    allowed, response = authorized(authorizer, appsync(f"{scheme}{key['api_key']}"))
    assert allowed
    assert response == {
        "isAuthorized": True,
        "ttlOverride": 0,
        "resolverContext": {"key_id": key["key_id"], "owner": "team-a", "scopes": "orders:read", "matched_scopes": ""},
    }


def test_the_appsync_event_file_works_with_a_pasted_key(issued, authorizer):
    key = issued()
    assert authorized(authorizer, event("authorizer-appsync.json", api_key=key["api_key"]))[0]


def test_every_bad_key_on_appsync_is_refused_and_never_cached(issued, authorizer, capsys):
    key, other_key = issued(), issued()
    for case, headers, reason in refusals(key, other_key):
        if "api_key" in headers:
            continue  # AppSync passes the Authorization header alone
        capsys.readouterr()
        response = invoke(authorizer, appsync(headers.get("authorization", "")))
        assert response == {"isAuthorized": False, "ttlOverride": 0}, case
        assert reasons(capsys) == [reason], case


def test_a_revoked_disabled_or_expired_key_is_refused_by_appsync(issued, admin, authorizer, capsys, monkeypatch):
    revoked, disabled, expiring = issued(), issued(), issued(expires_at="2030-01-01T00:00:00Z")
    for key in (revoked, disabled, expiring):
        assert authorized(authorizer, appsync(f"Bearer {key['api_key']}"))[0]
    invoke(admin["RevokeKey"], {"key_id": revoked["key_id"]})
    invoke(admin["UpdateKey"], {"key_id": disabled["key_id"], "enabled": False})
    service = service_of(authorizer)
    expires = service._clock().replace(year=2030, month=1, day=1, hour=0, minute=0, second=0)
    monkeypatch.setattr(service, "_clock", lambda: expires)
    capsys.readouterr()
    for key in (revoked, disabled, expiring):
        assert invoke(authorizer, appsync(f"Bearer {key['api_key']}")) == {"isAuthorized": False, "ttlOverride": 0}
    assert reasons(capsys) == ["RevokedKey", "DisabledKey", "ExpiredKey"]


def test_an_appsync_api_is_api_id_slash_graphql_in_a_keys_apis(issued, authorizer, capsys):
    bound = issued(apis=[f"{APPSYNC_API}/graphql"])
    elsewhere = issued(apis=[f"{APPSYNC_API}/prod", "otherapi99/*"])
    assert authorized(authorizer, appsync(f"Bearer {bound['api_key']}"))[0]
    capsys.readouterr()
    assert invoke(authorizer, appsync(f"Bearer {elsewhere['api_key']}")) == {"isAuthorized": False, "ttlOverride": 0}
    assert reasons(capsys) == ["ApiNotAllowed"]


def test_an_appsync_request_is_the_route_post_graphql_in_route_scopes(issued, load, capsys):
    scoped = load("AuthorizerFunction", ROUTE_SCOPES="POST /graphql=orders:read; GET /hello=hello")
    reader, other = issued(scopes=["orders:read"]), issued(scopes=["hello"])
    capsys.readouterr()
    allowed, response = authorized(scoped, appsync(f"Bearer {reader['api_key']}"))
    assert allowed and response["resolverContext"]["matched_scopes"] == "orders:read"
    assert invoke(scoped, appsync(f"Bearer {other['api_key']}")) == {"isAuthorized": False, "ttlOverride": 0}
    records = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert [(r["reason"], r["route"], r["api"]) for r in records] == [
        ("Allowed", "POST /graphql", f"{APPSYNC_API}/graphql"),
        ("MissingScope", "POST /graphql", f"{APPSYNC_API}/graphql"),
    ]


@pytest.mark.parametrize(
    ("scopes", "denied"),
    [
        (["orders:read"], ["Mutation.createOrder", "Query.audit"]),
        (["orders:write"], ["Query.audit"]),
        (["admin"], ["Mutation.createOrder", "Query.orders"]),
        ([], ["Mutation.createOrder", "Query.orders", "Query.audit"]),
        (["orders:write", "admin"], None),
    ],
)
def test_appsync_denies_the_fields_whose_scopes_the_key_lacks(scopes, denied, issued, load):
    fielded = load("AuthorizerFunction", APPSYNC_FIELD_SCOPES=FIELDS)
    allowed, response = authorized(fielded, appsync(f"Bearer {issued(scopes=scopes)['api_key']}"))
    assert allowed
    assert response.get("deniedFields") == denied  # a field no entry lists (Query.me) is never denied


def test_appsync_caches_an_allow_for_appsync_cache_ttl_and_a_refusal_never(issued, load):
    cached = load("AuthorizerFunction", APPSYNC_CACHE_TTL="300")
    key = issued()
    assert authorized(cached, appsync(f"Bearer {key['api_key']}"))[1]["ttlOverride"] == 300
    refused = authorized(cached, appsync(f"Bearer {key['api_key'][:-1]}x"))
    assert refused == (False, {"isAuthorized": False, "ttlOverride": 0})


# --- failing closed ---


@pytest.mark.parametrize("name", FAULTS)
@pytest.mark.parametrize("shape", ["websocket", "appsync"])
def test_every_fault_is_a_refusal_nothing_caches(shape, name, stack, issued, load, monkeypatch, capsys):
    key = issued()
    faults(stack, monkeypatch, key)[name]()
    fresh = load("AuthorizerFunction", APPSYNC_CACHE_TTL="300")  # a fresh container: nothing cached
    capsys.readouterr()
    if shape == "websocket":
        assert connects(fresh, websocket(authorization=f"Bearer {key['api_key']}")) == ("Unauthorized", None)
    else:
        assert invoke(fresh, appsync(f"Bearer {key['api_key']}")) == {"isAuthorized": False, "ttlOverride": 0}
    (record,) = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert (record["level"], record["reason"], record["key_id"]) == ("ERROR", "Fault", key["key_id"]), name


@pytest.mark.parametrize("shape", ["websocket", "appsync"])
def test_a_fault_does_not_outlast_itself_on_the_new_shapes(shape, issued, authorizer, monkeypatch):
    key = issued()
    request = websocket(api_key=key["api_key"]) if shape == "websocket" else appsync(key["api_key"])
    with monkeypatch.context() as fault:
        fail_get_item(fault, "ThrottlingException")
        if shape == "websocket":
            assert connects(authorizer, request)[0] == "Unauthorized"
        else:
            assert not authorized(authorizer, request)[0]
    assert (connects(authorizer, request)[0] == "Allow") if shape == "websocket" else authorized(authorizer, request)[0]


def test_the_key_appears_in_no_log_line_and_no_answer(issued, load, capsys):
    scoped = load("AuthorizerFunction", ROUTE_SCOPES="GET /$connect=chat; POST /graphql=chat", APPSYNC_CACHE_TTL="60")
    key = issued(scopes=["chat"])["api_key"]
    capsys.readouterr()
    answers = [
        invoke(scoped, websocket(authorization=f"Bearer {key}")),
        invoke(scoped, appsync(f"Bearer {key}")),
        invoke(scoped, appsync(key)),
    ]
    captured = capsys.readouterr()
    secret = key.split("_")[2]
    assert answers[1]["isAuthorized"] and answers[2]["isAuthorized"]
    assert secret not in captured.out + captured.err and secret not in json.dumps(answers)


# --- telling the shapes apart ---


@pytest.mark.parametrize(
    ("name", "shape"),
    [("authorizer-rest-token.json", Shape.REST_TOKEN), ("authorizer-rest-request.json", Shape.REST_REQUEST),
     ("authorizer-http-api.json", Shape.HTTP_API), ("authorizer-websocket-connect.json", Shape.WEBSOCKET),
     ("authorizer-appsync.json", Shape.APPSYNC)],
)  # fmt: skip
def test_each_event_file_is_its_own_shape(name, shape):
    assert shape_of(event(name)) is shape


def _broken(request: dict, change) -> dict:
    request = copy.deepcopy(request)
    change(request)
    return request


WS = "authorizer-websocket-connect.json"
APPSYNC = "authorizer-appsync.json"
# (case, events file, how it is changed): each must be refused though it carries a valid key.
NOT_A_SHAPE = [
    ("websocket message, not a connect", WS, lambda r: r["requestContext"].update(eventType="MESSAGE")),
    ("websocket $default route", WS, lambda r: r["requestContext"].update(routeKey="$default")),
    ("websocket event without eventType", WS, lambda r: r["requestContext"].pop("eventType")),
    ("websocket connect whose ARN is a REST route", WS,
     lambda r: r.update(methodArn="arn:aws:execute-api:us-east-1:123456789012:wsapi12345/demo/GET/hello")),
    ("websocket connect whose ARN is another route", WS,
     lambda r: r.update(methodArn="arn:aws:execute-api:us-east-1:123456789012:wsapi12345/demo/$default")),
    ("websocket connect ARN without a stage", WS,
     lambda r: r.update(methodArn="arn:aws:execute-api:us-east-1:123456789012:wsapi12345/$connect")),
    ("websocket event with a version", WS, lambda r: r.update(version="1.0")),
    ("websocket ARN without a requestContext", WS, lambda r: r.pop("requestContext")),
    ("rest request marked as a websocket", "authorizer-rest-request.json",
     lambda r: r["requestContext"].update(connectionId="XYZ1aeTVoAMCJkg=")),
    ("appsync without apiId", APPSYNC, lambda r: r["requestContext"].pop("apiId")),
    ("appsync with an empty apiId", APPSYNC, lambda r: r["requestContext"].update(apiId="")),
    ("appsync without requestContext", APPSYNC, lambda r: r.pop("requestContext")),
    ("appsync with a token that is not a string", APPSYNC, lambda r: r.update(authorizationToken=["x"])),
    ("appsync event typed as a TOKEN event", APPSYNC, lambda r: r.update(type="TOKEN")),
    ("appsync event typed as a REQUEST event", APPSYNC, lambda r: r.update(type="REQUEST")),
    ("token alone", APPSYNC, lambda r: [r.pop(field) for field in ("requestContext", "requestHeaders")]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "name", "change"), NOT_A_SHAPE, ids=[case for case, _, _ in NOT_A_SHAPE])
def test_an_event_with_one_shapes_marks_and_not_all_its_fields_is_refused(case, name, change, issued, authorizer):
    request = _broken(event(name, api_key=issued()["api_key"]), change)
    with pytest.raises(Exception, match="^Unauthorized$"):
        invoke(authorizer, request)


def test_shape_detection_refuses_what_it_cannot_name():
    for request in ({}, [], "x", {"type": "WHATEVER"}, {"authorizationToken": "x"}, {"requestContext": {"apiId": "a"}}):
        with pytest.raises(UnrecognizedEvent):
            shape_of(request)


# --- configuration and template ---


def test_field_scopes_parse_in_order_and_deny_what_the_key_lacks():
    parsed = parse_field_scopes(f" {FIELDS} ; ")
    assert [rule.field for rule in parsed.rules] == ["Mutation.createOrder", "Query.orders", "Query.audit"]
    assert parsed.denied(["orders:read"]) == ["Mutation.createOrder", "Query.audit"]
    assert parse_field_scopes("") == FieldScopes() and FieldScopes().denied([]) == []


@pytest.mark.parametrize(
    ("text", "named"),
    [("Query.orders", "'Query.orders'"), ("orders=read", "'orders=read'"), ("Query.orders=", "names no scope"),
     ("Query.1x=a", "'Query.1x=a'"), ("Query.orders.id=a", "Query.orders.id=a"), ("Query.orders=a b!", "'b!'"),
     ("Query.a=x; Query.a=y", "Query.a is listed twice"), ("Query.ok=a; Bad Field=b", "'Bad Field=b'"),
     ("arn:aws:appsync:us-east-1:1:apis/x/types/Query/fields/a=b", "arn:aws:appsync")],
)  # fmt: skip
def test_a_malformed_field_map_is_refused_naming_the_entry(text, named):
    with pytest.raises(InvalidFieldScopes, match=re.escape(named)):
        parse_field_scopes(text)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"APPSYNC_FIELD_SCOPES": "Query.orders"}, "APPSYNC_FIELD_SCOPES: entry 'Query.orders' is not"),
     ({"APPSYNC_CACHE_TTL": "3601"}, "APPSYNC_CACHE_TTL"), ({"APPSYNC_CACHE_TTL": "-1"}, "APPSYNC_CACHE_TTL"),
     ({"APPSYNC_CACHE_TTL": "soon"}, "APPSYNC_CACHE_TTL")],
)  # fmt: skip
def test_a_bad_appsync_setting_fails_at_start_naming_the_variable(overrides, named, stack, load):
    with pytest.raises(config.ConfigError, match=re.escape(named)):
        config.load(REQUIRED | overrides)
    with pytest.raises(Exception, match=re.escape(named)):
        load("AuthorizerFunction", **overrides)


def test_appsync_settings_are_read_from_the_environment():
    settings = config.load(REQUIRED | {"APPSYNC_CACHE_TTL": "120", "APPSYNC_FIELD_SCOPES": FIELDS})
    assert (settings.appsync_cache_ttl, settings.appsync_field_scopes) == (120, parse_field_scopes(FIELDS))
    assert (config.load(REQUIRED).appsync_cache_ttl, config.load(REQUIRED).appsync_field_scopes) == (0, FieldScopes())


def test_the_template_passes_the_appsync_parameters_to_the_authorizer_only(template):
    parameters = template["Parameters"]
    assert parameters["AppSyncCacheTtl"]["Default"] == config.Config.appsync_cache_ttl == 0
    assert (parameters["AppSyncCacheTtl"]["MinValue"], parameters["AppSyncCacheTtl"]["MaxValue"]) == (0, 3600)
    assert parameters["AppSyncFieldScopes"]["Default"] == ""
    pattern = parameters["AppSyncFieldScopes"]["AllowedPattern"]
    assert re.fullmatch(pattern, FIELDS) and re.fullmatch(pattern, "") and not re.fullmatch(pattern, "Query.a=b\n")
    for name, resource in template["Resources"].items():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        deciders = ("AuthorizerFunction", "ExplainKeyFunction")  # explain gives the authorizer's own decision
        assert bool({"APPSYNC_CACHE_TTL", "APPSYNC_FIELD_SCOPES"} & set(variables)) == (name in deciders)
    explained = template["Resources"]["ExplainKeyFunction"]["Properties"]["Environment"]["Variables"]
    authorizer = template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    for name in ("ROUTE_SCOPES", "APPSYNC_CACHE_TTL", "APPSYNC_FIELD_SCOPES"):
        assert explained[name] == authorizer[name]
    variables = template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["APPSYNC_CACHE_TTL"] == {"Ref": "AppSyncCacheTtl"}
    assert variables["APPSYNC_FIELD_SCOPES"] == {"Ref": "AppSyncFieldScopes"}


def test_the_demo_websocket_api_guards_connect_with_the_authorizer(template):
    resources = template["Resources"]
    assert resources["DemoWebSocketApi"]["Properties"]["ProtocolType"] == "WEBSOCKET"
    authorizer = resources["DemoWebSocketAuthorizer"]["Properties"]
    assert (authorizer["AuthorizerType"], authorizer["IdentitySource"]) == (
        "REQUEST", ["route.request.header.Authorization"]
    )  # fmt: skip
    text, invoked = authorizer["AuthorizerUri"]["Fn::Sub"]
    assert text.endswith("/functions/${Invoked}/invocations") and invoked == {
        "Invoked": {"Ref": "AuthorizerFunction.Alias"}
    }
    routes = {spec["Properties"]["RouteKey"]: spec["Properties"] for spec in resources.values()
              if spec["Type"] == "AWS::ApiGatewayV2::Route"}  # fmt: skip
    assert set(routes) == {"$connect", "$default"}
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert routes["$connect"]["AuthorizerId"] == {"Ref": "DemoWebSocketAuthorizer"}
    permissions = {references(spec["Properties"]["FunctionName"]).pop(): spec["Properties"]["SourceArn"]["Fn::Sub"]
                   for spec in resources.values() if spec["Type"] == "AWS::Lambda::Permission"
                   and "DemoWebSocketApi" in json.dumps(spec)}  # fmt: skip
    assert permissions["AuthorizerFunction.Alias"].endswith(
        "${DemoWebSocketApi}/authorizers/${DemoWebSocketAuthorizer}"
    )
    assert permissions["DemoFunction"].endswith("${DemoWebSocketApi}/${DemoWebSocketStage}/*")
    assert template["Outputs"]["DemoWebSocketUrl"]["Value"]["Fn::Sub"].startswith("wss://${DemoWebSocketApi}.")


def test_the_websocket_and_appsync_answers_are_pure():
    record = KeyRecord("K", "$argon2id$x", "v1", "n", "o", datetime(2026, 1, 1, tzinfo=UTC), scopes=("a",))
    assert policy.appsync_refusal() == {"isAuthorized": False, "ttlOverride": 0}
    assert policy.appsync(record, ("a",), [], 0) == {
        "isAuthorized": True, "ttlOverride": 0,
        "resolverContext": {"key_id": "K", "owner": "o", "scopes": "a", "matched_scopes": "a"},
    }  # fmt: skip
    assert policy.websocket_deny("K", CONNECT_ARN)["policyDocument"]["Statement"][0]["Resource"] == [CONNECT_ARN]
