"""Changes replicated to a region's replica of the keys table, from its stream: which of them make API
Gateway's cached answers in that region stale, by the same rule as a change made in the primary
(stale_answers). The region flushes its own CachedStages for them; the primary flushes only its own."""

from collections.abc import Iterable

from keygate.stale_answers import goes_stale
from keygate.store import CorruptRecord, from_item


def stale_keys(records: Iterable[dict]) -> list[str]:
    """The ids of the keys whose replicated change may leave a stale cached answer, in stream order. A new
    key (no old image) or one the table's TTL deleted (no new image) leaves none. An image that is not a
    key record counts as stale: a flush too many costs one more authorizer call per client."""
    stale = []
    for record in records:
        change = record.get("dynamodb", {})
        old, new = change.get("OldImage"), change.get("NewImage")
        if old is None or new is None:
            continue
        try:
            before, after = from_item(old), from_item(new)
        except CorruptRecord:
            stale.append(change.get("Keys", {}).get("key_id", {}).get("S", "?"))
            continue
        if goes_stale(before, after):
            stale.append(after.key_id)
    return stale
