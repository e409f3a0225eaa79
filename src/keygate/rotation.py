"""Rotation: a new secret for a key, the previous one verifying through a grace period, and the end of
that period, which drops the previous secret as a change of the key (in the audit trail, and replicated to
the regions, whose caches it flushes: replicated_changes)."""

from dataclasses import replace
from datetime import datetime, timedelta

from keygate import keys
from keygate.audit import Action
from keygate.authorizer_cache import FlushReport
from keygate.lifecycle import Changed, KeyLifecycle, KeyRevoked
from keygate.records import KeyRecord, Status
from keygate.stale_answers import cuts_a_secret

GRACE_END_ACTOR = "keygate: the rotation's grace period ended"


class Rotation(KeyLifecycle):
    """KeyService's rotations (a part of it: service.KeyService holds the state)."""

    def rotate(self, key_id: str, grace: timedelta, *, actor: str) -> tuple[keys.NewKey, Changed]:
        """A new secret for the key; the current one keeps verifying for ``grace`` (a previous one in its
        grace period stops at once: two secrets at most)."""
        pepper_version, pepper = self._peppers.current()
        new_key = keys.generate(self.config.key_prefix, key_id=key_id)
        new_hash = self._hasher.hash(new_key.secret, pepper)

        def change(record: KeyRecord, now: datetime) -> KeyRecord:
            if record.status is Status.REVOKED:
                raise KeyRevoked(f"key {key_id!r} is revoked: it cannot be rotated")
            keeps_old = grace > timedelta(0)
            return replace(
                record,
                phc_hash=new_hash,
                pepper_version=pepper_version,
                rotated_at=now,
                previous_hash=record.phc_hash if keeps_old else None,
                previous_pepper_version=record.pepper_version if keeps_old else None,
                previous_expires_at=now + grace if keeps_old else None,
            )

        before, after = self._change(key_id, change, lambda before, after: Action.ROTATE, None, actor)
        return new_key, Changed(after, authorizer_cache=self._flush_after_rotation(before, after))

    def _flush_after_rotation(self, before: KeyRecord, after: KeyRecord) -> FlushReport | None:
        """A secret that stops verifying now (no grace, or the previous one's grace cut short) is
        flushed now; the one in its grace period when that ends."""
        report = None
        if cuts_a_secret(before, after):
            report = self._cache.flush()
        if after.previous_hash is not None:
            name = f"keygate-{after.key_id}-v{after.version}"
            reason, grace_of = f"grace of {after.key_id} ends", {"key_id": after.key_id, "version": after.version}
            scheduled = self._cache.flush_at(after.previous_expires_at, name, reason, grace_of)
            if report is None or scheduled is None:
                report = report or scheduled
            else:
                report = replace(report, scheduled=scheduled.scheduled, failed=report.failed | scheduled.failed)
        return report

    def end_grace(self, key_id: str, version: int) -> Changed | None:
        """Drop the previous secret of the rotation that made ``version``, once its grace period is over
        (EventBridge Scheduler runs the flush that calls this then). None, and nothing written, when the
        key has changed since (a later rotation schedules its own end), lost its previous secret, or its
        grace period is not over."""

        def change(record: KeyRecord, now: datetime) -> KeyRecord:
            if record.version != version or record.previous_hash is None or record.previous_secret_valid(now):
                return record
            return replace(record, previous_hash=None, previous_pepper_version=None, previous_expires_at=None)

        before, after = self._change(key_id, change, lambda before, after: Action.GRACE_END, None, GRACE_END_ACTOR)
        return Changed(after) if after != before else None
