"""template.yaml: least privilege, wiring, and agreement with the code's own defaults."""

import re

import pytest

from keygate import config, keys, store
from keygate_local.template import NO_VALUE, ROOT, Stack, load_template
from tests.conftest import references


def test_no_function_logs_its_event_or_traces_its_response(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    for name, resource in template["Resources"].items():
        own = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        assert not {"POWERTOOLS_LOGGER_LOG_EVENT", "POWERTOOLS_TRACER_CAPTURE_RESPONSE"} & set(own), name


def test_parameter_defaults_are_the_codes_defaults(template):
    parameters = template["Parameters"]
    assert parameters["KeyPrefix"]["Default"] == config.Config.key_prefix
    assert parameters["KeyPrefix"]["AllowedPattern"] == f"^{keys.PREFIX_PATTERN}$"
    assert parameters["Argon2MemoryKiB"]["Default"] == config.Config.argon2_memory_kib
    assert parameters["Argon2TimeCost"]["Default"] == config.Config.argon2_time_cost
    assert parameters["Argon2Parallelism"]["Default"] == config.Config.argon2_parallelism
    assert parameters["RetentionDays"]["Default"] == config.Config.retention_days


def test_table_is_protected_and_its_names_are_the_stores(template):
    table = template["Resources"]["KeysTable"]
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "purge_at", "Enabled": True}
    assert [index["IndexName"] for index in properties["GlobalSecondaryIndexes"]] == [store.OWNER_INDEX]
    assert table["DeletionPolicy"] == "Retain"
    assert Stack(template).resolve(properties["DeletionProtectionEnabled"]) is True
    assert (
        Stack(template, {"TableDeletionProtection": "false"}).resolve(properties["DeletionProtectionEnabled"]) is False
    )


def test_pepper_secret_is_generated_in_the_versioned_shape(template):
    generate = template["Resources"]["PepperSecret"]["Properties"]["GenerateSecretString"]
    assert generate["SecretStringTemplate"] == '{"current": "v1"}'
    assert generate["GenerateStringKey"] == "v1"
    assert generate["PasswordLength"] >= 32


def test_demo_apis_are_protected_by_the_authorizer_in_every_shape(template):
    rest = template["Resources"]["DemoRestApi"]["Properties"]["Auth"]
    assert rest["DefaultAuthorizer"] == "KeygateToken"
    token, request = rest["Authorizers"]["KeygateToken"], rest["Authorizers"]["KeygateRequest"]
    assert (token["FunctionPayloadType"], token["Identity"]["Header"]) == ("TOKEN", "Authorization")
    assert (request["FunctionPayloadType"], request["Identity"]["Headers"]) == ("REQUEST", ["x-api-key"])
    http = template["Resources"]["DemoHttpApi"]["Properties"]["Auth"]
    lambda_authorizer = http["Authorizers"][http["DefaultAuthorizer"]]
    assert lambda_authorizer["EnableSimpleResponses"] is True
    assert lambda_authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    for authorizer in (token, request, lambda_authorizer):
        assert authorizer["FunctionArn"] == template["Outputs"]["AuthorizerFunctionArn"]["Value"]  # what is invoked
        assert authorizer["Identity"]["ReauthorizeEvery"] == {"Ref": "AuthorizerCacheTtl"}
    routes = template["Resources"]["DemoFunction"]["Properties"]["Events"]
    assert sum(route["Type"] == "Api" for route in routes.values()) >= 2
    assert sum(route["Type"] == "HttpApi" for route in routes.values()) >= 2


def test_cache_ttl_defaults_to_zero_so_revocation_is_immediate(template):
    assert template["Parameters"]["AuthorizerCacheTtl"]["Default"] == 0


def test_every_function_handler_imports(stack, load):
    for function in stack.functions():
        assert callable(load(function)), function


def test_every_output_and_reference_names_something_in_the_template(template):
    pseudo = {
        "AWS::Region", "AWS::URLSuffix", "AWS::NoValue", "AWS::Partition", "AWS::AccountId", "AWS::StackName",
        "AWS::StackId",
    }  # fmt: skip
    sam_roles = {f"{function}Role" for function in Stack(template).functions()}  # SAM makes one per function
    sam_apis = {name for name, spec in template["Resources"].items() if spec["Type"] == "AWS::Serverless::Api"}
    sam_stages = {f"{api}.Stage" for api in sam_apis}  # SAM's reference to an API's stage
    sam_aliases = {  # SAM's reference to the alias of a function with AutoPublishAlias
        f"{name}.Alias"
        for name, spec in template["Resources"].items()
        if "AutoPublishAlias" in spec.get("Properties", {})
    }
    names = set(template["Resources"]) | set(template["Parameters"]) | pseudo | sam_roles | sam_stages | sam_aliases
    assert references(template["Outputs"]) <= names
    assert references(template["Resources"]) <= names
    assert {
        "AuthorizerFunctionArn",
        "IssueKeyFunctionName",
        "RevokeKeyFunctionName",
        "GetKeyFunctionName",
        "ListKeysFunctionName",
        "KeysTableName",
        "DemoRestApiUrl",
        "DemoHttpApiUrl",
    } <= set(template["Outputs"])


def test_authorizer_concurrency_is_reserved_only_when_a_number_is_given(template):
    reserved = template["Resources"]["AuthorizerFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert Stack(template).resolve(reserved) is NO_VALUE  # 0, the default: nothing reserved
    assert Stack(template, {"AuthorizerReservedConcurrency": 50}).resolve(reserved) == 50


def test_every_route_of_the_demo_apis_is_throttled_by_the_parameters(template):
    limits = {"ThrottlingRateLimit": {"Ref": "DemoThrottlingRateLimit"},
              "ThrottlingBurstLimit": {"Ref": "DemoThrottlingBurstLimit"}}  # fmt: skip
    (rest,) = template["Resources"]["DemoRestApi"]["Properties"]["MethodSettings"]
    assert rest == {"ResourcePath": "/*", "HttpMethod": "*"} | limits
    assert template["Resources"]["DemoHttpApi"]["Properties"]["DefaultRouteSettings"] == limits


def _validation_expression(template, prefix: str) -> str:
    token = template["Resources"]["DemoRestApi"]["Properties"]["Auth"]["Authorizers"]["KeygateToken"]
    return Stack(template, {"KeyPrefix": prefix}).resolve(token["Identity"]["ValidationExpression"])


@pytest.mark.parametrize("prefix", ["kg", "acme"])
def test_the_token_validation_expression_admits_every_key_of_the_deployment(template, prefix):
    expression = _validation_expression(template, prefix)
    for scheme in ("Bearer ", "bearer ", "BEARER  ", "bEaReR "):
        for _ in range(50):
            value = scheme + keys.generate(prefix).api_key
            assert re.fullmatch(expression, value), value  # anchored: full match and search agree
            assert re.match(expression, value), value


@pytest.mark.parametrize(
    "value",
    ["hello", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token {key}", "{key}", "Bearer\t{key}",
     "Bearer {key}x", "Bearer {key} {key}", "Bearer x{key}", "Bearer {other_prefix}", "Bearer {key_truncated}",
     "Bearer {key_with_nbsp}"],
)  # fmt: skip
def test_the_token_validation_expression_refuses_what_is_not_bearer_and_a_key(template, value):
    key = keys.generate("kg").api_key
    value = value.format(
        key=key, other_prefix=keys.generate("acme").api_key, key_truncated=key[:-1], key_with_nbsp=f"{key}\u00a0"
    )
    assert not re.match(_validation_expression(template, "kg"), value)


def test_the_example_nests_keygate_with_its_own_parameters_and_outputs(template):
    example = load_template(ROOT / "examples" / "template.yaml")
    nested = example["Resources"]["Keygate"]["Properties"]
    assert (ROOT / "examples" / nested["Location"]).resolve() == ROOT / "template.yaml"
    assert set(nested["Parameters"]) <= set(template["Parameters"])
    attributes = [".".join(att) if isinstance(att, list) else att for att in _get_atts(example)]
    used = {att.split(".")[-1] for att in attributes if att.startswith("Keygate.Outputs.")}
    assert used and used <= set(template["Outputs"])


def _get_atts(value) -> list:
    if isinstance(value, dict):
        found = [value["Fn::GetAtt"]] if "Fn::GetAtt" in value else []
        return found + [att for inner in value.values() for att in _get_atts(inner)]
    if isinstance(value, list):
        return [att for inner in value for att in _get_atts(inner)]
    return []


def test_the_template_can_be_published_to_the_serverless_application_repository(template):
    application = template["Metadata"]["AWS::ServerlessRepo::Application"]
    assert {"Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SemanticVersion"} <= set(
        application
    )
    assert (ROOT / application["LicenseUrl"]).is_file() and (ROOT / application["ReadmeUrl"]).is_file()
    assert re.fullmatch(r"\d+\.\d+\.\d+", application["SemanticVersion"]) and "SourceCodeUrl" in application


def _dependencies(template: dict) -> dict[str, set[str]]:
    """What each resource waits for once SAM has expanded it: a function waits for its own role
    (FunctionRole, which carries its Policies) and for what its properties and the Globals name."""
    resources = template["Resources"]
    names = set(resources) | {f"{name}Role" for name, spec in resources.items() if spec["Type"].endswith("Function")}
    graph: dict[str, set[str]] = {}
    for name, spec in resources.items():
        properties = dict(spec.get("Properties", {}))
        depends_on = spec.get("DependsOn", [])
        waits = set([depends_on] if isinstance(depends_on, str) else depends_on)
        if spec["Type"] == "AWS::Serverless::Function":
            graph[f"{name}Role"] = references(properties.pop("Policies", [])) & names
            waits |= {f"{name}Role"} | references(template.get("Globals", {}).get("Function", {}))
        graph[name] = (waits | references(properties)) & names
    return graph


def test_no_resource_waits_for_itself(template):
    """CloudFormation refuses a template whose resources depend on each other in a circle."""
    graph, state = _dependencies(template), {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for needed in sorted(graph.get(name, ())):
            assert state.get(needed) != "open", f"circular dependency: {' -> '.join([*path, name, needed])}"
            if needed not in state:
                visit(needed, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
