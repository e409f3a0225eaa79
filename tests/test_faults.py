"""Faults over real HTTP (tests/faults.py: a fault-injecting proxy in front of moto server): the authorizer
refuses within the bound its client timeouts set, logs the cause and recovers on the next call once the
fault clears; admin functions report the failure and leave no half-written key, audit record or API
Gateway key; a write whose answer was lost is neither lost nor made twice."""

import json
import time
from collections.abc import Callable

import boto3
import pytest

from keygate.config import AWS_CLIENT_CONFIG
from tests.conftest import invoke
from tests.faults import FaultProxy
from tests.helpers.authorizer import decide, log_records, shaped

# The longest a refusal may take: every attempt timing out on connect and read, standard mode's backoff
# (at most 1 s) between them, and a second for a loaded machine.
ATTEMPTS = AWS_CLIENT_CONFIG.retries["total_max_attempts"]
BOUND = ATTEMPTS * (AWS_CLIENT_CONFIG.connect_timeout + AWS_CLIENT_CONFIG.read_timeout) + (ATTEMPTS - 1) + 1


@pytest.fixture
def load(served_load) -> Callable:
    return served_load


@pytest.fixture
def proxy(fault_proxy) -> FaultProxy:
    return fault_proxy


@pytest.fixture
def written(served_written) -> Callable[[], tuple]:
    return served_written


def issue(load, **fields) -> dict:
    answer = invoke(load("IssueKeyFunction"), {"name": "faults", "owner": "team"} | fields)
    assert "api_key" in answer, answer
    return answer


def refused_with_fault(authorizer, request: dict, capsys) -> tuple[float, dict]:
    """(seconds taken, the decision's log record) for a request that must be refused as a fault."""
    capsys.readouterr()
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        invoke(authorizer, request)
    elapsed = time.monotonic() - started
    assert type(raised.value).__name__ == ("AuthorizerFault" if request.get("version") == "2.0" else "Unauthorized")
    (record,) = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert (record["level"], record["reason"]) == ("ERROR", "Fault")
    return elapsed, record


DYNAMODB_FAULTS = {  # kind -> what the log's fault names
    "500": "InternalServerError",
    "throttle": "ThrottlingException",
    "slow": "ReadTimeoutError",
    "reset": "ConnectionClosedError",
    "cut": "ConnectionClosedError",  # botocore (the 1.43.108 shipped) finds the body shorter than its length
    "garbled": "DamagedResponse",  # botocore retries a CRC32 mismatch, then hands back what came: keygate refuses it
}


@pytest.mark.parametrize("shape", ["rest-token", "http-api"])
@pytest.mark.parametrize("kind", DYNAMODB_FAULTS)
def test_a_failing_dynamodb_is_a_refusal_within_the_bound_and_the_next_call_recovers(kind, shape, load, proxy, capsys):
    key = issue(load)
    authorizer = load("AuthorizerFunction")
    request = shaped(shape, authorization=f"Bearer {key['api_key']}")
    proxy.fail("GetItem", kind)
    elapsed, record = refused_with_fault(authorizer, request, capsys)
    assert DYNAMODB_FAULTS[kind] in record["fault"], record
    assert elapsed < BOUND
    assert len(proxy.attempts("GetItem")) == ATTEMPTS  # botocore retried once, no more
    proxy.clear()
    assert decide(authorizer, request)[0]  # the same warm container, the fault gone


@pytest.mark.parametrize("kind", ["secrets-500", "slow", "reset", "cut"])
def test_a_failing_secrets_manager_is_a_refusal_and_the_next_call_recovers(kind, load, proxy, capsys):
    key = issue(load)
    authorizer = load("AuthorizerFunction")  # a fresh container: the pepper is read on its first call
    request = shaped("rest-token", authorization=f"Bearer {key['api_key']}")
    proxy.fail("GetSecretValue", kind)
    elapsed, record = refused_with_fault(authorizer, request, capsys)
    assert "pepper secret could not be read" in record["fault"] and elapsed < BOUND
    proxy.clear()
    assert invoke(authorizer, request)["principalId"] == key["key_id"]


@pytest.mark.parametrize(
    "secret",
    ['{"current": "v1", "v1": "abcd', "not json", '["v1"]', '{"v1": "%s"}', '{"current": "v1", "v1": "short"}'],
)
def test_a_malformed_or_truncated_pepper_secret_is_a_refusal_until_it_is_fixed(secret, served, load, capsys):
    key = issue(load)
    secrets = boto3.client("secretsmanager", endpoint_url=served.direct)
    arn = served.physical_ids["PepperSecret"]
    good = secrets.get_secret_value(SecretId=arn)["SecretString"]
    pepper = json.loads(good)["v1"]
    secrets.put_secret_value(SecretId=arn, SecretString=secret.replace("%s", pepper))
    authorizer = load("AuthorizerFunction", PEPPER_CACHE_SECONDS="0")
    request = shaped("http-api", authorization=f"Bearer {key['api_key']}")
    _, record = refused_with_fault(authorizer, request, capsys)
    assert pepper not in json.dumps(record) and "abcd" not in json.dumps(record)
    secrets.put_secret_value(SecretId=arn, SecretString=good)
    assert invoke(authorizer, request)["isAuthorized"] is True


# --- admin functions ---

CHANGES = {
    "UpdateKeyFunction": lambda key_id: {"key_id": key_id, "name": "renamed", "scopes": ["a"]},
    "RotateKeyFunction": lambda key_id: {"key_id": key_id, "grace_seconds": 60},
    "RevokeKeyFunction": lambda key_id: {"key_id": key_id},
}


@pytest.mark.parametrize("kind", ["500", "throttle", "reset"])  # a timed-out write may still land: docs/security.md
def test_an_issue_whose_write_fails_reports_it_and_leaves_nothing_not_even_its_api_gateway_key(
    kind, served, load, proxy, written
):
    plan = boto3.client("apigateway", endpoint_url=served.direct).create_usage_plan(name="plan")["id"]
    before = written()
    proxy.fail("TransactWriteItems", kind)
    with pytest.raises(Exception) as raised:
        invoke(load("IssueKeyFunction"), {"name": "n", "owner": "o", "usage_plan_id": plan})
    assert "api_key" not in str(raised.value) and "kg_" not in str(raised.value)
    assert proxy.attempts("/apikeys")  # its API Gateway key was made first (API Gateway's calls go by path)
    assert written() == before  # and deleted again: no key, no audit record, no API Gateway key


@pytest.mark.parametrize("function", CHANGES)
def test_a_change_whose_write_fails_reports_it_and_changes_nothing(function, load, proxy, written):
    key = issue(load)
    before, earlier = written(), len(proxy.attempts("TransactWriteItems"))
    proxy.fail("TransactWriteItems", "500")
    with pytest.raises(Exception, match="InternalServerError"):
        invoke(load(function), CHANGES[function](key["key_id"]))
    assert written() == before
    assert len(proxy.attempts("TransactWriteItems")) - earlier == ATTEMPTS


@pytest.mark.parametrize("function", CHANGES)
def test_a_change_that_loses_a_race_is_retried_from_a_fresh_read_and_keeps_the_other_change(function, load, proxy):
    """Another admin renames the key between this change's read and its write: the write fails its version
    condition for real, and the retry, from a fresh read, lands beside the rename, each audited once."""
    key = issue(load)
    rename = load("UpdateKeyFunction")
    proxy.fail(
        "TransactWriteItems",
        "race",
        times=1,
        first=lambda: invoke(rename, {"key_id": key["key_id"], "name": "renamed-by-other"}),
    )
    answer = invoke(load(function), CHANGES[function](key["key_id"]))
    assert "error" not in answer, answer
    history = invoke(load("KeyHistoryFunction"), {"key_id": key["key_id"]})["events"]
    assert [event["version"] for event in history] == [1, 2, 3]
    assert history[1]["changes"]["name"]["new"] == "renamed-by-other"
    final = invoke(load("GetKeyFunction"), {"key_id": key["key_id"]})
    expected = {"UpdateKeyFunction": ("renamed", "active"), "RotateKeyFunction": ("renamed-by-other", "active"),
                "RevokeKeyFunction": ("renamed-by-other", "revoked")}[function]  # fmt: skip
    assert (final["name"], final["status"]) == expected  # an update of the name wins, being the later one


@pytest.mark.parametrize("function", CHANGES)
def test_a_transaction_conflict_is_retried_like_a_lost_race_and_audited_once(function, load, proxy):
    key = issue(load)
    proxy.fail("TransactWriteItems", "conflict", times=1)
    answer = invoke(load(function), CHANGES[function](key["key_id"]))
    assert "error" not in answer, answer
    history = invoke(load("KeyHistoryFunction"), {"key_id": key["key_id"]})["events"]
    assert [event["version"] for event in history] == [1, 2]


@pytest.mark.parametrize("kind", ["cancel", "conflict"])
@pytest.mark.parametrize("function", CHANGES)
def test_a_change_outraced_on_every_attempt_is_answered_as_such_and_writes_nothing(
    function, kind, load, proxy, written
):
    key = issue(load)
    before = written()
    proxy.fail("TransactWriteItems", kind)
    answer = invoke(load(function), CHANGES[function](key["key_id"]))
    assert answer["error"]["type"] == "ConcurrentChange" and "nothing was written" in answer["error"]["message"]
    assert written() == before


@pytest.mark.parametrize("function", ["IssueKeyFunction", "RotateKeyFunction"])
def test_an_admin_function_that_cannot_read_the_pepper_reports_it_and_writes_nothing(function, load, proxy, written):
    key = issue(load)
    before = written()
    proxy.fail("GetSecretValue", "secrets-500")
    event = {"name": "n", "owner": "o"} if function == "IssueKeyFunction" else {"key_id": key["key_id"]}
    with pytest.raises(Exception, match="pepper secret could not be read"):
        invoke(load(function), event)
    assert written() == before


@pytest.mark.parametrize("function", ["IssueKeyFunction", *CHANGES])
def test_a_write_whose_answer_was_lost_is_retried_with_its_token_and_happens_once(function, served, load, proxy):
    """DynamoDB wrote it; the answer was lost; botocore retried with the same ClientRequestToken (which it
    fills in itself), which DynamoDB answers as a success: one key, one audit record, the answer the one
    written. Without the token the retry would conflict with its own write and an issue would make a
    second key."""
    key = issue(load) if function != "IssueKeyFunction" else None
    proxy.fail("TransactWriteItems", "lost", times=1)
    answer = invoke(load(function), {"name": "n", "owner": "o"} if key is None else CHANGES[function](key["key_id"]))
    first, retry = proxy.attempts("TransactWriteItems")[-2:]
    assert (first.answered, retry.answered) == ("lost", 200)
    assert first.body["ClientRequestToken"] == retry.body["ClientRequestToken"]
    dynamodb = boto3.client("dynamodb", endpoint_url=served.direct)
    items = dynamodb.scan(TableName=served.physical_ids["KeysTable"])["Items"]
    audit = dynamodb.scan(TableName=served.physical_ids["AuditTable"])["Items"]
    assert len(items) == 1 and len(audit) == (1 if key is None else 2)
    assert items[0]["key_id"]["S"] == answer["key_id"]


def test_the_retries_of_a_lost_race_end_within_the_functions_timeouts(template):
    """No attempt starts after the retry budget, and the last one (a read and a write, each at most two
    attempts of a connect and a read timeout, and a backoff) ends before Lambda would cut the function off."""
    from keygate import lifecycle

    per_call = ATTEMPTS * (AWS_CLIENT_CONFIG.connect_timeout + AWS_CLIENT_CONFIG.read_timeout) + (ATTEMPTS - 1)
    for function in ("IssueKeyFunction", *CHANGES, "LeakReportFunction", "ReportLeakFunction"):
        timeout = template["Resources"][function]["Properties"].get(
            "Timeout", template["Globals"]["Function"]["Timeout"]
        )
        assert lifecycle._RETRY_SECONDS + 2 * per_call < timeout, function
