"""AuthorizerProvisionedConcurrency: every attachment (the AuthorizerFunctionArn output, the demo APIs'
authorizers and their invoke permissions) invokes the authorizer's alias "live", which holds that many
initialized environments (none at 0, the default) and runs a version of the configuration last deployed.
Checked on the template as CloudFormation deploys it (after SAM's transform), on the digest function's own
code, and on the local stack, which serves the authorizer either way."""

import copy
import json
import sys
import types
from unittest.mock import patch

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from samcli.lib.providers.api_provider import ApiProvider

from bench import cost
from keygate_local import gateway
from keygate_local.local_stack import DEMO
from keygate_local.template import ROOT, Stack
from tests.conftest import references, sam_transform

# As sam deploy passes them: strings.
NONE, SOME = {"AuthorizerProvisionedConcurrency": "0"}, {"AuthorizerProvisionedConcurrency": "5"}
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
    """The function ARN in an API Gateway authorizer URI, an Fn::Sub: what it reads beside pseudo parameters."""
    (function,) = {name for name in references(uri) if not name.startswith("AWS::")}
    return {"Ref": function}


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


def test_every_attachment_invokes_the_alias_whatever_the_count(transformed):
    """A REST API's deployment is named by a hash of its body as written: had the attachments switched between
    function and alias with the parameter, the stage would have kept invoking what it did before."""
    none, some = _deployed(transformed, NONE), _deployed(transformed, SOME)
    name, alias = _alias(none)
    assert transformed["Parameters"]["AuthorizerProvisionedConcurrency"]["Default"] == "0"
    assert _invoked(none) == _invoked(some) == dict.fromkeys(ATTACHMENTS, {"Ref": name})  # permissions too
    rest_bodies = [spec["Properties"]["Body"] for spec in transformed["Resources"].values()
                   if spec["Type"] == "AWS::ApiGateway::RestApi"]  # fmt: skip
    assert "Fn::If" not in json.dumps(_authorizer_uris(rest_bodies, []))  # what names the deployment is fixed


def test_above_zero_the_alias_holds_that_many_environments_and_at_zero_none(transformed):
    _, unprovisioned = _alias(_deployed(transformed, NONE))
    _, alias = _alias(_deployed(transformed, SOME))
    assert "ProvisionedConcurrencyConfig" not in unprovisioned["Properties"]
    provisioned = Stack(transformed, DEMO | SOME).resolve(alias["Properties"]["ProvisionedConcurrencyConfig"])
    assert provisioned == {"ProvisionedConcurrentExecutions": "5"}


@pytest.mark.parametrize("count", ["00", "1.5", "-1", "10000", " 2"])
def test_a_count_lambda_would_refuse_is_refused_before_the_deploy(template, count):
    with pytest.raises(ValueError, match="AuthorizerProvisionedConcurrency"):
        Stack(template, {"AuthorizerProvisionedConcurrency": count})


def test_the_alias_runs_a_version_published_for_each_change_of_the_code_or_the_functions_properties(template):
    transformed = sam_transform(template)
    before = _version(transformed)
    with_a_property_changed = copy.deepcopy(template)
    with_a_property_changed["Resources"]["AuthorizerFunction"]["Properties"]["Timeout"] = 16
    assert _version(sam_transform(template, code="s3://bucket/new-code.zip")) != before
    assert _version(sam_transform(with_a_property_changed)) != before
    assert transformed["Resources"][before]["DeletionPolicy"] == "Delete"  # replaced versions do not pile up


def test_sams_hash_alone_misses_a_parameter_value(template):
    """Why AuthorizerConfiguration exists: SAM names the version by a hash of the template, not of parameter
    values (aws/serverless-application-model#3820). This fails once SAM changes it."""
    narrowed = sam_transform(template, {"RouteScopes": "GET /orders=orders:read"})
    assert _version(narrowed) == _version(sam_transform(template))


def test_a_new_configuration_digest_replaces_the_version_and_is_a_new_one(transformed):
    """The version's Description is create-only (CloudFormation's schema for AWS::Lambda::Version: it replaces
    the version when it changes), and the same text in the function's Description changes the configuration
    Lambda publishes: a new version, never the number the alias already runs."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Lambda::Version").schema
    assert "/properties/Description" in schema["createOnlyProperties"]
    digest = {"Fn::Sub": "Configuration ${AuthorizerConfiguration.Digest}."}
    deployed = _deployed(transformed, NONE)
    assert deployed["Resources"][_version(transformed)]["Properties"]["Description"] == digest
    function = deployed["Resources"]["AuthorizerFunction"]["Properties"]["Description"]["Fn::Join"][1]
    assert function[-1] == {"Fn::Sub": " " + digest["Fn::Sub"]}


def test_the_digest_covers_everything_the_published_configuration_is_built_from(transformed):
    """Every parameter and resource the authorizer's function reads (as CloudFormation receives it, so SAM's
    globals and generated role included) is in AuthorizerConfiguration, and nothing else: what does not
    change the published configuration (the reserved concurrency, the description carrying the digest) is
    left out, so that the digest never moves without the configuration."""
    conditions = transformed["Conditions"]
    function = dict(transformed["Resources"]["AuthorizerFunction"]["Properties"])
    del function["ReservedConcurrentExecutions"], function["Description"]
    configuration = transformed["Resources"]["AuthorizerConfiguration"]["Properties"]["Configuration"]
    pseudo = {name for name in references(function) if name.startswith("AWS::")}
    assert references(configuration, conditions) == references(function, conditions) - pseudo
    assert all(name in references(value, conditions) for name, value in configuration.items())  # keyed by what it reads


def _digest_handler(template: dict):
    """The digest function's inline code, run here with a cfnresponse that records what it sends."""
    sent = []
    cfnresponse = types.ModuleType("cfnresponse")
    cfnresponse.SUCCESS, cfnresponse.FAILED = "SUCCESS", "FAILED"
    cfnresponse.send = lambda event, context, status, data, physical_id, reason=None: sent.append(
        (status, data, physical_id, reason)
    )
    namespace: dict = {}
    code = template["Resources"]["ConfigurationDigestFunction"]["Properties"]["Code"]["ZipFile"]
    with patch.dict(sys.modules, {"cfnresponse": cfnresponse}):
        exec(compile(code, "ConfigurationDigestFunction", "exec"), namespace)  # noqa: S102 - the template's own code
    return namespace["handler"], sent


def _event(request: str, configuration: dict) -> dict:
    return {"RequestType": request, "ResourceProperties": {"ServiceToken": "arn", "Configuration": configuration}}


def test_the_digest_is_the_same_for_the_same_values_and_new_for_any_change(template):
    handler, sent = _digest_handler(template)
    configuration = {"RouteScopes": "* /*=read", "LogLevel": "INFO"}
    handler(_event("Create", configuration), None)
    handler(_event("Update", dict(reversed(configuration.items()))), None)
    handler(_event("Update", configuration | {"RouteScopes": "GET /orders=read"}), None)
    handler(_event("Delete", configuration), None)
    (status, data, physical, _), same, narrowed, deleted = sent
    assert status == "SUCCESS" and len(data["Digest"]) == 32 and physical == data["Digest"]
    assert same[1] == data and narrowed[1] != data and deleted[0] == "SUCCESS"


def test_a_digest_that_cannot_be_made_fails_the_deploy_naming_no_value(template):
    handler, sent = _digest_handler(template)
    handler({"RequestType": "Create", "PhysicalResourceId": "old", "ResourceProperties": "GET /secret-route"}, None)
    ((status, data, physical, reason),) = sent
    assert (status, data, physical) == ("FAILED", {}, "old")
    assert reason == "no digest: AttributeError"


def test_a_delete_always_succeeds_so_it_never_blocks_the_stack(template):
    handler, sent = _digest_handler(template)
    handler({"RequestType": "Delete", "PhysicalResourceId": "0123abcd", "ResourceProperties": "malformed"}, None)
    assert sent == [("SUCCESS", {}, "0123abcd", None)]


def test_the_local_stack_guards_every_demo_route_with_the_authorizer(template):
    """SAM CLI's providers, which serve the local APIs, skip an authorizer whose ARN they cannot read (an
    Fn::If, an alias): the local stack hands them the template with its conditions decided and the alias
    served as the function."""
    stack = Stack(template, DEMO | SOME)
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
