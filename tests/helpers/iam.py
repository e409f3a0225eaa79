"""Reading the template's IAM grants, and a DynamoDB request as IAM sees it: for the tests that check each
function is granted exactly what its code does."""

import re

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


def granted(stack, function: str) -> dict[tuple[str, str], list[dict]]:
    """(IAM action, resource ARN or pattern) -> the Condition of each statement granting it ({} for none)."""
    grants: dict[tuple[str, str], list[dict]] = {}

    def add(statement: dict, resources: list[str]) -> None:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            for resource in resources:
                conditions = grants.setdefault((action, resource), [])
                condition = stack.resolve(statement.get("Condition", {}))
                assert condition not in conditions, f"{action} on {resource} is granted twice"
                conditions.append(condition)

    for policy in stack.resource(function)["Properties"]["Policies"]:
        assert set(policy) == {"Statement"}, "a SAM policy template this test cannot read"
        for statement in policy["Statement"]:
            resource = stack.resolve(statement["Resource"])
            add(statement, resource if isinstance(resource, list) else [resource])
    role = {"Fn::GetAtt": [f"{function}Role", "Arn"]}
    for resource in stack.template["Resources"].values():
        if resource["Type"] == "AWS::SecretsManager::ResourcePolicy":
            for statement in resource["Properties"]["ResourcePolicy"]["Statement"]:  # its Deny: test_operations.py
                if statement["Effect"] == "Allow" and role in statement["Principal"]["AWS"]:
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
