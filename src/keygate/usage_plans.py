"""Quotas and throttling per key through API Gateway usage plans: the only module that calls API
Gateway's API keys and usage plans.

Each metered keygate key has an API Gateway API key of its own, whose value is a random identifier that
only the authorizer hands to API Gateway (``usageIdentifierKey``): clients never see it, and it is not
the keygate secret. The keys table is the truth; ``sync`` makes API Gateway match a record (its plan,
enabled while the key is active) and can be run again after any failure.

Each such API key is tagged with the keys table's name (``TAG``): the functions' roles may change or
delete only API keys carrying it, never another application's. No role reads a usage plan's keys (that
would show every API key value in the Region); a plan is looked up in the list of plans.
"""

import contextlib
import secrets
import string
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from keygate.records import KeyRecord, Status

_VALUE_ALPHABET = string.ascii_letters + string.digits
_VALUE_LENGTH = 40  # API Gateway wants at least 20 characters
_PAGE = 500
TAG = "keygate:keys-table"  # on each API key keygate makes; its value, the keys table's name


class UsagePlanNotFound(LookupError):
    """The usage plan id names no plan in this account and Region."""


@dataclass(frozen=True)
class UsageKey:
    id: str
    value: str = field(repr=False)  # an identifier, but one a HEADER-source stage of its plan would accept


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class UsagePlans:
    def __init__(self, client, keys_table: str):
        self._client = client
        self._tags = {TAG: keys_table}

    def check_plan(self, plan_id: str) -> None:
        """Raises UsagePlanNotFound before anything is written for a plan that does not exist."""
        if plan_id not in self._plans():
            raise UsagePlanNotFound(f"no usage plan {plan_id!r} in this account and Region")

    def new_key(self, key_id: str, plan_id: str) -> UsageKey:
        """An API Gateway API key for a keygate key, on its plan. Nothing is left behind on failure."""
        return self._new(f"keygate-{key_id}", f"keygate key {key_id}", plan_id, enabled=True)

    def new_shared_key(self, plan_id: str) -> UsageKey:
        """The API Gateway API key that an owner's keys on a plan share (owner_usage_keys), on the plan,
        disabled until one of them is live."""
        described = f"keygate: shared by one owner's keys on plan {plan_id} (OwnerUsageKeysTable names the owner)"
        return self._new(f"keygate-owner-{plan_id}", described, plan_id, enabled=False)

    def set_enabled(self, usage_key_id: str, enabled: bool) -> None:
        self._client.update_api_key(
            apiKey=usage_key_id,
            patchOperations=[{"op": "replace", "path": "/enabled", "value": "true" if enabled else "false"}],
        )

    def _new(self, name: str, described: str, plan_id: str, *, enabled: bool) -> UsageKey:
        value = "".join(secrets.choice(_VALUE_ALPHABET) for _ in range(_VALUE_LENGTH))
        created = self._client.create_api_key(
            name=name,
            description=f"{described}: an identifier for usage plans, not a credential",
            enabled=enabled,
            value=value,
            tags=self._tags,
        )
        usage_key = UsageKey(created["id"], value)
        try:
            self._attach(usage_key.id, plan_id)
        except Exception:
            self.delete_key(usage_key)
            raise
        return usage_key

    def delete_key(self, usage_key: UsageKey) -> None:
        """Best effort, to undo ``new_key`` when the key's record could not be written: off its plans,
        then deleted. A key left over is harmless: the authorizer never names a value no record holds,
        so no request is metered by it."""
        with contextlib.suppress(ClientError, BotoCoreError):  # the error that led here is the one to report
            for plan_id in self._plans_of(usage_key.id):
                self._detach(usage_key.id, plan_id)
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.delete_api_key(apiKey=usage_key.id)

    def sync(self, record: KeyRecord) -> None:
        """Make the record's API Gateway key match it: enabled only while the key is active, and on its
        usage plan and no other (left first, then joined, so it is never on two plans at once). A
        revoked key is only disabled."""
        if record.usage_key_id is None:
            return
        if record.status is not Status.REVOKED:
            wanted = {record.usage_plan_id} - {None}
            current = self._plans_of(record.usage_key_id)
            for plan_id in sorted(current - wanted):
                self._detach(record.usage_key_id, plan_id)
            for plan_id in sorted(wanted - current):
                self._attach(record.usage_key_id, plan_id)
        self.set_enabled(record.usage_key_id, record.status is Status.ACTIVE)

    def _plans_of(self, usage_key_id: str) -> set[str]:
        return self._plans(keyId=usage_key_id)

    def _plans(self, **only) -> set[str]:
        """The ids of the Region's usage plans (``keyId``: those holding that API key)."""
        plans, position = set(), None
        while True:
            after = {"position": position} if position else {}
            page = self._client.get_usage_plans(limit=_PAGE, **only, **after)
            plans |= {plan["id"] for plan in page.get("items", [])}
            position = page.get("position")
            if not position:
                return plans

    def _attach(self, usage_key_id: str, plan_id: str) -> None:
        try:
            self._client.create_usage_plan_key(usagePlanId=plan_id, keyId=usage_key_id, keyType="API_KEY")
        except ClientError as error:
            if _code(error) == "NotFoundException":
                raise UsagePlanNotFound(f"no usage plan {plan_id!r} in this account and Region") from None
            if _code(error) != "ConflictException":  # on it already
                raise

    def _detach(self, usage_key_id: str, plan_id: str) -> None:
        try:
            self._client.delete_usage_plan_key(usagePlanId=plan_id, keyId=usage_key_id)
        except ClientError as error:
            if _code(error) != "NotFoundException":  # off it already
                raise
