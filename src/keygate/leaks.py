"""A leaked key: what was reported, what keygate found it to be, and the notification it sends.

A reported token counts as a key of this deployment only when its secret verifies (Argon2, against the
key's current secret or the previous one of a rotation): a key id alone, which is no secret, never
revokes anything. The token itself is never kept: its SHA-256 names it in answers (GitHub's
``token_hash``), and the notification carries the key id, owner and where it was found.
"""

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum

from keygate.records import KeyRecord, format_time


class Label(StrEnum):
    """GitHub's feedback labels: a real key of this deployment, or not."""

    TRUE_POSITIVE = "true_positive"
    FALSE_POSITIVE = "false_positive"


@dataclass(frozen=True, repr=False)  # repr would show the token
class LeakReport:
    token: str
    url: str | None = None  # where it was found
    source: str | None = None  # GitHub's source (content, commit, npm, ...), or "operator"
    token_type: str = ""  # the type GitHub matched it as

    @property
    def token_hash(self) -> str:
        return hashlib.sha256(self.token.encode("utf-8", "surrogatepass")).hexdigest()

    def details(self) -> dict[str, str]:
        """What the audit record and the notification say about the report."""
        details = {"reason": "leaked"}
        if self.url:
            details["url"] = self.url
        if self.source:
            details["source"] = self.source
        return details


@dataclass(frozen=True)
class LeakFinding:
    """One reported token's outcome. ``revoked`` is "now" or "already" for a true positive."""

    token_hash: str
    token_type: str
    label: Label
    key_id: str | None = None
    revoked: str | None = None
    notified: str | None = None  # "sent", or "failed: <why>" (the revocation stands)
    effects: dict = field(default_factory=dict)  # the revocation's usage plan sync and cache flush reports

    def feedback(self) -> dict:
        """The entry GitHub's secret scanning takes back as feedback."""
        return {"token_hash": self.token_hash, "token_type": self.token_type, "label": self.label.value}

    def view(self) -> dict:
        view = {"label": self.label.value, "token_hash": self.token_hash}
        if self.key_id is not None:
            view |= {"key_id": self.key_id, "revoked": self.revoked, "notification": self.notified, **self.effects}
        return view


class LeakNotifier:
    """Publishes a leaked key to the template's LeakedKeyTopic: never the token."""

    def __init__(self, topic_arn: str, sns):
        self._topic_arn = topic_arn
        self._sns = sns

    def notify(self, record: KeyRecord, report: LeakReport, revoked: str, actor: str) -> None:
        message = {
            "event": "keygate.key_leaked",
            "key_id": record.key_id,
            "name": record.name,
            "owner": record.owner,
            "revoked": revoked,
            "revoked_at": format_time(record.revoked_at) if record.revoked_at else None,
            "reported_by": actor,
            **report.details(),
        }
        self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=f"keygate: leaked key {record.key_id} revoked",
            Message=json.dumps(message, indent=2),
        )
