"""The key record: what is stored about a key (never the plaintext) and what admins may see of it.

A key is active, disabled (refused until enabled again) or revoked (for good); an active or disabled key
past its expiry is expired. During a rotation's grace period it has two hashes: the new secret's and the
previous one's, which verifies until ``previous_expires_at``.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Status(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    REVOKED = "revoked"


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


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    phc_hash: str = field(repr=False)
    pepper_version: str
    name: str
    owner: str
    created_at: datetime
    description: str = ""
    scopes: tuple[str, ...] = ()
    apis: tuple[str, ...] | None = None  # API_ID/STAGE patterns the key may be used on; None: every API
    status: Status = Status.ACTIVE
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rotated_at: datetime | None = None
    previous_hash: str | None = field(default=None, repr=False)  # the secret before the last rotation ...
    previous_pepper_version: str | None = None
    previous_expires_at: datetime | None = None  # ... which verifies until then
    purge_at: datetime | None = None  # the table's TTL: DynamoDB deletes the item after this
    access_changed_at: datetime | None = None  # when an update last changed its status, scopes, apis or expiry
    usage_plan_id: str | None = None  # the API Gateway usage plan that meters the key ...
    usage_key_id: str | None = None  # ... through this API Gateway API key, whose value (an identifier,
    usage_key_value: str | None = field(default=None, repr=False)  # never the secret) the authorizer returns
    version: int = 1

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

    def metadata(self, now: datetime) -> dict:
        """The admin view of the key: every field but the hashes, times as ISO-8601 strings."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "owner": self.owner,
            "description": self.description,
            "scopes": list(self.scopes),
            "apis": list(self.apis) if self.apis is not None else None,
            "status": self.state(now).value,
            "created_at": format_time(self.created_at),
            "expires_at": optional_time(self.expires_at),
            "revoked_at": optional_time(self.revoked_at),
            "last_used_at": optional_time(self.last_used_at),
            "rotated_at": optional_time(self.rotated_at),
            "previous_key_expires_at": optional_time(self.previous_expires_at if self.previous_hash else None),
            "pepper_version": self.pepper_version,
            "usage_plan_id": self.usage_plan_id,
            "usage_key_id": self.usage_key_id,
            "version": self.version,
        }
