"""The authorization decision: parse and checksum, read the key, verify the secret, check its state.

Fails closed: every fault is a refusal with reason FAULT, never an allow.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from keygate import keys
from keygate.hashing import Hasher, PepperRing, PepperUnavailable
from keygate.records import KeyRecord, Status
from keygate.store import CorruptRecord, KeyStore

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


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents: ``Authorization: Bearer <key>`` (RFC 6750) or ``x-api-key: <key>``.

    Returns None when neither header is there, and raises MalformedKey when the two disagree or the
    Authorization header carries another scheme with no x-api-key beside it: doubt is a refusal.
    """
    bearer = None
    if authorization is not None and authorization.strip():
        match = _BEARER.fullmatch(authorization.strip())
        if match is None and not api_key:
            raise keys.MalformedKey("Authorization header is not 'Bearer <key>'")
        bearer = match[1] if match else None
    api_key = api_key.strip() if api_key and api_key.strip() else None
    if bearer and api_key and bearer != api_key:
        raise keys.MalformedKey("Authorization and x-api-key headers carry different keys")
    return bearer or api_key


def authorize(
    authorization: str | None,
    api_key: str | None,
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
        return _check(parsed, store, hasher, peppers, now or datetime.now(UTC))
    except Exception as error:  # fail closed on anything: throttling, timeouts, corrupt items, bugs
        detail = f"{type(error).__name__}: {error}" if isinstance(error, _EXPLAINED_FAULTS) else type(error).__name__
        return Decision(Reason.FAULT, key_id=parsed.key_id, fault=detail)


def _check(parsed: keys.ParsedKey, store: KeyStore, hasher: Hasher, peppers: PepperRing, now: datetime) -> Decision:
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
    return Decision(Reason.ALLOWED, key_id=parsed.key_id, record=record)
