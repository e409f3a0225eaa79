"""The audit trail's tamper-evident copy: its lines, and the log group that holds them.

IAM limits which attributes a role writes, not the values it writes: a compromised role could overwrite
an audit record, or un-revoke a key with no record at all. The audit table's stream sees every write to
it; AuditCopyFunction appends each to AuditCopyLogGroup, one log stream per key. Log events cannot be
changed, no keygate role may delete a log group or stream, and each event carries the time CloudWatch Logs
received it (``ingestionTime``), which no writer sets. Every Lambda role of the account may append to any
log group (the basic execution policy), so a line is trusted for nothing but its arrival, and read
strictly: anything not exactly a line this module writes is "not a copy". ``audit_verify`` checks a key
against it.

A write that is not a keygate record (a key id that is not one, a version that is not a whole number) or
that cannot be read is copied as it is to a stream of its own, so that no write can stall the copy.
"""

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from keygate.keys import KEY_ID_PATTERN

FORMAT = 1  # of a line; a later one keeps a parser for this one
TTL_PRINCIPAL = "dynamodb.amazonaws.com"  # the stream's userIdentity of a deletion by DynamoDB's TTL
UNREADABLE = "unreadable-records"  # the log stream of writes that are not a keygate record
EVENTS = ("INSERT", "MODIFY", "REMOVE")
VERSION = re.compile(r"[0-9]{1,19}")  # a version keygate writes: a whole number
MAX_LINES = 50_000  # of a key's copy read; no key keygate changes comes near it
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MAX_MESSAGE = 200_000  # bytes; CloudWatch Logs takes 256 KB an event, a DynamoDB item may be 400 KB
_MAX_BATCH_EVENTS = 10_000  # PutLogEvents' limits: events, and bytes counting 26 more an event
_MAX_BATCH_BYTES = 1_000_000


@dataclass(frozen=True)
class CopiedWrite:
    """One write to the audit table, as its stream saw it: the record as stored, or its SHA-256 if too big."""

    event: str  # INSERT, MODIFY or REMOVE
    event_id: str  # the stream's, so that the same write copied twice is one and two writes are two
    key_id: str
    version: str  # the record's version as stored: a whole number's text
    image: dict | None  # the record written, or for a REMOVE the one removed (DynamoDB's typed JSON)
    digest: str  # SHA-256 of the image, canonical JSON
    removed_by_ttl: bool = False

    def message(self) -> str:
        fields = {"format": FORMAT, "event": self.event, "event_id": self.event_id, "key_id": self.key_id}
        fields |= {"version": self.version, "digest": self.digest}
        fields |= {"removed_by": "ttl"} if self.removed_by_ttl else {}
        whole = json.dumps(fields | {"image": self.image}, sort_keys=True) if self.image is not None else ""
        if whole and len(whole.encode()) <= _MAX_MESSAGE:
            return whole
        return json.dumps(fields, sort_keys=True)  # the digest alone stands for a record too big for a log event

    @classmethod
    def from_message(cls, text: str) -> "CopiedWrite":
        """The copy a line is; ValueError unless it is exactly a line ``message`` writes."""
        fields = json.loads(text)
        if not isinstance(fields, dict) or fields.get("format") != FORMAT:
            raise ValueError("not a line of this format")
        strings = [fields.get(name) for name in ("event", "event_id", "key_id", "version", "digest")]
        image, removed_by = fields.get("image"), fields.get("removed_by")
        if not all(isinstance(value, str) for value in strings) or not isinstance(image, dict | None):
            raise ValueError("a field of the wrong type")
        event, event_id, key_id, version, digest_ = strings
        copy = cls(event, event_id, key_id, version, image, digest_, removed_by == "ttl")
        valid = (
            event in EVENTS and VERSION.fullmatch(version) and _DIGEST.fullmatch(digest_)
            and removed_by in (None, "ttl") and (image is None or digest(image) == digest_)
        )  # fmt: skip
        if not valid or copy.message() != text:
            raise ValueError("not a line AuditCopyFunction writes")
        return copy


def digest(image: Mapping) -> str:
    return hashlib.sha256(json.dumps(image, sort_keys=True).encode()).hexdigest()


def copy_of(record: Mapping) -> tuple[str, str]:
    """(log stream, line) for a DynamoDB stream record of the audit table, as Lambda delivers it."""
    try:
        change = record["dynamodb"]
        image = change["OldImage"] if record["eventName"] == "REMOVE" else change["NewImage"]
        identity = record.get("userIdentity") or {}
        write = CopiedWrite(
            record["eventName"],
            record["eventID"],
            change["Keys"]["key_id"]["S"],
            change["Keys"]["version"]["N"],
            image,
            digest(image),
            identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL,
        )
    except (KeyError, TypeError, AttributeError):
        write = None
    if write is None or not (re.fullmatch(KEY_ID_PATTERN, write.key_id) and VERSION.fullmatch(write.version)):
        return UNREADABLE, json.dumps({"unreadable": record}, sort_keys=True, default=str)[:_MAX_MESSAGE]
    return write.key_id, write.message()


@dataclass(frozen=True)
class KeyCopy:
    """A key's copy as read: its lines in the order CloudWatch Logs received them (None: not a copy)."""

    lines: list[CopiedWrite | None]
    complete: bool = True  # False: longer than MAX_LINES, read that far


class AuditCopyLog:
    """The copy's log group: one stream per key id, appended to, read from its start."""

    def __init__(self, logs, group: str):
        self._logs = logs
        self._group = group

    def append(self, lines: Iterable[tuple[str, str]], at_ms: int) -> None:
        """Each (stream, line) to its stream (made on first use), in the order given."""
        by_stream: dict[str, list[str]] = defaultdict(list)
        for stream, line in lines:
            by_stream[stream].append(line)
        for stream, messages in by_stream.items():
            for batch in _batches(messages):
                events = [{"timestamp": at_ms, "message": message} for message in batch]
                try:
                    self._logs.put_log_events(logGroupName=self._group, logStreamName=stream, logEvents=events)
                except ClientError as error:
                    if _code(error) != "ResourceNotFoundException":
                        raise
                    self._create_stream(stream)
                    self._logs.put_log_events(logGroupName=self._group, logStreamName=stream, logEvents=events)

    def _create_stream(self, stream: str) -> None:
        try:
            self._logs.create_log_stream(logGroupName=self._group, logStreamName=stream)
        except ClientError as error:
            if _code(error) != "ResourceAlreadyExistsException":  # another invocation made it first
                raise

    def began(self) -> datetime | None:
        """When the copy began: the log group's creation."""
        groups = self._logs.describe_log_groups(logGroupNamePrefix=self._group)["logGroups"]
        created = [group["creationTime"] for group in groups if group["logGroupName"] == self._group]
        return datetime.fromtimestamp(created[0] / 1000, UTC) if created else None

    def read(self, key_id: str) -> KeyCopy:
        """A key's copy, MAX_LINES at most; empty if its stream does not exist. GetLogEvents may answer an
        empty page before the end: only a token coming back unchanged ends it."""
        received, token = [], None
        while len(received) < MAX_LINES:
            page = {"nextToken": token} if token else {}
            try:
                answer = self._logs.get_log_events(
                    logGroupName=self._group, logStreamName=key_id, startFromHead=True, **page
                )
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":
                    return KeyCopy([])
                raise
            received += [(event["ingestionTime"], len(received) + n, event["message"]) for n, event in
                         enumerate(answer["events"])]  # fmt: skip
            if answer.get("nextForwardToken") in (None, token):
                break
            token = answer["nextForwardToken"]
        in_order = sorted(received, key=lambda entry: entry[:2])[:MAX_LINES]  # by arrival, then as listed
        return KeyCopy([_copy_in(message, key_id) for _, _, message in in_order], len(received) < MAX_LINES)


def _copy_in(message: str, key_id: str) -> CopiedWrite | None:
    try:
        copy = CopiedWrite.from_message(message)
    except (ValueError, TypeError):
        return None
    return copy if copy.key_id == key_id else None


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _batches(messages: list[str]) -> Iterable[list[str]]:
    batch, size = [], 0
    for message in messages:
        cost = len(message.encode()) + 26
        if batch and (len(batch) == _MAX_BATCH_EVENTS or size + cost > _MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += cost
    if batch:
        yield batch
