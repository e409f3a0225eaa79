"""The authorizer in each of its three event shapes: allows, refusals, and failing closed."""

import copy
import fnmatch
import socket
import threading
from datetime import UTC, datetime, timedelta

import botocore.client
import pytest

from keygate import keys
from tests.conftest import add_pepper_version, invoke, mistyped, remove_pepper_version, wrong_secret
from tests.helpers.authorizer import (
    FAULTS,
    SHAPES,
    decide,
    fail_get_item,
    faults,
    log_records,
    reasons,
    refusals,
    refused_as_a_fault,
    service_of,
    shaped,
)

# --- allowed ---


@pytest.mark.parametrize("shape", SHAPES)
def test_valid_key_is_allowed_with_its_context(shape, issued, authorizer):
    key = issued(owner="team-a", scopes=["invoices:read", "invoices:write"])
    header = {"api_key": key["api_key"]} if shape == "rest-request" else {"authorization": f"Bearer {key['api_key']}"}
    allowed, response = decide(authorizer, shaped(shape, **header))
    assert allowed
    expected_context = {
        "key_id": key["key_id"], "owner": "team-a", "scopes": "invoices:read invoices:write", "matched_scopes": ""
    }  # fmt: skip
    assert response["context"] == expected_context
    if shape != "http-api":
        assert response["principalId"] == key["key_id"]


@pytest.mark.parametrize("shape", ["rest-token", "rest-request"])
def test_rest_policy_covers_every_route_of_this_api_and_stage_only(shape, issued, authorizer):
    key = issued()
    allowed, response = decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))
    (statement,) = response["policyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    (resource,) = statement["Resource"]
    api = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234"
    for route in ("demo/GET/hello", "demo/GET/whoami", "demo/POST/orders/42", "demo/DELETE/x-api-key/whoami"):
        assert fnmatch.fnmatchcase(f"{api}/{route}", resource), route
    for route in ("prod/GET/hello", "demo2/GET/hello"):
        assert not fnmatch.fnmatchcase(f"{api}/{route}", resource), route
    assert not fnmatch.fnmatchcase("arn:aws:execute-api:us-east-1:123456789012:otherapi99/demo/GET/hello", resource)


def test_policy_keeps_the_partition_of_the_method_arn(issued, authorizer):
    key = issued()
    request = shaped("rest-token", authorization=f"Bearer {key['api_key']}")
    request["methodArn"] = "arn:aws-cn:execute-api:cn-north-1:123456789012:abcdef1234/demo/GET/hello"
    _, response = decide(authorizer, request)
    assert response["policyDocument"]["Statement"][0]["Resource"] == [
        "arn:aws-cn:execute-api:cn-north-1:123456789012:abcdef1234/demo/*/*"
    ]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
@pytest.mark.parametrize("shape", SHAPES)
def test_bearer_scheme_is_case_insensitive(shape, scheme, issued, authorizer):
    key = issued()
    assert decide(authorizer, shaped(shape, authorization=f"{scheme} {key['api_key']}"))[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_x_api_key_header_alone_is_accepted(shape, issued, authorizer):
    key = issued()
    assert decide(authorizer, shaped(shape, api_key=key["api_key"]))[0]


@pytest.mark.parametrize("shape", ["rest-request", "http-api"])
def test_both_headers_with_the_same_key_are_accepted(shape, issued, authorizer):
    key = issued()
    assert decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}", api_key=key["api_key"]))[0]


# API Gateway caches an answer under the identity-source header alone. Were a valid x-api-key allowed
# beside "Authorization: Bearer" (or another scheme), the allow would be cached under that header's
# value, and anyone sending the same value would be let in. So any such pair is refused.
@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
@pytest.mark.parametrize("shape", ["rest-request", "http-api"])
def test_a_valid_x_api_key_beside_another_authorization_is_refused(shape, authorization, issued, authorizer, capsys):
    key = issued()
    capsys.readouterr()
    assert not decide(authorizer, shaped(shape, authorization=authorization, api_key=key["api_key"]))[0]
    assert reasons(capsys) == ["MalformedKey"]


def test_a_rest_header_sent_twice_with_different_values_is_refused(issued, authorizer, capsys):
    key, other = issued(), issued()
    request = shaped("rest-request", authorization=f"Bearer {key['api_key']}")
    request["multiValueHeaders"]["Authorization"] = [f"Bearer {other['api_key']}", f"Bearer {key['api_key']}"]
    capsys.readouterr()
    assert not decide(authorizer, request)[0]
    assert reasons(capsys) == ["MalformedKey"]


def test_a_rest_header_sent_twice_with_the_same_value_is_accepted(issued, authorizer):
    key = issued()
    request = shaped("rest-request", api_key=key["api_key"])
    request["multiValueHeaders"]["X-Api-Key"] = [key["api_key"], key["api_key"]]
    assert decide(authorizer, request)[0]


def test_an_http_api_header_sent_twice_is_refused(issued, authorizer):
    key = issued()
    request = shaped("http-api", authorization=f"Bearer {key['api_key']},Bearer {key['api_key']}")
    assert not decide(authorizer, request)[0]


@pytest.mark.parametrize("shape", ["rest-request", "http-api"])
def test_header_names_are_case_insensitive(shape, issued, authorizer):
    key = issued()
    request = shaped(shape)
    request["headers"]["X-API-KEY"] = key["api_key"]
    assert decide(authorizer, request)[0]


# Only space and horizontal tab are optional whitespace around a header value (RFC 9110). Anything else
# there is a refusal, and so is a key header that is present but blank: were it ignored, an allow would
# rest on the other header, and API Gateway would cache it under the blank-looking one.
NOT_OPTIONAL_WHITESPACE = ["\u00a0", "\u3000", "\u0085", "\u001c", "\n", "\r", "\v", "\f", "\u200b", "\u2028", "\ufeff"]
BLANK_LOOKING = ["", *NOT_OPTIONAL_WHITESPACE, " \t", "\u00a0 "]


@pytest.mark.parametrize("blank", BLANK_LOOKING, ids=ascii)
@pytest.mark.parametrize("blank_header", ["authorization", "api_key"])
@pytest.mark.parametrize("shape", ["rest-request", "http-api"])
def test_a_blank_looking_key_header_beside_a_valid_key_is_refused(
    shape, blank_header, blank, issued, authorizer, capsys
):
    key = issued()["api_key"]
    headers = {"authorization": f"Bearer {key}", "api_key": key} | {blank_header: blank}
    capsys.readouterr()
    assert not decide(authorizer, shaped(shape, **headers))[0]
    assert reasons(capsys) == ["MalformedKey"]


@pytest.mark.parametrize("where", ["before", "after", "between scheme and key"])
@pytest.mark.parametrize("character", NOT_OPTIONAL_WHITESPACE, ids=ascii)
@pytest.mark.parametrize("shape", SHAPES)
def test_a_key_with_any_other_character_around_it_is_refused(shape, character, where, issued, authorizer, capsys):
    key = issued()["api_key"]
    authorization = {
        "before": f"{character}Bearer {key}",
        "after": f"Bearer {key}{character}",
        "between scheme and key": f"Bearer {character}{key}",
    }[where]
    capsys.readouterr()
    assert not decide(authorizer, shaped(shape, authorization=authorization))[0]
    if shape != "rest-token":
        assert not decide(authorizer, shaped(shape, api_key=authorization.replace("Bearer ", "")))[0]
    assert set(reasons(capsys)) == {"MalformedKey"}


@pytest.mark.parametrize("shape", SHAPES)
def test_spaces_and_tabs_around_a_header_value_are_optional_whitespace(shape, issued, authorizer):
    key = issued()["api_key"]
    assert decide(authorizer, shaped(shape, authorization=f" \tBearer  {key}\t "))[0]
    assert decide(authorizer, shaped(shape, api_key=f"\t {key} \t"))[0]


# --- refused ---


@pytest.mark.parametrize("shape", SHAPES)
def test_every_bad_key_is_refused_with_its_reason(shape, issued, authorizer, capsys):
    key, other_key = issued(), issued()
    for case, headers, reason in refusals(key, other_key):
        if shape == "rest-token" and "api_key" in headers:
            continue  # a TOKEN event carries one header only
        capsys.readouterr()
        allowed, response = decide(authorizer, shaped(shape, **headers))
        assert not allowed, case
        assert response in (None, {"isAuthorized": False}), case
        assert reasons(capsys) == [reason], case


@pytest.mark.parametrize("shape", SHAPES)
def test_revoked_key_is_refused_on_the_very_next_call(shape, issued, admin, authorizer, capsys):
    key = issued()
    request = shaped(shape, authorization=f"Bearer {key['api_key']}")
    assert decide(authorizer, request)[0]
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    capsys.readouterr()
    assert not decide(authorizer, request)[0]
    assert reasons(capsys) == ["RevokedKey"]


def test_a_revoked_key_is_refused_without_argon2_even_once_its_pepper_is_gone(
    stack, issued, admin, authorizer, capsys, argon2_calls
):
    """The pepper runbook removes a version once no live key uses it: a revoked key still hashed under
    it must stay a plain refusal, not a fault that raises the alarm (and a 500 on HTTP APIs)."""
    key = issued()
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    add_pepper_version(stack)
    remove_pepper_version(stack, "v1")
    capsys.readouterr()
    for shape in SHAPES:
        allowed, response = decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))
        assert not allowed and response in (None, {"isAuthorized": False})
    assert reasons(capsys) == ["RevokedKey"] * len(SHAPES) and argon2_calls == []


@pytest.mark.parametrize("shape", SHAPES)
def test_expired_key_is_refused(shape, issued, authorizer, capsys, monkeypatch):
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    key = issued(expires_at=expires.isoformat())
    request = shaped(shape, authorization=f"Bearer {key['api_key']}")
    service = service_of(authorizer)
    monkeypatch.setattr(service, "_clock", lambda: expires - timedelta(seconds=1))
    assert decide(authorizer, request)[0]
    monkeypatch.setattr(service, "_clock", lambda: expires)
    capsys.readouterr()
    assert not decide(authorizer, request)[0]
    assert reasons(capsys) == ["ExpiredKey"]


def test_malformed_key_costs_no_aws_call_and_no_argon2(issued, authorizer, aws_calls, argon2_calls):
    key = issued()
    aws_calls.clear()
    bad_checksum = mistyped(key["api_key"])
    assert not decide(authorizer, shaped("rest-token", authorization=f"Bearer {bad_checksum}"))[0]
    assert aws_calls == [] and argon2_calls == []


def test_an_unknown_key_id_is_refused_after_the_read_without_argon2(issued, authorizer, aws_calls, argon2_calls):
    issued()
    aws_calls.clear()
    for _ in range(3):
        assert not decide(authorizer, shaped("rest-token", authorization=f"Bearer {keys.generate('kg').api_key}"))[0]
    assert argon2_calls == [] and aws_calls == ["GetItem"] * 3


def test_the_key_is_read_with_a_strongly_consistent_get(issued, authorizer, monkeypatch):
    key = issued()
    seen = []
    real = botocore.client.BaseClient._make_api_call
    monkeypatch.setattr(
        botocore.client.BaseClient,
        "_make_api_call",
        lambda self, operation, params: seen.append((operation, params)) or real(self, operation, params),
    )
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    gets = [params for operation, params in seen if operation == "GetItem"]
    assert gets == [
        {"TableName": gets[0]["TableName"], "Key": {"key_id": {"S": key["key_id"]}}, "ConsistentRead": True}
    ]


# --- failing closed ---


@pytest.mark.parametrize("name", FAULTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_fault_is_a_refusal_logged_as_an_error(shape, name, stack, issued, load, monkeypatch, capsys):
    key = issued()
    faults(stack, monkeypatch, key)[name]()
    authorizer = load("AuthorizerFunction")  # a fresh container: nothing cached
    capsys.readouterr()
    refused_as_a_fault(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))
    (record,) = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert (record["level"], record["reason"], record["key_id"]) == ("ERROR", "Fault", key["key_id"]), name
    assert record["fault"], name


def test_unreachable_dynamodb_is_a_refusal(issued, load, capsys):
    key = issued()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    authorizer = load("AuthorizerFunction", AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{port}")
    capsys.readouterr()
    assert not decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    (record,) = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert record["reason"] == "Fault" and "EndpointConnectionError" in record["fault"]


class BlackHole:
    """A TCP endpoint that accepts connections and never answers: a hung dependency."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                self.accepted.append(self.socket.accept()[0])
            except OSError:
                return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def close(self):
        self.socket.close()
        for connection in self.accepted:
            connection.close()


def test_a_hung_dynamodb_is_a_refusal_after_two_short_attempts(issued, load, capsys):
    key = issued()
    hole = BlackHole()
    try:
        authorizer = load("AuthorizerFunction", AWS_ENDPOINT_URL_DYNAMODB=hole.url)
        capsys.readouterr()
        assert not decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
        (record,) = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
        assert record["reason"] == "Fault" and "ReadTimeoutError" in record["fault"]
        assert len(hole.accepted) == 2  # two attempts, not botocore's default three or five
    finally:
        hole.close()


def test_the_worst_case_of_the_aws_calls_fits_the_authorizer_timeout(template):
    from keygate.config import AWS_CLIENT_CONFIG

    retries = AWS_CLIENT_CONFIG.retries
    attempts, max_backoff = retries["total_max_attempts"], 1  # standard mode: at most 1 s before the 2nd
    per_call = attempts * (AWS_CLIENT_CONFIG.connect_timeout + AWS_CLIENT_CONFIG.read_timeout) + max_backoff
    assert attempts == 2
    assert 2 * per_call < template["Resources"]["AuthorizerFunction"]["Properties"]["Timeout"]


@pytest.mark.parametrize(
    "request_",
    [{}, [], "Bearer x", {"type": "WHATEVER"}, {"type": "TOKEN"}, {"type": "REQUEST", "headers": None}],
    ids=["empty", "list", "string", "unknown type", "token without fields", "request without arn"],
)
def test_unrecognized_or_incomplete_events_are_refused(request_, issued, authorizer):
    key = issued()
    if isinstance(request_, dict) and request_.get("type") == "REQUEST":
        request_ = request_ | {"headers": {"x-api-key": key["api_key"]}}
    with pytest.raises(Exception, match="^Unauthorized$"):
        invoke(authorizer, copy.deepcopy(request_))


def test_a_broken_http_api_event_is_a_fault_answered_with_an_error(issued, authorizer, capsys):
    request = shaped("http-api", authorization=f"Bearer {issued()['api_key']}")
    request["headers"] = ["not", "a", "map"]
    capsys.readouterr()
    refused_as_a_fault(authorizer, request)
    assert reasons(capsys) == ["Fault"]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_fault_does_not_outlast_itself(shape, issued, authorizer, monkeypatch):
    key = issued()
    request = shaped(shape, authorization=f"Bearer {key['api_key']}")
    with monkeypatch.context() as fault:
        fail_get_item(fault, "ThrottlingException")
        refused_as_a_fault(authorizer, request)
    assert decide(authorizer, request)[0]


def test_rest_event_with_a_broken_method_arn_is_refused_even_with_a_valid_key(issued, authorizer):
    key = issued()
    request = shaped("rest-token", authorization=f"Bearer {key['api_key']}")
    request["methodArn"] = "not-an-arn"
    with pytest.raises(Exception, match="^Unauthorized$"):
        invoke(authorizer, request)


# --- observability ---


def test_each_decision_is_counted_by_reason_in_emf_metrics_and_each_secret_checked_by_how(issued, authorizer, capsys):
    key = issued()
    capsys.readouterr()
    for api_key in (key["api_key"], key["api_key"], wrong_secret(key["api_key"]), "kg_nonsense"):
        decide(authorizer, shaped("http-api", authorization=f"Bearer {api_key}"))
    emf = [r for r in log_records(capsys.readouterr().out) if "_aws" in r]
    names = [[metric["Name"] for metric in r["_aws"]["CloudWatchMetrics"][0]["Metrics"]] for r in emf]
    assert names == [
        ["Allowed", "VerifiedKeyCacheMiss"],
        ["Allowed", "VerifiedKeyCacheHit"],
        ["WrongSecret", "VerifiedKeyCacheMiss"],
        ["MalformedKey"],  # no secret was checked
    ]
    assert all(r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "keygate" for r in emf)
