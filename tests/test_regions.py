"""Two regions, simulated on moto (tests/helpers/regions.py): the primary's changes replicated to a region's
replica in order, after a lag, with failed deliveries tried again; the region's authorizer reading its
replica, and its flush of its own cached answers on each replicated change that makes them stale."""

import time
from dataclasses import replace
from datetime import UTC, datetime

import botocore.client
import pytest

from tests.conftest import add_pepper_version, fail_calls, invoke
from tests.helpers.authorizer import decide, shaped
from tests.helpers.regions import Replicator, regional_handler, regional_stack, replica_stream_to

CACHED = {"AuthorizerCacheTtl": 300, "CachedStages": "rest:a1b2c3d4e5/prod"}
A_STREAM = "arn:aws:dynamodb:eu-west-1:123456789012:table/keys/stream/2026-12-07T00:00:00.000"


def regional_authorizer(stack, replicator: Replicator):
    return regional_handler(regional_stack(stack, replicator.replica_stream), "AuthorizerFunction")


def allowed(authorizer, key: dict) -> bool:
    return decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]


@pytest.mark.parametrize("lag", [0.0, 0.2, 2.0])
def test_a_key_revoked_in_the_primary_is_refused_in_the_region_once_replicated_and_never_allowed_after(
    lag, stack, admin, issued
):
    revoke = admin["RevokeKey"]
    with Replicator(stack, lag=lag) as replicator:
        key = issued()
        authorizer = regional_authorizer(stack, replicator)
        replicator.caught_up()
        assert allowed(authorizer, key)
        revoking_at = time.monotonic()
        invoke(revoke, {"key_id": key["key_id"]})
        decisions = []  # (began, allowed, ended), until a quarter of a second after the first refusal
        while not refusals(decisions) or time.monotonic() - refusals(decisions)[0][1] < 0.25:
            began = time.monotonic()
            decisions.append((began, allowed(authorizer, key), time.monotonic()))
            assert time.monotonic() - revoking_at < lag + 5, "never refused"
        revocation = [change for change in replicator.applied if change.key_id == key["key_id"]][-1]
    assert all(not allow for began, allow, _ in decisions if began >= revocation.applied_at)  # refused once there
    assert all(ended >= revocation.writing_at for _, ended in refusals(decisions))  # and not before
    allows = [allow for _, allow, _ in decisions]
    assert allows == sorted(allows, reverse=True)  # never allowed after a refusal
    assert revocation.writing_at - revocation.read_at >= lag  # the replicator kept the lag
    assert refusals(decisions)[0][1] - revoking_at >= lag  # so the region refused no sooner


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
        authorizer = regional_authorizer(stack, replicator)
        replicator.caught_up()
        replica = replicator.replica.get_item(TableName=replicator.table, Key={"key_id": {"S": key["key_id"]}})
    assert replica["Item"]["version"] == {"N": "4"} and replica["Item"]["status"] == {"S": "revoked"}
    assert not allowed(authorizer, key)
    versions = [int(change.change["NewImage"]["version"]["N"]) for change in replicator.applied]
    assert versions == sorted(versions) and len(versions) == 4  # each once, in order, despite the failures


def test_the_regional_authorizer_writes_nothing(stack, issued, admin):
    """A write to a replica would replicate back, and last-writer-wins could undo a revoke made meanwhile
    in the primary: no last_used_at, no re-hash under a new pepper, in a region."""
    with Replicator(stack) as replicator:
        key = issued()
        add_pepper_version(stack)  # the primary's next verify of the key would re-hash it
        authorizer = regional_authorizer(stack, replicator)
        replicator.caught_up()
        before = replicator.replica.get_item(TableName=replicator.table, Key={"key_id": {"S": key["key_id"]}})
        assert all(allowed(authorizer, key) for _ in range(3))
        time.sleep(0.1)
        after = replicator.replica.get_item(TableName=replicator.table, Key={"key_id": {"S": key["key_id"]}})
    assert after["Item"] == before["Item"] and "last_used_at" not in after["Item"]
    assert len(replicator.applied) == 1  # the issue, and no write came back from the region


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


def test_with_the_cache_on_the_region_flushes_after_each_replicated_change_that_makes_answers_stale(
    stack, admin, issued, timed_flushes
):
    update, revoke, rotate = admin["UpdateKey"], admin["RevokeKey"], admin["RotateKey"]
    grace_end = admin["FlushAuthorizerCache"]  # the primary's, as Scheduler runs it (its own cache is off here)
    handled = []  # the stream records the region's flush function was handed, in order

    def until_handled(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(handled) < count:
            assert time.monotonic() < deadline, "the region's stream was not handled"
            time.sleep(0.01)

    with Replicator(stack, lag=0.2) as replicator:
        flush = regional_handler(regional_stack(stack, replicator.replica_stream, **CACHED), "ReplicaFlushFunction")
        poller = replica_stream_to(replicator, lambda event: (invoke(flush, event), handled.extend(event["Records"])))
        try:
            key = issued()
            invoke(update, {"key_id": key["key_id"], "name": "renamed"})
            until_handled(2)
            assert timed_flushes == []  # a new key, a new name: nothing cached goes stale
            invoke(rotate, {"key_id": key["key_id"], "grace_seconds": 0})
            until_handled(3)
            assert len(timed_flushes) == 1  # the secret cut at once
            invoke(rotate, {"key_id": key["key_id"], "grace_seconds": 1})
            until_handled(4)
            assert len(timed_flushes) == 1  # the previous secret verifies through its grace period
            time.sleep(1.1)
            grace_of = {"key_id": key["key_id"], "version": 4}  # as the primary's schedule names it
            invoke(grace_end, {"reason": "grace of a key ends", "grace_of": grace_of})
            until_handled(5)
            assert len(timed_flushes) == 2  # the grace period's end, replicated
            invoke(revoke, {"key_id": key["key_id"]})
            until_handled(6)
            assert len(timed_flushes) == 3
        finally:
            poller.stop()
    changes = [change for change in replicator.applied if change.key_id == key["key_id"]]
    stale = [changes[2], changes[4], changes[5]]
    assert all(flushed > change.writing_at for flushed, change in zip(timed_flushes, stale, strict=True))


def _stream_record(event: str, old, new) -> dict:
    from keygate.store import to_item  # as loaded now: a regional handler's import replaces keygate's modules

    change = {"Keys": {"key_id": {"S": "K" * 16}}}
    if old is not None:
        change["OldImage"] = to_item(old)
    if new is not None:
        change["NewImage"] = to_item(new)
    return {"eventName": event, "dynamodb": change}


def test_which_replicated_changes_make_cached_answers_stale():
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from keygate import replicated_changes
    from keygate.records import KeyRecord, Status

    now = datetime(2026, 12, 7, tzinfo=UTC)
    key = KeyRecord("K" * 16, "$argon2id$h", "v1", "n", "o", now, scopes=("a", "b"), version=3)
    later = replace(key, version=4)
    changes = {
        "issued": ("INSERT", None, key),
        "revoked, then deleted by the table's TTL": ("REMOVE", replace(key, status=Status.REVOKED), None),
        "expired, then deleted by the table's TTL": ("REMOVE", replace(key, expires_at=now - timedelta(days=1)), None),
        "live, and deleted": ("REMOVE", key, None),
        "last used": ("MODIFY", key, replace(key, last_used_at=now)),
        "re-hashed under a new pepper": ("MODIFY", key, replace(key, phc_hash="$argon2id$x", pepper_version="v2")),
        "renamed": ("MODIFY", key, replace(later, name="m")),
        "revoked": ("MODIFY", key, replace(later, status=Status.REVOKED, revoked_at=now)),
        "disabled": ("MODIFY", key, replace(later, status=Status.DISABLED)),
        "a scope less": ("MODIFY", key, replace(later, scopes=("a",))),
        "new metadata": ("MODIFY", key, replace(later, metadata=(("plan", "gold"),))),
        "metered by another usage key": ("MODIFY", key, replace(later, usage_plan_id="p", usage_key_value="v")),
        "rotated without grace": ("MODIFY", key, replace(later, phc_hash="$argon2id$y", rotated_at=now)),
        "rotated with grace": (
            "MODIFY",
            key,
            replace(
                later,
                phc_hash="$argon2id$y",
                rotated_at=now,
                previous_hash="$argon2id$h",
                previous_pepper_version="v1",
                previous_expires_at=now + timedelta(hours=1),
            ),
        ),
        "grace period ended": (
            "MODIFY",
            replace(key, previous_hash="$argon2id$p", previous_pepper_version="v1", previous_expires_at=now),
            later,
        ),
        "changed, without its old image": ("MODIFY", None, later),
    }
    stale = {
        what
        for what, (event, old, new) in changes.items()
        if replicated_changes.stale_keys([_stream_record(event, old, new)], now)
    }
    assert stale == {
        "live, and deleted", "revoked", "disabled", "a scope less", "new metadata", "metered by another usage key",
        "rotated without grace", "grace period ended", "changed, without its old image",
    }  # fmt: skip
    corrupt = {"eventName": "MODIFY", "dynamodb": {"Keys": {"key_id": {"S": "K" * 16}}, "OldImage": {}, "NewImage": {}}}
    assert replicated_changes.stale_keys([corrupt], now) == ["K" * 16]


def test_a_regional_flush_that_fails_fails_the_batch_so_it_is_retried(stack, monkeypatch):
    from keygate.records import KeyRecord, Status  # as loaded now

    flush = regional_handler(regional_stack(stack, A_STREAM, **CACHED), "ReplicaFlushFunction")
    for operation in ("FlushStageAuthorizersCache", "ResetAuthorizersCache"):
        fail_calls(monkeypatch, operation, code="NotFoundException")
    key = KeyRecord("K" * 16, "$argon2id$h", "v1", "n", "o", datetime(2026, 12, 7, tzinfo=UTC))
    revoked = replace(key, status=Status.REVOKED, version=2)
    with pytest.raises(RuntimeError, match="NotFoundException|failed"):
        invoke(flush, {"Records": [_stream_record("MODIFY", key, revoked)]})
    invoke(flush, {"Records": [_stream_record("MODIFY", key, replace(key, name="m", version=2))]})  # nothing stale


def test_a_regional_history_verifies_nowhere_but_in_the_primary_and_says_so(stack, issued):
    """The audit trail's copy is the primary's (one region's log group): a regional stack has none."""
    key = issued()
    history = regional_handler(regional_stack(stack, A_STREAM), "KeyHistoryFunction")
    answer = invoke(history, {"key_id": key["key_id"], "verify": True})
    assert answer["error"]["type"] == "InvalidRequest"
    assert "a regional stack's is the primary's" in answer["error"]["fields"]["verify"]
