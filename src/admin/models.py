"""The admin events, validated by powertools' parser: unknown fields, wrong types, bad dates and
oversized strings are refused with the field named, before anything is written."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.utilities.parser import BaseModel, Field, field_validator
from pydantic import AfterValidator, ConfigDict, SecretStr, StrictBool, StrictInt, StrictStr, ValidationInfo

from keygate.apis import EXAMPLE as API_EXAMPLE
from keygate.apis import is_api_pattern
from keygate.audit import UNSPECIFIED_ACTOR
from keygate.explain import parse_route
from keygate.keys import KEY_ID_PATTERN
from keygate.records import QuotaPer, State
from keygate.routes import SCOPE_PATTERN

# No control, format (bidi overrides, zero-width) or line/paragraph separator characters: these values
# end up in logs, consoles and the authorizer context. (pydantic's Rust regex knows Unicode classes.)
_PRINTABLE = r"^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]*$"
MAX_LIFETIME = timedelta(days=3660)
MAX_GRACE = timedelta(days=30)


def _matching(pattern: str, expected: str):
    """A validator saying what was expected, never echoing the value (a whole key pasted as a key id)."""
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if not compiled.fullmatch(text):
            raise ValueError(f"must be {expected}")
        return text

    return AfterValidator(check)


KeyId = Annotated[
    StrictStr,
    _matching(
        KEY_ID_PATTERN, "a key id: the 16 letters and digits after the prefix (kg_<key id>_...), not a whole key"
    ),
]
Name = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Owner = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Description = Annotated[StrictStr, Field(max_length=1024, pattern=_PRINTABLE)]
Scope = Annotated[
    StrictStr,
    _matching(SCOPE_PATTERN, "one scope: 1 to 64 of A-Z a-z 0-9 . _ : / * - (no space or comma: a scope per entry)"),
]
Actor = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=_PRINTABLE)]
Limit = Annotated[StrictInt, Field(ge=1, le=100)]
NextToken = Annotated[StrictStr, Field(min_length=1, max_length=2048)]
UsagePlanId = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9]{1,64}$")]  # API Gateway's id, e.g. a1b2c3


def _api_pattern(text: str) -> str:
    if not is_api_pattern(text):
        raise ValueError(f"must be {API_EXAMPLE}")
    return text


ApiPattern = Annotated[StrictStr, AfterValidator(_api_pattern)]


def _distinct(entries: list[str] | None) -> list[str] | None:
    if entries is not None and len(set(entries)) != len(entries):
        raise ValueError("must not repeat")
    return entries


def _some_api(apis: list[str] | None) -> list[str] | None:
    if apis == []:
        raise ValueError('must name at least one API_ID/STAGE: leave it out for the default, ["*/*"] for every API')
    return apis


METADATA_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"
METADATA_BYTES = 2048


def _small(metadata: dict[str, str] | None) -> dict[str, str] | None:
    compact = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
    if metadata is not None and len(compact.encode()) > METADATA_BYTES:
        raise ValueError(f"must be at most {METADATA_BYTES} bytes in all, as compact JSON")
    return metadata


MetadataName = Annotated[StrictStr, _matching(METADATA_NAME, "a name: a letter, then up to 31 letters, digits or _")]
MetadataValue = Annotated[StrictStr, Field(max_length=256, pattern=_PRINTABLE)]
Metadata = Annotated[dict[MetadataName, MetadataValue], Field(max_length=16), AfterValidator(_small)]
Scopes = Annotated[list[Scope], Field(max_length=50), AfterValidator(_distinct)]
Apis = Annotated[list[ApiPattern], Field(max_length=50), AfterValidator(_distinct), AfterValidator(_some_api)]


class AdminEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: Actor = UNSPECIFIED_ACTOR  # who asked, for the audit trail (the CLI fills it in)


class IssueKey(AdminEvent):
    name: Name
    owner: Owner
    description: Description = ""
    scopes: Scopes = []
    apis: Apis | None = None
    expires_at: datetime | None = None
    usage_plan_id: UsagePlanId | None = None
    # "owner": the quota of usage_plan_id is shared by the owner's live keys on it; chosen once, at issue
    quota_per: QuotaPer = QuotaPer.KEY
    metadata: Metadata = {}  # forwarded to the backend as meta_<name>; not a place for secrets

    @field_validator("quota_per")
    @classmethod
    def _on_a_plan(cls, quota_per: QuotaPer, info: ValidationInfo) -> QuotaPer:
        # usage_plan_id absent from info.data: it was refused itself, with its own error
        if quota_per is QuotaPer.OWNER and "usage_plan_id" in info.data and info.data["usage_plan_id"] is None:
            raise ValueError('"owner" needs a usage_plan_id: the quota shared is that plan\'s')
        return quota_per

    @field_validator("expires_at", mode="before")
    @classmethod
    def _future_instant(cls, text: object) -> datetime | None:
        return parse_expiry(text) if text is not None else None


class UpdateKey(AdminEvent):
    """Only the fields given change; ``expires_at: null`` clears the expiry, ``usage_plan_id: null``
    takes the key off its usage plan."""

    key_id: KeyId
    name: Name = None
    description: Description = None
    scopes: Scopes = None
    apis: Apis = None
    expires_at: datetime | None = None
    enabled: StrictBool = None
    usage_plan_id: UsagePlanId | None = None
    metadata: Metadata = None  # replaces the whole map; {} clears it
    expected_version: Annotated[StrictInt, Field(ge=1)] | None = None

    @field_validator("expires_at", mode="before")
    @classmethod
    def _future_instant(cls, text: object) -> datetime | None:
        return parse_expiry(text) if text is not None else None

    def changes(self) -> dict:
        """The fields the event names, with their new values."""
        named = self.model_fields_set - {"key_id", "expected_version", "actor"}
        return {name: getattr(self, name) for name in named}


class RotateKey(AdminEvent):
    key_id: KeyId
    grace_seconds: Annotated[StrictInt, Field(ge=0, le=int(MAX_GRACE.total_seconds()))] = 86400


def parse_instant(text: object) -> datetime:
    """An ISO-8601 instant with a time zone, in UTC, to the second."""
    example = "an ISO-8601 date and time with a time zone, e.g. 2027-01-31T00:00:00Z"
    if not isinstance(text, str):
        raise ValueError(f"must be a string: {example}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"must be {example}") from None
    if moment.tzinfo is None:
        raise ValueError(f"must carry a time zone: {example}")
    try:
        return moment.astimezone(UTC).replace(microsecond=0)
    except OverflowError:  # beyond the year 9999 once in UTC
        raise ValueError("must be within ten years") from None


def parse_expiry(text: object) -> datetime:
    """An ISO-8601 instant with a time zone, in the future and within ten years, to the second."""
    moment = parse_instant(text)
    now = datetime.now(UTC)
    if moment <= now:
        raise ValueError("must be in the future")
    if moment > now + MAX_LIFETIME:
        raise ValueError("must be within ten years")
    return moment


class KeyRef(AdminEvent):
    key_id: KeyId


class ListKeys(AdminEvent):
    owner: Owner | None = None
    status: State | None = None
    unused_since: datetime | None = None  # keys not used since then (or never): last_used_at before it
    limit: Limit = 50
    next_token: NextToken | None = None

    @field_validator("unused_since", mode="before")
    @classmethod
    def _instant(cls, text: object) -> datetime | None:
        return parse_instant(text) if text is not None else None


class KeyHistory(AdminEvent):
    key_id: KeyId
    limit: Limit = 50
    next_token: NextToken | None = None
    verify: StrictBool = False  # also check the whole trail against its tamper-evident copy


class PepperStatus(AdminEvent):
    next_token: NextToken | None = None


class ReportLeak(AdminEvent):
    """A key found somewhere it should not be, pasted by an operator: revoked when it is a real key of this
    deployment. No pattern on ``key``: anything else is an answer (a false positive), not an error."""

    key: Annotated[SecretStr, Field(min_length=1, max_length=1024)]  # SecretStr: never in a repr
    url: Annotated[StrictStr, Field(min_length=1, max_length=2048, pattern=_PRINTABLE)] | None = None


def _route(text: str) -> str:
    parse_route(text)  # raises ValueError (InvalidQuestion) saying what is wrong
    return text


class ExplainKey(AdminEvent):
    """What the authorizer would decide for this key on this route (and API), and why."""

    key_id: KeyId
    route: Annotated[StrictStr, Field(max_length=2048), AfterValidator(_route)]
    api: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9]{1,64}/[A-Za-z0-9_$-]{1,128}$")] | None = None


class GraceOf(BaseModel):
    """The rotation whose grace period ends: the key, and its version the rotation made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: KeyId
    version: Annotated[StrictInt, Field(ge=1)]


class FlushAuthorizerCache(AdminEvent):
    """Empty API Gateway's authorizer cache on every stage of CachedStages (EventBridge Scheduler sends
    this when a rotation's grace period ends, with ``grace_of``: the previous secret is dropped first; an
    operator may send it any time)."""

    reason: Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=_PRINTABLE)] = "requested"
    grace_of: GraceOf | None = None
