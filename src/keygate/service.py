"""The key's life (issue, update, rotate, revoke, get, list, history, pepper usage) and authorization,
wired to their dependencies once. Every change is read, changed, and written back conditional on the
version read, with its audit record in the same transaction."""

from __future__ import annotations  # a method named list would shadow list[...] in later annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from keygate import audit, audit_verify, explain, keys, leak_alerts
from keygate.apis import ApiStage
from keygate.audit import Action, AuditRecord
from keygate.audit_copy import AuditCopyLog
from keygate.authorize import Authorizer, Decision, explained
from keygate.authorizer_cache import AuthorizerCache, FlushReport
from keygate.config import AWS_CLIENT_CONFIG, GATEWAY_CLIENT_CONFIG, Config
from keygate.hashing import Argon2id, Argon2Params, Hasher, PepperRing
from keygate.leak_alerts import TokenOutcome
from keygate.leaks import Label, LeakFinding, LeakNotifier, LeakReport
from keygate.records import KeyRecord, State, Status, parse_time, state_of
from keygate.routes import RequestRoute
from keygate.store import ConcurrentChange, KeyNotFound, KeyStore
from keygate.usage_plans import UsagePlans
from keygate.verified import VerifiedKeys

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


@dataclass(frozen=True)
class Update:
    """What an update changes; UNSET leaves a field as it is."""

    name: object = UNSET
    description: object = UNSET
    scopes: object = UNSET
    apis: object = UNSET
    expires_at: object = UNSET
    enabled: object = UNSET
    usage_plan_id: object = UNSET


# A change of these can take access away from a key: API Gateway's cached answers for it must go.
_NARROWING = ("status", "scopes", "apis", "expires_at")


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


def _utc_now() -> datetime:
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


class KeyService:
    def __init__(
        self,
        config: Config,
        store: KeyStore,
        hasher: Hasher,
        peppers: PepperRing,
        clock: Callable[[], datetime] = _utc_now,
        usage_plans: UsagePlans | None = None,
        authorizer_cache: AuthorizerCache | None = None,
        notifier: LeakNotifier | None = None,
        audit_copy_log: AuditCopyLog | None = None,
    ):
        self.config = config
        self._store = store
        self._hasher = hasher
        self._peppers = peppers
        self._clock = clock
        self._usage_plans = usage_plans
        self._cache = authorizer_cache or AuthorizerCache(0, ())
        self._notifier = notifier
        self._audit_copy = audit_copy_log
        self._retention = timedelta(days=config.retention_days) if config.retention_days else None
        self.authorizer = Authorizer(
            config.key_prefix,
            store,
            hasher,
            peppers,
            config.route_scopes,
            VerifiedKeys(config.verified_key_cache_size),
            timedelta(minutes=config.last_used_interval_minutes),
        )

    def authorize(self, authorization: Sequence[str], api_key: Sequence[str], route: RequestRoute) -> Decision:
        """Decide on the values a request carried for the Authorization and x-api-key headers."""
        return self.authorizer.decide(authorization, api_key, route, now=self._clock())

    # --- changes ---

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
        actor: str = audit.UNSPECIFIED_ACTOR,
    ) -> tuple[keys.NewKey, KeyRecord]:
        """A new active key. The plaintext is in the returned NewKey only; the record holds its hash.
        Without ``apis``, the key gets the deployment's default list (DefaultKeyApis; none: every API).
        With a usage plan, the key's API Gateway key is made and put on the plan first, and deleted
        again if the record cannot be written: all of it, or nothing."""
        pepper_version, pepper = self._peppers.current()
        if usage_plan_id is not None:
            self._gateway().check_plan(usage_plan_id)

        def create() -> tuple[keys.NewKey, KeyRecord]:
            new_key = keys.generate(self.config.key_prefix)
            phc_hash = self._hasher.hash(new_key.secret, pepper)
            usage_key = self._gateway().new_key(new_key.key_id, usage_plan_id) if usage_plan_id else None
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
                created_at=now,
                expires_at=expires_at,
                purge_at=self._purge_after(expires_at),
                usage_plan_id=usage_plan_id,
                usage_key_id=usage_key.id if usage_key else None,
                usage_key_value=usage_key.value if usage_key else None,
            )
            try:
                self._store.create(record, self._audit(None, record, Action.ISSUE, actor, now))
            except BaseException:
                if usage_key is not None:
                    self._gateway().delete_key(usage_key)
                raise
            return new_key, record

        return _retry_on_conflict(create)

    def update(self, key_id: str, update: Update, *, expected_version: int | None = None, actor: str) -> Changed:
        """Change what ``update`` names. A revoked key raises KeyRevoked; nothing to change writes nothing,
        but still syncs the key's API Gateway key (so running an update again repairs a failed sync).
        A key put on a usage plan for the first time gets its API Gateway key before the record names it."""
        new_usage_key = None
        if update.usage_plan_id not in (UNSET, None):
            self._gateway().check_plan(update.usage_plan_id)
            current = self.get(key_id)
            if current.usage_key_id is None and current.status is not Status.REVOKED:
                new_usage_key = self._gateway().new_key(key_id, update.usage_plan_id)

        def change(record: KeyRecord, now: datetime) -> KeyRecord:
            if record.status is Status.REVOKED:
                raise KeyRevoked(f"key {key_id!r} is revoked: it cannot be changed")
            fields = {
                name: tuple(value) if isinstance(value, list) else value
                for name, value in vars(update).items()
                if value is not UNSET and name != "enabled"
            }
            if update.enabled is not UNSET:
                fields["status"] = Status.ACTIVE if update.enabled else Status.DISABLED
            if new_usage_key is not None and record.usage_key_id is None:
                fields |= {"usage_key_id": new_usage_key.id, "usage_key_value": new_usage_key.value}
            changed = replace(record, **fields)
            if "expires_at" in fields:
                changed = replace(changed, purge_at=self._purge_after(changed.expires_at))
            if _narrows(record, changed):
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
            getattr(update, name) is not UNSET for name in _NARROWING if name != "status"
        )
        flush = _narrows(before, after) or (asks_to_narrow and self._lost_access_lately(before))
        flushed = self._cache.flush() if flush else None  # before the sync, whose API Gateway calls may be slow
        return Changed(after, self._sync(after), flushed)

    def _sync(self, record: KeyRecord) -> dict | None:
        """API Gateway's key made to match the record as stored now (not as this change left it: a later
        change may have synced already); a failure is reported, the record stands."""
        if record.usage_key_id is None:
            return None
        try:
            self._gateway().sync(self.get(record.key_id))
        except Exception as error:
            return {"synced": False, "error": explained(error), "repair": "run the same update again"}
        return {"synced": True}

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
        if after.previous_hash is None or before.previous_secret_valid(after.rotated_at):
            report = self._cache.flush()
        if after.previous_hash is not None:
            name = f"keygate-{after.key_id}-v{after.version}"
            scheduled = self._cache.flush_at(after.previous_expires_at, name, f"grace of {after.key_id} ends")
            if report is None or scheduled is None:
                report = report or scheduled
            else:
                report = replace(report, scheduled=scheduled.scheduled, failed=report.failed | scheduled.failed)
        return report

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
        return Changed(after, self._sync(after), flushed, took_effect, flush_due=due and not flush)

    def _lost_access_lately(self, record: KeyRecord) -> bool:
        """Access was taken from the key less than one AuthorizerCacheTtl ago: an allow API Gateway cached
        before then may still be answering, unless that change's flush ran."""
        window = timedelta(seconds=self._cache.ttl)
        return self._cache.in_use and record.lost_access_after(self._clock() - window)

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

    def flush_authorizer_cache(self) -> FlushReport | None:
        return self._cache.flush()

    def _gateway(self) -> UsagePlans:
        if self._usage_plans is None:
            raise RuntimeError("this function has no API Gateway client: it cannot manage usage plans")
        return self._usage_plans

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
            self._store.update(before, after, record)
            return before, after

        if expected_version is None:
            return _retry_on_conflict(attempt)
        try:
            return attempt()
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

    # --- reads ---

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

    def history(self, key_id: str, limit: int, next_token: str | None) -> tuple[list[AuditRecord], str | None]:
        """A key's audit records, oldest first. Records outlive their key's item (and expire on their own
        clock), so an empty trail is KeyNotFound only when the key itself is gone too."""
        events, token = self._store.history(key_id, limit, next_token)
        if not events and next_token is None and self._store.get(key_id) is None:
            raise KeyNotFound(f"no key with key_id {key_id!r} and no history")
        return events, token

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

    def pepper_usage(self, limit: int, next_token: str | None) -> tuple[dict[str, dict[str, int]], str | None]:
        """Keys per pepper version and state, for one page of the table. A key in a rotation's grace
        period counts under its previous secret's version too, while that secret still verifies."""
        now = self._clock()
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        items, token = self._store.pepper_usage(limit, next_token)
        for item in items:
            state = state_of(Status(item["status"]), _time(item.get("expires_at")), now).value
            counts[item["pepper_version"]][state] += 1
            previous_until = _time(item.get("previous_expires_at"))
            if item.get("previous_pepper_version") and previous_until is not None and now < previous_until:
                counts[item["previous_pepper_version"]][state] += 1
        return {version: dict(states) for version, states in counts.items()}, token

    def now(self) -> datetime:
        return self._clock()


def _narrows(before: KeyRecord, after: KeyRecord) -> bool:
    """A change of a field that can take access away: API Gateway's cached answers for the key must go."""
    return any(getattr(before, name) != getattr(after, name) for name in _NARROWING)


def _update_action(before: KeyRecord, after: KeyRecord) -> Action:
    if before.status is not after.status:
        return Action.ENABLE if after.status is Status.ACTIVE else Action.DISABLE
    return Action.UPDATE


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text is not None else None


def _keep_aws_payloads_out_of_logs() -> None:
    """botocore's DEBUG log prints response bodies, a GetSecretValue's pepper among them, and Lambda's
    ApplicationLogLevel=DEBUG sets the root logger to DEBUG: so botocore gets a level of its own, never
    below INFO, whatever the root logger is set to, now or later."""
    botocore_logger = logging.getLogger("botocore")
    botocore_logger.setLevel(max(logging.INFO, botocore_logger.level))


class _ClientOnFirstUse:
    """A boto3 client made when first called: only the admin functions call API Gateway and Scheduler,
    and the authorizer's cold start should not pay for their clients (~40 ms each)."""

    def __init__(self, service: str):
        self._service = service
        self._client = None

    def __getattr__(self, name: str):
        if self._client is None:
            self._client = boto3.client(self._service, config=GATEWAY_CLIENT_CONFIG)
        return getattr(self._client, name)


def from_config(config: Config) -> KeyService:
    """The service with AWS clients made once, for the life of the container."""
    _keep_aws_payloads_out_of_logs()
    dynamodb = boto3.client("dynamodb", config=AWS_CLIENT_CONFIG)
    # One boto3 session for both clients: a second session would load botocore's data again (~0.1 s).
    secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager", config=AWS_CLIENT_CONFIG))
    return KeyService(
        config=config,
        store=KeyStore(config.keys_table, dynamodb, config.audit_table),
        hasher=Hasher(
            [Argon2id(Argon2Params(config.argon2_memory_kib, config.argon2_time_cost, config.argon2_parallelism))]
        ),
        peppers=PepperRing(config.pepper_secret_arn, secrets, max_age=config.pepper_cache_seconds),
        usage_plans=UsagePlans(_ClientOnFirstUse("apigateway"), config.keys_table),
        authorizer_cache=AuthorizerCache(
            config.authorizer_cache_ttl,
            config.cached_stages,
            _ClientOnFirstUse("apigateway"),
            _ClientOnFirstUse("apigatewayv2"),
            _ClientOnFirstUse("scheduler"),
            config.flush_target,
        ),
        notifier=LeakNotifier(config.leak_topic_arn, _ClientOnFirstUse("sns")) if config.leak_topic_arn else None,
        audit_copy_log=AuditCopyLog(_ClientOnFirstUse("logs"), config.audit_copy_log_group)
        if config.audit_copy_log_group
        else None,
    )
