"""Least privilege, checked against behaviour: each function is granted exactly the AWS calls (action,
resource, and what a condition limits) that its code makes, recorded while it does its job. Grants come
from the function's own policies and from resource policies that name its role."""

import re
from datetime import UTC, datetime, timedelta

import botocore.client
import pytest

from tests.conftest import add_pepper_version, invoke
from tests.test_authorizer import decide, shaped

TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
EXPRESSION_WORDS = {
    "SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN", "attribute_exists",
    "attribute_not_exists", "attribute_type", "begins_with", "contains", "size", "if_not_exists", "list_append",
}  # fmt: skip


def granted(stack, function: str) -> dict[tuple[str, str], dict]:
    """(IAM action, resource ARN) -> the statement's Condition ({} for none)."""
    grants: dict[tuple[str, str], dict] = {}

    def add(statement: dict, resources: list[str]) -> None:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            for resource in resources:
                assert (action, resource) not in grants, f"{action} on {resource} is granted twice"
                grants[action, resource] = statement.get("Condition", {})

    for policy in stack.resource(function)["Properties"]["Policies"]:
        assert set(policy) == {"Statement"}, "a SAM policy template this test cannot read"
        for statement in policy["Statement"]:
            resource = stack.resolve(statement["Resource"])
            add(statement, resource if isinstance(resource, list) else [resource])
    role = {"Fn::GetAtt": [f"{function}Role", "Arn"]}
    for resource in stack.template["Resources"].values():
        if resource["Type"] == "AWS::SecretsManager::ResourcePolicy":
            for statement in resource["Properties"]["ResourcePolicy"]["Statement"]:
                if role in statement["Principal"]["AWS"]:
                    add(statement, [stack.resolve(resource["Properties"]["SecretId"])])
    return grants


def attributes(params: dict) -> set[str]:
    """The top-level attribute names a DynamoDB request touches, as IAM's dynamodb:Attributes sees them
    (generously: every name in ExpressionAttributeNames counts, used or not)."""
    aliases = params.get("ExpressionAttributeNames", {})
    names = set(params.get("Key", {})) | set(params.get("Item", {})) | set(aliases.values())
    for field in ("UpdateExpression", "ConditionExpression", "ProjectionExpression", "FilterExpression"):
        for token in re.findall(r"#?\w+", re.sub(r":\w+", "", params.get(field, ""))):
            if token.startswith("#"):
                names.add(aliases[token])
            elif token not in EXPRESSION_WORDS and not token.isdigit():
                names.add(token)
    return names


def satisfies(condition: dict, context: dict) -> bool:
    """IAM's evaluation of the condition operators this template uses, on a call's context."""
    for operator, tests in condition.items():
        for key, allowed in tests.items():
            allowed = set(allowed) if isinstance(allowed, list) else {allowed}
            value = context.get(key)
            if operator == "ForAllValues:StringEquals":
                ok = set(value or ()) <= allowed
            elif operator == "StringEquals":  # a key the request does not carry fails it
                ok = value in allowed
            elif operator == "StringEqualsIfExists":
                ok = value is None or value in allowed
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated here")
            if not ok:
                return False
    return True


@pytest.fixture
def recorded(monkeypatch, stack) -> list[tuple[str, str, dict]]:
    """(IAM action, resource ARN, condition context) of every AWS call made while it is active."""
    calls: list[tuple[str, str, dict]] = []
    real = botocore.client.BaseClient._make_api_call

    table_arns = {stack.physical_ids[table]: stack.arns[table] for table in stack.tables()}

    def dynamodb_call(operation: str, params: dict) -> tuple[str, str, dict]:
        resource = table_arns[params["TableName"]]
        if "IndexName" in params:
            resource += f"/index/{params['IndexName']}"
        context = {"dynamodb:Attributes": attributes(params)}  # and, as IAM, the others only when sent
        context |= {f"dynamodb:{name}": params[name] for name in ("ReturnValues", "Select") if name in params}
        return f"dynamodb:{operation}", resource, context

    def recording(self, operation, params):
        service = self.meta.service_model.service_name
        if operation == "TransactWriteItems":  # IAM authorizes each item as its own action
            for item in params["TransactItems"]:
                ((kind, request),) = item.items()
                calls.append(dynamodb_call(TRANSACTION_ACTIONS[kind], request))
        elif service == "dynamodb":
            calls.append(dynamodb_call(operation, params))
        else:
            calls.append((f"{service}:{operation}", params["SecretId"], {}))
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


def assert_exactly_granted(stack, function: str, calls: list[tuple[str, str, dict]]) -> None:
    grants = granted(stack, function)
    assert {(action, resource) for action, resource, _ in calls} == set(grants)
    for action, resource, context in calls:
        assert satisfies(grants[action, resource], context), (action, context)
    for (action, resource), condition in grants.items():  # and a condition allows no more than is used
        for operator, tests in condition.items():
            if operator.startswith("ForAllValues:"):
                for key, allowed in tests.items():
                    used = set().union(*(c[key] for a, r, c in calls if (a, r) == (action, resource)))
                    assert set(allowed) == used, f"{action} {key} allows {set(allowed) - used} that no call uses"


def test_authorizer_is_granted_exactly_what_it_calls(stack, issued, load, recorded):
    key = issued()
    add_pepper_version(stack)  # so the first verify re-hashes the key under the new pepper
    authorizer = load("AuthorizerFunction")
    recorded.clear()
    for shape in ("rest-token", "rest-request", "http-api"):
        assert decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))[0]
    assert ("dynamodb:UpdateItem", stack.arns["KeysTable"]) in {(a, r) for a, r, _ in recorded}  # it did
    assert_exactly_granted(stack, "AuthorizerFunction", recorded)


def _in_a_day() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


NEVER_ISSUED = "A" * 16
# Each admin function, with the requests that exercise every AWS call and attribute it can touch.
ADMIN_JOBS = {
    "IssueKeyFunction": lambda key_id: [{"name": "n", "owner": "o"}],
    "UpdateKeyFunction": lambda key_id: [
        {
            "key_id": key_id,
            "name": "m",
            "description": "d",
            "scopes": ["s"],
            "apis": ["a/b"],
            "expires_at": _in_a_day(),
            "enabled": False,
        },
        {"key_id": key_id, "expires_at": None, "enabled": True},
    ],  # fmt: skip
    "RotateKeyFunction": lambda key_id: [{"key_id": key_id, "grace_seconds": 60}],
    "RevokeKeyFunction": lambda key_id: [{"key_id": key_id}],
    "GetKeyFunction": lambda key_id: [{"key_id": key_id}],
    "ListKeysFunction": lambda key_id: [{"owner": "team-test"}, {}],  # a Query on the index, then a Scan
    "KeyHistoryFunction": lambda key_id: [{"key_id": key_id}, {"key_id": NEVER_ISSUED}],  # then a GetItem
    "PepperStatusFunction": lambda key_id: [{}],
}


@pytest.mark.parametrize("function", ADMIN_JOBS)
def test_each_admin_function_is_granted_exactly_what_it_calls(function, stack, issued, load, recorded):
    key = issued()
    add_pepper_version(stack)  # so a rotation hashes under another pepper version, as it may
    handler = load(function)
    recorded.clear()
    for request in ADMIN_JOBS[function](key["key_id"]):
        answer = invoke(handler, request)
        if request.get("key_id") == NEVER_ISSUED:
            assert answer["error"]["type"] == "KeyNotFound"
        else:
            assert "error" not in answer
    assert_exactly_granted(stack, function, recorded)


def test_every_function_is_checked_here(stack):
    assert set(stack.functions()) - {"DemoFunction"} == set(ADMIN_JOBS) | {"AuthorizerFunction"}


def test_revoke_may_not_write_other_attributes_or_read_back(stack):
    (condition,) = [condition for (action, _), condition in granted(stack, "RevokeKeyFunction").items() if condition]
    change_owner = {"dynamodb:Attributes": {"key_id", "owner", "version"}}
    read_back = {"dynamodb:Attributes": {"key_id", "status"}, "dynamodb:ReturnValues": "ALL_NEW"}
    revoke = {"dynamodb:Attributes": {"key_id", "status", "version"}}  # as revoke sends it: no ReturnValues
    assert not satisfies(condition, change_owner) and not satisfies(condition, read_back)
    assert satisfies(condition, revoke) and satisfies(condition, revoke | {"dynamodb:ReturnValues": "NONE"})
