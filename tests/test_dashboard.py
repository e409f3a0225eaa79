"""The operators' pictures read what the code writes: every metric the dashboard shows is one a function
emits (name, namespace and dimensions), and every JSON path a Contributor Insights rule reads is in the
authorizer's log lines. A metric or log field renamed in the code fails here, not as an empty graph."""

import inspect
import json
import re
from pathlib import Path

import pytest

from keygate.authorize import Reason
from keygate_local.template import Stack
from tests.conftest import add_pepper_version, invoke
from tests.helpers.authorizer import decide, log_records, shaped

SRC = Path(__file__).resolve().parent.parent / "src"
RULES = ["TopKeysRule", "TopRefusedKeysRule", "TopOwnersRule"]
QUERIES = ["KeyUsageByDayQuery", "RefusalsByReasonQuery", "KeysUnusedSinceQuery"]


def decision_messages(authorizer) -> list[str]:
    """The messages of the authorizer's one line per decision, from the handler as loaded."""
    handler = inspect.unwrap(authorizer).__globals__
    return [handler["ALLOWED"], handler["REFUSED"], handler["FAILED_CLOSED"]]


def named_functions(stack: Stack) -> Stack:
    """The stack with its functions named as the local stack serves them: by their logical ids."""
    stack.physical_ids |= {function: function for function in stack.functions()}
    return stack


def dashboard_metrics(stack: Stack) -> list[list]:
    stack = named_functions(stack)
    body = stack.resolve(stack.resource("OperatorsDashboard")["Properties"]["DashboardBody"])
    widgets = json.loads(body)["widgets"]
    return [metric for widget in widgets for metric in widget["properties"]["metrics"] if "expression" not in metric[0]]


@pytest.fixture
def emitted(issued, admin, authorizer, capsys) -> list[dict]:
    """The EMF records of an authorizer that allowed (by Argon2, then from its cache) and refused."""
    key, disabled = issued(), issued()
    invoke(admin["UpdateKey"], {"key_id": disabled["key_id"], "enabled": False})
    capsys.readouterr()
    for api_key in (key["api_key"], key["api_key"], disabled["api_key"], "kg_nonsense"):
        decide(authorizer, shaped("rest-token", authorization=f"Bearer {api_key}"))
    return [record for record in log_records(capsys.readouterr().out) if "_aws" in record]


def code_metric_names(authorizer) -> set[str]:
    """Every metric name the code passes to powertools: the decision's reason, how a secret was checked (the
    authorizer's VERIFIED_BY, as loaded), and each name written out in a call."""
    names = {reason.value for reason in Reason} | set(inspect.unwrap(authorizer).__globals__["VERIFIED_BY"].values())
    for source in SRC.rglob("*.py"):
        names |= set(re.findall(r'add_metric\(name="(\w+)"', source.read_text()))
    return names


def test_every_keygate_metric_on_the_dashboard_is_one_the_code_emits_as_emitted(stack, emitted, authorizer):
    directives = [(record["_aws"]["CloudWatchMetrics"][0], record) for record in emitted]
    shapes = {
        (directive["Namespace"], tuple((name, record[name]) for name in directive["Dimensions"][0]))
        for directive, record in directives
    }
    seen = {metric["Name"] for directive, _ in directives for metric in directive["Metrics"]}
    assert {"Allowed", "VerifiedKeyCacheMiss", "VerifiedKeyCacheHit", "DisabledKey", "MalformedKey"} <= seen
    names = code_metric_names(authorizer)
    assert seen <= names
    shown = [metric for metric in dashboard_metrics(stack) if metric[0] != "AWS/Lambda"]
    assert shown
    emitters = {"AuthorizerFunction", "LeakReportFunction"}  # the functions that emit metrics, alike
    settings = {"POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME"}
    assert len({tuple(stack.function_environment(f)[name] for name in sorted(settings)) for f in emitters}) == 1
    for namespace, name, *dimensions in shown:
        dimensions = [part for part in dimensions if isinstance(part, str)]
        assert name in names, name
        assert (namespace, tuple(zip(dimensions[::2], dimensions[1::2], strict=True))) in shapes, name


def test_the_dashboard_shows_every_reason_and_counts_each_refusal_reason_as_refused(stack):
    shown = {metric[1] for metric in dashboard_metrics(stack) if metric[0] == "keygate"}
    assert {reason.value for reason in Reason} <= shown
    body = stack.resolve(named_functions(stack).resource("OperatorsDashboard")["Properties"]["DashboardBody"])
    (outcomes, *_) = json.loads(body)["widgets"]
    ids = {m[-1]["id"]: m[1] for m in outcomes["properties"]["metrics"] if len(m) > 1 and "id" in m[-1]}
    expressions = [m[0] for m in outcomes["properties"]["metrics"] if isinstance(m[0], dict)]
    (refused,) = [expression["expression"] for expression in expressions if expression["id"] == "refused"]
    counted = {ids[name] for name in re.findall(r"FILL\((\w+), 0\)", refused)}
    assert counted == {reason.value for reason in Reason} - {Reason.ALLOWED.value, Reason.FAULT.value}


def test_the_dashboard_s_lambda_metrics_are_of_functions_in_the_template(stack):
    functions = set(stack.functions())
    lambda_metrics = [metric for metric in dashboard_metrics(stack) if metric[0] == "AWS/Lambda"]
    assert {metric[1] for metric in lambda_metrics} == {"Duration", "Throttles", "Errors", "Invocations"}
    for metric in lambda_metrics:
        assert metric[2] == "FunctionName" and metric[3] in functions, metric


def rule_body(stack: Stack, rule: str) -> dict:
    return json.loads(stack.resolve(stack.resource(rule)["Properties"]["RuleBody"]))


def matches(line: dict, condition: dict) -> bool:
    value = line.get(condition["Match"].removeprefix("$."))
    if "IsPresent" in condition:
        return (value is not None) is condition["IsPresent"]
    if "NotIn" in condition:
        return value not in condition["NotIn"]
    return value in condition["In"]


@pytest.mark.parametrize("rule", RULES)
def test_every_path_a_contributor_insights_rule_reads_is_in_the_authorizer_s_log_lines(
    rule, stack, issued, admin, authorizer, capsys
):
    key, disabled = issued(), issued()
    invoke(admin["UpdateKey"], {"key_id": disabled["key_id"], "enabled": False})
    add_pepper_version(stack)  # so each verify re-hashes, and logs a line of its own with the same fields
    capsys.readouterr()
    for api_key in (key["api_key"], disabled["api_key"]):
        decide(authorizer, shaped("http-api", authorization=f"Bearer {api_key}"))
    lines = [line for line in log_records(capsys.readouterr().out) if "_aws" not in line]
    assert len([line for line in lines if line["message"].startswith("key re-hashed")]) == 2
    body = rule_body(stack, rule)
    assert body["LogGroupNames"] == [stack.resolve({"Ref": "AuthorizerLogGroup"})]
    counted = [line for line in lines if all(matches(line, c) for c in body["Contribution"]["Filters"])]
    assert counted, f"{rule} counts none of the authorizer's log lines"
    assert len(counted) == len({line["key_id"] for line in counted}), "a request counted twice"
    for path in body["Contribution"]["Keys"]:
        assert all(path.removeprefix("$.") in line for line in counted), path
    assert {line["key_id"] for line in counted} <= {key["key_id"], disabled["key_id"]}


def test_every_rule_counts_the_one_line_per_decision(stack, authorizer):
    for rule in RULES:
        (messages,) = [c["In"] for c in rule_body(stack, rule)["Contribution"]["Filters"] if c["Match"] == "$.message"]
        assert messages == decision_messages(authorizer), rule


def test_the_refused_keys_rule_counts_refusals_and_the_owners_rule_owners(stack):
    refused = rule_body(stack, "TopRefusedKeysRule")["Contribution"]
    assert {"Match": "$.reason", "NotIn": [Reason.ALLOWED.value]} in refused["Filters"]
    assert rule_body(stack, "TopOwnersRule")["Contribution"]["Keys"] == ["$.owner"]


@pytest.mark.parametrize("query", QUERIES)
def test_the_saved_queries_read_the_fields_and_messages_the_authorizer_writes(query, stack, issued, authorizer, capsys):
    key = issued()
    capsys.readouterr()
    decide(authorizer, shaped("http-api", authorization=f"Bearer {key['api_key']}"))
    allowed, refused, failed_closed = decision_messages(authorizer)
    (line,) = [line for line in log_records(capsys.readouterr().out) if line.get("message") == allowed]
    properties = stack.resource(query)["Properties"]
    assert properties["LogGroupNames"] == [{"Ref": "AuthorizerLogGroup"}]
    text = properties["QueryString"]
    read = set(re.findall(r"\b(key_id|reason|owner|message|route|api)\b", text))
    assert read and read <= set(line), read - set(line)
    assert set(re.findall(r'"(key [a-z]+|authorization failed closed)"', text)) <= {allowed, refused, failed_closed}
    for reason in re.findall(r'reason !?= "(\w+)"', text):
        assert reason in {member.value for member in Reason}


def test_the_operator_views_can_be_left_out(template):
    without = Stack(template, {"DeployOperatorViews": "false"})
    views = {"AWS::CloudWatch::Dashboard", "AWS::CloudWatch::InsightRule", "AWS::Logs::QueryDefinition"}
    assert not [name for name, spec in without.template["Resources"].items() if spec["Type"] in views]
    assert "DashboardUrl" not in without.template.get("Outputs", {})
    assert len([spec for spec in Stack(template).template["Resources"].values() if spec["Type"] in views]) == 7
