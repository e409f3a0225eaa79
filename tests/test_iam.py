"""Least privilege, checked against behaviour: each function's template policy grants exactly the
AWS calls (action and resource) that its code makes, recorded while it does its job."""

import botocore.client
import pytest

from tests.conftest import invoke
from tests.test_authorizer import decide, shaped

# SAM policy templates, as the actions and resources they grant (those this project uses).
POLICY_TEMPLATES = {
    "AWSSecretsManagerGetSecretValuePolicy": lambda arguments: {
        ("secretsmanager:GetSecretValue", arguments["SecretArn"])
    },
}


def granted(stack, function: str) -> set[tuple[str, str]]:
    grants = set()
    for policy in stack.resource(function)["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resource = stack.resolve(statement["Resource"])
            resources = resource if isinstance(resource, list) else [resource]
            grants |= {(action, arn) for action in actions for arn in resources}
        for name, arguments in policy.items():
            if name != "Statement":
                grants |= POLICY_TEMPLATES[name](stack.resolve(arguments))
    return grants


@pytest.fixture
def recorded(monkeypatch, stack) -> set[tuple[str, str]]:
    """The (IAM action, resource ARN) of every AWS call made while it is active."""
    calls: set[tuple[str, str]] = set()
    real = botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):
        service = self.meta.service_model.service_name
        if service == "dynamodb":
            resource = stack.arns["KeysTable"]
            if "IndexName" in params:
                resource += f"/index/{params['IndexName']}"
        else:
            resource = params["SecretId"]
        calls.add((f"{service}:{operation}", resource))
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


def test_authorizer_is_granted_exactly_what_it_calls(stack, issued, load, recorded):
    key = issued()
    authorizer = load("AuthorizerFunction")
    recorded.clear()
    for shape in ("rest-token", "rest-request", "http-api"):
        assert decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))[0]
    assert recorded == granted(stack, "AuthorizerFunction")


# Each admin function, with the requests that exercise every AWS call it can make.
ADMIN_JOBS = {
    "IssueKeyFunction": lambda key_id: [{"name": "n", "owner": "o"}],
    "RevokeKeyFunction": lambda key_id: [{"key_id": key_id}],
    "GetKeyFunction": lambda key_id: [{"key_id": key_id}],
    "ListKeysFunction": lambda key_id: [{"owner": "team-test"}, {}],  # a Query on the index, then a Scan
}


@pytest.mark.parametrize("function", ADMIN_JOBS)
def test_each_admin_function_is_granted_exactly_what_it_calls(function, stack, issued, load, recorded):
    key = issued()
    handler = load(function)
    recorded.clear()
    for request in ADMIN_JOBS[function](key["key_id"]):
        assert "error" not in invoke(handler, request)
    assert recorded == granted(stack, function)
