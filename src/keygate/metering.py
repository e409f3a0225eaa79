"""What a key's changes do to its API Gateway key, which meters it on its usage plan: a key of its own
(quota_per "key"), or its owner's, shared (quota_per "owner", owner_usage_keys). The keys table is the
truth; API Gateway is made to match it after each change, and a failure to is reported, not raised."""

from functools import partial

from keygate.authorize import explained
from keygate.owner_usage_keys import OwnerUsageKeys, shares
from keygate.records import KeyRecord, QuotaPer, Status
from keygate.store import KeyStore
from keygate.usage_plans import UsageKey, UsagePlans

_REPAIR = "run the same change again (a key just issued: an update of it with no change)"


class Metering:
    """KeyService's API Gateway keys (a part of it: service.KeyService holds the state)."""

    _store: KeyStore
    _usage_plans: UsagePlans | None
    _owner_usage_keys: OwnerUsageKeys

    def _usage_key_to_issue(
        self, key_id: str, owner: str, plan_id: str | None, quota_per: QuotaPer
    ) -> tuple[UsageKey | None, UsageKey | None]:
        """The API Gateway key a new key is metered by, and the one made for it alone (to delete if its
        record cannot be written): none without a plan, the owner's shared one, or a new one."""
        if plan_id is None:
            return None, None
        if quota_per is QuotaPer.OWNER:
            return self._owner_usage_keys.shared_key(owner, plan_id).usage_key, None
        made = self._gateway().new_key(key_id, plan_id)
        return made, made

    def _usage_key_to_move(self, record: KeyRecord, plan_id: str) -> UsageKey | None:
        """The API Gateway key a key put on ``plan_id`` is to be metered by there: its owner's shared one,
        or, a key of its own's first plan, a new one; None if it keeps its own (or is revoked)."""
        if record.status is Status.REVOKED:
            return None
        if record.quota_per is QuotaPer.OWNER:
            return self._owner_usage_keys.shared_key(record.owner, plan_id).usage_key
        return self._gateway().new_key(record.key_id, plan_id) if record.usage_key_id is None else None

    def _sync(self, before: KeyRecord | None, after: KeyRecord) -> dict | None:
        """API Gateway made to match the key as stored now (not as this change left it: a later change may
        have synced already), and the owner's shared key it left, if it moved; a failure is reported, the
        record stands."""
        shared = {(record.owner, record.usage_plan_id) for record in (before, after) if record and shares(record)}
        if after.usage_key_id is None and not shared:
            return None
        syncs = [partial(self._owner_usage_keys.sync, owner, plan_id) for owner, plan_id in sorted(shared)]
        if after.usage_key_id is not None and after.quota_per is QuotaPer.KEY:
            syncs.append(lambda: self._gateway().sync(self._store.get(after.key_id)))
        errors = []
        for sync in syncs:  # each, whatever became of the others
            try:
                sync()
            except Exception as error:
                errors.append(explained(error))
        if errors:
            return {"synced": False, "error": "; ".join(errors), "repair": _REPAIR}
        return {"synced": True}

    def _gateway(self) -> UsagePlans:
        if self._usage_plans is None:
            raise RuntimeError("this function has no API Gateway client: it cannot manage usage plans")
        return self._usage_plans
