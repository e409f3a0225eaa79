"""Changes replicated to a region's replica of the keys table, from its stream: which of them make API
Gateway's cached answers in that region stale, by the same rule as a change made in the primary
(stale_answers). The region flushes its own CachedStages for them; the primary flushes only its own."""

from collections.abc import Iterable
from datetime import datetime

from keygate.records import State
from keygate.stale_answers import goes_stale
from keygate.store import CorruptRecord, from_item


def stale_keys(records: Iterable[dict], now: datetime) -> list[str]:
    """The ids of the keys whose replicated change may leave a stale cached answer, in stream order. Any
    doubt is stale (a flush too many costs each client one more authorizer call): a change without both
    images, or an image that is not a key record. A new key leaves none, nor does a key deleted once it
    could no longer be allowed (revoked or expired: the table's TTL)."""
    stale = []
    for record in records:
        change = record.get("dynamodb", {})
        key_id = change.get("Keys", {}).get("key_id", {}).get("S", "?")
        old, new = change.get("OldImage"), change.get("NewImage")
        if record.get("eventName") == "INSERT":
            continue
        try:
            if record.get("eventName") == "REMOVE":
                if old is None or from_item(old).state(now) not in (State.REVOKED, State.EXPIRED):
                    stale.append(key_id)
                continue
            if old is None or new is None or goes_stale(from_item(old), from_item(new)):
                stale.append(key_id)
        except CorruptRecord:
            stale.append(key_id)
    return stale
