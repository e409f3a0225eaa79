"""Quotas per owner: keys issued with quota_per "owner" on a usage plan share their owner's API Gateway key
there (one quota, one throttle), which is enabled while one of them is live; and what races and failures
leave."""

import threading
from collections.abc import Callable

import boto3
import botocore.client
import pytest

from tests.conftest import fail_calls, invoke
from tests.helpers.authorizer import decide, shaped

pytestmark = pytest.mark.dynamodb_local  # the transactions over two tables, and the sets, on DynamoDB Local too


@pytest.fixture
def owners_key(issued, plan):
    """owners_key(owner="team-test", **fields) -> the IssueKey answer of a key sharing its owner's quota."""
    return lambda owner="team-test", **fields: issued(owner=owner, usage_plan_id=plan, quota_per="owner", **fields)


def gateway_keys(apigateway) -> dict[str, dict]:
    return {key["id"]: key for key in apigateway.get_api_keys(includeValues=True)["items"]}


def enabled(apigateway, usage_key_id: str) -> bool:
    return apigateway.get_api_key(apiKey=usage_key_id)["enabled"]


def metered_as(authorizer, key: dict) -> str:
    allowed, response = decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))
    assert allowed
    return response["usageIdentifierKey"]


def test_an_owner_s_keys_on_a_plan_share_one_api_gateway_key(owners_key, issued, apigateway, plan, authorizer):
    first, second = owners_key(), owners_key(name="second")
    assert first["quota_per"] == second["quota_per"] == "owner"
    assert first["usage_key_id"] == second["usage_key_id"]
    assert metered_as(authorizer, first) == metered_as(authorizer, second)
    shared = gateway_keys(apigateway)[first["usage_key_id"]]
    assert shared["enabled"] and metered_as(authorizer, first) == shared["value"]
    assert {item["id"] for item in apigateway.get_usage_plan_keys(usagePlanId=plan)["items"]} == {shared["id"]}
    assert first["usage_plan_sync"] == {"synced": True}


def test_the_api_gateway_key_count_grows_with_owners_not_keys(owners_key, issued, apigateway, plan):
    for owner in ("team-a", "team-b"):
        for _ in range(3):
            owners_key(owner)
    own = issued(owner="team-a", usage_plan_id=plan)  # quota_per "key", the default: a key of its own
    assert own["quota_per"] == "key"
    assert len(gateway_keys(apigateway)) == 3


def test_the_shared_key_stays_enabled_until_the_owner_s_last_live_key_goes(owners_key, admin, apigateway):
    first, second, third = owners_key(), owners_key(), owners_key()
    shared = first["usage_key_id"]
    answer = invoke(admin["RevokeKey"], {"key_id": first["key_id"]})
    assert answer["usage_plan_sync"] == {"synced": True} and enabled(apigateway, shared)
    invoke(admin["UpdateKey"], {"key_id": second["key_id"], "enabled": False})
    assert enabled(apigateway, shared)
    invoke(admin["RevokeKey"], {"key_id": third["key_id"]})
    assert not enabled(apigateway, shared)  # one disabled, two revoked: none live
    invoke(admin["UpdateKey"], {"key_id": second["key_id"], "enabled": True})
    assert enabled(apigateway, shared)
    invoke(admin["UpdateKey"], {"key_id": second["key_id"], "enabled": False})
    assert not enabled(apigateway, shared)
    fourth = owners_key()  # the owner's key on the plan is kept, and enabled again
    assert fourth["usage_key_id"] == shared and enabled(apigateway, shared)
    assert len(gateway_keys(apigateway)) == 1


def test_a_leaked_key_leaves_the_shared_key_to_the_owner_s_other_keys(owners_key, admin, apigateway, load):
    leaked, kept = owners_key(), owners_key()
    answer = invoke(load("ReportLeakFunction"), {"key": leaked["api_key"]})
    assert answer["revoked"] == "now" and enabled(apigateway, kept["usage_key_id"])
    invoke(load("ReportLeakFunction"), {"key": kept["api_key"]})
    assert not enabled(apigateway, kept["usage_key_id"])


def test_rotation_and_updates_keep_the_sharing(owners_key, admin, authorizer, apigateway):
    key, other = owners_key(), owners_key()
    rotated = invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 0})
    updated = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "renamed", "metadata": {"tier": "gold"}})
    assert rotated["usage_key_id"] == updated["usage_key_id"] == other["usage_key_id"]
    assert updated["quota_per"] == "owner"
    assert metered_as(authorizer, key | {"api_key": rotated["api_key"]}) == metered_as(authorizer, other)


def test_a_key_moved_to_another_plan_shares_its_owner_s_key_there(owners_key, admin, apigateway, plan):
    other_plan = apigateway.create_usage_plan(name="silver")["id"]
    moving, staying = owners_key(), owners_key()
    moved = invoke(admin["UpdateKey"], {"key_id": moving["key_id"], "usage_plan_id": other_plan})
    there = moved["usage_key_id"]
    assert there != staying["usage_key_id"] and moved["usage_plan_sync"] == {"synced": True}
    assert {item["id"] for item in apigateway.get_usage_plan_keys(usagePlanId=other_plan)["items"]} == {there}
    assert enabled(apigateway, there) and enabled(apigateway, staying["usage_key_id"])
    invoke(admin["UpdateKey"], {"key_id": staying["key_id"], "usage_plan_id": other_plan})
    assert not enabled(apigateway, moving["usage_key_id"])  # the first plan's: no live key of the owner left
    joined = invoke(admin["GetKey"], {"key_id": staying["key_id"]})
    assert joined["usage_key_id"] == there and enabled(apigateway, there)


def test_a_key_taken_off_its_plan_leaves_the_shared_key(owners_key, admin, apigateway, authorizer):
    key = owners_key()
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "usage_plan_id": None})
    assert answer["usage_plan_id"] is None and answer["usage_key_id"] is None
    assert not enabled(apigateway, key["usage_key_id"])
    allowed, response = decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))
    assert allowed and "usageIdentifierKey" not in response
    history = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert history[0]["changes"]["quota_per"] == {"old": None, "new": "owner"}


def intercept(monkeypatch, operation: str, before: Callable[[dict], None]) -> None:
    """``before(params)`` runs ahead of each AWS call of ``operation`` (at botocore's API call: the handlers
    import their modules afresh, so their classes are not this test's to patch)."""
    real = botocore.client.BaseClient._make_api_call

    def intercepting(self, called, params):
        if called == operation:
            before(params)
        return real(self, called, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", intercepting)


def test_two_issues_racing_for_a_new_owner_end_with_one_shared_key(admin, plan, apigateway, monkeypatch):
    """Both find no shared key and make one; one put wins, the other deletes its own and joins it."""
    both_made = threading.Barrier(2, timeout=10)
    request = {"name": "n", "owner": "racing", "usage_plan_id": plan, "quota_per": "owner"}
    issue, answers = admin["IssueKey"], []  # loaded before the threads start: an import is not for two at once
    intercept(monkeypatch, "PutItem", lambda params: both_made.wait())  # each has made its API Gateway key
    one_at_a_time = threading.Lock()  # moto's in-process tables are not for two transactions at once (DynamoDB
    real = botocore.client.BaseClient._make_api_call  # serializes those on one item, or fails one: a retry)

    def transactions_in_turn(self, operation, params):
        if operation != "TransactWriteItems":
            return real(self, operation, params)
        with one_at_a_time:
            return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", transactions_in_turn)
    threads = [threading.Thread(target=lambda: answers.append(invoke(issue, request))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 2 and all("error" not in answer for answer in answers), answers
    assert answers[0]["usage_key_id"] == answers[1]["usage_key_id"]
    assert set(gateway_keys(apigateway)) == {answers[0]["usage_key_id"]}  # the loser's was deleted
    assert enabled(apigateway, answers[0]["usage_key_id"])


def test_a_key_issued_while_the_last_is_revoked_leaves_the_shared_key_enabled(owners_key, admin, monkeypatch):
    """The revocation reads no live key; then an issue lands and enables the shared key; then the
    revocation's disable arrives, and its read after it finds the new key and enables it again."""
    last = owners_key()
    revoke, issued_meanwhile = admin["RevokeKey"], []

    def issue_first(params):
        if params["patchOperations"][0]["value"] == "false" and not issued_meanwhile:
            issued_meanwhile.append(owners_key(name="meanwhile"))

    intercept(monkeypatch, "UpdateApiKey", issue_first)
    invoke(revoke, {"key_id": last["key_id"]})
    assert issued_meanwhile and enabled(boto3.client("apigateway"), last["usage_key_id"])


def test_quota_per_owner_needs_a_usage_plan(admin, table_items, apigateway):
    answer = invoke(admin["IssueKey"], {"name": "n", "owner": "o", "quota_per": "owner"})
    assert answer["error"]["type"] == "InvalidRequest" and "usage_plan_id" in answer["error"]["fields"]["quota_per"]
    assert table_items() == [] and apigateway.get_api_keys()["items"] == []


@pytest.mark.parametrize("bad", ["team", "", "OWNER", 1, None])
def test_a_quota_per_other_than_key_or_owner_is_refused_by_name(admin, plan, bad, table_items):
    answer = invoke(admin["IssueKey"], {"name": "n", "owner": "o", "usage_plan_id": plan, "quota_per": bad})
    assert answer["error"]["type"] == "InvalidRequest" and set(answer["error"]["fields"]) == {"quota_per"}
    assert table_items() == []


def test_quota_per_is_chosen_at_issue_only(owners_key, admin):
    key = owners_key()
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "quota_per": "key"})
    assert answer["error"]["type"] == "InvalidRequest" and "quota_per" in answer["error"]["fields"]


def test_an_issue_that_cannot_enable_the_shared_key_writes_nothing(owners_key, admin, table_items, monkeypatch):
    first = owners_key()
    invoke(admin["RevokeKey"], {"key_id": first["key_id"]})  # the shared key is disabled
    issue = admin["IssueKey"]
    with monkeypatch.context() as faults:
        fail_calls(faults, "UpdateApiKey", code="TooManyRequestsException")
        with pytest.raises(botocore.exceptions.ClientError):
            invoke(issue, {"name": "n", "owner": "team-test", "usage_plan_id": first["usage_plan_id"],
                           "quota_per": "owner"})  # fmt: skip
    assert [item["key_id"]["S"] for item in table_items()] == [first["key_id"]]


def test_a_failed_sync_after_an_issue_is_reported_and_an_update_repairs_it(owners_key, admin, apigateway, monkeypatch):
    first = owners_key()
    invoke(admin["RevokeKey"], {"key_id": first["key_id"]})
    calls = []

    def fail_after_the_first(params):  # the enable before the write goes through; the sync after it fails
        calls.append(params)
        if len(calls) > 1:
            raise botocore.exceptions.ClientError({"Error": {"Code": "TooManyRequestsException"}}, "UpdateApiKey")

    with monkeypatch.context() as faults:
        intercept(faults, "UpdateApiKey", fail_after_the_first)
        second = owners_key()
    assert second["status"] == "active" and second["usage_plan_sync"]["synced"] is False
    assert "TooManyRequestsException" in second["usage_plan_sync"]["error"]
    assert enabled(apigateway, second["usage_key_id"])  # enabled before the key was written: never refused
    repaired = invoke(admin["UpdateKey"], {"key_id": second["key_id"]})
    assert repaired["usage_plan_sync"] == {"synced": True} and enabled(apigateway, second["usage_key_id"])


def test_a_failed_write_leaves_the_shared_key_unused_and_the_next_issue_uses_it(
    admin, plan, apigateway, table_items, monkeypatch
):
    request = {"name": "n", "owner": "o", "usage_plan_id": plan, "quota_per": "owner"}
    with monkeypatch.context() as faults:
        fail_calls(faults, "TransactWriteItems")
        with pytest.raises(botocore.exceptions.ClientError):
            invoke(admin["IssueKey"], request)
    assert table_items() == []
    (made,) = gateway_keys(apigateway).values()  # enabled for the key that was not written: it meters nothing
    assert {item["id"] for item in apigateway.get_usage_plan_keys(usagePlanId=plan)["items"]} == {made["id"]}
    answer = invoke(admin["IssueKey"], request)
    assert answer["usage_key_id"] == made["id"] and enabled(apigateway, made["id"])


def test_ids_of_keys_the_table_s_ttl_deleted_leave_live_and_the_shared_key_is_disabled(
    owners_key, admin, apigateway, stack
):
    expiring, kept = owners_key(), owners_key()
    dynamodb = boto3.client("dynamodb")  # as the table's TTL would, once the key expired and its retention ended
    dynamodb.delete_item(TableName=stack.physical_ids["KeysTable"], Key={"key_id": {"S": expiring["key_id"]}})
    invoke(admin["RevokeKey"], {"key_id": kept["key_id"]})
    assert not enabled(apigateway, kept["usage_key_id"])
    (item,) = dynamodb.scan(TableName=stack.physical_ids["OwnerUsageKeysTable"])["Items"]
    assert "live" not in item  # empty: DynamoDB keeps no empty set


def test_an_update_at_an_old_version_makes_nothing_on_the_new_plan(owners_key, admin, apigateway):
    key = owners_key()
    other_plan = apigateway.create_usage_plan(name="silver")["id"]
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "usage_plan_id": other_plan, "expected_version": 7})
    assert answer["error"]["type"] == "VersionConflict"
    assert apigateway.get_usage_plan_keys(usagePlanId=other_plan)["items"] == []
    moved = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "usage_plan_id": other_plan, "expected_version": 1})
    assert moved["version"] == 2 and moved["usage_key_id"] != key["usage_key_id"]


def test_explain_says_whose_quota_a_key_counts_against(owners_key, issued, plan, admin):
    for key, counted in ((owners_key(), "its owner's quota"), (issued(usage_plan_id=plan), "this key's own quota")):
        answer = invoke(admin["ExplainKey"], {"key_id": key["key_id"], "route": "GET /x"})
        assert answer["usage_plan"]["quota_per"] == key["quota_per"] and counted in answer["usage_plan"]["counted"]
