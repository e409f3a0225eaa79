"""The audit trail: every change writes its record in the same transaction, with the fields it changed,
old and new, and never a key, a secret, a hash or a pepper; a key's history reads it back, oldest first."""

import json
import re
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from keygate_local.template import Stack
from tests.conftest import event, fail_calls, invoke
from tests.helpers.regions import REGIONAL, REPLICATED

pytestmark = pytest.mark.dynamodb_local  # the audit table: one transaction with each change, queried oldest first


@pytest.fixture
def audit_items(stack):
    client = boto3.client("dynamodb")
    return lambda: client.scan(TableName=stack.physical_ids["AuditTable"])["Items"]


def history(admin, key_id: str, **paging) -> dict:
    return invoke(admin["KeyHistory"], {"key_id": key_id, **paging})


def test_every_change_is_recorded_with_its_action_actor_and_fields(issued, admin):
    key = issued(name="n", scopes=["a"], actor="alice")
    key_id = key["key_id"]
    invoke(admin["UpdateKey"], {"key_id": key_id, "scopes": ["a", "b"], "actor": "bob"})
    invoke(admin["UpdateKey"], {"key_id": key_id, "enabled": False, "actor": "carol"})
    invoke(admin["UpdateKey"], {"key_id": key_id, "enabled": True})
    invoke(admin["RotateKey"], {"key_id": key_id, "grace_seconds": 0, "actor": "dave"})
    invoke(admin["RevokeKey"], {"key_id": key_id, "actor": "erin"})
    answer = history(admin, key_id)
    events = answer["events"]
    assert answer["key_id"] == key_id and answer["next_token"] is None
    assert [(e["version"], e["action"], e["actor"]) for e in events] == [
        (1, "issue", "alice"), (2, "update", "bob"), (3, "disable", "carol"), (4, "enable", "unspecified"),
        (5, "rotate", "dave"), (6, "revoke", "erin"),
    ]  # fmt: skip
    assert events[0]["changes"]["name"] == {"old": None, "new": "n"}
    assert events[0]["changes"]["status"] == {"old": None, "new": "active"}
    assert events[1]["changes"] == {"scopes": {"old": ["a"], "new": ["a", "b"]}}
    assert events[2]["changes"] == {"status": {"old": "active", "new": "disabled"}}
    assert set(events[4]["changes"]) == {"rotated_at"}  # a new secret; its hash is never recorded
    assert events[5]["changes"]["status"] == {"old": "active", "new": "revoked"}
    assert all(datetime.strptime(e["at"], "%Y-%m-%dT%H:%M:%SZ") for e in events)


def test_no_record_holds_a_key_a_secret_a_hash_or_a_pepper(stack, issued, admin, audit_items):
    key = issued()
    rotated = invoke(admin["RotateKey"], {"key_id": key["key_id"]})
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    text = json.dumps(audit_items())
    pepper = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=stack.physical_ids["PepperSecret"])["SecretString"]
    )["v1"]
    for secret in (key["api_key"], rotated["api_key"], key["api_key"].split("_")[2][:-6], pepper, "$argon2"):
        assert secret not in text


def test_nothing_is_written_when_the_audit_record_cannot_be(stack, issued, admin, monkeypatch, table_items):
    """The change and its record are one transaction: a failure of either writes neither."""
    key = issued()
    before = table_items()
    with monkeypatch.context() as patch:
        fail_calls(patch, "TransactWriteItems", code="ValidationException")
        for function, request in (("UpdateKey", {"name": "x"}), ("RotateKey", {}), ("RevokeKey", {})):
            with pytest.raises(ClientError):
                invoke(admin[function], {"key_id": key["key_id"], **request})
        with pytest.raises(ClientError):
            invoke(admin["IssueKey"], {"name": "n", "owner": "o"})
    assert table_items() == before
    assert [e["version"] for e in history(admin, key["key_id"])["events"]] == [1]


def test_a_key_record_and_its_history_cannot_disagree_after_a_conflict(issued, admin, audit_items):
    key = issued()
    stale = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "x", "expected_version": 7})
    assert stale["error"]["type"] == "VersionConflict"
    assert len(audit_items()) == 1


def test_history_pages_oldest_first(issued, admin):
    key = issued()
    for n in range(4):
        invoke(admin["UpdateKey"], {"key_id": key["key_id"], "description": f"d{n}"})
    first = history(admin, key["key_id"], limit=2)
    second = history(admin, key["key_id"], limit=2, next_token=first["next_token"])
    third = history(admin, key["key_id"], limit=2, next_token=second["next_token"])
    versions = [e["version"] for page in (first, second, third) for e in page["events"]]
    assert versions == [1, 2, 3, 4, 5] and third["next_token"] is None


def test_a_history_token_cannot_be_used_for_another_key(issued, admin):
    one, other = issued(), issued()
    for key in (one, other):
        invoke(admin["UpdateKey"], {"key_id": key["key_id"], "description": "d"})
    token = history(admin, one["key_id"], limit=1)["next_token"]
    answer = history(admin, other["key_id"], next_token=token)
    assert answer["error"]["type"] == "InvalidRequest" and "another key_id" in answer["error"]["message"]
    assert history(admin, one["key_id"], next_token="garbage")["error"]["type"] == "InvalidRequest"


def test_the_history_event_file_and_an_unknown_key(issued, admin):
    key = issued()
    assert (
        invoke(admin["KeyHistory"], event("key-history.json", key_id=key["key_id"]))["events"][0]["action"] == "issue"
    )
    assert history(admin, "A" * 16)["error"]["type"] == "KeyNotFound"


def test_a_live_key_whose_records_have_expired_has_an_empty_history(issued, admin, stack, audit_items):
    key = issued()
    client = boto3.client("dynamodb")
    for item in audit_items():  # as DynamoDB's TTL does, RetentionDays after each record was written
        client.delete_item(TableName=stack.physical_ids["AuditTable"], Key={k: item[k] for k in ("key_id", "version")})
    assert history(admin, key["key_id"]) == {"key_id": key["key_id"], "events": [], "next_token": None}


def test_records_are_kept_retention_days_after_they_were_written(issued, audit_items, load):
    issued()
    (item,) = audit_items()
    written = datetime.strptime(item["at"]["S"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(item["purge_at"]["N"]) == int((written + timedelta(days=90)).timestamp())
    invoke(load("IssueKeyFunction", RETENTION_DAYS="0"), {"name": "n", "owner": "o"})
    assert sum("purge_at" in item for item in audit_items()) == 1


@pytest.mark.parametrize("parameters", [{}, REPLICATED, REGIONAL], ids=["own-tables", "global-tables", "regional"])
def test_the_audit_table_is_append_only_for_every_function(template, parameters):
    """No function may update or delete an audit record: only put new ones, and the history query."""
    deployed = Stack(template, parameters).template
    for name, resource in deployed["Resources"].items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy.get("Statement", []):
                if re.search(r"\bAuditTable(Name)?\b", json.dumps(statement["Resource"])):
                    assert statement["Action"] in ("dynamodb:PutItem", "dynamodb:Query"), name


def test_a_change_whose_record_is_refused_is_not_written_either(stack, issued, admin, table_items):
    """DynamoDB cancels the whole transaction when the record's own condition fails (here: a record
    already holds the version the change would write), so the key is left as it was."""
    key = issued()
    boto3.client("dynamodb").put_item(
        TableName=stack.physical_ids["AuditTable"],
        Item={"key_id": {"S": key["key_id"]}, "version": {"N": "2"}, "action": {"S": "squatter"}},
    )
    before = table_items()
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "never"})
    assert answer["error"]["type"] == "ConcurrentChange" and "nothing was written" in answer["error"]["message"]
    assert table_items() == before
