"""The key record: what is stored about a key (never the plaintext) and what admins may see of it.

A key is active, disabled (refused until enabled again) or revoked (for good); an active or disabled key
past its expiry is expired. During a rotation's grace period it has two hashes: the new secret's and the
previous one's, which verifies until ``previous_expires_at``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Status(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    REVOKED = "revoked"


class QuotaPer(StrEnum):
    """Whose quota a key on a usage plan counts against: its own API Gateway key's, or its owner's, whose
    live keys on that plan share one API Gateway key (owner_usage_keys)."""

    KEY = "key"
    OWNER = "owner"


class State(StrEnum):
    """What an admin sees and filters on: the status, or expired for a live key past its expiry."""

    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"
    REVOKED = "revoked"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def state_of(status: Status, expires_at: datetime | None, now: datetime) -> State:
    if status is Status.REVOKED:
        return State.REVOKED
    if expires_at is not None and now >= expires_at:
        return State.EXPIRED
    return State(status.value)


def optional_time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


class Writer(StrEnum):
    """What may change a stored attribute of an existing key. Each has its own IAM grant, whose
    ``dynamodb:Attributes`` list is exactly the attributes declared written by it (tests/test_record_fields.py)."""

    UPDATE = "update"  # UpdateKeyFunction
    ROTATE = "rotate"  # RotateKeyFunction
    REVOKE = "revoke"  # RevokeKeyFunction, ReportLeakFunction and LeakReportFunction
    GRACE_END = "grace_end"  # FlushAuthorizerCacheFunction, run by Scheduler when a rotation's grace period ends
    REHASH = "rehash"  # the authorizer's lazy re-hash
    TOUCH = "touch"  # the authorizer's last_used_at


@dataclass(frozen=True)
class Codec:
    """How a field's value is stored in DynamoDB (before boto3's typing) and shown to an admin."""

    store: Callable[[Any], Any]
    load: Callable[[Any], Any]
    show: Callable[[Any], Any]


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _same(value: Any) -> Any:
    return value


TEXT = Codec(_same, _same, _same)
NUMBER = Codec(_same, int, _same)
TIME = Codec(format_time, parse_time, format_time)  # a sortable UTC string
EPOCH = Codec(
    lambda moment: int(moment.timestamp()), lambda stored: datetime.fromtimestamp(int(stored), UTC), format_time
)
STRINGS = Codec(list, _strings, list)


def _pairs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError("expected a map of strings")
    return as_pairs(value)


def as_pairs(mapping: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """A map as the record holds it: its entries sorted by name, immutable."""
    return tuple(sorted(mapping.items()))


# A map of strings (DynamoDB's M), held as sorted pairs; an empty one is not stored (absent reads as empty).
PAIRS = Codec(lambda pairs: dict(pairs) or None, _pairs, dict)
STATUS = Codec(lambda status: status.value, Status, lambda status: status.value)
QUOTA_PER = Codec(lambda quota_per: quota_per.value, QuotaPer, lambda quota_per: quota_per.value)


@dataclass(frozen=True)
class Declared:
    """What keygate does with one field of a key: its stored attribute, whether an admin sees it (and as
    what), whether the audit trail records its changes, and what may change it once the key exists."""

    attribute: str
    codec: Codec
    shown_as: str | None  # None: never in an admin answer (a hash, say)
    audited: bool
    updatable: bool  # an UpdateKeyFunction event sets it by name
    writers: frozenset[Writer]
    required: bool  # an item without it is corrupt; else an absent attribute reads as the field's default


def _declared(
    attribute: str = "",
    codec: Codec = TEXT,
    *,
    shown_as: str | None = "",
    audited: bool = True,
    updatable: bool = False,
    writers: Iterable[Writer] = (),
    required: bool = False,
    **dataclass_field: Any,
) -> Any:
    """A KeyRecord field and its declaration; the attribute and the admin's name default to the field's
    name (filled in by _declarations, once the dataclass knows it: read DECLARED, not a field's metadata).
    A field without a default is required; one with a default only when declared so, since items written
    before a field existed lack it. An update by name is a write by UPDATE."""
    writers = frozenset(writers) | ({Writer.UPDATE} if updatable else set())
    required = required or "default" not in dataclass_field
    declared = Declared(attribute, codec, shown_as, audited and shown_as is not None, updatable, writers, required)
    return field(metadata={"keygate": declared}, **dataclass_field)


_GRACE = {Writer.ROTATE, Writer.GRACE_END}  # a rotation sets the previous secret; its grace period's end drops it


@dataclass(frozen=True)
class KeyRecord:
    """A key as stored. Each field declares, once, how it is stored, shown, audited and changed: the
    DynamoDB item, the admin answer, the audit trail's changes, the update event and the IAM grants of
    the functions that write it all follow from these declarations."""

    key_id: str = _declared(audited=False)
    phc_hash: str = _declared("hash", shown_as=None, writers={Writer.ROTATE, Writer.REHASH}, repr=False)
    pepper_version: str = _declared(writers={Writer.ROTATE, Writer.REHASH})
    name: str = _declared(updatable=True)
    owner: str = _declared()
    created_at: datetime = _declared(codec=TIME, audited=False)
    description: str = _declared(updatable=True, default="")
    scopes: tuple[str, ...] = _declared(codec=STRINGS, updatable=True, default=())
    # API_ID/STAGE patterns the key may be used on; None: every API
    apis: tuple[str, ...] | None = _declared(codec=STRINGS, updatable=True, default=None)
    # names and values an admin chose, forwarded to the backend as context meta_<name>; never a secret
    metadata: tuple[tuple[str, str], ...] = _declared(codec=PAIRS, updatable=True, default=())
    # shown as the key's state (expired, for a live key past its expiry); an update sets it as ``enabled``
    status: Status = _declared(
        codec=STATUS, writers={Writer.UPDATE, Writer.REVOKE}, required=True, default=Status.ACTIVE
    )  # required: an item without a status must not read as active
    expires_at: datetime | None = _declared(codec=TIME, updatable=True, default=None)
    revoked_at: datetime | None = _declared(codec=TIME, writers={Writer.REVOKE}, default=None)
    last_used_at: datetime | None = _declared(codec=TIME, audited=False, writers={Writer.TOUCH}, default=None)
    rotated_at: datetime | None = _declared(codec=TIME, writers={Writer.ROTATE}, default=None)
    # the secret before the last rotation, which verifies until previous_expires_at
    previous_hash: str | None = _declared(shown_as=None, writers=_GRACE, default=None, repr=False)
    previous_pepper_version: str | None = _declared(shown_as=None, writers=_GRACE, default=None)
    previous_expires_at: datetime | None = _declared(
        codec=TIME, shown_as="previous_key_expires_at", writers=_GRACE, default=None
    )
    # the table's TTL: DynamoDB deletes the item after this
    purge_at: datetime | None = _declared(
        codec=EPOCH, shown_as=None, writers={Writer.UPDATE, Writer.REVOKE}, default=None
    )
    # when an update last changed its status, scopes, apis or expiry
    access_changed_at: datetime | None = _declared(codec=TIME, shown_as=None, writers={Writer.UPDATE}, default=None)
    # the API Gateway usage plan that meters the key, through the API Gateway API key usage_key_id, whose
    # value (an identifier, never the secret) the authorizer returns
    usage_plan_id: str | None = _declared(updatable=True, default=None)
    # chosen at issue, kept for the key's life: on a plan, it shares its owner's API Gateway key (OWNER)
    quota_per: QuotaPer = _declared(codec=QUOTA_PER, default=QuotaPer.KEY)
    usage_key_id: str | None = _declared(writers={Writer.UPDATE}, default=None)
    usage_key_value: str | None = _declared(shown_as=None, writers={Writer.UPDATE}, default=None, repr=False)
    version: int = _declared(
        codec=NUMBER, audited=False, writers=set(Writer) - {Writer.REHASH, Writer.TOUCH}, required=True, default=1
    )

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def previous_secret_valid(self, now: datetime) -> bool:
        return (
            self.previous_hash is not None and self.previous_expires_at is not None and now < self.previous_expires_at
        )

    def lost_access_after(self, moment: datetime) -> bool:
        """Whether a change that may have taken access away from the key (a revoke, or an update of its
        status, scopes, apis or expiry) came after ``moment``: a cached allow from before it may still be
        answering."""
        last = max((time for time in (self.access_changed_at, self.revoked_at) if time is not None), default=None)
        return last is not None and last > moment

    def secrets_in_force(self, now: datetime) -> list[tuple[str, str]]:
        """(hash, pepper version) of each secret that verifies now: the current one, then the previous one
        while its grace period lasts."""
        secrets = [(self.phc_hash, self.pepper_version)]
        if self.previous_secret_valid(now) and self.previous_pepper_version is not None:
            secrets.append((self.previous_hash, self.previous_pepper_version))
        return secrets

    def state(self, now: datetime) -> State:
        return state_of(self.status, self.expires_at, now)

    def view(self, now: datetime) -> dict:
        """The admin view of the key: every field declared shown, times as ISO-8601 strings."""
        view = {
            declared.shown_as: declared.codec.show(value) if value is not None else None
            for declared, value in ((declared, getattr(self, name)) for name, declared in DECLARED.items())
            if declared.shown_as is not None
        }
        return view | {"status": self.state(now).value}


def _declarations() -> dict[str, Declared]:
    declarations = {}
    for each in fields(KeyRecord):
        declared = each.metadata["keygate"]
        shown_as = None if declared.shown_as is None else declared.shown_as or each.name
        declarations[each.name] = replace(declared, attribute=declared.attribute or each.name, shown_as=shown_as)
    return declarations


DECLARED = _declarations()  # field name -> its declaration, in the record's order
UPDATABLE = tuple(name for name, declared in DECLARED.items() if declared.updatable)


@cache  # asked at every write; the declarations never change
def written_by(writer: Writer) -> frozenset[str]:
    """The stored attributes that ``writer`` may change."""
    return frozenset(declared.attribute for declared in DECLARED.values() if writer in declared.writers)
