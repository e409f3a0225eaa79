"""API Gateway's authorizer cache flushed when a key loses access: which changes flush, on which stages,
retried when throttled, and what the admin answer says when a flush fails or is scheduled."""

import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from keygate import config
from keygate.authorizer_cache import CachedStage, parse_cached_stages
from keygate.records import format_time
from keygate_local.control_plane import AuthorizerCache as LocalCache
from keygate_local.control_plane import ControlPlane
from tests.conftest import FLUSH_OPERATIONS, event, fail_calls, invoke
from tests.helpers.authorizer import service_of

STAGES = "rest:a1b2c3d4e5/prod, http:f6g7h8i9j0/$default"
CACHED = {"AUTHORIZER_CACHE_TTL": "300", "CACHED_STAGES": STAGES}
FLUSHED = ["rest:a1b2c3d4e5/prod", "http:f6g7h8i9j0/$default"]


def test_cached_stages_are_parsed_and_bad_entries_named():
    assert parse_cached_stages(STAGES) == (
        CachedStage("rest", "a1b2c3d4e5", "prod"),
        CachedStage("http", "f6g7h8i9j0", "$default"),
    )
    assert parse_cached_stages("") == ()
    for bad in ("a1b2c3d4e5/prod", "ws:a/b", "rest:a1b2/", "rest:a b/prod", ","):
        with pytest.raises(ValueError, match="rest:API_ID/STAGE"):
            parse_cached_stages(bad)
    with pytest.raises(config.ConfigError, match="CACHED_STAGES"):
        config.load({"KEYS_TABLE": "t", "PEPPER_SECRET_ARN": "a", "CACHED_STAGES": "prod"})


@pytest.mark.parametrize(
    ("function", "request_for"),
    [
        ("RevokeKey", lambda key_id: {"key_id": key_id}),
        ("UpdateKey", lambda key_id: {"key_id": key_id, "enabled": False}),
        ("UpdateKey", lambda key_id: {"key_id": key_id, "scopes": ["other"]}),
        ("UpdateKey", lambda key_id: {"key_id": key_id, "apis": ["a1b2c3d4e5/prod"]}),
        ("UpdateKey", lambda key_id: {"key_id": key_id, "expires_at": "2030-01-01T00:00:00Z"}),
        ("RotateKey", lambda key_id: {"key_id": key_id, "grace_seconds": 0}),
    ],
)
def test_a_change_that_takes_access_away_flushes_every_cached_stage(function, request_for, issued, load, flushes):
    key = issued(scopes=["orders:read"])
    answer = invoke(load(f"{function}Function", **CACHED), request_for(key["key_id"]))
    assert [operation for operation, _ in flushes] == list(FLUSH_OPERATIONS)
    assert flushes[0][1] == {"restApiId": "a1b2c3d4e5", "stageName": "prod"}
    assert flushes[1][1] == {"ApiId": "f6g7h8i9j0", "StageName": "$default"}
    assert answer["authorizer_cache"]["flushed"] == FLUSHED
    assert answer["authorizer_cache"]["revocation_bound"].startswith("the next request")


@pytest.mark.parametrize(
    "request_for",
    [lambda key_id: {"key_id": key_id, "description": "only words"}, lambda key_id: {"key_id": key_id, "name": "m"}],
)
def test_a_change_that_takes_nothing_away_does_not_flush(request_for, issued, load, flushes):
    key = issued()
    answer = invoke(load("UpdateKeyFunction", **CACHED), request_for(key["key_id"]))
    assert flushes == [] and "authorizer_cache" not in answer


def test_without_an_authorizer_cache_nothing_is_flushed(issued, load, flushes):
    key = issued()
    answer = invoke(load("RevokeKeyFunction", CACHED_STAGES=STAGES), {"key_id": key["key_id"]})
    assert flushes == [] and "authorizer_cache" not in answer


def test_a_cache_with_no_stage_listed_says_revocation_waits_for_the_ttl(issued, load, flushes):
    key = issued()
    answer = invoke(load("RevokeKeyFunction", AUTHORIZER_CACHE_TTL="120"), {"key_id": key["key_id"]})
    assert answer["authorizer_cache"]["revocation_bound"].startswith("up to 120 s")


def _lost_access_ago(stack, key_id: str, seconds: int) -> None:
    """Date the key's last loss of access (its revocation or narrowing) ``seconds`` back."""
    moment = {"S": format_time(datetime.now(UTC) - timedelta(seconds=seconds))}
    boto3.client("dynamodb").update_item(
        TableName=stack.physical_ids["KeysTable"],
        Key={"key_id": {"S": key_id}},
        UpdateExpression="SET revoked_at = :moment, access_changed_at = :moment",
        ExpressionAttributeValues={":moment": moment},
    )


def test_revoking_a_key_revoked_over_a_ttl_ago_flushes_nothing_more(issued, load, flushes, stack):
    key = issued()
    revoke = load("RevokeKeyFunction", **CACHED)
    invoke(revoke, {"key_id": key["key_id"]})
    _lost_access_ago(stack, key["key_id"], 301)  # AuthorizerCacheTtl is 300: no allow cached before it is left
    flushes.clear()
    assert "authorizer_cache" not in invoke(revoke, {"key_id": key["key_id"]}) and flushes == []


# A change that takes access away, asked for twice: the second is a retry of the first.
RETRIED = [
    ("RevokeKey", lambda key_id: {"key_id": key_id}),
    ("UpdateKey", lambda key_id: {"key_id": key_id, "enabled": False}),
    ("UpdateKey", lambda key_id: {"key_id": key_id, "scopes": ["other"]}),
    ("UpdateKey", lambda key_id: {"key_id": key_id, "expires_at": "2030-01-01T00:00:00Z"}),
]


@pytest.mark.parametrize(("function", "request_for"), RETRIED)
def test_a_change_whose_flush_failed_is_flushed_again_by_its_retry(
    function, request_for, issued, load, flushes, monkeypatch
):
    key = issued(scopes=["orders:read"])
    handler = load(f"{function}Function", **CACHED)
    for operation in FLUSH_OPERATIONS:
        fail_calls(monkeypatch, operation, code="TooManyRequestsException", times=1)
    first = invoke(handler, request_for(key["key_id"]))
    assert set(first["authorizer_cache"]["failed"]) == set(FLUSHED) and flushes == []
    retry = invoke(handler, request_for(key["key_id"]))  # changes nothing: the key is as asked already
    assert retry["version"] == first["version"]
    assert retry["authorizer_cache"]["flushed"] == FLUSHED and len(flushes) == 2


class InvocationEnds(BaseException):
    """Lambda ending an invocation (its timeout): nothing after this point of the handler runs."""

    @classmethod
    def raised(cls, *_, **__):
        raise cls()


@pytest.mark.parametrize(("function", "request_for"), RETRIED)
def test_a_change_cut_off_between_its_write_and_its_flush_is_flushed_by_its_retry(
    function, request_for, issued, load, flushes, monkeypatch
):
    key = issued(scopes=["orders:read"])
    handler = load(f"{function}Function", **CACHED)
    cache = service_of(handler)._cache
    with monkeypatch.context() as cut:
        cut.setattr(cache, "flush", InvocationEnds.raised)
        with pytest.raises(InvocationEnds):
            invoke(handler, request_for(key["key_id"]))
    assert flushes == []
    retry = invoke(handler, request_for(key["key_id"]))
    assert retry["authorizer_cache"]["flushed"] == FLUSHED and len(flushes) == 2


@pytest.mark.parametrize(("function", "request_for"), RETRIED)
def test_a_retry_after_a_whole_ttl_flushes_nothing_more(function, request_for, issued, load, flushes, stack):
    key = issued(scopes=["orders:read"])
    handler = load(f"{function}Function", **CACHED)
    invoke(handler, request_for(key["key_id"]))
    _lost_access_ago(stack, key["key_id"], 301)
    flushes.clear()
    assert "authorizer_cache" not in invoke(handler, request_for(key["key_id"])) and flushes == []


def test_a_change_that_takes_nothing_away_flushes_nothing_even_right_after_one_that_did(issued, load, flushes):
    key = issued(scopes=["orders:read"])
    update = load("UpdateKeyFunction", **CACHED)
    invoke(update, {"key_id": key["key_id"], "enabled": False})
    flushes.clear()
    assert "authorizer_cache" not in invoke(update, {"key_id": key["key_id"], "name": "renamed"})
    assert flushes == []


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def test_a_throttled_flush_is_retried_and_one_that_keeps_failing_falls_back_to_the_ttl(
    issued, load, monkeypatch, capsys
):
    """API Gateway's answers given at botocore's before-send hook, so botocore's own retries run: the REST
    stage is throttled twice, then flushed; the HTTP API stage is throttled on every attempt."""
    key = issued()
    revoke = load("RevokeKeyFunction", **CACHED)
    attempts: dict[str, int] = {}
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # botocore's backoff, not the test's time

    def api_gateway(request, **_):
        stage = request.url.split("/apis/" if "/v2/" in request.url else "/restapis/")[1]
        attempts[stage] = attempts.get(stage, 0) + 1
        if stage.startswith("f6g7") or attempts[stage] <= 2:
            body = b'{"message": "Too Many Requests"}'
            headers = {"x-amzn-ErrorType": "TooManyRequestsException", "Content-Type": "application/json"}
            return AWSResponse(request.url, 429, headers, _Raw(body))
        return AWSResponse(request.url, 202, {}, _Raw(b""))

    clients = service_of(revoke)._cache._clients
    clients["rest"].meta.events.register_first("before-send.api-gateway.FlushStageAuthorizersCache", api_gateway)
    clients["http"].meta.events.register_first("before-send.apigatewayv2.ResetAuthorizersCache", api_gateway)
    capsys.readouterr()
    answer = invoke(revoke, {"key_id": key["key_id"]})
    assert answer["status"] == "revoked"  # the revocation stands whatever the flush did
    assert sorted(attempts.values()) == [3, 4]  # 4: every attempt the client makes
    cache = answer["authorizer_cache"]
    assert cache["flushed"] == ["rest:a1b2c3d4e5/prod"]
    assert list(cache["failed"]) == ["http:f6g7h8i9j0/$default"] and "TooManyRequests" in str(cache["failed"])
    assert cache["revocation_bound"].startswith("up to 300 s (AuthorizerCacheTtl)")
    assert any("authorizer cache flush failed" in line for line in capsys.readouterr().out.splitlines())


def test_a_rotation_with_grace_schedules_a_flush_for_when_the_grace_ends(issued, load, flushes, stack):
    key = issued()
    answer = invoke(load("RotateKeyFunction", **CACHED), {"key_id": key["key_id"], "grace_seconds": 3600})
    assert flushes == []  # the previous secret still verifies: nothing to flush yet
    ends = datetime.fromisoformat(answer["previous_key_stops_working_at"]).astimezone(UTC)
    at = datetime.fromisoformat(answer["authorizer_cache"]["scheduled_at"])
    # after the last verify of the old secret could still be answering, in Scheduler's whole minute
    assert ends + timedelta(seconds=77) <= at < ends + timedelta(minutes=3) and at.second == 0
    scheduler = boto3.client("scheduler")
    (listed,) = scheduler.list_schedules()["Schedules"]
    schedule = scheduler.get_schedule(Name=listed["Name"])
    assert schedule["ScheduleExpression"] == f"at({at.strftime('%Y-%m-%dT%H:%M:%S')})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"] == stack.arns["FlushAuthorizerCacheFunction"]
    assert schedule["Target"]["RoleArn"] == stack.arns["FlushScheduleRole"]


def test_the_schedule_names_the_rotation_whose_grace_ends_and_the_flush_drops_its_previous_secret(
    issued, admin, load, flushes
):
    key = issued()
    rotate, flush = load("RotateKeyFunction", **CACHED), load("FlushAuthorizerCacheFunction", **CACHED)
    answer = invoke(rotate, {"key_id": key["key_id"], "grace_seconds": 2})  # loaded first: "early" stays early
    (listed,) = boto3.client("scheduler").list_schedules()["Schedules"]
    scheduled = json.loads(boto3.client("scheduler").get_schedule(Name=listed["Name"])["Target"]["Input"])
    assert scheduled["grace_of"] == {"key_id": key["key_id"], "version": answer["version"]}
    early = invoke(flush, scheduled)  # before the grace period is over (as Scheduler never runs it): no change
    assert early["flushed"] == FLUSHED and invoke(admin["GetKey"], {"key_id": key["key_id"]})["version"] == 2
    time.sleep(2.1)
    assert invoke(flush, scheduled)["flushed"] == FLUSHED
    ended = invoke(admin["GetKey"], {"key_id": key["key_id"]})
    assert ended["version"] == 3 and ended["previous_key_expires_at"] is None
    (*_, last) = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert (last["action"], last["actor"]) == ("grace_end", "keygate: the rotation's grace period ended")
    invoke(flush, scheduled)  # run again (Scheduler retries): the version moved on, nothing more written
    assert invoke(admin["GetKey"], {"key_id": key["key_id"]})["version"] == 3


def test_a_grace_end_for_a_key_changed_since_or_gone_writes_nothing_and_still_flushes(issued, admin, load, flushes):
    key = issued()
    invoke(load("RotateKeyFunction"), {"key_id": key["key_id"], "grace_seconds": 1})
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "renamed"})  # version 3: a later change
    time.sleep(1.1)
    flush = load("FlushAuthorizerCacheFunction", **CACHED)
    assert invoke(flush, {"reason": "r", "grace_of": {"key_id": key["key_id"], "version": 2}})["flushed"] == FLUSHED
    assert invoke(admin["GetKey"], {"key_id": key["key_id"]})["version"] == 3
    gone = {"reason": "r", "grace_of": {"key_id": "Q" * 16, "version": 2}}
    assert invoke(flush, gone)["flushed"] == FLUSHED


@pytest.mark.parametrize("grace_of", [{"key_id": "Q" * 16}, {"key_id": "bad", "version": 2}, {"version": 0}, "x"])
def test_a_malformed_grace_of_is_refused_naming_it(load, grace_of):
    answer = invoke(load("FlushAuthorizerCacheFunction"), {"reason": "r", "grace_of": grace_of})
    assert answer["error"]["type"] == "InvalidRequest" and all(
        field.startswith("grace_of") for field in answer["error"]["fields"]
    )


def test_a_second_rotation_cuts_the_first_grace_short_and_flushes_now(issued, load, flushes):
    key = issued()
    rotate = load("RotateKeyFunction", **CACHED)
    invoke(rotate, {"key_id": key["key_id"], "grace_seconds": 3600})
    answer = invoke(rotate, {"key_id": key["key_id"], "grace_seconds": 3600})
    assert len(flushes) == 2 and answer["authorizer_cache"]["flushed"] == FLUSHED
    assert "scheduled_at" in answer["authorizer_cache"]


def test_the_flush_function_and_its_event_flush_every_stage(load, flushes):
    answer = invoke(load("FlushAuthorizerCacheFunction", **CACHED), event("flush-authorizer-cache.json"))
    assert answer["flushed"] == FLUSHED and len(flushes) == 2
    idle = invoke(load("FlushAuthorizerCacheFunction"), {})
    assert idle["flushed"] == [] and "AuthorizerCacheTtl is 0" in idle["revocation_bound"]


def test_a_flush_that_fails_is_an_error_so_scheduler_retries_it(load, monkeypatch):
    flush = load("FlushAuthorizerCacheFunction", **CACHED)
    for operation in FLUSH_OPERATIONS:
        fail_calls(monkeypatch, operation, code="NotFoundException")
    with pytest.raises(RuntimeError, match="NotFoundException"):
        invoke(flush, {"reason": "grace of a key ends"})


def test_a_grace_that_ends_before_scheduler_could_run_is_flushed_after_it_not_in_the_past(issued, load, flushes):
    key = issued()
    before = datetime.now(UTC)
    answer = invoke(load("RotateKeyFunction", **CACHED), {"key_id": key["key_id"], "grace_seconds": 1})
    at = datetime.fromisoformat(answer["authorizer_cache"]["scheduled_at"])
    assert at >= before + timedelta(seconds=77) and at.second == 0


def test_the_local_control_plane_flushes_only_stages_it_serves():
    cache = LocalCache()
    cache.put(("KeygateToken", "Bearer k"), "{}", ttl=300)
    client = ControlPlane({("a1b2c3d4e5", "prod"): cache}, forward_to="http://127.0.0.1:9").app.test_client()
    assert client.delete("/restapis/zzzz/stages/prod/cache/authorizers").status_code == 404
    assert cache.get(("KeygateToken", "Bearer k")) == "{}"
    assert client.delete("/restapis/a1b2c3d4e5/stages/prod/cache/authorizers").status_code == 202
    assert cache.get(("KeygateToken", "Bearer k")) is None and cache.flushes == 1
