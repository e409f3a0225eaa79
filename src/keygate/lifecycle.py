"""The key's life: issue, update, rotate and revoke, and the reads of a key and its trail. Every change is
read, changed, and written back conditional on the version read, with its audit record in the same
transaction; its effects outside the table (the API Gateway key, the authorizer cache) follow it."""

from __future__ import annotations  # a method named list would shadow list[...] in later annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, make_dataclass, replace
from datetime import UTC, datetime, timedelta

from keygate import audit, keys
from keygate.audit import Action, AuditRecord
from keygate.authorizer_cache import AuthorizerCache, FlushReport
from keygate.config import Config
from keygate.hashing import Hasher, PepperRing
from keygate.metering import Metering
from keygate.records import UPDATABLE, KeyRecord, QuotaPer, State, Status, as_pairs
from keygate.stale_answers import NARROWING, goes_stale, narrows
from keygate.store import ConcurrentChange, KeyNotFound, KeyStore

# A key id collision (95 random bits) or a lost race is retried, after a jittered backoff (up to 10 ms,
# doubling: at most 1.3 s in all), so a burst of changes to one key all land; past that, ConcurrentChange.
# No attempt starts after _RETRY_SECONDS, so the last one (at most two calls of 5 s) ends within the admin
# functions' 30 s timeout.
_WRITE_ATTEMPTS = 8
_RETRY_SECONDS = 15.0
UNSET = object()  # an update field that was not given (None is a value: expires_at null clears it)


class KeyRevoked(ValueError):
    """A revoked key cannot be changed (revoking it again is harmless)."""


class VersionConflict(RuntimeError):
    """The key is not at the version the caller expected; nothing was written."""


Update = make_dataclass(
    "Update",
    [(name, object, field(default=UNSET)) for name in (*UPDATABLE, "enabled")],
    frozen=True,
    namespace={
        "__doc__": "What an update changes: the fields KeyRecord declares updatable, and ``enabled`` (its status). "
        "UNSET leaves a field as it is."
    },
)


@dataclass(frozen=True)
class Changed:
    """A change's record, and what became of its effects outside the table: the API Gateway key's sync
    (None: the key has none) and the authorizer cache's flush (None: nothing to flush)."""

    record: KeyRecord
    usage_plan: dict | None = None
    authorizer_cache: FlushReport | None = None
    took_effect: bool = True  # False: the key was already as asked (a revoked key revoked again)
    flush_due: bool = False  # the caller asked not to flush (flush=False), and a flush is due

    def reports(self) -> dict:
        reports = {}
        if self.usage_plan is not None:
            reports["usage_plan_sync"] = self.usage_plan
        if self.authorizer_cache is not None:
            reports["authorizer_cache"] = self.authorizer_cache.view()
        return reports


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _retry_on_conflict[T](write: Callable[[], T]) -> T:
    started = time.monotonic()
    for attempt in range(_WRITE_ATTEMPTS - 1):
        try:
            return write()
        except ConcurrentChange:
            pause = secrets.randbelow(10 * 2**attempt) / 1000
            if time.monotonic() - started + pause > _RETRY_SECONDS:
                raise
            time.sleep(pause)
    return write()


class KeyLifecycle(Metering):
    """KeyService's changes and reads of keys (a part of it: service.KeyService holds the state)."""

    config: Config
    _store: KeyStore
    _hasher: Hasher
    _peppers: PepperRing
    _clock: Callable[[], datetime]
    _cache: AuthorizerCache
    _retention: timedelta | None

    def issue(
        self,
        *,
        name: str,
        owner: str,
        description: str = "",
        scopes: Sequence[str] = (),
        apis: Sequence[str] | None = None,
        expires_at: datetime | None = None,
        usage_plan_id: str | None = None,
        quota_per: QuotaPer = QuotaPer.KEY,
        metadata: dict[str, str] | None = None,
        actor: str = audit.UNSPECIFIED_ACTOR,
    ) -> tuple[keys.NewKey, Changed]:
        """A new active key. The plaintext is in the returned NewKey only; the record holds its hash.
        Without ``apis``, the key gets the deployment's default list (DefaultKeyApis; none: every API).
        With a usage plan, the key's API Gateway key is made and put on the plan first, and deleted
        again if the record cannot be written: all of it, or nothing. With ``quota_per`` OWNER, the key
        shares its owner's instead (made on the first key of the owner on the plan, and kept)."""
        pepper_version, pepper = self._peppers.current()
        if usage_plan_id is not None:
            self._gateway().check_plan(usage_plan_id)

        def create() -> tuple[keys.NewKey, KeyRecord]:
            new_key = keys.generate(self.config.key_prefix)
            phc_hash = self._hasher.hash(new_key.secret, pepper)
            usage_key, made = self._usage_key_to_issue(new_key.key_id, owner, usage_plan_id, quota_per)
            now = self._clock()
            record = KeyRecord(
                key_id=new_key.key_id,
                phc_hash=phc_hash,
                pepper_version=pepper_version,
                name=name,
                owner=owner,
                description=description,
                scopes=tuple(scopes),
                apis=tuple(apis) if apis is not None else self.config.default_key_apis,
                metadata=as_pairs(metadata or {}),
                created_at=now,
                expires_at=expires_at,
                purge_at=self._purge_after(expires_at),
                usage_plan_id=usage_plan_id,
                quota_per=quota_per,
                usage_key_id=usage_key.id if usage_key else None,
                usage_key_value=usage_key.value if usage_key else None,
            )
            joins = self._owner_usage_keys.prepare(None, record)
            try:
                self._store.create(record, self._audit(None, record, Action.ISSUE, actor, now), joins)
            except BaseException:
                if made is not None:
                    self._gateway().delete_key(made)
                raise
            return new_key, record

        new_key, record = _retry_on_conflict(create)
        return new_key, Changed(record, self._sync(None, record) if record.quota_per is QuotaPer.OWNER else None)

    def update(self, key_id: str, update: Update, *, expected_version: int | None = None, actor: str) -> Changed:
        """Change what ``update`` names. A revoked key raises KeyRevoked; nothing to change writes nothing,
        but still syncs the key's API Gateway key (so running an update again repairs a failed sync).
        A key put on a usage plan for the first time gets its API Gateway key before the record names it."""
        new_usage_key = owners_usage_key = None  # one made for this key alone; its owner's on the new plan
        if update.usage_plan_id not in (UNSET, None):
            self._gateway().check_plan(update.usage_plan_id)
            current = self.get(key_id)
            if expected_version is not None and current.version != expected_version:  # before anything is made
                raise VersionConflict(f"key {key_id!r} is at version {current.version}, not {expected_version}")
            usage_key = self._usage_key_to_move(current, update.usage_plan_id)
            if current.quota_per is QuotaPer.OWNER:
                owners_usage_key = usage_key
            else:
                new_usage_key = usage_key

        def change(record: KeyRecord, now: datetime) -> KeyRecord:
            if record.status is Status.REVOKED:
                raise KeyRevoked(f"key {key_id!r} is revoked: it cannot be changed")
            fields = {
                name: _held(value) for name, value in vars(update).items() if value is not UNSET and name != "enabled"
            }
            if update.enabled is not UNSET:
                fields["status"] = Status.ACTIVE if update.enabled else Status.DISABLED
            if new_usage_key is not None and record.usage_key_id is None:
                fields |= {"usage_key_id": new_usage_key.id, "usage_key_value": new_usage_key.value}
            moves = "usage_plan_id" in fields and fields["usage_plan_id"] != record.usage_plan_id
            if moves and record.quota_per is QuotaPer.OWNER:  # to its owner's shared key there, or to none
                shared = owners_usage_key if fields["usage_plan_id"] is not None else None
                fields |= {"usage_key_id": shared and shared.id, "usage_key_value": shared and shared.value}
            changed = replace(record, **fields)
            if "expires_at" in fields:
                changed = replace(changed, purge_at=self._purge_after(changed.expires_at))
            if narrows(record, changed):
                changed = replace(changed, access_changed_at=now)
            return changed

        try:
            before, after = self._change(key_id, change, _update_action, expected_version, actor)
        except BaseException:
            if new_usage_key is not None:
                self._gateway().delete_key(new_usage_key)
            raise
        if new_usage_key is not None and after.usage_key_id != new_usage_key.id:  # another update gave it one
            self._gateway().delete_key(new_usage_key)
        # Asked again for what narrowed the key a moment ago (a retry), the flush runs again: the first one
        # may have failed, or its invocation ended before it ran.
        asks_to_narrow = update.enabled is False or any(
            getattr(update, name) is not UNSET for name in NARROWING if name != "status"
        )
        flush = goes_stale(before, after) or (asks_to_narrow and self._lost_access_lately(before))
        flushed = self._cache.flush() if flush else None  # before the sync, whose API Gateway calls may be slow
        return Changed(after, self._sync(before, after), flushed)

    def revoke(
        self,
        key_id: str,
        *,
        actor: str = audit.UNSPECIFIED_ACTOR,
        details: dict[str, str] | None = None,
        flush: bool = True,
    ) -> Changed:
        """Revoke a key; revoking a revoked key changes nothing and returns it as it is. ``details`` (why)
        go into the audit record. ``flush=False``: the caller flushes the authorizer cache once, after
        several revocations."""

        def change(record: KeyRecord, now: datetime) -> KeyRecord:
            if record.status is Status.REVOKED:
                return record
            return replace(
                record,
                status=Status.REVOKED,
                revoked_at=now,
                purge_at=now + self._retention if self._retention else None,
            )

        before, after = self._change(key_id, change, lambda before, after: Action.REVOKE, None, actor, details)
        took_effect = before.status is not Status.REVOKED  # as the write that won saw it
        # A key revoked a moment ago (by anyone) is flushed again: that revocation's flush may have failed,
        # or its invocation ended before it ran, and a cached allow would outlive it by the TTL.
        due = took_effect or self._lost_access_lately(before)
        flushed = self._cache.flush() if due and flush else None  # before the sync, whose calls may be slow
        return Changed(after, self._sync(before, after), flushed, took_effect, flush_due=due and not flush)

    def _lost_access_lately(self, record: KeyRecord) -> bool:
        """Access was taken from the key less than one AuthorizerCacheTtl ago: an allow API Gateway cached
        before then may still be answering, unless that change's flush ran."""
        window = timedelta(seconds=self._cache.ttl)
        return self._cache.in_use and record.lost_access_after(self._clock() - window)

    def flush_authorizer_cache(self) -> FlushReport | None:
        return self._cache.flush()

    def _change(
        self,
        key_id: str,
        change: Callable[[KeyRecord, datetime], KeyRecord],
        action: Callable[[KeyRecord, KeyRecord], Action],
        expected_version: int | None,
        actor: str,
        details: dict[str, str] | None = None,
    ) -> tuple[KeyRecord, KeyRecord]:
        """Read, change, write back with the audit record, conditional on the version read; the record
        before and after. With an expected version, a key at another version is a VersionConflict;
        without, a lost race retries."""

        def attempt() -> tuple[KeyRecord, KeyRecord]:
            before = self.get(key_id)
            if expected_version is not None and before.version != expected_version:
                raise VersionConflict(f"key {key_id!r} is at version {before.version}, not {expected_version}")
            now = self._clock()
            after = change(before, now)
            if after == before:
                return before, before
            after = replace(after, version=before.version + 1)
            record = self._audit(before, after, action(before, after), actor, now, details)
            self._store.update(before, after, record, self._owner_usage_keys.prepare(before, after))
            return before, after

        if expected_version is None:
            return _retry_on_conflict(attempt)
        try:  # a lost race that left the key at the version expected (another key's change to a shared item)
            return _retry_on_conflict(attempt)  # is retried; one that moved it is VersionConflict, in attempt
        except ConcurrentChange:
            raise VersionConflict(f"key {key_id!r} changed while it was being updated") from None

    def _audit(
        self,
        before: KeyRecord | None,
        after: KeyRecord,
        action: Action,
        actor: str,
        now: datetime,
        details: dict[str, str] | None = None,
    ) -> AuditRecord:
        return AuditRecord(
            key_id=after.key_id,
            version=after.version,
            action=action,
            actor=actor,
            at=now,
            changes=audit.changes(before, after, now),
            purge_at=now + self._retention if self._retention else None,
            details=details,
        )

    def _purge_after(self, expires_at: datetime | None) -> datetime | None:
        return expires_at + self._retention if expires_at and self._retention else None

    def get(self, key_id: str) -> KeyRecord:
        record = self._store.get(key_id)
        if record is None:
            raise KeyNotFound(f"no key with key_id {key_id!r}")
        return record

    def list(
        self,
        owner: str | None,
        state: State | None,
        limit: int,
        next_token: str | None,
        unused_since: datetime | None = None,
    ) -> tuple[list[KeyRecord], str | None]:
        return self._store.list(owner, state, limit, next_token, self._clock(), unused_since)

    def history(self, key_id: str, limit: int, next_token: str | None) -> tuple[list[AuditRecord], str | None]:
        """A key's audit records, oldest first. Records outlive their key's item (and expire on their own
        clock), so an empty trail is KeyNotFound only when the key itself is gone too."""
        events, token = self._store.history(key_id, limit, next_token)
        if not events and next_token is None and self._store.get(key_id) is None:
            raise KeyNotFound(f"no key with key_id {key_id!r} and no history")
        return events, token

    def now(self) -> datetime:
        return self._clock()


def _held(value: object) -> object:
    """An update's value as the record holds it: a list as a tuple, a map as sorted pairs."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return as_pairs(value)
    return value


def _update_action(before: KeyRecord, after: KeyRecord) -> Action:
    if before.status is not after.status:
        return Action.ENABLE if after.status is Status.ACTIVE else Action.DISABLE
    return Action.UPDATE
