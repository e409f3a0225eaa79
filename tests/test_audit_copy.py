"""The audit trail's tamper-evident copy: every write to the audit table reaches AuditCopyLogGroup through
the table's stream, and `history --verify` names each record that was changed, removed, written twice or
never copied, whoever did it and however they try to cover it."""

import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from keygate.audit_copy import AuditCopyLog, digest
from keygate_local.streams import StreamReader
from tests.conftest import invoke
from tests.helpers.authorizer import service_of

READ = {"key_id", "verify"}


class _Trail:
    """Lambda's event source mapping on the audit table's stream, by hand."""

    def __init__(self, reader: StreamReader, copy_function):
        self._reader, self._copy_function = reader, copy_function

    def __call__(self) -> int:
        """Deliver what the stream holds since the last call to AuditCopyFunction; how many records."""
        records = self._reader.pending()
        if records:
            invoke(self._copy_function, {"Records": records})
            self._reader.done()
        return len(records)

    def skip(self) -> None:
        """Let what the stream holds go by, never copied (as before the copy began)."""
        self._reader.pending()
        self._reader.done()


@pytest.fixture
def copy_trail(stack, load) -> _Trail:
    return _Trail(
        StreamReader(boto3.client("dynamodbstreams"), stack.stream_arns["AuditTable"]), load("AuditCopyFunction")
    )


@pytest.fixture
def verify(admin):
    def verified(key_id: str) -> dict:
        return invoke(admin["KeyHistory"], {"key_id": key_id, "verify": True})["verification"]

    return verified


@pytest.fixture
def audit_table(stack):
    client, table = boto3.client("dynamodb"), stack.physical_ids["AuditTable"]

    class AuditTable:
        def get(self, key_id: str, version: int) -> dict:
            return client.get_item(TableName=table, Key=self.key(key_id, version))["Item"]

        def put(self, item: dict) -> None:  # as a compromised role's PutItem would: no condition
            client.put_item(TableName=table, Item=item)

        def delete(self, key_id: str, version: int) -> None:
            client.delete_item(TableName=table, Key=self.key(key_id, version))

        @staticmethod
        def key(key_id: str, version: int) -> dict:
            return {"key_id": {"S": key_id}, "version": {"N": str(version)}}

    return AuditTable()


@pytest.fixture
def changed_key(issued, admin, copy_trail) -> str:
    """A key issued, updated, rotated and revoked (four records), its trail copied."""
    key_id = issued()["key_id"]
    invoke(admin["UpdateKey"], {"key_id": key_id, "name": "renamed"})
    invoke(admin["RotateKey"], {"key_id": key_id, "grace_seconds": 0})
    invoke(admin["RevokeKey"], {"key_id": key_id})
    assert copy_trail() == 4
    return key_id


def problems(verification: dict) -> list[tuple]:
    return [(finding.get("version"), finding["problem"]) for finding in verification["findings"]]


def test_every_write_of_the_trail_is_copied_and_the_trail_verifies(changed_key, verify, stack):
    verification = verify(changed_key)
    assert verification == {"verified": True, "records": 4, "findings": []}
    events = boto3.client("logs").get_log_events(
        logGroupName=stack.physical_ids["AuditCopyLogGroup"], logStreamName=changed_key, startFromHead=True
    )["events"]
    assert [json.loads(event["message"])["version"] for event in events] == ["1", "2", "3", "4"]


def test_a_record_overwritten_in_the_table_is_named_changed(changed_key, verify, audit_table, copy_trail):
    record = audit_table.get(changed_key, 2)
    audit_table.put(record | {"actor": {"S": "somebody else"}})
    copy_trail()
    assert problems(verify(changed_key)) == [(2, "changed")]


def test_a_record_changed_and_put_back_is_still_named_changed(changed_key, verify, audit_table, copy_trail):
    record = audit_table.get(changed_key, 3)
    audit_table.put(record | {"actor": {"S": "somebody else"}})
    audit_table.put(record)
    copy_trail()
    assert problems(verify(changed_key)) == [(3, "changed")]


def test_a_record_removed_and_put_back_unchanged_is_named_removed_and_duplicated(
    changed_key, verify, audit_table, copy_trail
):
    record = audit_table.get(changed_key, 1)
    audit_table.delete(changed_key, 1)
    audit_table.put(record)
    copy_trail()
    assert problems(verify(changed_key)) == [(1, "duplicated"), (1, "removed")]


def test_a_record_deleted_by_a_principal_is_named_removed(changed_key, verify, audit_table, copy_trail):
    audit_table.delete(changed_key, 4)
    copy_trail()
    assert problems(verify(changed_key)) == [(4, "removed")]
    audit_table.put(audit_table.get(changed_key, 3) | {"version": {"N": "4"}})  # a forged v4 in its place
    copy_trail()
    assert problems(verify(changed_key)) == [(4, "changed"), (4, "removed")]


def test_a_record_deleted_by_the_table_s_ttl_is_no_problem(changed_key, verify, audit_table, stack, load):
    """DynamoDB's TTL deletes a record RetentionDays after it was written; its stream record names DynamoDB."""
    reader = StreamReader(boto3.client("dynamodbstreams"), stack.stream_arns["AuditTable"])
    reader.pending()
    reader.done()  # what changed_key wrote was copied already
    audit_table.delete(changed_key, 1)
    (removal,) = reader.pending()
    removal["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}  # moto sends none
    invoke(load("AuditCopyFunction"), {"Records": [removal]})
    assert verify(changed_key) == {"verified": True, "records": 3, "findings": []}


def test_a_record_not_copied_yet_is_named_so(issued, verify, copy_trail, admin):
    key_id = issued()["key_id"]
    copy_trail()
    invoke(admin["UpdateKey"], {"key_id": key_id, "name": "renamed"})
    assert problems(verify(key_id)) == [(2, "not copied")]
    copy_trail()
    assert verify(key_id)["verified"]


@pytest.fixture
def written_before_the_copy(issued, admin, copy_trail, monkeypatch) -> str:
    """A key whose two records were written before the copy began (a stack upgraded from 0.14)."""
    key_id = issued()["key_id"]
    invoke(admin["UpdateKey"], {"key_id": key_id, "name": "renamed"})
    copy_trail.skip()
    later = datetime.now(UTC) + timedelta(minutes=5)
    monkeypatch.setattr(service_of(admin["KeyHistory"])._audit_copy, "began", lambda: later)
    return key_id


def test_records_written_before_the_copy_began_are_listed_not_named(written_before_the_copy, verify):
    assert verify(written_before_the_copy) == {
        "verified": True, "records": 2, "findings": [], "written_before_the_copy_began": [1, 2],
    }  # fmt: skip


def test_a_record_written_before_the_copy_and_changed_since_is_named_changed(
    written_before_the_copy, verify, audit_table, copy_trail
):
    audit_table.put(audit_table.get(written_before_the_copy, 2) | {"actor": {"S": "somebody else"}})
    copy_trail()  # the stream's MODIFY: the first copy of version 2 is a change of it
    answer = verify(written_before_the_copy)
    assert problems(answer) == [(2, "changed")] and answer["written_before_the_copy_began"] == [1]


def test_a_key_changed_with_no_audit_record_differs_from_its_trail(changed_key, verify, stack):
    """An un-revoke by a role that may write status, straight to the keys table: no record, but the key no
    longer is what its trail says."""
    _write_key(stack, changed_key, status={"S": "active"})
    (finding,) = verify(changed_key)["findings"]
    assert finding["problem"] == "key differs from its trail" and finding["fields"] == ["status"]


def test_a_record_that_is_not_a_key_s_cannot_stall_the_copy(changed_key, audit_table, copy_trail, stack, verify):
    """Copying must not fail on what a write holds: a bad key id, a version that is no number, a huge item
    (over a log event's 256 KB) are copied, the first two to a stream of their own."""
    record = audit_table.get(changed_key, 1)
    audit_table.put(record | {"key_id": {"S": "not:a*key"}})
    audit_table.put(record | {"version": {"N": "1.5"}})
    audit_table.put(record | {"version": {"N": "99"}, "padding": {"S": "x" * 300_000}})
    assert copy_trail() == 3
    group, logs = stack.physical_ids["AuditCopyLogGroup"], boto3.client("logs")
    aside = logs.get_log_events(logGroupName=group, logStreamName="unreadable-records")["events"]
    assert len(aside) == 2 and "not:a*key" in aside[0]["message"] and '"1.5"' in aside[1]["message"]
    assert problems(verify(changed_key)) == [(99, "not a change of the key"), ("1.5", "not a record keygate writes")]


def _line(first: dict, **changed) -> str:
    return json.dumps(first | changed, sort_keys=True)


# Lines anyone with logs:PutLogEvents may append to a key's copy (every Lambda role of the account may):
# each must count as "not a copy", and none may stop verify from checking the rest.
HOSTILE_LINES = {
    "not JSON": lambda first: "hello",
    "a version that is a number": lambda first: _line(first, version=1),
    "a version that is a list": lambda first: _line(first, version=["1"]),
    "a superscript digit": lambda first: _line(first, version="²"),
    "an image that is a list": lambda first: _line(first, image=[1]),
    "an image its digest does not match": lambda first: _line(first, image={"x": {"S": "y"}}),
    "another event": lambda first: _line(first, event="DELETE"),
    "removed by someone said to be ttl": lambda first: _line(first, removed_by="admin"),
    "a field more": lambda first: _line(first, note="x"),
    "another format": lambda first: _line(first, format=2),
    "another key's line": lambda first: _line(first, key_id="A" * 16),
    "JSON null": lambda first: "null",
    "the first line, its fields reordered": lambda first: json.dumps(dict(reversed(first.items()))),
}


@pytest.mark.parametrize("hostile", HOSTILE_LINES.values(), ids=HOSTILE_LINES.keys())
def test_a_line_that_is_not_exactly_a_copy_is_named_and_checked_around(
    hostile, changed_key, verify, audit_table, copy_trail, stack
):
    group, logs = stack.physical_ids["AuditCopyLogGroup"], boto3.client("logs")
    first = json.loads(logs.get_log_events(logGroupName=group, logStreamName=changed_key)["events"][0]["message"])
    logs.put_log_events(
        logGroupName=group, logStreamName=changed_key,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": hostile(first)}],
    )  # fmt: skip
    audit_table.put(audit_table.get(changed_key, 2) | {"actor": {"S": "somebody else"}})
    copy_trail()
    assert problems(verify(changed_key)) == [(2, "changed"), (None, "not a copy")]


def test_a_flood_of_lines_is_one_finding_counted(changed_key, verify, stack):
    group, logs = stack.physical_ids["AuditCopyLogGroup"], boto3.client("logs")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group, logStreamName=changed_key,
        logEvents=[{"timestamp": now, "message": f"junk {n}"} for n in range(2000)],
    )  # fmt: skip
    (finding,) = verify(changed_key)["findings"]
    assert (finding["problem"], finding["count"]) == ("not a copy", 2000)


def test_a_record_whose_changes_are_not_keygate_s_is_named_not_a_crash(
    changed_key, verify, audit_table, copy_trail, stack
):
    audit_table.put(audit_table.get(changed_key, 3) | {"changes": {"M": {"status": {"S": "active"}}}})
    copy_trail()
    assert problems(verify(changed_key)) == [(3, "changed")]
    _write_key(stack, changed_key, version={"N": "5"})
    audit_table.put(audit_table.get(changed_key, 4) | {"version": {"N": "5"}, "changes": {"S": "none"}})
    copy_trail()
    assert (5, "not a record keygate writes") in problems(verify(changed_key))


def _record(key_id: str, version: int, action: str, changes: dict, at: str = "2030-01-01T00:00:00Z") -> dict:
    """An audit record as a role with PutItem on the audit table could forge one."""
    typed = {name: {"M": {"old": {"S": old}, "new": {"S": new}}} for name, (old, new) in changes.items()}
    return {
        "key_id": {"S": key_id}, "version": {"N": str(version)}, "action": {"S": action},
        "actor": {"S": "arn:aws:iam::123456789012:user/alice"}, "at": {"S": at}, "changes": {"M": typed},
    }  # fmt: skip


def _write_key(stack, key_id: str, **typed: dict) -> None:
    """A write to the keys table past keygate's code, as a role allowed those attributes could make it."""
    boto3.client("dynamodb").update_item(
        TableName=stack.physical_ids["KeysTable"],
        Key={"key_id": {"S": key_id}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in typed),
        ExpressionAttributeNames={f"#{name}": name for name in typed},
        ExpressionAttributeValues={f":{name}": value for name, value in typed.items()},
    )


def _un_revoke(stack, key_id: str) -> None:
    """What a role that may write status (RevokeKey's, UpdateKey's, the leak functions') could do."""
    _write_key(stack, key_id, status={"S": "active"}, version={"N": "5"})


def test_an_un_revoke_with_a_forged_record_is_named_a_change_after_the_revoke(
    changed_key, verify, audit_table, copy_trail, stack
):
    _un_revoke(stack, changed_key)
    audit_table.put(_record(changed_key, 5, "enable", {"status": ("revoked", "active")}))
    copy_trail()
    assert problems(verify(changed_key)) == [(5, "a change after the revoke")]


def test_a_forged_record_whose_old_values_the_trail_did_not_leave_is_named(
    issued, verify, audit_table, copy_trail, stack
):
    key_id = issued()["key_id"]  # named "test-client" by its first record
    _write_key(stack, key_id, name={"S": "x"}, version={"N": "2"})
    audit_table.put(_record(key_id, 2, "update", {"name": ("somebody", "x")}))
    copy_trail()
    (finding,) = verify(key_id)["findings"]
    assert (finding["version"], finding["problem"], finding["fields"]) == (
        2,
        "old values the trail did not leave",
        ["name"],
    )


def test_a_backdated_record_whose_copy_was_lost_is_not_taken_for_one_written_before_the_copy(
    changed_key, verify, audit_table, copy_trail, stack
):
    """The stream keeps a record 24 hours: one the copy never took (AuditCopyFunction down a day) is dated
    however its writer liked, but it comes after versions that were copied."""
    _un_revoke(stack, changed_key)
    audit_table.put(_record(changed_key, 5, "enable", {"status": ("revoked", "active")}, at="2020-01-01T00:00:00Z"))
    copy_trail.skip()
    answer = verify(changed_key)
    assert problems(answer) == [(5, "not copied"), (5, "a change after the revoke")]
    assert "written_before_the_copy_began" not in answer


def test_a_key_gone_while_its_trail_says_it_is_live_is_named(issued, admin, verify, copy_trail, stack):
    """A role that may write purge_at can set it in the past: DynamoDB's TTL then deletes a live key."""
    key_id = issued()["key_id"]
    copy_trail()
    boto3.client("dynamodb").delete_item(TableName=stack.physical_ids["KeysTable"], Key={"key_id": {"S": key_id}})
    assert problems(verify(key_id)) == [(None, "key gone while its trail says it is live")]


def test_a_revoked_key_s_item_gone_by_ttl_is_no_problem(changed_key, verify, stack):
    boto3.client("dynamodb").delete_item(TableName=stack.physical_ids["KeysTable"], Key={"key_id": {"S": changed_key}})
    assert verify(changed_key)["verified"]


class _PagedLogs:
    """GetLogEvents as AWS may answer it: an empty page before the end, the end when the token comes back."""

    def __init__(self, pages: list[list[str]]):
        self._pages = pages

    def get_log_events(self, nextToken=None, **_):
        at = int(nextToken or 0)
        if at >= len(self._pages):
            return {"events": [], "nextForwardToken": str(at)}
        events = [{"ingestionTime": at, "message": message} for message in self._pages[at]]
        return {"events": events, "nextForwardToken": str(at + 1)}


def test_reading_the_copy_goes_past_an_empty_page():
    lines = ["a", "b"]
    read = AuditCopyLog(_PagedLogs([[lines[0]], [], [lines[1]]]), "group").read("K")
    assert len(read.lines) == 2 and read.complete


def test_a_batch_delivered_twice_by_lambda_s_retries_counts_once(issued, verify, stack, load):
    key_id = issued()["key_id"]
    records = StreamReader(boto3.client("dynamodbstreams"), stack.stream_arns["AuditTable"]).pending()
    copy_function = load("AuditCopyFunction")
    for _ in range(2):
        invoke(copy_function, {"Records": records})
    assert verify(key_id) == {"verified": True, "records": 1, "findings": []}


def test_lines_appended_to_the_copy_later_cannot_cover_a_change(changed_key, verify, audit_table, copy_trail, stack):
    """Every function role may append to any log group: a later copy of a forged record, or a line that is no
    copy at all, is evidence too, never a cover, as the first copy CloudWatch Logs received wins."""
    group = stack.physical_ids["AuditCopyLogGroup"]
    logs = boto3.client("logs")
    first = json.loads(logs.get_log_events(logGroupName=group, logStreamName=changed_key)["events"][0]["message"])
    forged = audit_table.get(changed_key, 1) | {"actor": {"S": "somebody else"}}
    audit_table.put(forged)
    forged_copy = first | {"event_id": "forged", "image": forged, "digest": digest(forged)}  # as the copy writes one
    a_day_ago = int((time.time() - 86400) * 1000)  # dated before the real copies (received after them)
    answer = logs.put_log_events(
        logGroupName=group,
        logStreamName=changed_key,
        logEvents=[
            {"timestamp": a_day_ago, "message": json.dumps(forged_copy, sort_keys=True)},
            {"timestamp": a_day_ago, "message": "hi"},
        ],
    )  # and the stream's MODIFY never copied
    assert "rejectedLogEventsInfo" not in answer
    assert problems(verify(changed_key)) == [(1, "changed"), (None, "not a copy")]


def test_history_without_verify_reads_no_copy(changed_key, admin):
    answer = invoke(admin["KeyHistory"], {"key_id": changed_key})
    assert "verification" not in answer and len(answer["events"]) == 4


def test_verify_covers_the_whole_trail_whatever_the_page(changed_key, admin, audit_table, copy_trail):
    audit_table.put(audit_table.get(changed_key, 4) | {"actor": {"S": "somebody else"}})
    copy_trail()
    answer = invoke(admin["KeyHistory"], {"key_id": changed_key, "limit": 1, "verify": True})
    assert len(answer["events"]) == 1 and problems(answer["verification"]) == [(4, "changed")]


def test_no_keygate_role_may_delete_or_rewrite_the_copy(stack):
    """CloudWatch Logs events cannot be edited; deleting one takes deleting its stream or group, or a shorter
    retention. No role is granted any of that, and only the copy function writes to the group on purpose."""
    destructive = ("logs:Delete", "logs:PutRetentionPolicy", "logs:Untag", "logs:*", "*")
    writers = set()
    for function in stack.functions():
        for policy in stack.resource(function)["Properties"].get("Policies", []):
            for statement in policy["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not [action for action in actions if action.startswith(destructive)], function
                if "logs:PutLogEvents" in actions:
                    writers.add(function)
    assert writers == {"AuditCopyFunction"}
    group = stack.template["Resources"]["AuditCopyLogGroup"]
    assert group["DeletionPolicy"] == "Retain" and "RetentionInDays" not in group.get("Properties", {})
    # Made after the table's stream (its creation dates the copy's start): the tag naming the table orders it.
    assert group["Properties"]["Tags"] == [{"Key": "keygate:audit-table", "Value": {"Ref": "AuditTable"}}]


def test_an_alarm_fires_when_the_copy_falls_an_hour_behind(template):
    alarm = template["Resources"]["AuditCopyBehindAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", "IteratorAge", "Maximum")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "AuditCopyFunction"}}]
    assert alarm["Threshold"] == 3_600_000 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
