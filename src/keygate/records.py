"""The key record: what is stored about a key (never the plaintext) and what admins may see of it."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Status(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


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
    purge_at: datetime | None = None  # the table's TTL: DynamoDB deletes the item after this
    version: int = 1

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def state(self, now: datetime) -> str:
        """What an admin sees: active, revoked, or expired (an active key past its expiry)."""
        if self.status is Status.ACTIVE and self.is_expired(now):
            return "expired"
        return self.status.value

    def metadata(self, now: datetime) -> dict:
        """The admin view of the key: every field but the hash, times as ISO-8601 strings."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "owner": self.owner,
            "description": self.description,
            "scopes": list(self.scopes),
            "apis": list(self.apis) if self.apis is not None else None,
            "status": self.state(now),
            "created_at": format_time(self.created_at),
            "expires_at": _optional_time(self.expires_at),
            "revoked_at": _optional_time(self.revoked_at),
            "last_used_at": _optional_time(self.last_used_at),
            "pepper_version": self.pepper_version,
            "version": self.version,
        }


def _optional_time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None
