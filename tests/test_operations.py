"""template.yaml's operations side: a log group with retention per function, alarms on what the code
really emits, optional notification, and the pepper's optional customer-managed key."""

import fnmatch
import json

import pytest

from keygate.authorize import Reason
from keygate_local.template import NO_VALUE, Stack
from tests.helpers.authorizer import fail_get_item, log_records, refused_as_a_fault, shaped
from tests.helpers.regions import PRIMARY_SECRET, PROMOTED, REGION, REGIONAL, REPLICATED

ROLES_THAT_READ_THE_PEPPER = [  # the functions that verify or hash secrets, and explain
    {"Fn::GetAtt": ["AuthorizerFunctionRole", "Arn"]},
    {"Fn::GetAtt": ["IssueKeyFunctionRole", "Arn"]},
    {"Fn::GetAtt": ["RotateKeyFunctionRole", "Arn"]},
    {"Fn::GetAtt": ["LeakReportFunctionRole", "Arn"]},  # a reported token is Argon2-verified before a revoke
    {"Fn::GetAtt": ["ReportLeakFunctionRole", "Arn"]},
    {"Fn::GetAtt": ["ExplainKeyFunctionRole", "Arn"]},  # looks the versions a key needs up, as the authorizer does
]
USING_THE_KEY = [
    "kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair", "kms:CreateGrant",
]  # fmt: skip


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: spec for name, spec in template["Resources"].items() if spec["Type"] == kind}


def test_every_function_logs_to_a_group_of_its_own_kept_for_the_retention_parameter(template):
    groups = []
    for function in {*Stack(template, {"DeployDemo": "true"}).functions(), *Stack(template, REGIONAL).functions()}:
        reference = template["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"]
        group = template["Resources"][reference["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup", function
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, function
        groups.append(reference["Ref"])
    assert len(set(groups)) == len(groups)
    not_a_function_s = {"LeakReportAccessLogGroup", "AuditCopyLogGroup"}
    assert set(groups) | not_a_function_s == set(resources(template, "AWS::Logs::LogGroup"))
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 90


def test_the_unauthenticated_leak_report_api_keeps_an_access_log_of_who_called_without_what_they_sent(template):
    settings = template["Resources"]["LeakReportApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["LeakReportAccessLogGroup", "Arn"]}
    group = template["Resources"]["LeakReportAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    logged = json.loads(settings["Format"])  # CloudWatch reads each line as JSON
    assert sorted(logged.values()) == [  # who, when, what answer; of the headers only the User-Agent
        "$context.identity.sourceIp",
        "$context.identity.userAgent",
        "$context.integrationErrorMessage",
        "$context.requestId",
        "$context.requestTime",
        "$context.responseLength",
        "$context.routeKey",
        "$context.status",
    ]


def test_the_fault_alarm_watches_the_metric_the_authorizer_emits(stack, issued, load, monkeypatch, capsys):
    key = issued()
    authorizer = load("AuthorizerFunction")
    fail_get_item(monkeypatch, "ThrottlingException")
    capsys.readouterr()
    refused_as_a_fault(authorizer, shaped("http-api", authorization=f"Bearer {key['api_key']}"))
    (emf,) = [record for record in log_records(capsys.readouterr().out) if "_aws" in record]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    emitted = {
        "Namespace": directive["Namespace"],
        "MetricName": Reason.FAULT.value,
        "Dimensions": [{"Name": name, "Value": emf[name]} for name in directive["Dimensions"][0]],
    }
    alarm = stack.resource("AuthorizerFaultAlarm")["Properties"]
    assert {field: alarm[field] for field in emitted} == emitted
    assert Reason.FAULT.value in [metric["Name"] for metric in directive["Metrics"]]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum",
        1,
        "GreaterThanOrEqualToThreshold",
    )


@pytest.mark.parametrize("parameters", [{}, REGIONAL], ids=["primary", "regional"])
def test_the_errors_alarms_cover_every_function_but_the_authorizer_and_the_throttle_alarm_the_authorizer(
    template, parameters
):
    stack = Stack(template, parameters)
    admin = set(stack.functions()) - {"AuthorizerFunction"}
    watched = []
    for name, alarm in resources(stack.template, "AWS::CloudWatch::Alarm").items():
        alarm = alarm["Properties"]
        if "Metrics" not in alarm:  # one function's errors
            if alarm["MetricName"] == "Errors":
                watched.append(alarm["Dimensions"][0]["Value"]["Ref"])
            continue
        metrics = alarm["Metrics"]
        (total,) = [metric for metric in metrics if "Expression" in metric]
        functions = [
            metric["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
            for metric in metrics
            if "MetricStat" in metric and metric["MetricStat"]["Metric"]["MetricName"] == "Errors"
        ]
        assert total["Expression"] == "SUM(METRICS())" and total.get("ReturnData", True)
        assert len(functions) == len(metrics) - 1 <= 10, name  # CloudWatch: at most 10 metrics in an alarm
        watched += functions
    assert sorted(watched) == sorted(admin)
    throttles = template["Resources"]["AuthorizerThrottleAlarm"]["Properties"]
    assert (throttles["Namespace"], throttles["MetricName"]) == ("AWS/Lambda", "Throttles")
    assert throttles["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "AuthorizerFunction"}}]


@pytest.mark.parametrize(("email", "notifies"), [("", False), ("ops@example.com", True)])
def test_alarms_notify_a_topic_only_when_an_address_is_given(template, email, notifies):
    stack = Stack(template, {"AlarmEmail": email})
    assert stack.resolve({"Fn::If": ["NotifiesByEmail", True, False]}) is notifies
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Condition"] == "NotifiesByEmail"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        for actions in ("AlarmActions", "OKActions"):
            expected = {"Fn::If": ["NotifiesByEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
            assert alarm["Properties"][actions] == expected, name


def _pepper_policy(template) -> tuple[dict, dict]:
    """The secret's resource policy: (its Allow, its Deny)."""
    (policy,) = resources(template, "AWS::SecretsManager::ResourcePolicy").values()
    assert policy["Properties"]["SecretId"] == {"Ref": "PepperSecret"} and policy["Properties"]["BlockPublicPolicy"]
    allow, deny = policy["Properties"]["ResourcePolicy"]["Statement"]
    assert (allow["Effect"], deny["Effect"]) == ("Allow", "Deny")
    return allow, deny


def test_only_the_roles_that_verify_or_hash_secrets_may_read_the_pepper(template):
    allow, deny = _pepper_policy(Stack(template).template)
    assert allow["Principal"]["AWS"] == ROLES_THAT_READ_THE_PEPPER
    assert allow["Action"] == deny["Action"] == "secretsmanager:GetSecretValue"
    assert deny["Principal"] == "*"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": allow["Principal"]["AWS"]}}


def _secret_policy_allows(allow: dict, deny: dict, principal: str, own_policy_allows: bool) -> bool:
    """Secrets Manager's decision on GetSecretValue in one account: an explicit Deny wins; else the resource
    policy's or the principal's own Allow. The Deny's condition operators must all match for it to apply."""
    (arns,) = deny["Condition"]["ArnNotEquals"].values()
    patterns = list(deny["Condition"].get("ArnNotLike", {}).values())
    if principal not in arns and not any(fnmatch.fnmatchcase(principal, pattern) for pattern in patterns):
        return False
    return principal in allow["Principal"]["AWS"] or own_policy_allows


def _with_roles(stack: Stack) -> Stack:
    for role in ROLES_THAT_READ_THE_PEPPER:  # SAM makes each function's role; an ARN of the shape it gets
        name = role["Fn::GetAtt"][0]
        stack.arns[name] = f"arn:aws:iam::123456789012:role/keygate-{name}-A1B2C3"
    return stack


OTHERS = [
    "arn:aws:iam::123456789012:role/Administrator",  # secretsmanager:* in its own policy
    "arn:aws:iam::123456789012:root",
    "arn:aws:iam::123456789012:role/keygate-GetKeyFunctionRole-x",  # another keygate role
    "arn:aws:iam::210987654321:role/elsewhere",
]


def test_no_other_principal_reads_the_pepper_whatever_its_own_policies_allow(template):
    stack = _with_roles(Stack(template))
    allow, deny = (stack.resolve(statement) for statement in _pepper_policy(stack.template))
    for role in ROLES_THAT_READ_THE_PEPPER:
        assert _secret_policy_allows(allow, deny, stack.resolve(role), own_policy_allows=False)
    for principal in OTHERS:
        assert not _secret_policy_allows(allow, deny, principal, own_policy_allows=True), principal


@pytest.mark.parametrize(
    ("adopting", "readers"),
    [
        (REGIONAL, ["AuthorizerFunction", "ExplainKeyFunction"]),
        (PROMOTED, sorted(role["Fn::GetAtt"][0].removesuffix("Role") for role in ROLES_THAT_READ_THE_PEPPER)),
    ],
    ids=["regional", "promoted"],
)
def test_with_replicas_the_roles_of_stacks_in_other_regions_that_read_the_pepper_read_it_and_no_other(
    template, adopting, readers
):
    """The policy goes with the secret to its replicas, and stays on a replica promoted to its own secret:
    the roles of a regional (or promoted) stack that read the pepper have the path it names, after this
    secret; nothing else does."""
    primary = _with_roles(Stack(template, REPLICATED))
    primary.physical_ids["PepperSecret"] = PRIMARY_SECRET
    allow, deny = (primary.resolve(statement) for statement in _pepper_policy(primary.template))
    regional = Stack(template, adopting, region=REGION)
    let_through = []
    for function in regional.functions():
        path = regional.resolve(regional.resource(function)["Properties"].get("RolePath", "/"))
        role = f"arn:aws:iam::123456789012:role{path}keygate-eu-{function}Role-X1Y2Z3"
        if _secret_policy_allows(allow, deny, role, own_policy_allows=True):
            let_through.append(function)
    assert sorted(let_through) == readers
    for principal in OTHERS:
        assert not _secret_policy_allows(allow, deny, principal, own_policy_allows=True), principal
    single = _with_roles(Stack(template))  # without replicas, no path is let through
    single.physical_ids["PepperSecret"] = PRIMARY_SECRET
    allow, deny = (single.resolve(statement) for statement in _pepper_policy(single.template))
    path = regional.resolve(regional.resource("AuthorizerFunction")["Properties"]["RolePath"])
    role = f"arn:aws:iam::123456789012:role{path}keygate-eu-AuthorizerFunctionRole-X1Y2Z3"
    assert not _secret_policy_allows(allow, deny, role, own_policy_allows=True)


def test_the_pepper_key_lets_only_those_roles_decrypt_and_only_through_secrets_manager(template):
    key = template["Resources"]["PepperKey"]
    assert (key["Condition"], key["DeletionPolicy"], key["Properties"]["EnableKeyRotation"]) == (
        "PepperHasItsOwnKey",
        "Retain",
        True,
    )
    via_secrets_manager = {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
    readers = []
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        uses = {use for use in USING_THE_KEY for action in actions if fnmatch.fnmatchcase(use, action)}
        if not uses:
            continue
        condition = statement["Condition"]["StringEquals"]
        assert condition["kms:ViaService"] == via_secrets_manager, statement["Sid"]
        validation_only = condition.get("kms:EncryptionContext:SecretVersionId") == "RequestToValidateKeyAccess"
        if "kms:Decrypt" in uses and not validation_only:
            readers.extend(statement["Principal"]["AWS"])
        assert uses <= {"kms:Decrypt", "kms:GenerateDataKey"}, statement["Sid"]
    assert readers == ROLES_THAT_READ_THE_PEPPER


@pytest.mark.parametrize(("choice", "own_key"), [("false", False), ("true", True)])
def test_the_secret_is_encrypted_with_the_key_only_when_asked(template, choice, own_key):
    assert template["Parameters"]["PepperKmsKey"]["Default"] == "false"
    kms_key_id = template["Resources"]["PepperSecret"]["Properties"]["KmsKeyId"]
    stack = Stack(template, {"PepperKmsKey": choice})
    stack.physical_ids["PepperKey"] = "the-key"
    assert stack.resolve(kms_key_id) == ("the-key" if own_key else NO_VALUE)


def test_no_function_waits_for_a_policy_its_stack_may_not_have(template):
    """A stack reading a pepper it does not own (regional, promoted) has no PepperSecretPolicy, and a
    DependsOn cannot be conditional: on a new stack's first minute a function may be refused the pepper,
    and fails closed (the authorizer refuses; an admin function answers an error, having written nothing).
    Nor is any granted the pepper by SAM's policy template, which would name the secret in its role."""
    for role in ROLES_THAT_READ_THE_PEPPER:
        assert "DependsOn" not in template["Resources"][role["Fn::GetAtt"][0].removesuffix("Role")]
    assert json.dumps(template).count("AWSSecretsManagerGetSecretValuePolicy") == 0
