"""Leaked tokens reported by GitHub's secret scanning or an operator: each that is a key's secret in force
revokes the key, with the report in its audit record, and notifies LeakedKeyTopic once."""

from collections.abc import Sequence

from keygate import keys, leak_alerts
from keygate.authorize import Authorizer, explained
from keygate.leak_alerts import TokenOutcome
from keygate.leaks import Label, LeakFinding, LeakNotifier, LeakReport
from keygate.lifecycle import KeyLifecycle
from keygate.records import KeyRecord, Status


class LeakRevocation(KeyLifecycle):
    """KeyService's leak reports: revocations with their report (service.KeyService holds the state)."""

    authorizer: Authorizer
    _notifier: LeakNotifier | None

    def report_leaks(
        self, reports: Sequence[LeakReport], *, actor: str, budget: float | None = None
    ) -> list[LeakFinding]:
        """Tokens found in the open, worked through within ``budget`` seconds if given (leak_alerts): each
        whose secret is a key's in force now (as the authorizer checks one) revokes the key, with its report
        in the audit record, and notifies LeakedKeyTopic once: only the revocation that took effect notifies,
        so a retried delivery racing the first notifies nobody. A token of a revoked key is a true positive
        with no Argon2 and no write: the key is revoked whatever the token is (flushed again if it was revoked
        less than one AuthorizerCacheTtl ago). Others are false positives. One flush for all of them."""
        keys_read: dict[str, KeyRecord | None] = {}  # one read per key id per alert

        def look_up(report: LeakReport) -> TokenOutcome | None:
            try:
                key_id = keys.parse(report.token, self.config.key_prefix).key_id
            except keys.MalformedKey:
                return TokenOutcome(LeakFinding(report.token_hash, report.token_type, Label.FALSE_POSITIVE))
            if key_id not in keys_read:
                keys_read[key_id] = self._store.get(key_id)
            record = keys_read[key_id]
            if record is None:
                return TokenOutcome(LeakFinding(report.token_hash, report.token_type, Label.FALSE_POSITIVE))
            if record.status is Status.REVOKED:
                finding = LeakFinding(report.token_hash, report.token_type, Label.TRUE_POSITIVE, key_id, "already")
                return TokenOutcome(finding, flush_due=self._lost_access_lately(record))
            return None

        def verify(report: LeakReport) -> TokenOutcome:
            # The key as it was read: a token's label must not depend on which token of the alert came first.
            parsed = keys.parse(report.token, self.config.key_prefix)
            if not self._leaked_secret(keys_read[parsed.key_id], parsed):
                return TokenOutcome(LeakFinding(report.token_hash, report.token_type, Label.FALSE_POSITIVE))
            changed = self.revoke(parsed.key_id, actor=actor, details=report.details(), flush=False)
            found = (report.token_hash, report.token_type, Label.TRUE_POSITIVE, parsed.key_id)
            if changed.took_effect:
                finding = LeakFinding(*found, "now", self._notify(changed.record, report, actor), changed.reports())
            else:
                finding = LeakFinding(*found, "already", None, changed.reports())
            return TokenOutcome(finding, changed, changed.flush_due)

        return leak_alerts.work_through(reports, look_up, verify, self._cache.flush, budget)

    def _leaked_secret(self, record: KeyRecord, parsed: keys.ParsedKey) -> bool:
        """Whether the token is one of the key's secrets in force now. A secret that no longer verifies
        (rotated out, or hashed with a pepper version since removed) revokes nothing, so whoever holds a
        dead secret cannot take the live key down."""
        return self.authorizer.verifies(record, parsed, self._clock())

    def _notify(self, record: KeyRecord, report: LeakReport, actor: str) -> str | None:
        if self._notifier is None:
            return None
        try:
            self._notifier.notify(record, report, "now", actor)
            return "sent"
        except Exception as error:
            return f"failed: {explained(error)}"
