"""The audit trail's tamper-evident copy, and the check of a key's trail and state against it.

IAM limits which attributes a role writes, not the values it writes: a compromised role could overwrite
an audit record, or un-revoke a key with no record at all. The audit table's stream sees every write to
it; AuditCopyFunction appends each to AuditCopyLogGroup, one log stream per key. Log events cannot be
changed, no keygate role may delete a log group or stream, and each event carries the time CloudWatch Logs
received it (``ingestionTime``), which no writer sets. Every Lambda role of the account may append to any
log group (the basic execution policy), so nothing in a line is trusted but its arrival: a record's first
copy is what was written, and a line appended later can only be more evidence.

An audit record is written once: DynamoDB streams nothing for a write that changes nothing, so any later
write of a record (a MODIFY, or an INSERT after a REMOVE) is evidence, and so is a REMOVE by anyone but the
table's TTL. A record or line that cannot be read is copied as it is, to a stream of its own, so no write can
stall the copy.
"""

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from botocore.exceptions import ClientError

from keygate.audit import audited_view
from keygate.keys import KEY_ID_PATTERN
from keygate.records import KeyRecord, format_time
from keygate.store import from_audit_item

TTL_PRINCIPAL = "dynamodb.amazonaws.com"  # the stream's userIdentity of a deletion by DynamoDB's TTL
UNREADABLE = "unreadable-records"  # the log stream of writes whose key id is not one, or that cannot be read
_MAX_MESSAGE = 200_000  # bytes; CloudWatch Logs takes 256 KB an event, a DynamoDB item may be 400 KB
_MAX_BATCH_EVENTS = 10_000  # PutLogEvents' limits: events, and bytes counting 26 more an event
_MAX_BATCH_BYTES = 1_000_000
_NOT_COMPARED = {"pepper_version"}  # a lazy re-hash changes it, as it should, without an audit record


@dataclass(frozen=True)
class CopiedWrite:
    """One write to the audit table, as its stream saw it: the record as stored, or its SHA-256 if too big."""

    event: str  # INSERT, MODIFY or REMOVE
    event_id: str  # the stream's, so that the same write copied twice is one and two writes are two
    key_id: str
    version: str  # the record's version attribute as stored (a number's text)
    image: dict | None  # the record written, or for a REMOVE the one removed (DynamoDB's typed JSON)
    digest: str  # SHA-256 of the image, canonical JSON
    removed_by_ttl: bool = False

    def message(self) -> str:
        fields = {"event": self.event, "event_id": self.event_id, "key_id": self.key_id, "version": self.version}
        fields |= {"digest": self.digest}
        fields |= {"removed_by": "ttl"} if self.removed_by_ttl else {}
        whole = json.dumps(fields | {"image": self.image}, sort_keys=True) if self.image is not None else ""
        if whole and len(whole.encode()) <= _MAX_MESSAGE:
            return whole
        return json.dumps(fields, sort_keys=True)  # the digest alone stands for a record too big for a log event

    @classmethod
    def from_message(cls, text: str) -> "CopiedWrite":
        fields = json.loads(text)
        return cls(
            fields["event"],
            fields["event_id"],
            fields["key_id"],
            fields["version"],
            fields.get("image"),
            fields["digest"],
            fields.get("removed_by") == "ttl",
        )


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
        return UNREADABLE, json.dumps({"unreadable": record}, sort_keys=True, default=str)[:_MAX_MESSAGE]
    stream = write.key_id if re.fullmatch(KEY_ID_PATTERN, write.key_id) else UNREADABLE
    return stream, write.message()


class Problem(StrEnum):
    CHANGED = "changed"
    REMOVED = "removed"
    DUPLICATED = "duplicated"
    NOT_COPIED = "not copied"
    NOT_A_COPY = "not a copy"
    KEY_DIFFERS = "key differs from its trail"
    NOT_A_CHANGE = "not a change of the key"


_EXPLAINED = {
    Problem.CHANGED: "the record was written again with other values, or the table's differs from the first copy",
    Problem.REMOVED: "deleted by a principal, not by the table's TTL",
    Problem.DUPLICATED: "written again with the same values, after being removed",
    Problem.NOT_COPIED: "in the table, not in the copy: the copy lags (seconds) or fails (AuditCopyFunction's errors)",
    Problem.NOT_A_COPY: "a line in the key's copy that AuditCopyFunction did not write",
    Problem.KEY_DIFFERS: "the key's fields or version are not what its trail last wrote: changed with no audit record",
    Problem.NOT_A_CHANGE: "its version is not one the key has had: no change of the key wrote it",
}


@dataclass(frozen=True)
class Finding:
    problem: Problem
    version: str | None = None  # None: not about one record
    fields: tuple[str, ...] = ()

    def view(self) -> dict:
        view = {"problem": self.problem.value, "why": _EXPLAINED[self.problem]}
        view |= {"version": _number(self.version)} if self.version is not None else {}
        return view | ({"fields": list(self.fields)} if self.fields else {})


@dataclass(frozen=True)
class Verification:
    records: int
    findings: list[Finding] = field(default_factory=list)
    before_the_copy: list[str] = field(default_factory=list)  # versions written before the copy began

    def view(self) -> dict:
        view = {"verified": not self.findings, "records": self.records, "findings": [f.view() for f in self.findings]}
        if self.before_the_copy:
            view["written_before_the_copy_began"] = [_number(version) for version in self.before_the_copy]
        return view


def verify(
    table: Mapping[str, dict],
    copies: Iterable[CopiedWrite | None],
    copy_began: datetime | None,
    key: KeyRecord | None,
    now: datetime,
) -> Verification:
    """A key's trail as the table holds it (version -> typed item) against its copies, in the order CloudWatch
    Logs received them (None: a line that is not a copy), and the key's state against its trail."""
    writes: dict[str, list[CopiedWrite]] = defaultdict(list)
    removals: dict[str, list[CopiedWrite]] = defaultdict(list)
    findings, seen = [], set()
    for copy in copies:
        if copy is None:
            findings.append(Finding(Problem.NOT_A_COPY))
        elif copy.message() not in seen:  # Lambda retrying a batch copies its lines again, to the letter
            seen.add(copy.message())
            (removals if copy.event == "REMOVE" else writes)[copy.version].append(copy)
    before_the_copy = []
    for version in sorted(set(table) | set(writes) | set(removals), key=_order):
        stored = table.get(version)
        if stored is not None and not writes[version] and _written_before(stored, copy_began):
            before_the_copy.append(version)
            continue
        findings += [Finding(p, version) for p in _problems(stored, writes[version], removals[version])]
        if not _a_version_of(key, version):
            findings.append(Finding(Problem.NOT_A_CHANGE, version))
    if key is not None:
        versions = sorted((v for v in set(writes) | set(table) if _a_version_of(key, v)), key=_order)
        trail = [writes[v][0].image if writes[v] else table[v] for v in versions]  # as first written
        differing = _differing(key, trail, now)
        findings += [Finding(Problem.KEY_DIFFERS, fields=differing)] if differing else []
    return Verification(len(table), findings, before_the_copy)


def _problems(stored: dict | None, writes: list[CopiedWrite], removals: list[CopiedWrite]) -> list[Problem]:
    problems = []
    if writes:
        first, later = writes[0], writes[1:]
        rewritten = any(write.event == "MODIFY" or write.digest != first.digest for write in later)
        if first.event != "INSERT" or (stored is not None and digest(stored) != first.digest) or rewritten:
            problems.append(Problem.CHANGED)
        elif later:
            problems.append(Problem.DUPLICATED)
    elif stored is not None:
        problems.append(Problem.NOT_COPIED)
    if any(not removal.removed_by_ttl for removal in removals) or (stored is None and writes and not removals):
        problems.append(Problem.REMOVED)
    return problems


def _differing(key: KeyRecord, trail: list[dict | None], now: datetime) -> tuple[str, ...]:
    """The key's audited fields whose value is not the one its trail last wrote, and ``version`` if the
    key is not at its trail's last version. Fields only records since expired (TTL) wrote are not known."""
    expected, last = {}, None
    for item in trail:
        try:
            record = from_audit_item(item)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # not a record keygate writes (or too big to copy whole): named on its own already
        expected |= {name: change["new"] for name, change in record.changes.items()}
        last = record.version
    view = audited_view(key, now)
    differing = [name for name, value in expected.items() if name not in _NOT_COMPARED and view.get(name) != value]
    return tuple(differing + (["version"] if last is not None and key.version != last else []))


def _a_version_of(key: KeyRecord | None, version: str) -> bool:
    """A version the key has had (1 to its version now; any whole number once the key itself is gone)."""
    return version.isdigit() and int(version) >= 1 and (key is None or int(version) <= key.version)


def _written_before(item: dict, moment: datetime | None) -> bool:
    """The record says it was written before the copy began (its ``at``, which only a write could change,
    and any write since is copied)."""
    at = item.get("at", {}).get("S")
    return moment is not None and isinstance(at, str) and at < format_time(moment)


def _order(version: str) -> tuple:
    return (0, int(version)) if version.isdigit() else (1, version)


def _number(version: str) -> int | str:
    return int(version) if version.isdigit() else version


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

    def read(self, key_id: str) -> list[CopiedWrite | None]:
        """A key's copies in the order CloudWatch Logs received them (None for a line that is not a copy of
        this key's); none if its stream does not exist."""
        received, token = [], None
        while True:
            page = {"nextToken": token} if token else {}
            try:
                answer = self._logs.get_log_events(
                    logGroupName=self._group, logStreamName=key_id, startFromHead=True, **page
                )
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":
                    return []
                raise
            received += [(event["ingestionTime"], n, _copy_in(event["message"], key_id)) for n, event in
                         enumerate(answer["events"], start=len(received))]  # fmt: skip
            if not answer["events"] or answer.get("nextForwardToken") in (None, token):
                break
            token = answer["nextForwardToken"]
        return [copy for _, _, copy in sorted(received, key=lambda entry: entry[:2])]  # by arrival, then as listed


def _copy_in(message: str, key_id: str) -> CopiedWrite | None:
    try:
        copy = CopiedWrite.from_message(message)
    except (ValueError, KeyError, TypeError):
        return None
    return copy if copy.key_id == key_id and copy.message() == message else None


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
