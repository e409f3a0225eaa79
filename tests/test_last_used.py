"""last_used_at: written at most once per key per LastUsedIntervalMinutes, by a conditional update off the
decision (a failed write never changes it), and the list filter that finds keys nobody used."""

from datetime import UTC, datetime, timedelta

import boto3
import botocore.client
import pytest

from keygate_cli import cli
from tests.conftest import fail_calls, invoke, wrong_secret
from tests.helpers.authorizer import decide, log_records, service_of, shaped

pytestmark = pytest.mark.dynamodb_local  # the authorizer's own conditional update, and the list filter on it


@pytest.fixture
def updates(monkeypatch) -> list[dict]:
    """The UpdateItem calls made from here on."""
    calls = []
    real = botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):
        if operation == "UpdateItem":
            calls.append(params)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


def bearer(key: dict, shape: str = "rest-token") -> dict:
    return shaped(shape, authorization=f"Bearer {key['api_key']}")


def last_used(admin, key: dict) -> str | None:
    return invoke(admin["GetKey"], {"key_id": key["key_id"]})["last_used_at"]


def set_last_used(stack, key: dict, moment: datetime) -> None:
    boto3.client("dynamodb").update_item(
        TableName=stack.physical_ids["KeysTable"],
        Key={"key_id": {"S": key["key_id"]}},
        UpdateExpression="SET last_used_at = :at",
        ExpressionAttributeValues={":at": {"S": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}},
    )


def test_the_first_use_is_recorded_and_the_next_ones_within_the_interval_write_nothing(
    issued, authorizer, admin, updates
):
    key = issued()
    before = datetime.now(UTC).replace(microsecond=0)
    for shape in ("rest-token", "rest-request", "http-api", "rest-token"):
        assert decide(authorizer, bearer(key, shape))[0]
    (write,) = updates
    assert write["UpdateExpression"] == "SET #used = :at" and set(write["ExpressionAttributeNames"].values()) == {
        "key_id",
        "last_used_at",
    }
    used = datetime.fromisoformat(last_used(admin, key))
    assert before <= used <= datetime.now(UTC)


def test_a_use_after_the_interval_is_recorded_again(issued, load, admin, stack, updates):
    key = issued()
    authorizer = load("AuthorizerFunction", LAST_USED_INTERVAL_MINUTES="5")
    set_last_used(stack, key, datetime.now(UTC) - timedelta(minutes=6))
    updates.clear()
    assert decide(authorizer, bearer(key))[0]
    assert len(updates) == 1 and datetime.fromisoformat(last_used(admin, key)) > datetime.now(UTC) - timedelta(
        minutes=1
    )
    set_last_used(stack, key, datetime.now(UTC) - timedelta(minutes=4))
    updates.clear()
    assert decide(authorizer, bearer(key))[0] and updates == []


def test_a_container_that_read_an_old_time_does_not_overwrite_a_newer_one(issued, authorizer, admin, stack):
    """Two containers may both find last_used_at due; the condition lets only the first write."""
    key = issued()
    assert decide(authorizer, bearer(key))[0]
    written = last_used(admin, key)
    store = service_of(authorizer)._store
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert store.touch(key["key_id"], an_hour_ago, due=an_hour_ago - timedelta(minutes=15)) is False
    assert last_used(admin, key) == written


@pytest.mark.parametrize("how", ["wrong secret", "disabled", "unknown"])
def test_a_refused_or_unproven_key_is_not_marked_used(how, issued, authorizer, admin, updates):
    key = issued()
    request = bearer(key)
    if how == "wrong secret":
        request = shaped("rest-token", authorization=f"Bearer {wrong_secret(key['api_key'])}")
    elif how == "disabled":
        invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": False})
    else:
        invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    updates.clear()
    assert not decide(authorizer, request)[0]
    assert updates == [] and last_used(admin, key) is None


def test_a_key_refused_for_its_scope_was_still_used(issued, load, admin):
    key = issued(scopes=["orders:read"])
    authorizer = load("AuthorizerFunction", ROUTE_SCOPES="GET /*=admin")
    assert not decide(authorizer, bearer(key, "http-api"))[0]
    assert last_used(admin, key) is not None


def test_a_failed_write_is_logged_and_the_request_is_answered_as_decided(
    issued, authorizer, admin, monkeypatch, capsys
):
    key = issued()
    fail_calls(monkeypatch, "UpdateItem", code="ProvisionedThroughputExceededException")
    capsys.readouterr()
    assert decide(authorizer, bearer(key))[0]
    records = log_records(capsys.readouterr().out)
    (warning,) = [r for r in records if r.get("message", "").startswith("last_used_at not written")]
    assert "ProvisionedThroughputExceededException" in warning["fault"] and warning["key_id"] == key["key_id"]
    assert [r["reason"] for r in records if r.get("message") == "key allowed"] == ["Allowed"]


def test_a_write_that_meets_an_admin_transaction_on_the_key_is_a_lost_race_tried_again_on_the_next_use(
    issued, authorizer, admin, monkeypatch, capsys
):
    key = issued()
    fail_calls(monkeypatch, "UpdateItem", code="TransactionConflictException", times=1)  # botocore does not retry it
    capsys.readouterr()
    assert decide(authorizer, bearer(key))[0]
    assert not [r for r in log_records(capsys.readouterr().out) if r.get("level") == "WARNING"]
    assert last_used(admin, key) is None
    assert decide(authorizer, bearer(key, "http-api"))[0]
    assert last_used(admin, key) is not None


def test_an_interval_of_zero_never_writes(issued, load, updates):
    key = issued()
    assert decide(load("AuthorizerFunction", LAST_USED_INTERVAL_MINUTES="0"), bearer(key))[0]
    assert updates == []


def test_list_unused_since_finds_keys_not_used_since_then_or_never(issued, authorizer, admin, stack):
    used_now, used_long_ago, _never = issued(name="now"), issued(name="long-ago"), issued(name="never")
    assert decide(authorizer, bearer(used_now))[0]
    set_last_used(stack, used_long_ago, datetime.now(UTC) - timedelta(days=40))
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listed = invoke(admin["ListKeys"], {"unused_since": since})
    assert {key["name"] for key in listed["keys"]} == {"long-ago", "never"}
    by_owner = invoke(admin["ListKeys"], {"owner": "team-test", "unused_since": since, "status": "active"})
    assert {key["name"] for key in by_owner["keys"]} == {"long-ago", "never"}


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-01T00:00:00", 20261101])
def test_a_bad_unused_since_is_refused_by_name(admin, bad):
    answer = invoke(admin["ListKeys"], {"unused_since": bad})
    assert answer["error"]["type"] == "InvalidRequest" and "unused_since" in answer["error"]["fields"]


def test_the_cli_sends_a_date_as_its_midnight_in_utc():
    arguments = cli.parser().parse_args(["list", "--unused-since", "2026-11-01"])
    assert cli.payload(arguments) == {"unused_since": "2026-11-01T00:00:00Z"}
    arguments = cli.parser().parse_args(["list", "--unused-since", "2026-11-01T12:00:00+02:00"])
    assert cli.payload(arguments) == {"unused_since": "2026-11-01T12:00:00+02:00"}
