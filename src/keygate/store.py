"""DynamoDB access for the keys table: the only module that calls DynamoDB.

Every write is conditional: a new key must not exist yet, and a change must find the version it read
(optimistic concurrency), so two admins racing cannot overwrite each other silently. A change writes
only the attributes it changes.
"""

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import UTC, datetime

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from keygate.records import KeyRecord, Status, format_time, parse_time

OWNER_INDEX = "by-owner"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class KeyNotFound(LookupError):
    """No key with this id."""


class ConcurrentChange(RuntimeError):
    """The item changed between read and write; the caller may read again and retry."""


class InvalidNextToken(ValueError):
    """A list next_token that this store did not hand out for this query."""


class CorruptRecord(ValueError):
    """An item in the table that is not a valid key record."""


def to_item(record: KeyRecord) -> dict:
    item = {
        "key_id": record.key_id,
        "hash": record.phc_hash,
        "pepper_version": record.pepper_version,
        "status": record.status.value,
        "name": record.name,
        "owner": record.owner,
        "description": record.description,
        "scopes": list(record.scopes),
        "created_at": format_time(record.created_at),
        "version": record.version,
    }
    if record.apis is not None:
        item["apis"] = list(record.apis)
    for name in ("expires_at", "revoked_at", "last_used_at"):
        if (moment := getattr(record, name)) is not None:
            item[name] = format_time(moment)
    if record.purge_at is not None:
        item["purge_at"] = int(record.purge_at.timestamp())
    return {name: _serializer.serialize(value) for name, value in item.items()}


def from_item(item: dict) -> KeyRecord:
    try:
        values = {name: _deserializer.deserialize(value) for name, value in item.items()}

        def optional_time(name: str) -> datetime | None:
            return parse_time(values[name]) if name in values else None

        return KeyRecord(
            key_id=values["key_id"],
            phc_hash=values["hash"],
            pepper_version=values["pepper_version"],
            status=Status(values["status"]),
            name=values["name"],
            owner=values["owner"],
            description=values.get("description", ""),
            scopes=_strings(values.get("scopes", [])),
            apis=_strings(values["apis"]) if "apis" in values else None,
            created_at=parse_time(values["created_at"]),
            expires_at=optional_time("expires_at"),
            revoked_at=optional_time("revoked_at"),
            last_used_at=optional_time("last_used_at"),
            purge_at=datetime.fromtimestamp(int(values["purge_at"]), UTC) if "purge_at" in values else None,
            version=int(values["version"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        key_id = item.get("key_id", {}).get("S", "?")
        raise CorruptRecord(f"item {key_id!r} is not a key record: {type(error).__name__} {error}") from None


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class KeyStore:
    def __init__(self, table_name: str, client):
        self._table = table_name
        self._client = client

    def get(self, key_id: str) -> KeyRecord | None:
        """Strongly consistent, so a revocation is seen by the very next call."""
        response = self._client.get_item(TableName=self._table, Key={"key_id": {"S": key_id}}, ConsistentRead=True)
        return from_item(response["Item"]) if "Item" in response else None

    def create(self, record: KeyRecord) -> None:
        """Write a new key; raises ConcurrentChange if the key id exists already (never overwrites)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(key_id)",
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise ConcurrentChange(f"key id {record.key_id!r} exists already") from None
            raise

    def update(self, record: KeyRecord, expected_version: int, attributes: Iterable[str]) -> None:
        """Write the named attributes of a changed key (and its version), only if the stored item still
        has ``expected_version``. Attributes not named are left as they are, known to this code or not."""
        item = to_item(record)
        names = {f"#a{n}": name for n, name in enumerate({*attributes, "version"})}
        to_set = [alias for alias, name in names.items() if name in item]
        to_remove = [alias for alias, name in names.items() if name not in item]
        expression = "SET " + ", ".join(f"{alias} = :{alias[1:]}" for alias in to_set)
        if to_remove:
            expression += " REMOVE " + ", ".join(to_remove)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"key_id": {"S": record.key_id}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(key_id) AND #version = :expected",
                ExpressionAttributeNames={**names, "#version": "version"},
                ExpressionAttributeValues={
                    **{f":{alias[1:]}": item[names[alias]] for alias in to_set},
                    ":expected": {"N": str(expected_version)},
                },
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise ConcurrentChange(f"key {record.key_id!r} changed since it was read") from None
            raise

    def list(self, owner: str | None, limit: int, next_token: str | None) -> tuple[list[KeyRecord], str | None]:
        """One page of keys, newest first for an owner; ``next_token`` is None on the last page."""
        request: dict = {"TableName": self._table, "Limit": limit}
        if next_token is not None:
            request["ExclusiveStartKey"] = _decode_token(next_token, owner)
        if owner is None:
            response = self._client.scan(**request)
        else:
            response = self._client.query(
                **request,
                IndexName=OWNER_INDEX,
                KeyConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
                ScanIndexForward=False,
            )
        records = [from_item(item) for item in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        return records, _encode_token(last_key) if last_key else None


def _encode_token(last_key: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(last_key, sort_keys=True).encode()).decode()


def _decode_token(token: str, owner: str | None) -> dict:
    expected = {"key_id"} if owner is None else {"key_id", "owner", "created_at"}
    try:
        start_key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise InvalidNextToken("next_token is not a token this API handed out") from None
    if (
        not isinstance(start_key, dict)
        or set(start_key) != expected
        or not all(
            isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)
            for value in start_key.values()
        )
    ):
        raise InvalidNextToken("next_token is not a token this API handed out")
    if owner is not None and start_key["owner"]["S"] != owner:
        raise InvalidNextToken("next_token belongs to a list of another owner")
    return start_key
