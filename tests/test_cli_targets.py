"""The CLI finds a deployed stack's functions in its CloudFormation outputs."""

import argparse
import getpass
import io
import json

import boto3
import pytest

from keygate_cli.cli import ACTIONS, EXIT_USAGE, Fault, actor, function_names, main, parser, payload
from keygate_local.template import Stack
from tests.helpers.regions import REGION, REGIONAL

ADMIN = (
    "IssueKey", "UpdateKey", "RotateKey", "RevokeKey", "GetKey", "ListKeys", "KeyHistory", "PepperStatus",
    "FlushAuthorizerCache", "ReportLeak", "ExplainKey",
)  # fmt: skip
STACK = {
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {f"{name}FunctionName": {"Value": f"prod-{name}-fn"} for name in ADMIN},
}


def arguments(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


def test_a_local_endpoint_uses_the_template_names():
    names = function_names(arguments("--endpoint-url", "http://127.0.0.1:1", "get", "A" * 16), boto3.session.Session())
    assert names["get"] == "GetKeyFunction" and names["issue"] == "IssueKeyFunction"


def test_a_deployed_stack_uses_its_outputs(aws):
    boto3.client("cloudformation").create_stack(StackName="keygate-prod", TemplateBody=json.dumps(STACK))
    session = boto3.session.Session()
    for verb, logical in ACTIONS.items():
        argv = {"list": ["list"], "pepper-status": ["pepper-status"], "flush-cache": ["flush-cache"]}.get(verb)
        argv = argv or {"issue": ["issue", "--name", "n", "--owner", "o"], "report-leak": ["report-leak"]}.get(verb)
        argv = argv or {"explain": ["explain", "A" * 16, "--route", "GET /x"]}.get(verb) or [verb, "A" * 16]
        assert function_names(arguments("--stack-name", "keygate-prod", *argv), session) == {verb: f"prod-{logical}-fn"}


def test_an_older_stack_still_answers_the_commands_it_has(aws):
    older = {"Resources": STACK["Resources"], "Outputs": {"ListKeysFunctionName": {"Value": "old-list"}}}
    boto3.client("cloudformation").create_stack(StackName="older", TemplateBody=json.dumps(older))
    assert function_names(arguments("--stack-name", "older", "list"), boto3.session.Session()) == {"list": "old-list"}
    with pytest.raises(Fault, match="has no output ExplainKeyFunctionName: is it a keygate stack of this version"):
        function_names(
            arguments("--stack-name", "older", "explain", "A" * 16, "--route", "GET /x"), boto3.session.Session()
        )


def test_a_regional_stack_answers_its_reads_and_sends_writes_to_the_primary(aws, template):
    regional = Stack(template, REGIONAL, region=REGION)
    outputs = {name: {"Value": f"eu-{name}"} for name in regional.template["Outputs"] if name.endswith("FunctionName")}
    boto3.client("cloudformation").create_stack(
        StackName="regional", TemplateBody=json.dumps({"Resources": STACK["Resources"], "Outputs": outputs})
    )
    session = boto3.session.Session()
    assert function_names(arguments("--stack-name", "regional", "list"), session) == {"list": "eu-ListKeysFunctionName"}
    with pytest.raises(Fault, match="'regional' is a regional stack, which writes no key: revoke in the primary"):
        function_names(arguments("--stack-name", "regional", "revoke", "A" * 16), session)


def test_a_stack_without_keygate_outputs_is_a_clear_fault(aws):
    other = {"Resources": STACK["Resources"], "Outputs": {"Something": {"Value": "x"}}}
    boto3.client("cloudformation").create_stack(StackName="other", TemplateBody=json.dumps(other))
    with pytest.raises(Fault, match="has no output ListKeysFunctionName"):
        function_names(arguments("--stack-name", "other", "list"), boto3.session.Session())


def test_a_missing_stack_is_a_clear_fault(aws):
    with pytest.raises(Fault, match="cannot read stack 'nope'"):
        function_names(arguments("--stack-name", "nope", "list"), boto3.session.Session())


def test_the_payload_holds_only_what_was_given():
    assert payload(arguments("issue", "--name", "n", "--owner", "o")) == {"name": "n", "owner": "o"}
    full = arguments("issue", "--name", "n", "--owner", "o", "--scope", "a", "--expires-at", "2099-01-01T00:00:00Z")
    assert payload(full) == {"name": "n", "owner": "o", "scopes": ["a"], "expires_at": "2099-01-01T00:00:00Z"}
    bound = arguments("issue", "--name", "n", "--owner", "o", "--api", "a1b2c3d4e5/prod", "--api", "*/dev")
    assert payload(bound)["apis"] == ["a1b2c3d4e5/prod", "*/dev"]
    assert payload(arguments("list", "--limit", "3")) == {"limit": 3}
    assert payload(arguments("revoke", "K" * 16)) == {"key_id": "K" * 16}
    shared = arguments("issue", "--name", "n", "--owner", "o", "--usage-plan-id", "p1", "--quota-per", "owner")
    assert payload(shared) == {"name": "n", "owner": "o", "usage_plan_id": "p1", "quota_per": "owner"}


def test_quota_per_is_an_issue_option_only_and_names_its_choices(capsys):
    for argv in (
        ["update", "K" * 16, "--quota-per", "owner"],
        ["issue", "--name", "n", "--owner", "o", "--quota-per", "team"],
    ):
        with pytest.raises(SystemExit) as exited:
            arguments(*argv)
        assert exited.value.code == EXIT_USAGE and "--quota-per" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "event"),
    [(["disable", "K" * 16], {"key_id": "K" * 16, "enabled": False}),
     (["enable", "K" * 16], {"key_id": "K" * 16, "enabled": True}),
     (["update", "K" * 16, "--no-expiry", "--no-scopes"], {"key_id": "K" * 16, "expires_at": None, "scopes": []}),
     (["update", "K" * 16, "--name", "n", "--expected-version", "3"], {"key_id": "K" * 16, "name": "n",
                                                                       "expected_version": 3}),
     (["rotate", "K" * 16, "--grace-seconds", "0"], {"key_id": "K" * 16, "grace_seconds": 0}),
     (["list", "--status", "disabled"], {"status": "disabled"}), (["history", "K" * 16], {"key_id": "K" * 16}),
     (["pepper-status"], {})],
)  # fmt: skip
def test_each_verb_sends_its_event(argv, event):
    assert payload(arguments(*argv)) == event


def test_the_actor_is_the_callers_aws_identity_unless_given(aws):
    session = boto3.session.Session()
    assert actor(arguments("--stack-name", "s", "revoke", "K" * 16), session).startswith("arn:aws:")
    assert actor(arguments("--actor", "alice", "--stack-name", "s", "revoke", "K" * 16), session) == "alice"
    local = arguments("--endpoint-url", "http://127.0.0.1:1", "revoke", "K" * 16)
    assert actor(local, session) == f"local:{getpass.getuser()}"


def test_the_template_names_every_command_s_function_in_its_outputs(template):
    for logical in ACTIONS.values():
        output = template["Outputs"][f"{logical}FunctionName"]["Value"]
        assert output == {"Ref": f"{logical}Function"} and f"{logical}Function" in template["Resources"]


# --- usage errors: exit 2, saying what was expected ---


def test_an_endpoint_that_is_not_a_url_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--endpoint-url", "127.0.0.1:3002", "get", "K" * 16])
    assert exited.value.code == EXIT_USAGE and "http://HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("set_it", "clear_it"),
    [(["--expires-at", "2099-01-01T00:00:00Z"], ["--no-expiry"]), (["--scope", "a"], ["--no-scopes"]),
     (["--usage-plan-id", "abc123"], ["--no-usage-plan"])],
)  # fmt: skip
def test_an_option_with_its_opposite_is_a_usage_error(set_it, clear_it, capsys):
    for argv in (["update", "K" * 16, *set_it, *clear_it], ["update", "K" * 16, *clear_it, *set_it]):
        with pytest.raises(SystemExit) as exited:
            arguments(*argv)
        assert exited.value.code == EXIT_USAGE and "not allowed with" in capsys.readouterr().err


def test_report_leak_with_nothing_on_standard_input_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["--endpoint-url", "http://127.0.0.1:9", "report-leak"]) == EXIT_USAGE
    assert "no key on standard input" in capsys.readouterr().err


def test_the_help_describes_the_command_in_whole_sentences(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "by invoking the admin functions." in " ".join(capsys.readouterr().out.split())


def test_pepper_status_sums_pages_and_reads_a_function_from_before_grace_secrets(monkeypatch, capsys):
    pages = iter([
        {"versions": {"v1": {"active": 2}}, "grace_secrets": {"v1": {"active": 1}}, "next_token": "t"},
        {"versions": {"v1": {"active": 1}, "v2": {"active": 3}}, "next_token": None},  # a 0.16 function's page
    ])  # fmt: skip
    monkeypatch.setattr("keygate_cli.cli._call", lambda client, name, event: next(pages))
    assert main(["--endpoint-url", "http://127.0.0.1:3002", "pepper-status"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "versions": {"v1": {"active": 3}, "v2": {"active": 3}},
        "grace_secrets": {"v1": {"active": 1}},
    }
