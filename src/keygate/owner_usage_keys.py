"""Quotas per owner: every live key of an owner on a usage plan (issued with quota_per "owner") shares
one API Gateway key, so one quota and one throttle hold for all of them, and API Gateway's count of keys
grows with owners, not keys. The only module that calls OwnerUsageKeysTable.

The table holds an item per owner and plan: the shared API Gateway key, and ``live``, the ids of the
owner's active keys on the plan. A key joins or leaves ``live`` in the same transaction as the change of
the key that causes it (issue, enable, disable, revoke, a move to another plan), so ``live`` is never
behind the keys. The first key of an owner on a plan makes the shared key and puts the item, on the
condition that none exists: of two issues racing, one puts it; the other's put is refused, and it deletes
the API Gateway key it made and joins the one that was put. The item is never deleted (its key is reused).

The shared key is enabled while ``live`` is not empty. A change that adds a key enables it first, so a
failure after leaves it enabled (metering nothing more), never disabled under a live key. After each
change the key's state is set from a strongly consistent read of ``live``, which is read again and set
again while the two disagree: whichever change reaches API Gateway last read ``live`` after its call, so
the shared key ends as ``live`` ends, however changes interleave. Ids of keys the table's TTL deleted
(expired, then kept RetentionDays) are taken out of ``live`` then: nothing else would.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from keygate.records import KeyRecord, QuotaPer, Status
from keygate.usage_plans import UsageKey, UsagePlans

_SYNC_ROUNDS = 5


class SharedKeyUnsettled(RuntimeError):
    """The owner's keys kept changing while their shared key's state was being set; running the change
    again (an update, even of nothing) sets it."""


@dataclass(frozen=True)
class OwnerUsageKey:
    owner: str
    usage_plan_id: str
    usage_key: UsageKey
    live: frozenset[str] = frozenset()


def shares(record: KeyRecord) -> bool:
    """Whether the key's quota is its owner's: it shares its owner's API Gateway key on its plan."""
    return record.quota_per is QuotaPer.OWNER and record.usage_plan_id is not None


def _counted_in(record: KeyRecord | None) -> tuple[str, str] | None:
    """The (owner, plan) whose ``live`` holds the key: an active key that shares."""
    if record is not None and shares(record) and record.status is Status.ACTIVE:
        return record.owner, record.usage_plan_id
    return None


class OwnerUsageKeys:
    def __init__(
        self,
        table: str,
        client,
        usage_plans: UsagePlans | None,
        existing: Callable[[Iterable[str]], set[str]] = lambda key_ids: set(key_ids),
    ):
        self._table = table
        self._client = client
        self._gateway = usage_plans
        self._existing = existing  # which of these key ids are in the keys table (KeyStore.existing)

    def shared_key(self, owner: str, plan_id: str) -> OwnerUsageKey:
        """The owner's shared key on the plan, made (on the plan, disabled) if the owner has none yet."""
        if (existing := self._get(owner, plan_id)) is not None:
            return existing
        made = OwnerUsageKey(owner, plan_id, self._gateway.new_shared_key(plan_id))
        item = _key(owner, plan_id) | {
            "usage_key_id": {"S": made.usage_key.id},
            "usage_key_value": {"S": made.usage_key.value},
        }
        try:
            self._client.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(usage_key_id)"
            )
        except ClientError as error:
            self._gateway.delete_key(made.usage_key)
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return self._get(owner, plan_id)  # another issue put it first
        except BaseException:
            self._gateway.delete_key(made.usage_key)
            raise
        return made

    def prepare(self, before: KeyRecord | None, after: KeyRecord) -> list[dict]:
        """The transaction items that keep ``live`` in step with a change of a key from ``before`` (None:
        a new key) to ``after``; a key about to join enables the shared key now. Joining is conditional on
        the item naming the API Gateway key the record names; leaving is not, so nothing can hold up a
        revocation."""
        was, now = _counted_in(before), _counted_in(after)
        if was == now:
            return []
        items = []
        if was is not None:
            items.append({"Update": self._set_change(was, "DELETE", [after.key_id])})
        if now is not None:
            self._gateway.set_enabled(after.usage_key_id, True)
            join = self._set_change(now, "ADD", [after.key_id])
            join["ConditionExpression"] = "usage_key_id = :usage_key_id"
            join["ExpressionAttributeValues"][":usage_key_id"] = {"S": after.usage_key_id}
            items.append({"Update": join})
        return items

    def sync(self, owner: str, plan_id: str) -> None:
        """Set the shared key's state from ``live``, until a read after setting it agrees."""
        applied = None
        for round_ in range(_SYNC_ROUNDS):
            shared = self._get(owner, plan_id)
            if shared is None:
                return
            if round_ == 0 and (purged := shared.live - self._existing(shared.live)):
                self._client.update_item(**self._set_change((owner, plan_id), "DELETE", sorted(purged)))
                shared = self._get(owner, plan_id)  # a key id is never reused: the purged cannot come back
            if (wanted := bool(shared.live)) == applied:
                return
            self._gateway.set_enabled(shared.usage_key.id, wanted)
            applied = wanted
        raise SharedKeyUnsettled(f"the keys of owner {owner!r} on plan {plan_id!r} kept changing")

    def _get(self, owner: str, plan_id: str) -> OwnerUsageKey | None:
        item = self._client.get_item(TableName=self._table, Key=_key(owner, plan_id), ConsistentRead=True).get("Item")
        if item is None or "usage_key_id" not in item:  # a leave on no item leaves just its key
            return None
        usage_key = UsageKey(item["usage_key_id"]["S"], item["usage_key_value"]["S"])
        return OwnerUsageKey(owner, plan_id, usage_key, frozenset(item.get("live", {}).get("SS", ())))

    def _set_change(self, owner_and_plan: tuple[str, str], action: str, key_ids: list[str]) -> dict:
        return {
            "TableName": self._table,
            "Key": _key(*owner_and_plan),
            "UpdateExpression": f"{action} #live :key_id",
            "ExpressionAttributeNames": {"#live": "live"},
            "ExpressionAttributeValues": {":key_id": {"SS": key_ids}},
        }


def _key(owner: str, plan_id: str) -> dict:
    return {"owner": {"S": owner}, "usage_plan_id": {"S": plan_id}}
