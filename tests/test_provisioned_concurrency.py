"""AuthorizerProvisionedConcurrency: above 0, the authorizer's alias holds that many initialized environments
and every attachment (the AuthorizerFunctionArn output, the demo APIs' authorizers and their invoke
permissions) invokes the alias; at 0, the default, none is provisioned and everything invokes the function
itself, as before. Checked on the template as CloudFormation deploys it (after SAM's transform), and on the
local stack, which serves the authorizer either way."""

import copy
import json

import pytest
from samcli.lib.providers.api_provider import ApiProvider

from bench import cost
from keygate_local import gateway
from keygate_local.local_stack import DEMO
from keygate_local.template import ROOT, Stack
from tests.conftest import sam_transform

# As sam deploy passes them: strings.
NONE, SOME = {"AuthorizerProvisionedConcurrency": "0"}, {"AuthorizerProvisionedConcurrency": "5"}
THE_FUNCTION = {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
ATTACHMENTS = {  # with DeployDemo=true: the output, the demo APIs' four authorizers and their four permissions
    "output AuthorizerFunctionArn",
    "DemoRestApi authorizer 0", "DemoRestApi authorizer 1", "DemoHttpApi authorizer 0", "DemoWebSocketAuthorizer",
    "DemoRestApiKeygateTokenAuthorizerPermission", "DemoRestApiKeygateRequestAuthorizerPermission",
    "DemoHttpApiKeygateLambdaAuthorizerPermission", "DemoWebSocketAuthorizerPermission",
}  # fmt: skip


def _deployed(transformed: dict, parameters: dict) -> dict:
    """The transformed template as CloudFormation deploys it with these parameters, the demo included."""
    return Stack(transformed, DEMO | parameters).template


def _alias(deployed: dict) -> tuple[str, dict]:
    (alias,) = [
        (name, spec)
        for name, spec in deployed["Resources"].items()
        if spec["Type"] == "AWS::Lambda::Alias" and spec["Properties"]["FunctionName"] == {"Ref": "AuthorizerFunction"}
    ]
    return alias


def _version(transformed: dict) -> str:
    """The logical id of the authorizer's version: SAM names it by a hash of what it publishes."""
    (version,) = [name for name, spec in transformed["Resources"].items() if spec["Type"] == "AWS::Lambda::Version"]
    return version


def _uri_function(uri: dict) -> dict:
    """The function ARN in an API Gateway authorizer URI (Fn::Sub [text, {its one variable}])."""
    ((_, variables),) = uri.values()
    (function,) = variables.values()
    return function


def _authorizer_uris(value, found: list) -> list:
    """Every authorizerUri in an API's OpenAPI body."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "authorizerUri":
                found.append(inner)
            else:
                _authorizer_uris(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _authorizer_uris(inner, found)
    return found


def _invoked(deployed: dict) -> dict[str, dict]:
    """What each attachment of the authorizer invokes, or lets API Gateway invoke: where -> function ARN."""
    invoked = {"output AuthorizerFunctionArn": deployed["Outputs"]["AuthorizerFunctionArn"]["Value"]}
    for name, spec in deployed["Resources"].items():
        properties = spec.get("Properties", {})
        if spec["Type"] in ("AWS::ApiGateway::RestApi", "AWS::ApiGatewayV2::Api"):
            for n, uri in enumerate(_authorizer_uris(properties.get("Body", {}), [])):
                invoked[f"{name} authorizer {n}"] = _uri_function(uri)
        elif spec["Type"] == "AWS::ApiGatewayV2::Authorizer":
            invoked[name] = _uri_function(properties["AuthorizerUri"])
        elif spec["Type"] == "AWS::Lambda::Permission" and "/authorizers/" in str(properties["SourceArn"]):
            invoked[name] = properties["FunctionName"]
    return invoked


def test_by_default_nothing_is_provisioned_and_every_attachment_invokes_the_function(transformed):
    assert transformed["Parameters"]["AuthorizerProvisionedConcurrency"]["Default"] == 0
    deployed = _deployed(transformed, NONE)
    _, alias = _alias(deployed)  # SAM makes it whatever the parameter: nothing invokes it
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    assert _invoked(deployed) == dict.fromkeys(ATTACHMENTS, THE_FUNCTION)


def test_above_zero_the_alias_holds_the_environments_and_every_attachment_invokes_it(transformed):
    deployed = _deployed(transformed, SOME)
    name, alias = _alias(deployed)
    provisioned = Stack(transformed, DEMO | SOME).resolve(alias["Properties"]["ProvisionedConcurrencyConfig"])
    assert provisioned == {"ProvisionedConcurrentExecutions": "5"}
    assert _invoked(deployed) == dict.fromkeys(ATTACHMENTS, {"Ref": name})  # permissions name the alias too


def test_the_alias_runs_a_version_published_for_each_change_of_the_code_or_the_functions_properties(template):
    transformed = sam_transform(template)
    before = _version(transformed)
    with_a_property_changed = copy.deepcopy(template)
    with_a_property_changed["Resources"]["AuthorizerFunction"]["Properties"]["Timeout"] = 16
    assert _version(sam_transform(template, code="s3://bucket/new-code.zip")) != before
    assert _version(sam_transform(with_a_property_changed)) != before
    assert transformed["Resources"][before]["DeletionPolicy"] == "Delete"  # replaced versions do not pile up


def test_a_parameter_value_alone_publishes_no_new_version(template):
    """SAM's hash reads the template, not parameter values (aws/serverless-application-model#3820):
    docs/operations.md tells operators so, and what to do. This fails once SAM changes it."""
    narrowed = sam_transform(template, {"RouteScopes": "GET /orders=orders:read"})
    assert _version(narrowed) == _version(sam_transform(template))


@pytest.mark.parametrize("parameters", [NONE, SOME], ids=["none provisioned", "some provisioned"])
def test_the_local_stack_guards_every_demo_route_with_the_authorizer(template, parameters):
    """SAM CLI's providers, which serve the local APIs, skip an authorizer whose ARN they cannot read (an
    Fn::If, an alias): the local stack hands them the template with its conditions decided and the alias
    served as the function."""
    stack = Stack(template, DEMO | parameters)
    for api_id in ("DemoRestApi", "DemoHttpApi"):
        only_this_api = gateway.only_api(stack.template, api_id)
        api = ApiProvider(gateway.load_stacks(only_this_api, "us-east-1", stack.parameters)).api
        authorizers = {route.path: route.authorizer_object for route in api.routes}
        assert authorizers and all(authorizer is not None for authorizer in authorizers.values()), authorizers
        assert {authorizer.lambda_name for authorizer in authorizers.values()} == {"AuthorizerFunction"}


def test_at_the_busy_share_the_docs_give_a_provisioned_environment_costs_what_on_demand_would():
    figures = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    share = cost.provisioned_concurrency(figures)["busy_share"]
    provisioned = cost.LAMBDA_ARM_PROVISIONED_GB_SECOND + share * cost.LAMBDA_ARM_PROVISIONED_DURATION_GB_SECOND
    assert provisioned == pytest.approx(share * cost.LAMBDA_ARM_GB_SECOND)


def test_the_operations_guide_gives_the_figures_bench_cost_computes_from_the_measured_ones():
    """Prices live in bench/cost.py, measurements in docs/benchmarks.json: `make bench` rewrites the table."""
    figures = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    table = "\n".join(cost.provisioned_concurrency_section(figures))
    assert table in (ROOT / "docs" / "operations.md").read_text()
