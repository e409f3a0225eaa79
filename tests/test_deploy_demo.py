"""The demo APIs deploy only with DeployDemo=true: the template as CloudFormation would deploy it (after SAM's
transform), the local stack's reading of its conditions, and the nested example's deploy settings."""

import json
import re
import tomllib

import pytest

from keygate_local.local_stack import DEMO
from keygate_local.template import ROOT, InvalidParameter, Stack, UnsupportedCondition, load_template

DEMO_CONDITION = "DemoDeployed"
API_TYPES = ("AWS::ApiGateway::RestApi", "AWS::ApiGatewayV2::Api")


def _references(value) -> set[str]:
    """Every name a value refers to: Ref, GetAtt, and ${Name} or ${Name.Attribute} in a Sub."""
    if isinstance(value, list):
        return set().union(*map(_references, value)) if value else set()
    if isinstance(value, str):
        return {name.split(".")[0] for name in re.findall(r"\$\{([A-Za-z0-9:.]+)\}", value)}
    if not isinstance(value, dict):
        return set()
    names = set()
    for key, inner in value.items():
        if key == "Ref" and isinstance(inner, str):
            names.add(inner)
        elif key == "Fn::GetAtt":
            names.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
        else:
            names |= _references(inner)
    return names


def _deployed(template: dict, parameters: dict[str, str]) -> dict:
    return Stack(template, parameters).template


def test_with_its_defaults_the_template_deploys_no_demo_resource_or_output(transformed):
    deployed = _deployed(transformed, {})
    assert not [name for name in deployed["Resources"] if name.startswith("Demo")]
    assert not [name for name in deployed["Outputs"] if name.startswith("Demo")]
    apis = [name for name, spec in deployed["Resources"].items() if spec["Type"] in API_TYPES]
    assert apis == ["LeakReportApi"]  # GitHub's, with no authorizer: no API a key opens
    assert transformed["Parameters"]["DeployDemo"]["Default"] == "false"


def test_deploy_demo_adds_the_demo_and_nothing_else(transformed):
    without, with_demo = _deployed(transformed, {}), _deployed(transformed, DEMO)
    added = set(with_demo["Resources"]) - set(without["Resources"])
    assert added and all(name.startswith("Demo") for name in added)
    assert {name for name, spec in with_demo["Resources"].items() if spec["Type"] in API_TYPES} == {
        "DemoRestApi", "DemoHttpApi", "DemoWebSocketApi", "LeakReportApi",
    }  # fmt: skip
    assert set(with_demo["Outputs"]) - set(without["Outputs"]) == {
        "DemoUsagePlanId", "DemoRestApiUrl", "DemoHttpApiUrl", "DemoWebSocketUrl",
    }  # fmt: skip


def test_every_use_of_a_demo_parameter_or_resource_is_behind_the_condition(transformed):
    demo_parameters = {name for name in transformed["Parameters"] if name.startswith("Demo")}
    demo_resources = {
        name for name, spec in transformed["Resources"].items() if spec.get("Condition") == DEMO_CONDITION
    }
    assert demo_parameters and demo_resources
    for section in ("Resources", "Outputs"):
        for name, spec in transformed[section].items():
            used = _references({key: value for key, value in spec.items() if key != "Condition"})
            if used & (demo_parameters | demo_resources):
                assert spec.get("Condition") == DEMO_CONDITION, f"{section} {name} uses the demo without its condition"


def test_the_nested_example_deploys_no_demo(template):
    example = load_template(ROOT / "examples" / "template.yaml")
    nested = example["Resources"]["Keygate"]["Properties"]["Parameters"]
    assert nested.get("DeployDemo", template["Parameters"]["DeployDemo"]["Default"]) == "false"


def _templates() -> list:
    skipped = {".venv", ".venv-scan", ".aws-sam", "node_modules", ".git"}
    return [path for path in ROOT.rglob("*.yaml") if not skipped & set(path.relative_to(ROOT).parts)]


def _capabilities(samconfig: dict) -> set[str]:
    value = samconfig["default"]["deploy"]["parameters"]["capabilities"]
    return set(value.split() if isinstance(value, str) else value)


def test_every_template_nesting_an_application_deploys_with_auto_expand():
    nesting = []
    for path in _templates():
        text = path.read_text()
        if "AWSTemplateFormatVersion" not in text and "Transform" not in text:
            continue
        resources = load_template(path).get("Resources", {})
        if any(spec.get("Type") == "AWS::Serverless::Application" for spec in resources.values()):
            nesting.append(path)
            samconfig = path.parent / "samconfig.toml"
            assert samconfig.exists(), f"{path.relative_to(ROOT)} nests an application but has no samconfig.toml"
            capabilities = _capabilities(tomllib.loads(samconfig.read_text()))
            assert {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"} <= capabilities, samconfig.relative_to(ROOT)
    assert [path.relative_to(ROOT).as_posix() for path in nesting] == ["examples/template.yaml"]
    root = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert "CAPABILITY_IAM" in _capabilities(root)


# --- the local stack reads the conditions as CloudFormation does ---


def test_the_local_stack_leaves_out_what_a_false_condition_leaves_out(template):
    default, demo = Stack(template), Stack(template, DEMO)
    assert "DemoFunction" not in default.functions() and "DemoFunction" in demo.functions()
    assert "AlarmTopic" not in default.topics()
    assert "AlarmTopic" in Stack(template, {"AlarmEmail": "ops@example.com"}).topics()
    assert "PepperKey" not in default.template["Resources"]
    assert "AlarmTopicArn" not in default.template["Outputs"]
    with pytest.raises(KeyError, match="DemoFunction is not in this stack"):
        default.resource("DemoFunction")


def test_every_condition_of_the_template_evaluates_for_each_allowed_value(template):
    for name, spec in template["Parameters"].items():
        for value in spec.get("AllowedValues", [])[:3]:
            stack = Stack(template, {name: value})
            for condition in template["Conditions"]:
                assert stack._condition(condition) in (True, False)


@pytest.mark.parametrize(
    "condition",
    [
        {"Fn::Contains": [["a"], "a"]},  # not a condition function at all
        {"Fn::EachMemberEquals": [["a"], "a"]},  # Rules only
        "true",  # not a function
        {"Condition": "NoSuchCondition"},
    ],
)
def test_a_condition_the_local_stack_cannot_evaluate_is_refused_naming_it(template, condition):
    strange = json.loads(json.dumps(template))
    strange["Conditions"]["Strange"] = condition
    strange["Resources"]["DemoFunction"]["Condition"] = "Strange"
    with pytest.raises(UnsupportedCondition, match="Strange|NoSuchCondition"):
        Stack(strange)


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"DeployDemo": "yes"}, "DeployDemo"),
        ({"AuthorizerCacheTtl": "3601"}, "AuthorizerCacheTtl"),
        ({"KeyPrefix": "KG"}, "KeyPrefix"),
        ({"LogRetentionDays": "2"}, "LogRetentionDays"),
    ],
)
def test_a_parameter_value_cloudformation_would_refuse_is_refused_naming_it(template, parameters, named):
    with pytest.raises(InvalidParameter, match=named):
        Stack(template, parameters)
