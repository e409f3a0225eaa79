"""Two regions, simulated on moto (tests/helpers/regions.py): the primary's changes replicated to a region's
replica in order, after a lag, with failed deliveries tried again; the region's authorizer reading its
replica, and its flush of its own cached answers on each replicated change that makes them stale."""

import time

import botocore.client
import pytest

from keygate import replicated_changes
from keygate.store import to_item
from tests.conftest import invoke
from tests.helpers.authorizer import decide, shaped
from tests.helpers.regions import Replicator, regional_handler, regional_pepper, replica_stream_to

CACHED = {"AUTHORIZER_CACHE_TTL": "300", "CACHED_STAGES": "rest:a1b2c3d4e5/prod"}


def regional_authorizer(stack):
    return regional_handler(stack, "AuthorizerFunction", PEPPER_SECRET_ARN=regional_pepper(stack))


def allowed(authorizer, key: dict) -> bool:
    return decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]


@pytest.mark.parametrize("lag", [0.0, 0.2, 2.0])
def test_a_key_revoked_in_the_primary_is_refused_in_the_region_once_replicated_and_never_allowed_after(
    lag, stack, admin, issued
):
    revoke = admin["RevokeKey"]
    with Replicator(stack, lag=lag) as replicator:
        key = issued()
        authorizer = regional_authorizer(stack)
        replicator.caught_up()
        assert allowed(authorizer, key)
        invoke(revoke, {"key_id": key["key_id"]})
        revoked_at = time.monotonic()
        decisions = []  # (began, allowed, ended), until a quarter of a second after the first refusal
        while not refusals(decisions) or time.monotonic() - refusals(decisions)[0][1] < 0.25:
            began = time.monotonic()
            decisions.append((began, allowed(authorizer, key), time.monotonic()))
            assert time.monotonic() - revoked_at < lag + 5, "never refused"
        revocation = [change for change in replicator.applied if change.key_id == key["key_id"]][-1]
    assert all(not allow for began, allow, _ in decisions if began >= revocation.applied_at)  # refused once there
    assert all(ended >= revocation.writing_at for _, ended in refusals(decisions))  # and not before
    allows = [allow for _, allow, _ in decisions]
    assert allows == sorted(allows, reverse=True)  # never allowed after a refusal
    assert refusals(decisions)[0][1] - revoked_at >= lag * 0.9


def refusals(decisions: list[tuple[float, bool, float]]) -> list[tuple[float, float]]:
    """(began, ended) of each refusal."""
    return [(began, ended) for began, allow, ended in decisions if not allow]


def test_failed_deliveries_are_retried_in_order_and_the_replica_catches_up(stack, admin, issued):
    update, revoke = admin["UpdateKey"], admin["RevokeKey"]
    with Replicator(stack, fails=lambda attempt: attempt % 3 != 2, retry_after=0.02) as replicator:  # 2 in 3 fail
        key = issued(scopes=["a", "b"])
        invoke(update, {"key_id": key["key_id"], "scopes": ["a"]})
        invoke(update, {"key_id": key["key_id"], "name": "renamed"})
        invoke(revoke, {"key_id": key["key_id"]})
        authorizer = regional_authorizer(stack)
        replicator.caught_up()
        replica = replicator.replica.get_item(TableName=replicator.table, Key={"key_id": {"S": key["key_id"]}})
    assert replica["Item"]["version"] == {"N": "4"} and replica["Item"]["status"] == {"S": "revoked"}
    assert not allowed(authorizer, key)


@pytest.fixture
def timed_flushes(monkeypatch) -> list[float]:
    """When each flush call reached AWS (answered as API Gateway does: moto has no authorizer cache)."""
    times = []
    real = botocore.client.BaseClient._make_api_call

    def answering(self, operation, params):
        if operation in ("FlushStageAuthorizersCache", "ResetAuthorizersCache"):
            times.append(time.monotonic())
            return {}
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", answering)
    return times


def test_with_the_cache_on_the_region_flushes_after_the_replicated_change(stack, admin, issued, timed_flushes):
    update, revoke, rotate = admin["UpdateKey"], admin["RevokeKey"], admin["RotateKey"]
    with Replicator(stack, lag=0.2) as replicator:
        flush = regional_handler(
            stack, None, "replica_flush.app.handler", **(stack.function_environment("AuthorizerFunction") | CACHED)
        )
        poller = replica_stream_to(replicator, lambda event: invoke(flush, event))
        try:
            key = issued()
            invoke(update, {"key_id": key["key_id"], "name": "renamed"})  # nothing narrowed: no flush
            replicator.caught_up()
            time.sleep(0.1)
            assert timed_flushes == []
            invoke(rotate, {"key_id": key["key_id"], "grace_seconds": 0})  # the secret cut at once: one
            invoke(revoke, {"key_id": key["key_id"]})  # and one more
            replicator.caught_up()
            deadline = time.monotonic() + 5
            while len(timed_flushes) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
        finally:
            poller.stop()
    applied = [change for change in replicator.applied if change.key_id == key["key_id"]]
    assert timed_flushes and min(timed_flushes) > applied[2].writing_at  # after the rotation reached the replica
    assert len(timed_flushes) <= 2  # one per batch that held a stale change


def _stream_record(old, new) -> dict:
    change = {"Keys": {"key_id": {"S": "K" * 16}}}
    if old is not None:
        change["OldImage"] = to_item(old)
    if new is not None:
        change["NewImage"] = to_item(new)
    return {"dynamodb": change}


def test_which_replicated_changes_make_cached_answers_stale():
    from dataclasses import replace
    from datetime import UTC, datetime

    from keygate.records import KeyRecord, Status

    now = datetime(2026, 12, 7, tzinfo=UTC)
    key = KeyRecord("K" * 16, "$argon2id$h", "v1", "n", "o", now, scopes=("a", "b"), version=3)
    later = replace(key, version=4)
    changes = {
        "issued": (None, key),
        "purged by the table's TTL": (key, None),
        "last used": (key, replace(key, last_used_at=now)),
        "re-hashed under a new pepper": (key, replace(key, phc_hash="$argon2id$x", pepper_version="v2")),
        "renamed": (key, replace(later, name="m")),
        "revoked": (key, replace(later, status=Status.REVOKED, revoked_at=now)),
        "disabled": (key, replace(later, status=Status.DISABLED)),
        "a scope less": (key, replace(later, scopes=("a",))),
        "new metadata": (key, replace(later, metadata=(("plan", "gold"),))),
        "rotated without grace": (key, replace(later, phc_hash="$argon2id$y", rotated_at=now)),
    }
    stale = {what for what, (old, new) in changes.items() if replicated_changes.stale_keys([_stream_record(old, new)])}
    assert stale == {"revoked", "disabled", "a scope less", "new metadata", "rotated without grace"}
    corrupt = {"dynamodb": {"Keys": {"key_id": {"S": "K" * 16}}, "OldImage": {"x": {"S": "y"}}, "NewImage": {}}}
    assert replicated_changes.stale_keys([corrupt]) == ["K" * 16]
