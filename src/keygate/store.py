"""DynamoDB access for the keys and audit tables: the only module that calls them.

Every write is conditional: a new key must not exist yet, and a change must find the version it read
(optimistic concurrency), so two admins racing cannot overwrite each other silently. A change writes
only the attributes it changes, in one transaction with its audit record: no change without its record,
no record without its change.
"""

from __future__ import annotations  # a method named list would shadow list[...] in later annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from keygate.audit import Action, AuditRecord
from keygate.records import DECLARED, KeyRecord, State, Status, Writer, format_time, parse_time, written_by

OWNER_INDEX = "by-owner"
_BATCH = 100  # BatchGetItem's most keys a call
_BATCH_ATTEMPTS = 5  # of the keys it leaves unprocessed (it is throttled, or its answer too large)
# What pepper-status reads of each key: enough to tell its pepper versions and state, never a hash.
PEPPER_USAGE_ATTRIBUTES = (
    "key_id", "status", "expires_at", "pepper_version", "previous_pepper_version", "previous_expires_at",
)  # fmt: skip
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class KeyNotFound(LookupError):
    """No key with this id."""


class ConcurrentChange(RuntimeError):
    """The item changed between read and write; the caller may read again and retry."""


class InvalidNextToken(ValueError):
    """A next_token that this store did not hand out for this query."""


class CorruptRecord(ValueError):
    """An item in the table that is not a valid key record."""


class UndeclaredWrite(RuntimeError):
    """A change of an attribute that its writer is not declared to write (KeyRecord), and so is not granted
    to write either: refused here, with its name, rather than by IAM as AccessDenied."""


class DamagedResponse(RuntimeError):
    """DynamoDB's answer does not match its CRC32 (``x-amz-crc32``). botocore retries such an answer but,
    out of attempts, hands back the damaged one parsed as far as it goes: a cut-off GetItem would read
    as "no such item"."""


def _refuse_damaged(http_response, **_) -> None:
    expected = http_response.headers.get("x-amz-crc32")
    if expected is not None and str(zlib.crc32(http_response.content)) != expected.strip():
        raise DamagedResponse("DynamoDB's answer was damaged in transit (its CRC32 does not match)")


def to_item(record: KeyRecord) -> dict:
    """The key's item: each field as its declaration stores it; a field that is None, or that its codec
    stores as nothing (an empty map), left out."""
    item = {}
    for name, declared in DECLARED.items():
        value = getattr(record, name)
        if value is not None and (stored := declared.codec.store(value)) is not None:
            item[declared.attribute] = stored
    return _serialized(item)


def from_item(item: dict) -> KeyRecord:
    try:
        values = _deserialized(item)
        fields = {}
        for name, declared in DECLARED.items():
            if declared.attribute in values:
                fields[name] = declared.codec.load(values[declared.attribute])
            elif declared.required:
                raise KeyError(declared.attribute)
        return KeyRecord(**fields)
    except (KeyError, TypeError, ValueError) as error:
        key_id = item.get("key_id", {}).get("S", "?")
        raise CorruptRecord(f"item {key_id!r} is not a key record: {type(error).__name__} {error}") from None


def audit_item(audit: AuditRecord) -> dict:
    item = {
        "key_id": audit.key_id,
        "version": audit.version,
        "action": audit.action.value,
        "actor": audit.actor,
        "at": format_time(audit.at),
        "changes": audit.changes,
    }
    if audit.purge_at is not None:
        item["purge_at"] = int(audit.purge_at.timestamp())
    if audit.details:
        item["details"] = audit.details
    return _serialized(item)


def from_audit_item(item: dict) -> AuditRecord:
    values = _deserialized(item)
    return AuditRecord(
        key_id=values["key_id"],
        version=int(values["version"]),
        action=Action(values["action"]),
        actor=values["actor"],
        at=parse_time(values["at"]),
        changes=_plain(values["changes"]),
        details=values.get("details"),
    )


def _serialized(item: dict) -> dict:
    return {name: _serializer.serialize(value) for name, value in item.items()}


def _deserialized(item: dict) -> dict:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _plain(value: object) -> object:
    """DynamoDB's Decimals back to ints, in a nested value (an audited change of ``version``, say)."""
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    if hasattr(value, "to_integral_value"):
        return int(value)
    return value


# The writer of each change the audit trail records.
_WRITERS = {
    Action.UPDATE: Writer.UPDATE,
    Action.ENABLE: Writer.UPDATE,
    Action.DISABLE: Writer.UPDATE,
    Action.ROTATE: Writer.ROTATE,
    Action.REVOKE: Writer.REVOKE,
    Action.GRACE_END: Writer.GRACE_END,
}

# Lost races: a condition that no longer holds, or (DynamoDB) another transaction on the same item at the
# same moment, which botocore does not retry. Either way nothing was written and a fresh read may succeed.
_RACE_REASONS = ("ConditionalCheckFailed", "TransactionConflict")


def _is_conditional_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    if code == "TransactionCanceledException":  # moto and DynamoDB name each item's reason
        reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons") or []]
        message = error.response.get("Error", {}).get("Message", "")
        return any(reason in _RACE_REASONS for reason in reasons) or any(r in message for r in _RACE_REASONS)
    return code in ("ConditionalCheckFailedException", "TransactionConflictException")


class KeyStore:
    def __init__(self, table_name: str, client, audit_table: str = ""):
        self._table = table_name
        self._audit_table = audit_table
        self._client = client
        client.meta.events.register("after-call.dynamodb", _refuse_damaged, unique_id="keygate-refuse-damaged")

    def get(self, key_id: str) -> KeyRecord | None:
        """Strongly consistent, so a revocation is seen by the very next call."""
        response = self._client.get_item(TableName=self._table, Key={"key_id": {"S": key_id}}, ConsistentRead=True)
        return from_item(response["Item"]) if "Item" in response else None

    def existing(self, key_ids: Iterable[str]) -> set[str]:
        """Which of these keys are in the table (strongly consistent), reading nothing but their ids."""
        found, wanted = set(), sorted(set(key_ids))
        for start in range(0, len(wanted), _BATCH):
            keys = [{"key_id": {"S": key_id}} for key_id in wanted[start : start + _BATCH]]
            request = {self._table: {"Keys": keys, "ProjectionExpression": "key_id", "ConsistentRead": True}}
            for _ in range(_BATCH_ATTEMPTS):
                response = self._client.batch_get_item(RequestItems=request)
                found |= {item["key_id"]["S"] for item in response.get("Responses", {}).get(self._table, [])}
                if not (request := response.get("UnprocessedKeys")):
                    break
            else:
                raise RuntimeError("DynamoDB left keys unread on every attempt")
        return found

    def create(self, record: KeyRecord, audit: AuditRecord, along: Sequence[dict] = ()) -> None:
        """Write a new key and its audit record, and the transaction items ``along`` (of other tables);
        ConcurrentChange if the key id exists (never overwrites) or an item's condition fails."""
        key = {"TableName": self._table, "Item": to_item(record), "ConditionExpression": "attribute_not_exists(key_id)"}
        self._transact({"Put": key}, audit, f"key id {record.key_id!r} exists already", along)

    def update(self, before: KeyRecord, after: KeyRecord, audit: AuditRecord, along: Sequence[dict] = ()) -> None:
        """Write what differs between two versions of a key, with its audit record and the items ``along``,
        only if the stored item still has ``before.version``. Attributes not changed are left as they are,
        known or not."""
        update = self._changed(before, after, _WRITERS[audit.action])
        self._transact({"Update": update}, audit, f"key {after.key_id!r} changed since read", along)

    def rehash(self, before: KeyRecord, after: KeyRecord) -> None:
        """Replace a key's hash and pepper version (the same secret, re-hashed), only if neither it nor
        its hash changed since it was read. Not a change of the key: no audit record, no new version."""
        update = self._changed(before, after, Writer.REHASH)
        update["ConditionExpression"] += " AND #hash = :old_hash"
        update["ExpressionAttributeNames"]["#hash"] = "hash"
        update["ExpressionAttributeValues"][":old_hash"] = {"S": before.phc_hash}
        try:
            self._client.update_item(**update)
        except ClientError as error:
            if _is_conditional_failure(error):
                raise ConcurrentChange(f"key {before.key_id!r} changed since it was read") from None
            raise

    def touch(self, key_id: str, at: datetime, due: datetime) -> bool:
        """Set last_used_at to ``at`` if it is unset or older than ``due``; False if another call got
        there first. Writes nothing else: not a change of the key, no version, no audit record."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"key_id": {"S": key_id}},
                UpdateExpression="SET #used = :at",
                ConditionExpression="attribute_exists(#key) AND (attribute_not_exists(#used) OR #used < :due)",
                ExpressionAttributeNames={"#key": "key_id", "#used": "last_used_at"},
                ExpressionAttributeValues={":at": {"S": format_time(at)}, ":due": {"S": format_time(due)}},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    def _changed(self, before: KeyRecord, after: KeyRecord, writer: Writer) -> dict:
        old, new = to_item(before), to_item(after)
        changed = [name for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)]
        if undeclared := set(changed) - written_by(writer):
            raise UndeclaredWrite(f"{writer} may not change {', '.join(sorted(undeclared))} of a key")
        names = {f"#a{n}": name for n, name in enumerate(changed)}
        to_set = [alias for alias, name in names.items() if name in new]
        to_remove = [alias for alias, name in names.items() if name not in new]
        expression = " ".join(
            part
            for part in (
                "SET " + ", ".join(f"{alias} = :{alias[1:]}" for alias in to_set) if to_set else "",
                "REMOVE " + ", ".join(to_remove) if to_remove else "",
            )
            if part
        )
        return {
            "TableName": self._table,
            "Key": {"key_id": {"S": before.key_id}},
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(key_id) AND #version = :expected",
            "ExpressionAttributeNames": {**names, "#version": "version"},
            "ExpressionAttributeValues": {
                **{f":{alias[1:]}": new[names[alias]] for alias in to_set},
                ":expected": {"N": str(before.version)},
            },
        }

    def _transact(self, change: dict, audit: AuditRecord, conflict: str, along: Sequence[dict]) -> None:
        record = {
            "TableName": self._audit_table,
            "Item": audit_item(audit),
            "ConditionExpression": "attribute_not_exists(key_id)",
        }
        try:  # botocore fills in ClientRequestToken and keeps it across retries: a lost answer's retry succeeds
            self._client.transact_write_items(TransactItems=[change, {"Put": record}, *along])
        except ClientError as error:
            if _is_conditional_failure(error):
                raise ConcurrentChange(conflict) from None
            raise

    def list(
        self,
        owner: str | None,
        state: State | None,
        limit: int,
        next_token: str | None,
        now: datetime,
        unused_since: datetime | None = None,
    ) -> tuple[list[KeyRecord], str | None]:
        """One page of keys, newest first for an owner; ``next_token`` is None on the last page. With a
        state, or ``unused_since`` (keys not used since then, or never), DynamoDB filters each page after
        reading it, so a page may hold fewer than ``limit``."""
        request: dict = {"TableName": self._table, "Limit": limit}
        names, values = {}, {}
        if next_token is not None:
            expected = {"key_id": "S"} if owner is None else {"key_id": "S", "owner": "S", "created_at": "S"}
            request["ExclusiveStartKey"] = _decode_token(next_token, expected, {"owner": owner})
        if state is not None:
            expression, status = _STATE_FILTERS[state]
            request["FilterExpression"] = expression
            names, values = {"#status": "status"}, {":status": {"S": status.value}}
            if "#expires_at" in expression:
                names, values = names | {"#expires_at": "expires_at"}, values | {":now": {"S": format_time(now)}}
        if unused_since is not None:
            unused = "(attribute_not_exists(#last_used_at) OR #last_used_at < :unused_since)"
            request["FilterExpression"] = f"{request['FilterExpression']} AND {unused}" if state else unused
            names |= {"#last_used_at": "last_used_at"}
            values |= {":unused_since": {"S": format_time(unused_since)}}
        if owner is not None:
            request |= {"IndexName": OWNER_INDEX, "KeyConditionExpression": "#owner = :owner"}
            request["ScanIndexForward"] = False
            names, values = names | {"#owner": "owner"}, values | {":owner": {"S": owner}}
        if names:
            request |= {"ExpressionAttributeNames": names, "ExpressionAttributeValues": values}
        response = self._client.query(**request) if owner is not None else self._client.scan(**request)
        records = [from_item(item) for item in response.get("Items", [])]
        return records, _next_token(response)

    def history(self, key_id: str, limit: int, next_token: str | None) -> tuple[list[AuditRecord], str | None]:
        """One page of a key's audit records, oldest first."""
        request: dict = {
            "TableName": self._audit_table,
            "KeyConditionExpression": "key_id = :key_id",
            "ExpressionAttributeValues": {":key_id": {"S": key_id}},
            "ScanIndexForward": True,
            "Limit": limit,
        }
        if next_token is not None:
            request["ExclusiveStartKey"] = _decode_token(
                next_token, {"key_id": "S", "version": "N"}, {"key_id": key_id}
            )
        response = self._client.query(**request)
        return [from_audit_item(item) for item in response.get("Items", [])], _next_token(response)

    def audit_items(self, key_id: str) -> dict[str, dict]:
        """Every audit record of a key as stored (DynamoDB's typed JSON), by its version's text: to compare
        with its copy, whatever a record holds."""
        items, start = {}, None
        while True:
            request = {
                "TableName": self._audit_table,
                "KeyConditionExpression": "key_id = :key_id",
                "ExpressionAttributeValues": {":key_id": {"S": key_id}},
                "ConsistentRead": True,
            }
            response = self._client.query(**request, **({"ExclusiveStartKey": start} if start else {}))
            items |= {item["version"]["N"]: item for item in response.get("Items", [])}
            start = response.get("LastEvaluatedKey")
            if start is None:
                return items

    def pepper_usage(self, limit: int, next_token: str | None) -> tuple[list[dict], str | None]:
        """One page of every key's pepper versions and state, read without its hashes."""
        request: dict = {
            "TableName": self._table,
            "Limit": limit,
            "Select": "SPECIFIC_ATTRIBUTES",
            "ProjectionExpression": ", ".join(f"#a{n}" for n in range(len(PEPPER_USAGE_ATTRIBUTES))),
            "ExpressionAttributeNames": {f"#a{n}": name for n, name in enumerate(PEPPER_USAGE_ATTRIBUTES)},
        }
        if next_token is not None:
            request["ExclusiveStartKey"] = _decode_token(next_token, {"key_id": "S"}, {})
        response = self._client.scan(**request)
        return [_deserialized(item) for item in response.get("Items", [])], _next_token(response)


# A state as a filter on the stored status and expiry (times are stored as sortable UTC strings).
_NOT_EXPIRED = "(attribute_not_exists(#expires_at) OR #expires_at > :now)"
_STATE_FILTERS = {
    State.ACTIVE: (f"#status = :status AND {_NOT_EXPIRED}", Status.ACTIVE),
    State.DISABLED: (f"#status = :status AND {_NOT_EXPIRED}", Status.DISABLED),
    State.EXPIRED: ("#status <> :status AND #expires_at <= :now", Status.REVOKED),
    State.REVOKED: ("#status = :status", Status.REVOKED),
}


def _next_token(response: dict) -> str | None:
    last_key = response.get("LastEvaluatedKey")
    return base64.urlsafe_b64encode(json.dumps(last_key, sort_keys=True).encode()).decode() if last_key else None


def _decode_token(token: str, expected: dict[str, str], same: dict[str, str | None]) -> dict:
    """A next_token back to DynamoDB's start key: the attributes and types ``expected``, and the values
    of ``same`` (a list of one owner's keys cannot be continued with another's token)."""
    invalid = InvalidNextToken("next_token is not a token this API handed out")
    try:
        start_key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise invalid from None
    if not isinstance(start_key, dict) or set(start_key) != set(expected):
        raise invalid
    for name, kind in expected.items():
        value = start_key[name]
        if not (isinstance(value, dict) and set(value) == {kind} and isinstance(value[kind], str)):
            raise invalid
    for name, wanted in same.items():
        if wanted is not None and start_key[name][expected[name]] != wanted:
            raise InvalidNextToken(f"next_token belongs to a list of another {name}")
    return start_key
