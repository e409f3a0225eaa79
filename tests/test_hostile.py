"""The hostile corpus (tests/hostile/) against the authorizer in every event shape: each case gets its
answer and its log reason, raises nothing but the refusals API Gateway expects, costs no AWS call or
Argon2 when the key is malformed, and leaves log lines that are short and never hold what was sent."""

import json
from collections.abc import Callable

import pytest

from keygate import keys
from tests.conftest import invoke, snapshot_of_writes, wrong_secret
from tests.helpers.authorizer import iam_decision, log_records
from tests.helpers.leak_report import http_event
from tests.hostile.corpus import (
    SHAPES,
    admin_case,
    admin_case_ids,
    event_case_ids,
    hostile_event,
    hostile_leak_event,
    key_cases,
    leak_case,
    leak_case_ids,
    presented_tokens,
    shaped_event,
)

MAX_LOG_LINE = 4096  # a log line's bound, whatever was sent: one route is logged, cut to 256 characters
NO_IO_REASONS = {"MissingKey", "MalformedKey"}  # refused before any AWS call
NO_ARGON2_REASONS = NO_IO_REASONS | {"UnknownKey", "RevokedKey"}


@pytest.fixture
def presented(admin) -> dict[str, str]:
    return presented_tokens(lambda function, event: invoke(admin[function.removesuffix("Function")], event))


def answer_of(handler, request: object) -> str:
    """allow, unauthorized (401), forbid (403: a Deny policy), refused (an answer that refuses) or fault (an
    HTTP API's error: 500), as API Gateway or AppSync reads what the handler did; anything else fails."""
    try:
        response = invoke(handler, request)
    except Exception as error:
        assert type(error).__name__ in ("Unauthorized", "AuthorizerFault"), repr(error)
        return "unauthorized" if type(error).__name__ == "Unauthorized" else "fault"
    if "isAuthorized" in response:
        assert response["isAuthorized"] in (True, False)
        return "allow" if response["isAuthorized"] else "refused"
    decision = iam_decision(response, request["methodArn"])
    return {"Allow": "allow", "Deny": "forbid", "ImplicitDeny": "forbid"}[decision]


def refusal_name(shape: str) -> str:
    """What a refusal of a bad key looks like: REST and WebSocket raise (401), the others answer false."""
    return "unauthorized" if shape in ("rest-token", "rest-request", "websocket") else "refused"


@pytest.mark.parametrize("shape", SHAPES)
def test_every_hostile_key_header_gets_its_answer_and_reason(
    shape,
    presented,
    authorizer,
    aws_calls,
    argon2_calls,
    capsys,
    subtests,
):
    cases = key_cases(shape, presented)
    assert len(cases) >= 60
    for case in cases:
        with subtests.test(case.id):
            aws_calls.clear()
            argon2_calls.clear()
            capsys.readouterr()
            answer = answer_of(authorizer, shaped_event(shape, case.headers))
            assert answer == {"allow": "allow", "refuse": refusal_name(shape), "forbid": "forbid"}[case.expect]
            out = capsys.readouterr().out
            (reason,) = [record["reason"] for record in log_records(out) if "reason" in record]
            assert reason == case.reason
            if case.reason in NO_IO_REASONS:
                assert aws_calls == []
            if case.reason in NO_ARGON2_REASONS:
                assert argon2_calls == []
            assert max(len(line) for line in out.splitlines()) < MAX_LOG_LINE
            for values in case.headers.values():
                for value in values:
                    sent = value.strip(" \t")
                    for part in (sent, sent.partition(" ")[2].strip(" \t")):  # the value, and what follows a scheme
                        leaked = len(part) >= keys.KEY_ID_LENGTH and part in out
                        assert not leaked, "what was sent reached the log"  # not shown: it may be a key


@pytest.mark.parametrize("case_id", event_case_ids())
def test_a_hostile_event_is_refused_as_its_shape_expects(case_id, issued, authorizer, capsys):
    api_key = issued()["api_key"]
    request, expect = hostile_event(case_id, api_key)
    capsys.readouterr()
    assert answer_of(authorizer, request) == expect
    out = capsys.readouterr().out
    assert [record["reason"] for record in log_records(out) if "reason" in record], "every decision is logged"
    assert max(len(line) for line in out.splitlines()) < MAX_LOG_LINE
    leaked = api_key in out
    assert not leaked and "segment/" * 64 not in out


# --- admin events ---

MAX_ANSWER = 4096  # an error answer's bound, whatever was sent


@pytest.fixture
def written(stack) -> Callable[[], tuple]:
    return snapshot_of_writes(stack)


@pytest.mark.parametrize("case_id", admin_case_ids())
def test_a_hostile_admin_event_is_refused_naming_the_field_and_writes_nothing(case_id, issued, admin, written, capsys):
    key_id = issued()["key_id"]
    case = admin_case(case_id, key_id)
    before = written()
    capsys.readouterr()
    answer = invoke(admin[case["function"]], case["event"])
    out = capsys.readouterr().out
    assert written() == before
    assert len(json.dumps(answer)) < MAX_ANSWER and max(map(len, out.splitlines()), default=0) < MAX_LOG_LINE
    if case["error"] is None:
        assert answer["label"] == case["label"]
        return
    assert answer["error"]["type"] == case["error"], answer
    assert answer["error"]["message"]
    if case["field"] is not None:
        assert case["field"] in answer["error"]["fields"], answer


# --- leak reports ---


@pytest.mark.parametrize("case_id", leak_case_ids())
def test_a_hostile_leak_report_gets_its_status_and_revokes_only_a_verified_key(
    case_id, load, github, issued, admin, capsys
):
    leak_report = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url)
    key = issued()
    case = leak_case(case_id)
    tokens = {
        "$KEY": key["api_key"], "$WRONG_SECRET": wrong_secret(key["api_key"]), "$KEY_ID": key["key_id"],
        "$OTHER_PREFIX": key["api_key"].replace("kg_", "zz_", 1),
    }  # fmt: skip
    body, headers = github.signed_alert(*(tokens[token] for token in case.get("sign", ["$KEY"])))
    base = http_event(body, headers)
    request = hostile_leak_event(case, base, base["headers"]["github-public-key-signature"])
    capsys.readouterr()
    answer = invoke(leak_report, request)
    out = capsys.readouterr().out
    assert answer["statusCode"] == case["status"], answer
    if "labels" in case:
        assert [finding["label"] for finding in json.loads(answer["body"])] == case["labels"]
    state = invoke(admin["GetKey"], {"key_id": key["key_id"]})["status"]
    assert state == ("revoked" if case.get("revoked") else "active")
    assert len(answer["body"]) < MAX_ANSWER and max(map(len, out.splitlines()), default=0) < MAX_LOG_LINE
    assert all(token not in out for name, token in tokens.items() if name != "$KEY_ID")
