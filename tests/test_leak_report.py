"""Leaked keys: GitHub secret scanning alerts (LeakReportFunction) and operator reports (ReportLeakFunction).

GitHub's published keys are served on 127.0.0.1 by the local stack's FakeGitHub, which signs alerts as
GitHub does; the functions fetch them over HTTP exactly as they would fetch GitHub's."""

import base64
import hashlib
import inspect
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import boto3
import botocore.client
import botocore.exceptions
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, redirect

from keygate import keys
from keygate_local.gateway import FlaskService, Server
from keygate_local.github import FakeGitHub
from leak_report.secret_scanning import (
    KEYS_MAX_AGE,
    MAX_ALERTS,
    MAX_BODY_BYTES,
    REFETCH_AFTER,
    RETRY_AFTER_FAILURE,
    GitHubPublicKeys,
    MalformedAlert,
    PublicKeysUnavailable,
    Unauthenticated,
    parse_alerts,
)
from tests.conftest import (
    FLUSH_OPERATIONS,
    add_pepper_version,
    event,
    fail_calls,
    invoke,
    remove_pepper_version,
    wrong_secret,
)
from tests.helpers.authorizer import service_of
from tests.helpers.leak_report import http_event

ALERT_URL = "https://github.com/octocat/app/blob/0123abc/config/.env"


@pytest.fixture
def leak_report(load, github):
    return load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url)


@pytest.fixture
def notifications(stack):
    """The messages published to LeakedKeyTopic (through an SQS subscription, as a subscriber gets them)."""
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    queue_url = sqs.create_queue(QueueName="leaks")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.physical_ids["LeakedKeyTopic"], Protocol="sqs", Endpoint=queue_arn)

    def received() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(json.loads(message["Body"])["Message"]) for message in messages]

    return received


def report(handler, github, *tokens: str) -> dict:
    body, headers = github.signed_alert(*tokens, url=ALERT_URL)
    return invoke(handler, http_event(body, headers))


def status(admin, key_id: str) -> str:
    return invoke(admin["GetKey"], {"key_id": key_id})["status"]


def test_a_signed_alert_revokes_a_real_key_audits_it_and_notifies(leak_report, github, issued, admin, notifications):
    key = issued(owner="team-payments")
    answer = report(leak_report, github, key["api_key"])
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == [
        {
            "token_hash": hashlib.sha256(key["api_key"].encode()).hexdigest(),
            "token_type": "keygate_api_key",
            "label": "true_positive",
        }
    ]
    assert status(admin, key["key_id"]) == "revoked"
    last = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"][-1]
    assert (last["action"], last["actor"]) == ("revoke", "secret-scanning:github")
    assert last["details"] == {"reason": "leaked", "url": ALERT_URL, "source": "content"}
    (message,) = notifications()
    assert message | {"revoked_at": None} == {
        "event": "keygate.key_leaked",
        "key_id": key["key_id"],
        "name": "test-client",
        "owner": "team-payments",
        "revoked": "now",
        "revoked_at": None,
        "reported_by": "secret-scanning:github",
        "reason": "leaked",
        "url": ALERT_URL,
        "source": "content",
    }
    assert message["revoked_at"] is not None


def test_only_a_verified_secret_revokes(leak_report, github, issued, admin, notifications):
    key = issued()
    other_prefix = "gh" + key["api_key"][2:-6]
    other_prefix += keys.checksum(other_prefix)
    unknown_id = keys.generate("kg").api_key  # well-formed, valid checksum, never issued
    tokens = [wrong_secret(key["api_key"]), other_prefix, unknown_id, key["key_id"], "not a key at all"]
    answer = report(leak_report, github, *tokens)
    assert answer["statusCode"] == 200
    assert [entry["label"] for entry in json.loads(answer["body"])] == ["false_positive"] * len(tokens)
    assert status(admin, key["key_id"]) == "active"
    assert notifications() == []


def test_the_previous_secret_of_a_rotation_is_a_leak_too(leak_report, github, issued, admin):
    key = issued()
    invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 3600})
    answer = report(leak_report, github, key["api_key"])
    assert json.loads(answer["body"])[0]["label"] == "true_positive"
    assert status(admin, key["key_id"]) == "revoked"


def test_a_rotated_out_secret_revokes_nothing(leak_report, github, issued, admin, monkeypatch):
    """Whoever holds a secret that no longer verifies (its grace period over) cannot take the live key down."""
    key = issued()
    invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 60})
    later = datetime.now(UTC) + timedelta(seconds=61)  # the grace period is over; the item keeps the old hash
    monkeypatch.setattr(service_of(leak_report), "_clock", lambda: later)
    assert json.loads(report(leak_report, github, key["api_key"])["body"])[0]["label"] == "false_positive"
    assert status(admin, key["key_id"]) == "active"


def test_a_token_hashed_with_a_removed_pepper_version_is_a_false_positive_not_a_fault(
    leak_report, github, issued, admin, stack
):
    revoked, live = issued(), issued()
    invoke(admin["RevokeKey"], {"key_id": revoked["key_id"]})
    add_pepper_version(stack, "v2")
    remove_pepper_version(stack, "v1")  # as the runbook allows once only revoked keys use it
    answer = report(leak_report, github, revoked["api_key"], live["api_key"])
    assert answer["statusCode"] == 200
    # the revoked key's token needs no pepper: revoked whatever it is
    assert [entry["label"] for entry in json.loads(answer["body"])] == ["true_positive", "false_positive"]
    assert status(admin, live["key_id"]) == "active"


def test_a_leaked_secret_counts_though_the_other_secret_s_pepper_version_is_gone(
    leak_report, github, issued, admin, stack
):
    """In a rotation's grace period, the previous secret's pepper version removed: the current secret,
    leaked, still revokes the key."""
    key = issued()
    add_pepper_version(stack, "v2")
    rotated = invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 3600})  # new secret: v2
    remove_pepper_version(stack, "v1")  # the previous secret's, against the runbook
    assert json.loads(report(leak_report, github, rotated["api_key"])["body"])[0]["label"] == "true_positive"
    assert status(admin, key["key_id"]) == "revoked"


def test_a_key_hashed_under_an_older_pepper_is_verified_with_it(leak_report, github, issued, admin, stack):
    key = issued()
    add_pepper_version(stack)
    assert json.loads(report(leak_report, github, key["api_key"])["body"])[0]["label"] == "true_positive"


def test_a_revoked_key_reported_again_is_a_true_positive_and_writes_and_notifies_nothing(
    leak_report, github, issued, admin, notifications
):
    key = issued()
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    before = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    for _ in range(2):  # GitHub's retry of the same alert too
        assert json.loads(report(leak_report, github, key["api_key"])["body"])[0]["label"] == "true_positive"
    assert invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"] == before
    assert notifications() == []


def test_a_delivery_racing_another_notifies_only_if_its_revocation_took_effect(
    leak_report, github, issued, admin, notifications, monkeypatch
):
    """GitHub retries while the first delivery still runs: both verify the key while it is active; only the
    one whose write revoked it notifies."""
    key = issued()
    keys_service = service_of(leak_report)
    verified = keys_service._leaked_secret

    def verified_then_revoked_by_the_other_delivery(record, parsed):
        leaked = verified(record, parsed)
        invoke(admin["RevokeKey"], {"key_id": key["key_id"], "actor": "the other delivery"})
        return leaked

    monkeypatch.setattr(keys_service, "_leaked_secret", verified_then_revoked_by_the_other_delivery)
    answer = json.loads(report(leak_report, github, key["api_key"])["body"])
    assert answer[0]["label"] == "true_positive"
    assert notifications() == []
    history = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert [(e["action"], e["actor"]) for e in history if e["action"] == "revoke"] == [("revoke", "the other delivery")]


def test_an_alert_of_many_keys_flushes_the_authorizer_cache_once(load, github, issued, admin, flushes):
    from tests.test_authorizer_cache import CACHED

    handler = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url, **CACHED)
    leaked = [issued() for _ in range(3)]
    answer = json.loads(report(handler, github, *(key["api_key"] for key in leaked))["body"])
    assert [finding["label"] for finding in answer] == ["true_positive"] * 3
    assert sorted(operation for operation, _ in flushes) == sorted(FLUSH_OPERATIONS)  # each stage once, not per key
    assert all(status(admin, key["key_id"]) == "revoked" for key in leaked)


def test_a_delivery_that_faults_flushes_for_what_it_revoked_before_answering(
    load, github, issued, admin, flushes, monkeypatch
):
    """One key is revoked, then the other's revocation fails: the delivery answers 500, after the flush for
    the first. GitHub's retry revokes the second, and flushes again."""
    from tests.test_authorizer_cache import CACHED

    handler = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url, **CACHED)
    leaked = [issued(), issued()]
    body, headers = github.signed_alert(*(key["api_key"] for key in leaked), url=ALERT_URL)
    real = botocore.client.BaseClient._make_api_call
    revocations = []

    def second_revocation_fails(self, operation, params):
        if operation == "TransactWriteItems":
            revocations.append(params)
            if len(revocations) == 2:
                raise botocore.exceptions.ClientError({"Error": {"Code": "InternalServerError"}}, operation)
        return real(self, operation, params)

    with monkeypatch.context() as faulty:
        faulty.setattr(botocore.client.BaseClient, "_make_api_call", second_revocation_fails)
        with pytest.raises(botocore.exceptions.ClientError):
            invoke(handler, http_event(body, headers))
    assert sorted(status(admin, key["key_id"]) for key in leaked) == ["active", "revoked"]
    assert sorted(operation for operation, _ in flushes) == sorted(FLUSH_OPERATIONS)
    answer = invoke(handler, http_event(body, headers))
    assert [finding["label"] for finding in json.loads(answer["body"])] == ["true_positive"] * 2
    assert [status(admin, key["key_id"]) for key in leaked] == ["revoked"] * 2 and len(flushes) == 4


def test_a_delivery_cut_off_before_its_flush_is_flushed_by_github_s_retry(load, github, issued, admin, flushes):
    from tests.test_authorizer_cache import CACHED, InvocationEnds

    handler = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url, **CACHED)
    key = issued()
    body, headers = github.signed_alert(key["api_key"], url=ALERT_URL)
    cache = service_of(handler)._cache
    with pytest.MonkeyPatch.context() as cut:
        cut.setattr(cache, "flush", InvocationEnds.raised)
        with pytest.raises(InvocationEnds):
            invoke(handler, http_event(body, headers))
    assert status(admin, key["key_id"]) == "revoked" and flushes == []
    answer = json.loads(invoke(handler, http_event(body, headers))["body"])
    assert answer[0]["label"] == "true_positive"  # revoked already, a moment ago: flushed again
    assert sorted(operation for operation, _ in flushes) == sorted(FLUSH_OPERATIONS)


# --- bounded work: an alert of up to 1000 tokens, any of them made up by anyone ---


def test_each_distinct_token_is_checked_once_per_alert(load, github, issued, argon2_calls, aws_calls):
    handler = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url, VERIFIED_KEY_CACHE_SIZE="0")
    key, other = issued(), issued()
    made_up = wrong_secret(other["api_key"])
    tokens = [key["api_key"], made_up] * 5
    argon2_calls.clear()
    aws_calls.clear()
    findings = json.loads(report(handler, github, *tokens)["body"])
    assert [finding["label"] for finding in findings] == ["true_positive", "false_positive"] * 5  # one per entry
    assert len(argon2_calls) == 2  # not 10: the verified-key cache is off, so only dedup keeps it at 2
    assert aws_calls.count("GetItem") == 3  # a read of each key id, and the revocation's own


def test_made_up_tokens_of_a_revoked_metered_key_cost_one_read_and_nothing_else(
    load, github, issued, admin, argon2_calls, aws_calls, flushes
):
    """Anyone can compute a checksum: a thousand distinct tokens naming a revoked key (one on a usage plan, whose
    sync would call API Gateway) settle with one read of the key, no Argon2, no write, no API Gateway call."""
    from tests.test_authorizer_cache import CACHED

    plan = boto3.client("apigateway").create_usage_plan(name="gold")["id"]
    key = issued(usage_plan_id=plan)
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    handler = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url, **CACHED)
    made_up = [wrong_secret(key["api_key"], n) for n in range(1, 1001)]
    argon2_calls.clear()
    aws_calls.clear()
    findings = json.loads(report(handler, github, *made_up)["body"])
    assert {finding["label"] for finding in findings} == {"true_positive"} and len(findings) == 1000
    assert argon2_calls == []
    assert aws_calls == ["GetItem"]  # no write, no API Gateway key sync
    assert len(flushes) == 2  # the key was revoked a moment ago: one flush for the whole alert (both stages)


class _Order:
    """Takes the tokens in a given order instead of a random one: as listed, or reversed."""

    def __init__(self, reverse: bool):
        self._reverse = reverse

    def shuffle(self, items: list) -> None:
        if self._reverse:
            items.reverse()


@pytest.mark.parametrize("reverse", [False, True], ids=["as listed", "reversed"])
def test_a_token_s_label_does_not_depend_on_the_order_the_alert_s_tokens_are_taken(
    reverse, load, github, issued, monkeypatch
):
    """A made-up token of a key that another token of the same alert revokes is still a false positive."""
    handler = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url)
    monkeypatch.setattr(sys.modules["keygate.leak_alerts"], "_SHUFFLE", _Order(reverse))
    key = issued()
    findings = json.loads(report(handler, github, wrong_secret(key["api_key"]), key["api_key"])["body"])
    assert [finding["label"] for finding in findings] == ["false_positive", "true_positive"]


def test_a_token_of_a_revoked_key_costs_no_argon2_and_is_a_true_positive(
    leak_report, github, issued, admin, argon2_calls
):
    key = issued()
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    argon2_calls.clear()
    findings = json.loads(report(leak_report, github, key["api_key"], wrong_secret(key["api_key"]))["body"])
    assert [finding["label"] for finding in findings] == ["true_positive"] * 2  # the key is revoked, whatever they are
    assert argon2_calls == []


class _FakeTime:
    """The alert's clock: it moves only when Argon2 runs, one second a verify."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def argon2_takes_a_second(monkeypatch) -> Callable[[str], Callable]:
    """load_slow(function) -> its handler, in a container whose alert clock moves a second per Argon2 verify."""
    fake = _FakeTime()
    real = PasswordHasher.verify

    def slow(self, *args, **kwargs):
        fake.now += 1.0
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PasswordHasher, "verify", slow)

    def on_this_clock(handler: Callable) -> Callable:
        monkeypatch.setattr(sys.modules["keygate.leak_alerts"], "time", fake)  # the container's own module
        return handler

    return on_this_clock


def test_an_alert_past_its_budget_answers_503_with_what_it_checked_done_and_the_retry_goes_on(
    load, github, issued, admin, flushes, argon2_takes_a_second, monkeypatch, capsys
):
    from tests.test_authorizer_cache import CACHED

    handler = argon2_takes_a_second(load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url, **CACHED))
    monkeypatch.setattr("leak_report.app.ALERT_BUDGET_SECONDS", 3.0)  # the module as this container loaded it
    leaked = [issued() for _ in range(5)]
    body, headers = github.signed_alert(*(key["api_key"] for key in leaked), url=ALERT_URL)
    capsys.readouterr()
    answer = invoke(handler, http_event(body, headers))
    assert answer["statusCode"] == 503 and "3 of 5 distinct tokens" in json.loads(answer["body"])["message"]
    assert sorted(status(admin, key["key_id"]) for key in leaked) == ["active"] * 2 + ["revoked"] * 3  # any three
    assert len(flushes) == 2  # what it revoked is flushed before it answers
    logged = capsys.readouterr().out
    assert logged.count("leaked key revoked") == 3 and "leak report unfinished" in logged
    retry = invoke(handler, http_event(body, headers))  # the three revoked cost no Argon2: the rest fit
    assert retry["statusCode"] == 200
    assert [finding["label"] for finding in json.loads(retry["body"])] == ["true_positive"] * 5
    assert [status(admin, key["key_id"]) for key in leaked] == ["revoked"] * 5


def test_a_retry_skips_what_argon2_refused_in_this_container(load, github, issued, argon2_takes_a_second, monkeypatch):
    """Made-up tokens naming a live key: the first delivery checks what its budget allows; the retry, in the
    same warm container, finds those refusals in the verified-key cache and checks the rest."""
    handler = argon2_takes_a_second(load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url))
    monkeypatch.setattr("leak_report.app.ALERT_BUDGET_SECONDS", 4.0)
    key = issued()
    made_up = [wrong_secret(key["api_key"], n) for n in range(6)]
    body, headers = github.signed_alert(*made_up, url=ALERT_URL)
    assert invoke(handler, http_event(body, headers))["statusCode"] == 503
    done = invoke(handler, http_event(body, headers))
    assert done["statusCode"] == 200
    assert {finding["label"] for finding in json.loads(done["body"])} == {"false_positive"}


def test_the_function_answers_before_github_and_the_http_api_give_up(template, leak_report):
    timeout = template["Resources"]["LeakReportFunction"]["Properties"]["Timeout"]
    budget = inspect.unwrap(leak_report).__globals__["ALERT_BUDGET_SECONDS"]
    assert budget + 5 <= timeout < 30  # the token in progress and the flush finish inside it


def _forged_signature(body: bytes) -> str:
    """A valid ECDSA P-256 signature, by a key that is not GitHub's."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    return base64.b64encode(attacker.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        "unsigned",
        "no identifier",
        "forged by another key",
        "signature of another body",
        "body changed after signing",
        "signature not base64",
        "unknown key identifier",
        "identifier not hex",
    ],
)
def test_a_request_github_did_not_sign_is_refused_and_changes_nothing(tamper, leak_report, github, issued, admin):
    key = issued()
    body, headers = github.signed_alert(key["api_key"])
    if tamper == "unsigned":
        del headers["Github-Public-Key-Signature"], headers["Github-Public-Key-Identifier"]
    elif tamper == "no identifier":
        del headers["Github-Public-Key-Identifier"]
    elif tamper == "forged by another key":
        headers["Github-Public-Key-Signature"] = _forged_signature(body)
    elif tamper == "signature of another body":  # a replayed signature on a body of the attacker's choosing
        headers["Github-Public-Key-Signature"] = github.signed_alert("kg_other")[1]["Github-Public-Key-Signature"]
    elif tamper == "body changed after signing":
        body = body.replace(b"content", b"commit!")
    elif tamper == "signature not base64":
        headers["Github-Public-Key-Signature"] = "not base64 at all!"
    elif tamper == "unknown key identifier":
        headers["Github-Public-Key-Identifier"] = "ab" * 32
    else:
        headers["Github-Public-Key-Identifier"] = "../../etc/passwd"
    answer = invoke(leak_report, http_event(body, headers))
    assert answer["statusCode"] == 401
    assert key["api_key"] not in answer["body"]
    assert status(admin, key["key_id"]) == "active"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b"[]",
        b'"text"',
        b"[1]",
        b'[{"type": "t"}]',
        b'[{"token": 7}]',
        b'[{"token": "k", "url": 1}]',
    ],
)
def test_a_signed_body_that_is_not_an_alert_is_a_400(body, leak_report, github):
    answer = invoke(leak_report, http_event(body, github.headers(body)))
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["message"]


def test_control_characters_in_github_s_url_and_source_are_replaced_not_kept_and_not_refused():
    body = json.dumps([{"token": "t", "url": 'https://x/\n{"level":"ERROR"}\u202e', "source": "a\u0000b"}])
    (alert,) = parse_alerts(body.encode())
    assert alert.url == 'https://x/\ufffd{"level":"ERROR"}\ufffd' and alert.source == "a\ufffdb"


def test_a_redirect_from_the_keys_url_is_not_followed(github):
    """A redirect could lead anywhere (a keys document of the attacker's): it is a failed fetch."""
    redirecting = Flask(__name__)
    redirecting.add_url_rule("/keys", "keys", lambda: redirect(github.keys_url, code=302))
    server = Server(lambda _port: FlaskService(redirecting), "127.0.0.1", 0).start()
    try:
        keys_ = GitHubPublicKeys(f"{server.url}/keys")
        with pytest.raises(PublicKeysUnavailable, match="HTTPError"):
            keys_.verify(b"[]", github.key_identifier, github.sign(b"[]"))
        GitHubPublicKeys(github.keys_url).verify(b"[]", github.key_identifier, github.sign(b"[]"))  # the target works
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("body", "base64_body"),
    [("x" * (MAX_BODY_BYTES + 1), False), ("not base64!", True), (base64.b64encode(b"[]" * MAX_BODY_BYTES), True)],
    ids=["over 1 MB", "base64 flag on a body that is not", "over 1 MB once decoded"],
)
def test_a_body_too_big_or_not_decodable_is_a_400_before_its_signature_is_checked(body, base64_body, leak_report):
    request = http_event(b"", {"Github-Public-Key-Identifier": "ab", "Github-Public-Key-Signature": "AA=="})
    request |= {"body": body if isinstance(body, str) else body.decode(), "isBase64Encoded": base64_body}
    answer = invoke(leak_report, request)
    assert answer["statusCode"] == 400 and len(answer["body"]) < 200


def test_too_many_alerts_are_refused_before_any_lookup():
    body = json.dumps([{"token": "t"}] * (MAX_ALERTS + 1)).encode()
    with pytest.raises(MalformedAlert, match="more than"):
        parse_alerts(body)


def test_a_base64_encoded_body_is_verified_as_its_bytes(leak_report, github, issued, admin):
    key = issued()
    body, headers = github.signed_alert(key["api_key"])
    answer = invoke(leak_report, http_event(body, headers, base64_body=True))
    assert answer["statusCode"] == 200
    assert status(admin, key["key_id"]) == "revoked"


def test_unreachable_public_keys_fail_the_request_and_revoke_nothing(load, github, issued, admin):
    handler = load("LeakReportFunction", GITHUB_KEYS_URL="http://127.0.0.1:9/unreachable")
    key = issued()
    body, headers = github.signed_alert(key["api_key"])
    # Lambda's error: API Gateway answers 500, and GitHub retries later
    with pytest.raises(Exception, match="public keys could not be read") as raised:
        invoke(handler, http_event(body, headers))
    assert type(raised.value).__name__ == PublicKeysUnavailable.__name__  # the handler's own import of it
    assert status(admin, key["key_id"]) == "active"


def test_a_failed_notification_leaves_the_key_revoked(leak_report, github, issued, admin, monkeypatch):
    key = issued()
    fail_calls(monkeypatch, "Publish")
    answer = report(leak_report, github, key["api_key"])
    assert json.loads(answer["body"])[0]["label"] == "true_positive"
    assert status(admin, key["key_id"]) == "revoked"


def test_no_token_reaches_the_logs(leak_report, github, issued, capsys):
    key = issued()
    capsys.readouterr()
    report(leak_report, github, key["api_key"], wrong_secret(key["api_key"]))
    logged = capsys.readouterr().out
    assert "leaked key revoked" in logged
    assert key["api_key"] not in logged and keys.parse(key["api_key"], "kg").secret not in logged
    assert wrong_secret(key["api_key"]) not in logged


# --- GitHub's keys: fetched once, fetched again for a new identifier, at most every five minutes ---


class _Fetches:
    def __init__(self, github: FakeGitHub):
        self.github, self.count = github, 0

    def __call__(self, url: str) -> bytes:
        self.count += 1
        return json.dumps(self.github.keys_document).encode()


def test_public_keys_are_cached_and_an_unknown_identifier_refetches_at_most_every_five_minutes():
    github, now = FakeGitHub(), [0.0]
    fetches = _Fetches(github)
    keys_ = GitHubPublicKeys("https://example.test/keys", fetch=fetches, clock=lambda: now[0])
    body = b"[]"
    for _ in range(3):
        keys_.verify(body, github.key_identifier, github.sign(body))
    assert fetches.count == 1
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            keys_.verify(body, "ab" * 32, github.sign(body))
    assert fetches.count == 1  # within five minutes of the last fetch
    now[0] += REFETCH_AFTER - 1
    with pytest.raises(Unauthenticated):
        keys_.verify(body, "ab" * 32, github.sign(body))
    assert fetches.count == 1
    now[0] += 2  # five minutes on, and still well within the hour the keys are kept
    assert now[0] < KEYS_MAX_AGE / 2
    with pytest.raises(Unauthenticated):
        keys_.verify(body, "ab" * 32, github.sign(body))
    assert fetches.count == 2


def test_a_key_github_has_just_published_verifies_within_five_minutes():
    github, now = FakeGitHub(), [0.0]
    keys_ = GitHubPublicKeys("https://example.test/keys", fetch=_Fetches(github), clock=lambda: now[0])
    keys_.verify(b"[]", github.key_identifier, github.sign(b"[]"))
    rotated = FakeGitHub()  # GitHub rotates its signing key: the document now lists the new one
    github.keys_document["public_keys"] += rotated.keys_document["public_keys"]
    now[0] += REFETCH_AFTER + 1
    keys_.verify(b"[]", rotated.key_identifier, rotated.sign(b"[]"))


class _FailingFetches(_Fetches):
    def __init__(self, github: FakeGitHub):
        super().__init__(github)
        self.failing = False

    def __call__(self, url: str) -> bytes:
        if self.failing:
            self.count += 1
            raise OSError("unreachable")
        return super().__call__(url)


def test_a_failed_refresh_keeps_verifying_with_the_keys_it_has_and_backs_off():
    github, now = FakeGitHub(), [0.0]
    fetches = _FailingFetches(github)
    keys_ = GitHubPublicKeys("https://example.test/keys", fetch=fetches, clock=lambda: now[0])
    body = b"[]"
    keys_.verify(body, github.key_identifier, github.sign(body))
    fetches.failing, now[0] = True, KEYS_MAX_AGE + 1  # the keys are an hour old, and GitHub is unreachable
    for _ in range(5):
        keys_.verify(body, github.key_identifier, github.sign(body))  # stale keys still verify
    assert fetches.count == 2  # one refresh tried, then none for a minute


def test_with_no_keys_yet_a_failed_fetch_is_a_fault_and_is_not_retried_at_once():
    github, now = FakeGitHub(), [0.0]
    fetches = _FailingFetches(github)
    fetches.failing = True
    keys_ = GitHubPublicKeys("https://example.test/keys", fetch=fetches, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(PublicKeysUnavailable):
            keys_.verify(b"[]", github.key_identifier, github.sign(b"[]"))
    assert fetches.count == 1
    fetches.failing, now[0] = False, RETRY_AFTER_FAILURE + 1
    keys_.verify(b"[]", github.key_identifier, github.sign(b"[]"))


def _p384_pem() -> str:
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    return other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_a_published_entry_that_is_not_a_p256_key_is_skipped_and_the_others_verify():
    github = FakeGitHub()
    github.keys_document["public_keys"] += [
        {"key_identifier": "ab" * 32, "key": _p384_pem()},
        {"key_identifier": "cd" * 32, "key": "not a PEM"},
        {"key_identifier": 7, "key": github.keys_document["public_keys"][0]["key"]},
        "not an object",
    ]
    keys_ = GitHubPublicKeys("https://example.test/keys", fetch=_Fetches(github))
    keys_.verify(b"[]", github.key_identifier, github.sign(b"[]"))
    with pytest.raises(Unauthenticated, match="none of GitHub's published keys"):
        keys_.verify(b"[]", "ab" * 32, github.sign(b"[]"))


def test_a_document_without_a_p256_key_never_empties_the_keys_a_container_has():
    github, now = FakeGitHub(), [0.0]
    keys_ = GitHubPublicKeys("https://example.test/keys", fetch=_Fetches(github), clock=lambda: now[0])
    keys_.verify(b"[]", github.key_identifier, github.sign(b"[]"))
    github.keys_document["public_keys"] = [{"key_identifier": github.key_identifier, "key": _p384_pem()}]
    now[0] += KEYS_MAX_AGE + 1
    keys_.verify(b"[]", github.key_identifier, github.sign(b"[]"))  # the keys it had still verify
    fresh = GitHubPublicKeys("https://example.test/keys", fetch=_Fetches(github))
    with pytest.raises(PublicKeysUnavailable, match="no P-256 key"):  # a fault (500): GitHub retries
        fresh.verify(b"[]", github.key_identifier, github.sign(b"[]"))


# --- keygate report-leak: an operator's report ---


def test_an_operator_report_revokes_a_real_key_with_the_actor_and_url(admin, issued, notifications):
    key = issued()
    answer = invoke(admin["ReportLeak"], {"key": key["api_key"], "url": "https://pastebin.example/x", "actor": "alice"})
    assert answer["label"] == "true_positive" and answer["revoked"] == "now" and answer["notification"] == "sent"
    assert key["api_key"] not in json.dumps(answer)
    last = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"][-1]
    assert (last["actor"], last["details"]["source"], last["details"]["url"]) == (
        "alice",
        "operator",
        "https://pastebin.example/x",
    )
    assert notifications()[0]["reported_by"] == "alice"


def test_an_operator_report_of_a_wrong_secret_revokes_nothing(admin, issued):
    key = issued()
    answer = invoke(admin["ReportLeak"], {"key": wrong_secret(key["api_key"])})
    assert answer["label"] == "false_positive" and "key_id" not in answer
    assert status(admin, key["key_id"]) == "active"


def test_an_operator_report_says_when_the_notification_failed(admin, issued, monkeypatch):
    key = issued()
    fail_calls(monkeypatch, "Publish", code="AuthorizationError")
    answer = invoke(admin["ReportLeak"], {"key": key["api_key"]})
    assert answer["revoked"] == "now" and answer["notification"].startswith("failed: ClientError")
    assert status(admin, key["key_id"]) == "revoked"


@pytest.mark.parametrize("request_", [{}, {"key": 7}, {"key": ""}, {"key": "x" * 2000}, {"key": "k", "extra": 1}])
def test_an_operator_report_that_is_not_a_key_is_refused_without_echoing_it(admin, request_):
    answer = invoke(admin["ReportLeak"], request_)
    assert answer["error"]["type"] == "InvalidRequest"
    assert "x" * 100 not in json.dumps(answer)


def test_the_report_leak_event_file_revokes_the_pasted_key(admin, issued):
    key = issued()
    answer = invoke(admin["ReportLeak"], event("report-leak.json", api_key=key["api_key"]))
    assert (answer["label"], answer["key_id"], answer["revoked"]) == ("true_positive", key["key_id"], "now")
    last = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"][-1]
    assert last["actor"] == "console:your-name"
