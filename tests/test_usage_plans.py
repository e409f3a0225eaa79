"""Usage plans per key: an API Gateway API key per metered keygate key, on its plan, enabled while the key
is active, named to API Gateway by the REST authorizer as usageIdentifierKey; and what a failure leaves."""

import pytest
from botocore.exceptions import ClientError

from tests.conftest import fail_calls, invoke
from tests.helpers.authorizer import decide, shaped


def api_key(apigateway, usage_key_id: str) -> dict:
    return apigateway.get_api_key(apiKey=usage_key_id, includeValue=True)


def plans_of(apigateway, usage_key_id: str) -> set[str]:
    return {plan["id"] for plan in apigateway.get_usage_plans(keyId=usage_key_id)["items"]}


def stored(table_items, key_id: str) -> dict:
    (item,) = [item for item in table_items() if item["key_id"]["S"] == key_id]
    return item


def test_a_key_issued_on_a_plan_has_an_api_gateway_key_on_that_plan(issued, apigateway, plan, table_items):
    key = issued(usage_plan_id=plan)
    assert key["usage_plan_id"] == plan and key["usage_key_id"]
    gateway_key = api_key(apigateway, key["usage_key_id"])
    assert gateway_key["enabled"] and gateway_key["name"] == f"keygate-{key['key_id']}"
    assert plans_of(apigateway, key["usage_key_id"]) == {plan}
    item = stored(table_items, key["key_id"])
    assert item["usage_key_value"]["S"] == gateway_key["value"]
    assert gateway_key["value"] not in key["api_key"] and key["api_key"].split("_")[2] not in gateway_key["value"]
    assert "usage_key_value" not in key  # an identifier for API Gateway, not for admins or clients


def test_its_api_gateway_key_is_tagged_as_this_keygate_s_so_only_it_may_be_changed(issued, apigateway, plan, stack):
    key = issued(usage_plan_id=plan)
    assert api_key(apigateway, key["usage_key_id"])["tags"] == {"keygate:keys-table": stack.physical_ids["KeysTable"]}


def test_the_rest_authorizer_names_the_key_s_api_gateway_key_to_meter_it(issued, authorizer, apigateway, plan):
    key = issued(usage_plan_id=plan)
    value = api_key(apigateway, key["usage_key_id"])["value"]
    for shape in ("rest-token", "rest-request"):
        allowed, response = decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))
        assert allowed and response["usageIdentifierKey"] == value
    allowed, response = decide(authorizer, shaped("http-api", authorization=f"Bearer {key['api_key']}"))
    assert allowed and "usageIdentifierKey" not in response  # HTTP APIs have no usage plans


def test_a_key_on_no_plan_names_no_usage_key(issued, authorizer):
    key = issued()
    allowed, response = decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))
    assert allowed and "usageIdentifierKey" not in response and key["usage_plan_id"] is None


def test_an_unknown_plan_is_refused_and_nothing_is_made(admin, apigateway, table_items):
    answer = invoke(admin["IssueKey"], {"name": "n", "owner": "o", "usage_plan_id": "nosuchplan"})
    assert answer["error"]["type"] == "UsagePlanNotFound" and "nosuchplan" in answer["error"]["message"]
    assert table_items() == [] and apigateway.get_api_keys()["items"] == []


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, 7, "plan/../x"])
def test_a_malformed_plan_id_is_refused_by_name(admin, bad):
    answer = invoke(admin["IssueKey"], {"name": "n", "owner": "o", "usage_plan_id": bad})
    assert answer["error"]["type"] == "InvalidRequest" and "usage_plan_id" in answer["error"]["fields"]


def test_when_the_record_cannot_be_written_the_api_gateway_key_is_deleted_again(
    admin, apigateway, plan, table_items, monkeypatch
):
    issue = admin["IssueKey"]
    fail_calls(monkeypatch, "TransactWriteItems")
    with pytest.raises(ClientError):
        invoke(issue, {"name": "n", "owner": "o", "usage_plan_id": plan})
    assert table_items() == [] and apigateway.get_api_keys()["items"] == []
    assert apigateway.get_usage_plan_keys(usagePlanId=plan)["items"] == []


def test_when_the_plan_cannot_be_joined_nothing_is_left(admin, apigateway, plan, table_items, monkeypatch):
    issue = admin["IssueKey"]
    fail_calls(monkeypatch, "CreateUsagePlanKey", code="TooManyRequestsException")
    with pytest.raises(ClientError):
        invoke(issue, {"name": "n", "owner": "o", "usage_plan_id": plan})
    assert table_items() == [] and apigateway.get_api_keys()["items"] == []


@pytest.mark.parametrize(
    ("action", "enabled"),
    [("disable", False), ("revoke", True), ("enable", True)],
)
def test_disable_and_revoke_disable_the_api_gateway_key_and_enable_enables_it(
    action, enabled, issued, admin, apigateway, plan
):
    key = issued(usage_plan_id=plan)
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": False})
    assert not api_key(apigateway, key["usage_key_id"])["enabled"]
    if action == "revoke":
        answer = invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
        enabled = False
    else:
        answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": action == "enable"})
    assert answer["usage_plan_sync"] == {"synced": True}
    assert api_key(apigateway, key["usage_key_id"])["enabled"] is enabled


def test_moving_to_another_plan_leaves_the_first(issued, admin, apigateway, plan):
    other = apigateway.create_usage_plan(name="silver")["id"]
    key = issued(usage_plan_id=plan)
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "usage_plan_id": other})
    assert (answer["usage_plan_id"], answer["usage_key_id"]) == (other, key["usage_key_id"])
    assert plans_of(apigateway, key["usage_key_id"]) == {other}
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "usage_plan_id": None})
    assert answer["usage_plan_id"] is None and plans_of(apigateway, key["usage_key_id"]) == set()


def test_a_key_issued_without_a_plan_gets_its_api_gateway_key_when_put_on_one(issued, admin, apigateway, plan):
    key = issued()
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "usage_plan_id": plan})
    assert answer["usage_key_id"] and plans_of(apigateway, answer["usage_key_id"]) == {plan}
    assert len(apigateway.get_api_keys()["items"]) == 1
    history = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert history[-1]["changes"]["usage_plan_id"] == {"old": None, "new": plan}


def test_a_failed_sync_is_reported_the_change_stands_and_the_same_update_repairs_it(
    issued, admin, apigateway, plan, monkeypatch
):
    key = issued(usage_plan_id=plan)
    update = admin["UpdateKey"]
    with monkeypatch.context() as faults:
        fail_calls(faults, "UpdateApiKey", code="TooManyRequestsException")
        answer = invoke(update, {"key_id": key["key_id"], "enabled": False})
    assert answer["status"] == "disabled"  # the key is refused by the authorizer whatever API Gateway says
    assert answer["usage_plan_sync"]["synced"] is False
    assert "TooManyRequestsException" in answer["usage_plan_sync"]["error"]
    assert api_key(apigateway, key["usage_key_id"])["enabled"]
    repaired = invoke(update, {"key_id": key["key_id"], "enabled": False})
    assert repaired["usage_plan_sync"] == {"synced": True} and repaired["version"] == answer["version"]
    assert not api_key(apigateway, key["usage_key_id"])["enabled"]


def test_a_failed_update_deletes_the_api_gateway_key_it_made(issued, admin, apigateway, plan, monkeypatch):
    key = issued()
    update = admin["UpdateKey"]
    fail_calls(monkeypatch, "TransactWriteItems")
    with pytest.raises(ClientError):
        invoke(update, {"key_id": key["key_id"], "usage_plan_id": plan})
    assert apigateway.get_api_keys()["items"] == []


def test_a_revoked_key_cannot_be_put_on_a_plan(issued, admin, apigateway, plan):
    key = issued()
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "usage_plan_id": plan})
    assert answer["error"]["type"] == "KeyRevoked" and apigateway.get_api_keys()["items"] == []
