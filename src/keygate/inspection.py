"""What an operator asks about keys without changing them: what the authorizer would decide and why
(explain), which pepper versions keys need (pepper status), and whether a key's audit trail matches its
tamper-evident copy."""

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from keygate import audit_verify, explain
from keygate.apis import ApiStage
from keygate.audit_copy import AuditCopyLog
from keygate.config import Config
from keygate.hashing import PepperRing
from keygate.records import KeyRecord, Status, parse_time, state_of
from keygate.store import KeyStore

Counts = dict[str, dict[str, int]]  # pepper version -> state -> how many


class Inspection:
    """KeyService's questions about keys (a part of it: service.KeyService holds the state)."""

    config: Config
    get: Callable[[str], KeyRecord]  # lifecycle.KeyLifecycle's
    _store: KeyStore
    _peppers: PepperRing
    _clock: Callable[[], datetime]
    _audit_copy: AuditCopyLog | None

    def explain(self, key_id: str, route: str, api: str | None) -> dict:
        """What the authorizer would decide for this key on ``route`` ("GET /orders/7"), on ``api``
        ("API_ID/STAGE") if given, and why; never reads or needs the secret."""
        method, path = explain.parse_route(route)
        stage = ApiStage(*api.split("/", 1)) if api else None
        config = self.config
        settings = explain.Settings(
            config.route_scopes,
            config.appsync_field_scopes,
            config.authorizer_cache_ttl,
            config.cached_stages,
            config.appsync_cache_ttl,
        )
        record, now = self.get(key_id), self._clock()
        return explain.explain(record, method, path, stage, settings, now, self._missing_peppers(record, now))

    def _missing_peppers(self, record: KeyRecord, now: datetime) -> tuple[str, ...]:
        """The pepper versions the authorizer reads to verify this key (its secret's, and the previous one's
        in a grace period) that the pepper secret lacks; a revoked key needs none."""
        if record.status is Status.REVOKED:
            return ()
        needed = dict.fromkeys(version for _, version in record.secrets_in_force(now))
        return tuple(version for version in needed if not self._peppers.has(version))

    @property
    def can_verify_history(self) -> bool:
        """Whether this function has the audit trail's copy (AUDIT_COPY_LOG_GROUP): a regional stack's has not."""
        return self._audit_copy is not None

    def verify_history(self, key_id: str) -> audit_verify.Verification:
        """The key's whole audit trail, and its state, checked against the trail's tamper-evident copy. Read
        key, copy, table, key again: a change landing meanwhile (the key's version moved) reads again."""
        if self._audit_copy is None:
            raise RuntimeError("this function has no audit copy (AUDIT_COPY_LOG_GROUP) to verify against")
        began = self._audit_copy.began()
        for _ in range(3):
            key, now = self._store.get(key_id), self._clock()
            copy, table = self._audit_copy.read(key_id), self._store.audit_items(key_id)
            again = self._store.get(key_id)
            if (key and key.version) == (again and again.version):
                break
        return audit_verify.verify(table, copy, began, again, now)

    def pepper_usage(self, limit: int, next_token: str | None) -> tuple[Counts, Counts, str | None]:
        """For one page of the table: keys by their secret's pepper version and state, each key once; and
        the previous secrets still verifying in a rotation's grace period, by their pepper version and their
        key's state. A version is in use while either counts it."""
        now = self._clock()
        keys: Counts = defaultdict(lambda: defaultdict(int))
        grace_secrets: Counts = defaultdict(lambda: defaultdict(int))
        items, token = self._store.pepper_usage(limit, next_token)
        for item in items:
            state = state_of(Status(item["status"]), _time(item.get("expires_at")), now).value
            keys[item["pepper_version"]][state] += 1
            previous_until = _time(item.get("previous_expires_at"))
            if item.get("previous_pepper_version") and previous_until is not None and now < previous_until:
                grace_secrets[item["previous_pepper_version"]][state] += 1
        return _plain(keys), _plain(grace_secrets), token


def _plain(counts: Counts) -> dict[str, dict[str, int]]:
    return {version: dict(states) for version, states in counts.items()}


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text is not None else None
