"""The admin events, validated by powertools' parser: unknown fields, wrong types, bad dates and
oversized strings are refused with the field named, before anything is written."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.utilities.parser import BaseModel, Field, field_validator
from pydantic import AfterValidator, ConfigDict, StrictInt, StrictStr, ValidationInfo

from keygate.apis import EXAMPLE as API_EXAMPLE
from keygate.apis import is_api_pattern
from keygate.keys import KEY_ID_PATTERN

# No control, format (bidi overrides, zero-width) or line/paragraph separator characters: these values
# end up in logs, consoles and the authorizer context. (pydantic's Rust regex knows Unicode classes.)
_PRINTABLE = r"^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]*$"
MAX_LIFETIME = timedelta(days=3660)

KeyId = Annotated[StrictStr, Field(pattern=rf"^{KEY_ID_PATTERN}$")]
Name = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Owner = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Description = Annotated[StrictStr, Field(max_length=1024, pattern=_PRINTABLE)]
Scope = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/*-]+$")]


def _api_pattern(text: str) -> str:
    if not is_api_pattern(text):
        raise ValueError(f"must be {API_EXAMPLE}")
    return text


ApiPattern = Annotated[StrictStr, AfterValidator(_api_pattern)]


class AdminEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IssueKey(AdminEvent):
    name: Name
    owner: Owner
    description: Description = ""
    scopes: Annotated[list[Scope], Field(max_length=50)] = []
    apis: Annotated[list[ApiPattern], Field(max_length=50)] | None = None
    expires_at: datetime | None = None

    @field_validator("scopes", "apis")
    @classmethod
    def _no_repeats(cls, entries: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if entries is not None and len(set(entries)) != len(entries):
            raise ValueError(f"{info.field_name} must not repeat")
        return entries

    @field_validator("apis")
    @classmethod
    def _at_least_one(cls, apis: list[str] | None) -> list[str] | None:
        if apis == []:
            raise ValueError('must name at least one API_ID/STAGE: leave it out for the default, ["*/*"] for every API')
        return apis

    @field_validator("expires_at", mode="before")
    @classmethod
    def _future_instant(cls, text: object) -> datetime | None:
        return parse_expiry(text) if text is not None else None


def parse_expiry(text: object) -> datetime:
    """An ISO-8601 instant with a time zone, in the future and within ten years, to the second."""
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
        moment = moment.astimezone(UTC).replace(microsecond=0)
    except OverflowError:  # beyond the year 9999 once in UTC
        raise ValueError("must be within ten years") from None
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
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 50
    next_token: Annotated[StrictStr, Field(min_length=1, max_length=2048)] | None = None
