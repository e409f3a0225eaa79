"""The authorization decision: parse and checksum, read the key, verify the secret (or, during a
rotation's grace period, the previous one), check its state, the API it is used on and the scopes the
route needs; re-hash a key verified under an old pepper or old Argon2 parameters.

Argon2 runs once per key per container (``VerifiedKeys``), never for an unknown or revoked key id; the
item is read on every call, so a change to the key counts on the very next one.
Fails closed: every fault is a refusal with reason FAULT, never an allow.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from keygate import apis, keys
from keygate.hashing import Hasher, PepperRing, PepperUnavailable, PepperVersionMissing
from keygate.records import KeyRecord, Status
from keygate.routes import ENCODED_SLASH, TRAILING_SLASHES, RequestRoute, RouteScopes, matches_any
from keygate.store import ConcurrentChange, CorruptRecord, DamagedResponse, KeyStore
from keygate.verified import StoredHash, VerifiedKeys

OPTIONAL_WHITESPACE = " \t"
_BEARER = re.compile(r"bearer +(\S+)", re.IGNORECASE)
_EXPLAINED_FAULTS = (ClientError, BotoCoreError, PepperUnavailable, CorruptRecord, DamagedResponse)


class Reason(StrEnum):
    ALLOWED = "Allowed"
    MISSING = "MissingKey"
    MALFORMED = "MalformedKey"
    UNKNOWN = "UnknownKey"
    WRONG_SECRET = "WrongSecret"  # nosec B105 # the name of a refusal reason, not a password
    REVOKED = "RevokedKey"
    DISABLED = "DisabledKey"
    EXPIRED = "ExpiredKey"
    API_NOT_ALLOWED = "ApiNotAllowed"  # a valid key, on an API or stage its list does not name
    ENCODED_SLASH = "EncodedSlash"  # a valid key, on a path holding %2F, which a route map refuses to every key
    TRAILING_SLASHES = "TrailingSlashes"  # a valid key, on a path ending in "//", refused as an encoded "/" is
    MISSING_SCOPE = "MissingScope"  # a valid key, without a scope this route needs
    FAULT = "Fault"


# A valid key refused for this route only: a REST answer is its policy for every route, which denies this one.
ROUTE_REFUSALS = (Reason.ENCODED_SLASH, Reason.TRAILING_SLASHES, Reason.MISSING_SCOPE)
FORBIDDEN = (Reason.API_NOT_ALLOWED, *ROUTE_REFUSALS)


@dataclass(frozen=True)
class Decision:
    reason: Reason
    key_id: str | None = None
    record: KeyRecord | None = None  # once the secret verified
    matched_scopes: tuple[str, ...] = ()  # the key's scopes that satisfied this route's entries
    rehash: str | None = None  # "rehashed", "skipped" (changed meanwhile) or "failed: <why>", when it needed it
    verified_by: str | None = None  # "cache" or "argon2", once a secret was checked
    last_used: str | None = None  # "failed: <why>" when last_used_at was due and could not be written
    fault: str | None = None  # why, for the log: an error type and AWS error code, never a key or pepper

    @property
    def allowed(self) -> bool:
        return self.reason is Reason.ALLOWED and self.record is not None

    @property
    def forbidden(self) -> bool:
        """The caller proved a live key, which is not for this request: 403 rather than 401."""
        return self.reason in FORBIDDEN and self.record is not None


def presented_key(authorization: Sequence[str], api_key: Sequence[str]) -> str | None:
    """The key a request presents: ``Authorization: Bearer <key>`` (RFC 6750) or ``x-api-key: <key>``.

    Each argument holds every value the request carried for that header. Returns None when neither
    header is there. Any doubt is a refusal (MalformedKey): a key header present but blank, a header
    sent twice with different values, an Authorization header that is not a Bearer key, or the two
    headers carrying different keys.
    The last matters beyond ambiguity: API Gateway caches an answer under the identity-source header
    only, so an allow must never rest on a header other than the one that carried the key.
    """
    authorizations = {_trimmed(value) for value in authorization}
    api_keys = {_trimmed(value) for value in api_key}
    if len(authorizations) > 1 or len(api_keys) > 1:
        raise keys.MalformedKey("a key header was sent more than once with different values")
    bearer = None
    if authorizations:
        match = _BEARER.fullmatch(next(iter(authorizations)))
        if match is None:
            raise keys.MalformedKey("Authorization header is not 'Bearer <key>'")
        bearer = match[1]
    presented = {bearer} if bearer else set()
    presented |= api_keys
    if len(presented) > 1:
        raise keys.MalformedKey("Authorization and x-api-key headers carry different keys")
    return next(iter(presented), None)


def _trimmed(value: str) -> str:
    """A header value without its optional whitespace, which RFC 9110 limits to space and tab: any other
    character around a key (NBSP, U+3000, a line break) stays, and makes the key malformed."""
    trimmed = value.strip(OPTIONAL_WHITESPACE)
    if not trimmed:
        raise keys.MalformedKey("a key header is present but blank")
    return trimmed


@dataclass(frozen=True)
class Authorizer:
    """The decision, wired to what it reads: the key prefix, the keys, the hasher, the peppers and the
    route map."""

    prefix: str
    store: KeyStore
    hasher: Hasher
    peppers: PepperRing
    route_scopes: RouteScopes = RouteScopes()
    verified: VerifiedKeys = field(default_factory=VerifiedKeys)
    last_used_interval: timedelta = timedelta(0)  # how often last_used_at is written per key; 0: never
    # False in a regional stack: its replica's writes would replicate back to the primary, and global tables'
    # last writer wins per item, so a last_used_at or a re-hash there could undo a revoke made meanwhile
    writes: bool = True

    def decide(
        self, authorization: Sequence[str], api_key: Sequence[str], route: RequestRoute, now: datetime | None = None
    ) -> Decision:
        try:
            presented = presented_key(authorization, api_key)
            if presented is None:
                return Decision(Reason.MISSING)
            parsed = keys.parse(presented, self.prefix)
        except keys.MalformedKey:
            return Decision(Reason.MALFORMED)
        try:
            return self._check(parsed, route, now or datetime.now(UTC))
        except Exception as error:  # fail closed on anything: throttling, timeouts, corrupt items, bugs
            return Decision(Reason.FAULT, key_id=parsed.key_id, fault=explained(error))

    def _check(self, parsed: keys.ParsedKey, route: RequestRoute, now: datetime) -> Decision:
        key_id = parsed.key_id
        record = self.store.get(key_id)
        if record is None:  # no Argon2: a key id is an identifier, not a secret (docs/design.md)
            return Decision(Reason.UNKNOWN, key_id=key_id)
        if record.status is Status.REVOKED:  # refused whatever the secret: no Argon2, no pepper needed
            return Decision(Reason.REVOKED, key_id=key_id)
        digest = self.verified.digest(parsed)
        verified, verified_by = self._verify(record, parsed.secret, digest, now)
        if verified is None:
            return Decision(Reason.WRONG_SECRET, key_id=key_id, verified_by=verified_by)
        rehash = self._rehash(record, parsed.secret, digest) if verified is _Secret.CURRENT else None
        refusal = refused_for(record, route, self.route_scopes, now, check_api=True)
        proven = dict(key_id=key_id, record=record, rehash=rehash, verified_by=verified_by)
        if refusal in (Reason.DISABLED, Reason.EXPIRED):
            return Decision(refusal, **proven)
        last_used = self._note_use(record, now)  # a live key was presented: it is in use, allowed here or not
        if refusal is not None:
            return Decision(refusal, last_used=last_used, **proven)
        matched = self.route_scopes.matched_scopes(record.scopes, route.method, route.path)
        return Decision(Reason.ALLOWED, matched_scopes=matched, last_used=last_used, **proven)

    def verifies(self, record: KeyRecord, parsed: keys.ParsedKey, now: datetime) -> bool:
        """Whether ``parsed`` holds one of the key's secrets in force now, checked as ``decide`` checks it (this
        container's verified-key cache, else Argon2), but a secret whose pepper version is gone verifies
        nothing rather than raise: a leak report of the other one still counts."""
        which, _ = self._verify(record, parsed.secret, self.verified.digest(parsed), now, missing_ok=True)
        return which is not None

    def _note_use(self, record: KeyRecord, now: datetime) -> str | None:
        """Write last_used_at when it is older than the interval, once across all containers (the write
        is conditional). Never changes the decision: a failure is only reported, for the log."""
        if not self.writes or not self.last_used_interval:
            return None
        if record.last_used_at is not None and now - record.last_used_at < self.last_used_interval:
            return None
        try:
            self.store.touch(record.key_id, now, due=now - self.last_used_interval)
        except Exception as error:
            return f"failed: {explained(error)}"
        return None

    def _verify(
        self, record: KeyRecord, secret: str, digest: bytes, now: datetime, missing_ok: bool = False
    ) -> tuple["_Secret | None", str]:
        """Which of the key's secrets this is, the current one or the previous one in its grace period,
        and how that was learnt: from this container's cache when the item still holds the very hash,
        and the pepper secret the very value, that the key was checked against; else from Argon2.
        The pepper is read on every call, so a missing or unreadable one is a fault, cache or not (unless
        ``missing_ok``: then a secret whose pepper version is gone is left out)."""
        secrets_in_force = [(_Secret.CURRENT, record.phc_hash, record.pepper_version)]
        if record.previous_secret_valid(now):
            secrets_in_force.append((_Secret.PREVIOUS, record.previous_hash, record.previous_pepper_version))
        candidates = []  # (which, the stored hash as the cache names it, its pepper)
        for which, phc_hash, pepper_version in secrets_in_force:
            try:
                candidates.append((which, *self._checked_against(phc_hash, pepper_version)))
            except PepperVersionMissing:
                if not missing_ok:
                    raise
        matched = self.verified.matched(digest)
        for which, stored, _ in candidates:
            if matched == stored:
                return which, "cache"
        checked = tuple(stored for _, stored, _ in candidates)
        if self.verified.refused_by(digest, checked):
            return None, "cache"
        for which, stored, pepper in candidates:
            if self.hasher.verify(stored[0], secret, pepper):
                self.verified.remember_match(digest, stored)
                return which, "argon2"
        self.verified.remember_refusal(digest, checked)
        return None, "argon2"

    def _checked_against(self, phc_hash: str, pepper_version: str) -> tuple[StoredHash, bytes]:
        """A stored hash as the cache names it (with its pepper's fingerprint), and that pepper."""
        pepper = self.peppers.get(pepper_version)
        return (phc_hash, pepper_version, self.verified.fingerprint(pepper)), pepper

    def _rehash(self, record: KeyRecord, secret: str, digest: bytes) -> str | None:
        """Re-hash a key verified under an old pepper or old Argon2 parameters, conditional on the item
        being unchanged. Never changes the decision: a failure is only reported, for the log."""
        if not self.writes:
            return None
        try:
            version, pepper = self.peppers.current()
            if record.pepper_version == version and not self.hasher.needs_rehash(record.phc_hash):
                return None
            rehashed = replace(record, phc_hash=self.hasher.hash(secret, pepper), pepper_version=version)
            self.store.rehash(record, rehashed)
            self.verified.remember_match(digest, (rehashed.phc_hash, version, self.verified.fingerprint(pepper)))
            return "rehashed"
        except ConcurrentChange:  # an admin change came first; the next use re-hashes if it still must
            return "skipped"
        except Exception as error:
            return f"failed: {explained(error)}"


class _Secret(Enum):
    CURRENT = "current"
    PREVIOUS = "previous"


def refused_for(
    record: KeyRecord, route: RequestRoute, route_scopes: RouteScopes, now: datetime, *, check_api: bool
) -> Reason | None:
    """Why a live key whose secret verified is refused here, if it is: its state, then where it is used.
    Only ``keygate explain`` asked about no API in particular passes check_api=False."""
    if record.status is Status.DISABLED:
        return Reason.DISABLED
    if record.is_expired(now):
        return Reason.EXPIRED
    if check_api and not apis.allows(record.apis, route.api):
        return Reason.API_NOT_ALLOWED
    if route_scopes.rules and matches_any(ENCODED_SLASH, route.path):
        return Reason.ENCODED_SLASH
    if route_scopes.rules and matches_any(TRAILING_SLASHES, route.path):
        return Reason.TRAILING_SLASHES
    if not route_scopes.allows(record.scopes, route.method, route.path):
        return Reason.MISSING_SCOPE
    return None


def explained(error: Exception) -> str:
    """An error for a log or an admin answer: its type, and for AWS and known faults their message
    (codes and resource names, never a key or a pepper)."""
    return f"{type(error).__name__}: {error}" if isinstance(error, _EXPLAINED_FAULTS) else type(error).__name__
