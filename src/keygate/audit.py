"""The audit trail: one record per change of a key, written in the same transaction as the change, with
the fields it changed, old and new. Never a key, a secret, a hash or a pepper: only the admin view of a
key (``KeyRecord.view``) is compared, and it holds none of them."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from keygate.records import DECLARED, KeyRecord, format_time

UNSPECIFIED_ACTOR = "unspecified"
# What the audit trail records changes of, by its name in the admin view (KeyRecord declares it).
_AUDITED = frozenset(declared.shown_as for declared in DECLARED.values() if declared.audited)


class Action(StrEnum):
    ISSUE = "issue"
    UPDATE = "update"
    DISABLE = "disable"
    ENABLE = "enable"
    ROTATE = "rotate"
    REVOKE = "revoke"
    GRACE_END = "grace_end"  # a rotation's grace period ended: the previous secret dropped


@dataclass(frozen=True)
class AuditRecord:
    key_id: str
    version: int  # the key's version after the change: orders its history, and no two records share one
    action: Action
    actor: str
    at: datetime
    changes: dict[str, dict]  # field -> {"old": ..., "new": ...}, as the admin view shows them
    purge_at: datetime | None = None
    details: dict[str, str] | None = None  # why, beyond who: a leak report's reason, url and source

    def view(self) -> dict:
        view = {
            "version": self.version,
            "action": self.action.value,
            "actor": self.actor,
            "at": format_time(self.at),
            "changes": self.changes,
        }
        return view | ({"details": self.details} if self.details else {})


def changes(before: KeyRecord | None, after: KeyRecord, now: datetime) -> dict[str, dict]:
    """The audited fields that differ between two versions of a key (all of them for a new key)."""
    old = audited_view(before, now) if before is not None else {}
    new = audited_view(after, now)
    return {name: {"old": old.get(name), "new": value} for name, value in new.items() if old.get(name) != value}


def audited_view(record: KeyRecord, now: datetime) -> dict:
    """What an audit record's changes describe of a key: its admin view, with the stored status."""
    # An empty map is recorded as null: never an empty map in a record (DynamoDB Local's stream drops its type).
    view = {name: value if value != {} else None for name, value in record.view(now).items() if name in _AUDITED}
    return view | {"status": record.status.value}  # the stored status: expiry is not a change
