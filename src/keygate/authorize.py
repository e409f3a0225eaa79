"""The authorization decision: parse and checksum, read the key, verify the secret, check its state and
the API it is used on.

Fails closed: every fault is a refusal with reason FAULT, never an allow.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from keygate import apis, keys
from keygate.apis import ApiStage
from keygate.hashing import Hasher, PepperRing, PepperUnavailable
from keygate.records import KeyRecord, Status
from keygate.store import CorruptRecord, KeyStore

OPTIONAL_WHITESPACE = " \t"
_BEARER = re.compile(r"bearer +(\S+)", re.IGNORECASE)
_EXPLAINED_FAULTS = (ClientError, BotoCoreError, PepperUnavailable, CorruptRecord)


class Reason(StrEnum):
    ALLOWED = "Allowed"
    MISSING = "MissingKey"
    MALFORMED = "MalformedKey"
    UNKNOWN = "UnknownKey"
    WRONG_SECRET = "WrongSecret"
    REVOKED = "RevokedKey"
    EXPIRED = "ExpiredKey"
    API_NOT_ALLOWED = "ApiNotAllowed"  # a valid key, on an API or stage its list does not name
    FAULT = "Fault"


@dataclass(frozen=True)
class Decision:
    reason: Reason
    key_id: str | None = None
    record: KeyRecord | None = None
    fault: str | None = None  # why, for the log: an error type and AWS error code, never a key or pepper

    @property
    def allowed(self) -> bool:
        return self.reason is Reason.ALLOWED and self.record is not None

    @property
    def forbidden(self) -> bool:
        """The caller proved a live key, which is not for this request: 403 rather than 401."""
        return self.reason is Reason.API_NOT_ALLOWED


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


def authorize(
    authorization: Sequence[str],
    api_key: Sequence[str],
    api: ApiStage,
    *,
    prefix: str,
    store: KeyStore,
    hasher: Hasher,
    peppers: PepperRing,
    now: datetime | None = None,
) -> Decision:
    try:
        presented = presented_key(authorization, api_key)
        if presented is None:
            return Decision(Reason.MISSING)
        parsed = keys.parse(presented, prefix)
    except keys.MalformedKey:
        return Decision(Reason.MALFORMED)
    try:
        return _check(parsed, api, store, hasher, peppers, now or datetime.now(UTC))
    except Exception as error:  # fail closed on anything: throttling, timeouts, corrupt items, bugs
        detail = f"{type(error).__name__}: {error}" if isinstance(error, _EXPLAINED_FAULTS) else type(error).__name__
        return Decision(Reason.FAULT, key_id=parsed.key_id, fault=detail)


def _check(
    parsed: keys.ParsedKey, api: ApiStage, store: KeyStore, hasher: Hasher, peppers: PepperRing, now: datetime
) -> Decision:
    record = store.get(parsed.key_id)
    if record is None:
        hasher.verify_nothing(parsed.secret)
        return Decision(Reason.UNKNOWN, key_id=parsed.key_id)
    if not hasher.verify(record.phc_hash, parsed.secret, peppers.get(record.pepper_version)):
        return Decision(Reason.WRONG_SECRET, key_id=parsed.key_id)
    if record.status is not Status.ACTIVE:
        return Decision(Reason.REVOKED, key_id=parsed.key_id)
    if record.is_expired(now):
        return Decision(Reason.EXPIRED, key_id=parsed.key_id)
    if not apis.allows(record.apis, api):
        return Decision(Reason.API_NOT_ALLOWED, key_id=parsed.key_id)
    return Decision(Reason.ALLOWED, key_id=parsed.key_id, record=record)
