"""When API Gateway's cached answers for a key go stale: the one rule for a change made here (lifecycle.py)
and for a change replicated from the primary region (replica_flush), so both flush for the same changes."""

from keygate.records import KeyRecord

# A change of these can take access away from a key.
NARROWING = ("status", "scopes", "apis", "expires_at")


def narrows(before: KeyRecord, after: KeyRecord) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in NARROWING)


def cuts_a_secret(before: KeyRecord, after: KeyRecord) -> bool:
    """A rotation after which a secret that verified stops at once: one without a grace period, or one
    that cuts short the previous rotation's grace period."""
    if (
        after.phc_hash == before.phc_hash or after.version == before.version
    ):  # no rotation (a re-hash keeps the version)
        return False
    return after.previous_hash is None or before.previous_secret_valid(after.rotated_at)


def goes_stale(before: KeyRecord, after: KeyRecord) -> bool:
    """Whether a cached answer given before the change may be wrong after it: access narrowed, a secret cut,
    or what a cached allow carries changed (metadata for the backend, the usage identifier that meters it)."""
    carried = before.metadata != after.metadata or before.usage_key_value != after.usage_key_value
    dropped = before.previous_hash is not None and after.previous_hash is None  # a grace period's end, say
    return narrows(before, after) or cuts_a_secret(before, after) or dropped or carried
