"""``keygate history KEY_ID --verify``: a key's audit trail, and the key itself, checked against the trail's
tamper-evident copy (``audit_copy``). Pure.

An audit record is written once, and DynamoDB streams nothing for a write that changes nothing, so any
later write of a record is evidence: a MODIFY (also as a record's first copy, for one written before the
copy began), an INSERT after a REMOVE, a REMOVE not by TTL. The trail is also replayed: keygate never
changes a revoked key, and each record's old values are what the records before it left; the key must
be what the trail last wrote (but its pepper version, which a lazy re-hash changes with no record).
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from keygate.audit import audited_view
from keygate.audit_copy import VERSION, CopiedWrite, KeyCopy, digest
from keygate.records import KeyRecord, format_time, parse_time
from keygate.store import from_audit_item

_NOT_COMPARED = {"pepper_version"}  # a lazy re-hash changes it, as it should, without an audit record


class Problem(StrEnum):
    CHANGED = "changed"
    REMOVED = "removed"
    DUPLICATED = "duplicated"
    NOT_COPIED = "not copied"
    NOT_A_RECORD = "not a record keygate writes"
    NOT_A_CHANGE = "not a change of the key"
    AFTER_REVOKE = "a change after the revoke"
    INCONSISTENT = "old values the trail did not leave"
    KEY_DIFFERS = "key differs from its trail"
    KEY_GONE = "key gone while its trail says it is live"
    NOT_A_COPY = "not a copy"
    COPY_TOO_LONG = "copy too long to read whole"


_WHY = {
    Problem.CHANGED: "written again with other values, or the table's differs from its first copy",
    Problem.REMOVED: "deleted by a principal, not by the table's TTL",
    Problem.DUPLICATED: "written again with the same values, after being removed",
    Problem.NOT_COPIED: "in the table, not in the copy: the copy lags (seconds) or fails (AuditCopyFunction)",
    Problem.NOT_A_RECORD: "its version is not a whole number, or its changes are not keygate's shape",
    Problem.NOT_A_CHANGE: "its version is not one the key has had",
    Problem.AFTER_REVOKE: "keygate never changes a revoked key",
    Problem.INCONSISTENT: "its old values are not what the records before it left",
    Problem.KEY_DIFFERS: "the key's fields or version are not what its trail last wrote: changed with no record",
    Problem.KEY_GONE: "the key's item is gone, but its trail ends neither revoked nor expired",
    Problem.NOT_A_COPY: "lines in the key's copy that AuditCopyFunction did not write",
    Problem.COPY_TOO_LONG: "more lines than any key keygate changes has: checked only as far as read",
}


@dataclass(frozen=True)
class Finding:
    problem: Problem
    version: str | None = None  # None: not about one record
    fields: tuple[str, ...] = ()
    count: int = 1

    def view(self) -> dict:
        view = {"problem": self.problem.value, "why": _WHY[self.problem]}
        if self.version is not None:
            view["version"] = int(self.version) if VERSION.fullmatch(self.version) else self.version
        view |= {"fields": list(self.fields)} if self.fields else {}
        return view | ({"count": self.count} if self.count != 1 else {})


@dataclass(frozen=True)
class Verification:
    records: int
    findings: list[Finding] = field(default_factory=list)
    before_the_copy: list[str] = field(default_factory=list)  # versions written before the copy began

    def view(self) -> dict:
        view = {"verified": not self.findings, "records": self.records, "findings": [f.view() for f in self.findings]}
        if self.before_the_copy:
            view["written_before_the_copy_began"] = [int(version) for version in self.before_the_copy]
        return view


def verify(
    table: Mapping[str, dict], copy: KeyCopy, copy_began: datetime | None, key: KeyRecord | None, now: datetime
) -> Verification:
    """A key's trail as the table holds it (version -> typed item) against its copy, and the key (None: its
    item is gone) against its trail."""
    writes: dict[str, list[CopiedWrite]] = defaultdict(list)
    removals: dict[str, list[CopiedWrite]] = defaultdict(list)
    findings, seen, foreign = [], set(), 0
    for line in copy.lines:
        if line is None:
            foreign += 1
        elif line.message() not in seen:  # Lambda retrying a batch copies its lines again, to the letter
            seen.add(line.message())
            (removals if line.event == "REMOVE" else writes)[line.version].append(line)
    first_copied = min((int(version) for version in writes), default=None)
    before_the_copy, trail = [], []
    for version in sorted(set(table) | set(writes) | set(removals), key=_order):
        stored = table.get(version)
        if not VERSION.fullmatch(version):
            findings.append(Finding(Problem.NOT_A_RECORD, version))
            continue
        uncopied = stored is not None and not writes[version] and not removals[version]
        if uncopied and _before(int(version), stored, first_copied, copy_began):
            before_the_copy.append(version)
            trail.append((version, stored))
            continue
        findings += [Finding(p, version) for p in _problems(stored, writes[version], removals[version])]
        if int(version) < 1 or (key is not None and int(version) > key.version):
            findings.append(Finding(Problem.NOT_A_CHANGE, version))
        else:  # as first written; for a record gone with no copy of its writing, as its removal saw it
            first = writes[version] or removals[version]
            trail.append((version, first[0].image if first else stored))
    findings += _replayed(trail, key, now)
    findings += [Finding(Problem.NOT_A_COPY, count=foreign)] if foreign else []
    findings += [] if copy.complete else [Finding(Problem.COPY_TOO_LONG)]
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


def _before(version: int, stored: dict, first_copied: int | None, copy_began: datetime | None) -> bool:
    """Written before the copy began: below the key's first copied version, and dated before the copy's log
    group was made. A record written since with no copy (a stream record lost) is not this."""
    at = stored.get("at", {}).get("S")
    dated_before = copy_began is not None and isinstance(at, str) and at < format_time(copy_began)
    return dated_before and (first_copied is None or version < first_copied)


def _replayed(trail: list[tuple[str, dict | None]], key: KeyRecord | None, now: datetime) -> list[Finding]:
    """The trail's changes applied in order: each record's old values must be what the ones before left, none
    may follow a revoke, and the key must be what the last left (its item may be gone only once revoked or
    expired). Fields only records since expired (TTL) wrote are not known."""
    findings, expected, last = [], {}, None
    for version, item in trail:
        changes = _changes(item)
        if changes is None:
            findings.append(Finding(Problem.NOT_A_RECORD, version))
            continue
        if expected.get("status") == "revoked":
            findings.append(Finding(Problem.AFTER_REVOKE, version))
        stale = tuple(name for name, change in changes.items() if name in expected and change["old"] != expected[name])
        findings += [Finding(Problem.INCONSISTENT, version, stale)] if stale else []
        expected |= {name: change["new"] for name, change in changes.items()}
        last = int(version)
    if key is None:
        ended = expected.get("status") == "revoked" or _expired(expected.get("expires_at"), now)
        return findings + ([Finding(Problem.KEY_GONE)] if last is not None and not ended else [])
    view = audited_view(key, now)
    differing = [name for name, value in expected.items() if name not in _NOT_COMPARED and view.get(name) != value]
    differing += ["version"] if last is not None and key.version != last else []
    return findings + ([Finding(Problem.KEY_DIFFERS, fields=tuple(differing))] if differing else [])


def _changes(item: dict | None) -> dict[str, dict] | None:
    """A record's changes, or None when it is not a record keygate writes (or was too big to copy whole)."""
    try:
        changes = from_audit_item(item).changes
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    shaped = isinstance(changes, dict) and all(
        isinstance(change, dict) and set(change) == {"old", "new"} for change in changes.values()
    )
    return changes if shaped else None


def _expired(expires_at: object, now: datetime) -> bool:
    try:
        return isinstance(expires_at, str) and parse_time(expires_at) <= now
    except ValueError:
        return False


def _order(version: str) -> tuple:
    return (0, int(version), "") if VERSION.fullmatch(version) else (1, 0, version)
