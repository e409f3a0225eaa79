"""The admin events, validated by powertools' parser: unknown fields, wrong types, bad dates and
oversized strings are refused with the field named, before anything is written."""

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.utilities.parser import BaseModel, Field, field_validator
from pydantic import ConfigDict, StrictInt, StrictStr

from keygate.keys import KEY_ID_PATTERN

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no control characters: these end up in logs and consoles

KeyId = Annotated[StrictStr, Field(pattern=rf"^{KEY_ID_PATTERN}$")]
Name = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Owner = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_PRINTABLE)]
Description = Annotated[StrictStr, Field(max_length=1024, pattern=_PRINTABLE)]
Scope = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/*-]+$")]


class AdminEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IssueKey(AdminEvent):
    name: Name
    owner: Owner
    description: Description = ""
    scopes: Annotated[list[Scope], Field(max_length=50)] = []
    expires_at: StrictStr | None = None

    @field_validator("scopes")
    @classmethod
    def _no_repeats(cls, scopes: list[str]) -> list[str]:
        if len(set(scopes)) != len(scopes):
            raise ValueError("scopes must not repeat")
        return scopes

    @field_validator("expires_at")
    @classmethod
    def _future_instant(cls, text: str | None) -> str | None:
        if text is not None:
            parse_expiry(text)
        return text

    def expiry(self) -> datetime | None:
        return parse_expiry(self.expires_at) if self.expires_at is not None else None


def parse_expiry(text: str) -> datetime:
    """An ISO-8601 instant with a time zone, in the future, to the second."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO-8601 date and time, e.g. 2027-01-31T00:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2027-01-31T00:00:00Z")
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if moment <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return moment


class KeyRef(AdminEvent):
    key_id: KeyId


class ListKeys(AdminEvent):
    owner: Owner | None = None
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = 50
    next_token: Annotated[StrictStr, Field(min_length=1, max_length=2048)] | None = None
