"""API Gateway at scale over HTTP, on the local stack with make demo's parameters: a key on a usage plan
hits its quota (429), API Gateway's authorizer cache keeps an allow until keygate flushes it, and
last_used_at is recorded and found by list --unused-since."""

from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import keys_table, local_client, run, status_of


def test_a_key_on_the_demo_usage_plan_gets_429_past_its_quota_of_three(scoped_stack):
    plan = scoped_stack.usage_plans["DemoUsagePlan"]
    metered = run(scoped_stack, "issue", "--name", "m", "--owner", "o", "--scope", "demo", "--usage-plan-id", plan)
    other = run(scoped_stack, "issue", "--name", "m2", "--owner", "o", "--scope", "demo", "--usage-plan-id", plan)
    url = f"{scoped_stack.rest}/metered"
    assert [status_of(url, metered["api_key"]) for _ in range(4)] == [200, 200, 200, 429]
    assert status_of(url, other["api_key"]) == 200  # the quota is per key
    assert status_of(f"{scoped_stack.rest}/hello", metered["api_key"]) == 200  # a route without ApiKeyRequired


def test_an_owner_s_keys_issued_with_quota_per_owner_share_one_quota_of_three(scoped_stack):
    plan = scoped_stack.usage_plans["DemoUsagePlan"]
    issue = ("issue", "--owner", "shared", "--scope", "demo", "--usage-plan-id", plan, "--quota-per", "owner")
    first, second = run(scoped_stack, *issue, "--name", "s1"), run(scoped_stack, *issue, "--name", "s2")
    assert first["usage_key_id"] == second["usage_key_id"]
    url = f"{scoped_stack.rest}/metered"
    assert [status_of(url, key["api_key"]) for key in (first, second, first, second, first)] == [200] * 3 + [429] * 2


def test_a_key_on_no_plan_is_forbidden_on_a_metered_route(scoped_stack):
    plain = run(scoped_stack, "issue", "--name", "p", "--owner", "o", "--scope", "demo")
    assert status_of(f"{scoped_stack.rest}/metered", plain["api_key"]) == 403


def test_a_disabled_metered_key_is_refused_and_enabled_again_counts_on(scoped_stack):
    plan = scoped_stack.usage_plans["DemoUsagePlan"]
    key = run(scoped_stack, "issue", "--name", "d", "--owner", "o", "--scope", "demo", "--usage-plan-id", plan)
    url = f"{scoped_stack.rest}/metered"
    assert status_of(url, key["api_key"]) == 200
    assert run(scoped_stack, "disable", key["key_id"])["usage_plan_sync"] == {"synced": True}
    assert status_of(url, key["api_key"]) == 401
    run(scoped_stack, "enable", key["key_id"])
    assert [status_of(url, key["api_key"]) for _ in range(3)] == [200, 200, 429]


def test_a_cached_allow_lasts_until_keygate_flushes_the_stage(scoped_stack):
    """The allow is cached: a change made behind keygate's back (no flush) is not seen; a revoke through
    keygate flushes both stages, and the key is refused on the next request."""
    key = run(scoped_stack, "issue", "--name", "c", "--owner", "o", "--scope", "demo")
    rest, http = f"{scoped_stack.rest}/hello", f"{scoped_stack.http}/hello"
    assert (status_of(rest, key["api_key"]), status_of(http, key["api_key"])) == (200, 200)
    dynamodb = local_client("dynamodb", scoped_stack.aws["dynamodb"])
    dynamodb.update_item(
        TableName=keys_table(dynamodb),
        Key={"key_id": {"S": key["key_id"]}},
        UpdateExpression="SET #status = :disabled",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":disabled": {"S": "disabled"}},
    )
    assert (status_of(rest, key["api_key"]), status_of(http, key["api_key"])) == (200, 200)  # answered from the cache
    revoked = run(scoped_stack, "revoke", key["key_id"])
    assert sorted(revoked["authorizer_cache"]["flushed"]) == sorted(scoped_stack.cached_stages.values())
    assert (status_of(rest, key["api_key"]), status_of(http, key["api_key"])) == (401, 403)


def test_an_operator_flush_refuses_a_key_changed_behind_keygate_s_back(scoped_stack):
    key = run(scoped_stack, "issue", "--name", "f", "--owner", "o", "--scope", "demo")
    url = f"{scoped_stack.rest}/whoami"
    assert status_of(url, key["api_key"]) == 200
    dynamodb = local_client("dynamodb", scoped_stack.aws["dynamodb"])
    dynamodb.delete_item(TableName=keys_table(dynamodb), Key={"key_id": {"S": key["key_id"]}})
    assert status_of(url, key["api_key"]) == 200
    assert sorted(run(scoped_stack, "flush-cache", "--reason", "e2e")["flushed"]) == sorted(
        scoped_stack.cached_stages.values()
    )
    assert status_of(url, key["api_key"]) == 401


def test_last_used_is_recorded_and_list_unused_since_leaves_the_key_out(scoped_stack):
    used = run(scoped_stack, "issue", "--name", "used", "--owner", "team-last-used", "--scope", "demo")
    run(scoped_stack, "issue", "--name", "idle", "--owner", "team-last-used", "--scope", "demo")
    assert status_of(f"{scoped_stack.http}/whoami", used["api_key"]) == 200
    shown = run(scoped_stack, "get", used["key_id"])
    assert datetime.fromisoformat(shown["last_used_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    unused = run(scoped_stack, "list", "--owner", "team-last-used", "--unused-since", today)
    assert [key["name"] for key in unused["keys"]] == ["idle"]
