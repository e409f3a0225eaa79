"""The audit trail's tamper-evident copy, and the check of a key's trail against it.

IAM limits which attributes a role writes, not the values it writes: a compromised role could overwrite
an audit record, or (with a delete it is not granted today) remove one. The audit table's stream sees
every write; AuditCopyFunction appends each to AuditCopyLogGroup, one log stream per key. CloudWatch Logs
events cannot be changed, no keygate role may delete a log group or stream, and each event carries the
time CloudWatch Logs received it (``ingestionTime``), which no writer sets: so the first copy of a record
is what was written, whatever anyone appends later. Every function role may append to any log group
(Lambda's basic execution policy), so a copy appended after the fact is itself evidence, never a cover.

``verify`` names each record that was changed, removed, written twice, or never copied.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from botocore.exceptions import ClientError

TTL_PRINCIPAL = "dynamodb.amazonaws.com"  # the stream's userIdentity of a deletion by DynamoDB's TTL
_MAX_BATCH_EVENTS = 10_000  # PutLogEvents' limits: events, and bytes counting 26 more an event
_MAX_BATCH_BYTES = 1_000_000
_WRITES = ("INSERT", "MODIFY")


@dataclass(frozen=True)
class Copy:
    """One write to the audit table, as its stream saw it."""

    event: str  # INSERT, MODIFY or REMOVE
    event_id: str  # the stream's id of the write: the same write copied twice is one
    sequence_number: int  # the write's order in its key's trail
    key_id: str
    version: int
    image: dict  # the record as stored (DynamoDB's typed JSON): written, or for a REMOVE, the one removed
    removed_by_ttl: bool = False

    def message(self) -> str:
        fields = {
            "event": self.event,
            "event_id": self.event_id,
            "sequence_number": str(self.sequence_number),
            "key_id": self.key_id,
            "version": self.version,
            "image": self.image,
        }
        return json.dumps(fields | ({"removed_by": "ttl"} if self.removed_by_ttl else {}), sort_keys=True)

    @classmethod
    def from_message(cls, text: str) -> "Copy":
        fields = json.loads(text)
        return cls(
            fields["event"],
            fields["event_id"],
            int(fields["sequence_number"]),
            fields["key_id"],
            int(fields["version"]),
            fields["image"],
            fields.get("removed_by") == "ttl",
        )


def from_stream_record(record: Mapping) -> Copy:
    """A DynamoDB stream record of the audit table (as Lambda delivers it), as its copy."""
    change = record["dynamodb"]
    image = change["OldImage"] if record["eventName"] == "REMOVE" else change["NewImage"]
    identity = record.get("userIdentity") or {}
    return Copy(
        record["eventName"],
        record["eventID"],
        int(change["SequenceNumber"]),
        change["Keys"]["key_id"]["S"],
        int(change["Keys"]["version"]["N"]),
        image,
        identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL,
    )


class Problem(StrEnum):
    CHANGED = "changed"
    REMOVED = "removed"
    DUPLICATED = "duplicated"
    NOT_COPIED = "not copied"
    NOT_A_COPY = "not a copy"


_EXPLAINED = {
    Problem.CHANGED: "the table's record, or a later write of it, differs from what was first written",
    Problem.REMOVED: "deleted by a principal, not by the table's TTL",
    Problem.DUPLICATED: "written more than once, with the same values",
    Problem.NOT_COPIED: "in the table, not in the copy: written before the copy began, or the copy lags "
    "(seconds) or fails (AuditCopyFunction's errors)",
    Problem.NOT_A_COPY: "a line in the key's copy that AuditCopyFunction did not write",
}


@dataclass(frozen=True)
class Finding:
    version: int | None  # None: not about a record (a line that is not a copy)
    problem: Problem

    def view(self) -> dict:
        return {"version": self.version, "problem": self.problem.value, "why": _EXPLAINED[self.problem]}


def verify(table: Mapping[int, dict], copies: Iterable[Copy | None]) -> list[Finding]:
    """Each record of a key's trail whose table item (version -> typed item) and copies disagree.
    ``copies`` in the order CloudWatch Logs received them (None: a line that is not a copy); the same
    write copied twice counts once."""
    writes: dict[int, list[Copy]] = defaultdict(list)
    removals: dict[int, list[Copy]] = defaultdict(list)
    findings, seen = [], set()
    for copy in copies:
        if copy is None:
            findings.append(Finding(None, Problem.NOT_A_COPY))
        elif copy.event_id not in seen:
            seen.add(copy.event_id)
            (writes if copy.event in _WRITES else removals)[copy.version].append(copy)
    for version in sorted(set(table) | set(writes) | set(removals)):
        problems = _problems(table.get(version), writes[version], removals[version])
        findings += [Finding(version, problem) for problem in problems]
    return findings


def _problems(stored: dict | None, writes: list[Copy], removals: list[Copy]) -> list[Problem]:
    problems = []
    if writes:
        first, later = writes[0].image, [copy.image for copy in writes[1:]]
        if (stored is not None and stored != first) or any(image != first for image in later):
            problems.append(Problem.CHANGED)
        elif later:
            problems.append(Problem.DUPLICATED)
    elif stored is not None:
        problems.append(Problem.NOT_COPIED)
    if any(not removal.removed_by_ttl for removal in removals) or (stored is None and writes and not removals):
        problems.append(Problem.REMOVED)
    return problems


class AuditCopyLog:
    """The copy's log group: one stream per key id, appended to, read from its start."""

    def __init__(self, logs, group: str):
        self._logs = logs
        self._group = group

    def append(self, copies: Iterable[Copy], at_ms: int) -> None:
        """Each copy to its key's stream (made on first use), in the order given."""
        by_key: dict[str, list[str]] = defaultdict(list)
        for copy in copies:
            by_key[copy.key_id].append(copy.message())
        for key_id, messages in by_key.items():
            for batch in _batches(messages):
                events = [{"timestamp": at_ms, "message": message} for message in batch]
                try:
                    self._logs.put_log_events(logGroupName=self._group, logStreamName=key_id, logEvents=events)
                except ClientError as error:
                    if _code(error) != "ResourceNotFoundException":
                        raise
                    self._create_stream(key_id)
                    self._logs.put_log_events(logGroupName=self._group, logStreamName=key_id, logEvents=events)

    def _create_stream(self, key_id: str) -> None:
        try:
            self._logs.create_log_stream(logGroupName=self._group, logStreamName=key_id)
        except ClientError as error:
            if _code(error) != "ResourceAlreadyExistsException":  # another invocation made it first
                raise

    def read(self, key_id: str) -> list[Copy | None]:
        """A key's copies in the order CloudWatch Logs received them (None for a line that is not a copy);
        none if its stream does not exist."""
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
            received += [(event["ingestionTime"], _copy_in(event["message"])) for event in answer["events"]]
            if not answer["events"] or answer.get("nextForwardToken") in (None, token):
                break
            token = answer["nextForwardToken"]
        # by arrival; a batch arrives at once, in its writes' order
        received.sort(key=lambda entry: (entry[0], entry[1].sequence_number if entry[1] else -1))
        return [copy for _, copy in received]


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _copy_in(message: str) -> Copy | None:
    try:
        return Copy.from_message(message)
    except (ValueError, KeyError, TypeError):
        return None


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
