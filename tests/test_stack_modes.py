"""The template's three ways to deploy (docs/multi-region.md): a primary owning its tables (the default, what
0.18 deployed), a primary whose tables are global tables (ReplicaRegions), and a regional stack
(PrimaryRegion). Checked on the template as CloudFormation would deploy it with each set of parameters,
and on the steps that move an existing stack's tables onto global tables without copying them."""

import json
import subprocess
from pathlib import Path

import pytest

from keygate_local.template import ROOT, InvalidParameter, Stack, load_template
from tests.conftest import sam_transform
from tests.helpers.regions import PRIMARY_SECRET, PROMOTED, REGION, REGIONAL, REPLICATED

RELEASED = "d2cd76e"  # 0.18.0, the last version without regions
# What a default deploy changes in a 0.18 stack, and why none of it replaces a resource or touches a key.
CHANGED_FROM_RELEASED = {
    "AuthorizerFunction": "PRIMARY_REGION (empty) in its environment; no DependsOn (a regional stack has no policy)",
    "AuthorizerConfiguration": "PrimaryRegion in the digest: a new version of the authorizer, as any upgrade",
    "ExplainKeyFunction": "no DependsOn, as the authorizer",
    **dict.fromkeys(
        ["IssueKeyFunction", "RotateKeyFunction", "LeakReportFunction", "ReportLeakFunction"],
        "no DependsOn: a promoted region's stack reads a pepper it does not own, and has no PepperSecretPolicy",
    ),
    "AuditCopyLogGroup": "a tag naming the audit table, which orders it after the table as its DependsOn did",
    "PepperSecretPolicy": "DeletionPolicy Retain: a stack that lets go of the secret leaves its guard on it",
}  # fmt: skip
NAMES = {"KeysTableName": "prod-KeysTable-1A2B3C", "AuditTableName": "prod-AuditTable-4D5E6F"}  # 0.18's, as made
READS = ("Get", "BatchGet", "Query", "Scan", "Describe", "List")  # the verbs of a call that changes nothing


class Planned(Stack):
    """The stack as CloudFormation plans it: what exists only once deployed (a role's ARN, a digest, a
    queue) stays the reference it is in the template."""

    def _ref(self, name: str):
        try:
            return super()._ref(name)
        except KeyError:
            return {"Ref": name}

    def _get_att(self, logical_id: str, attribute: str):
        try:
            return super()._get_att(logical_id, attribute)
        except KeyError:
            return {"Fn::GetAtt": [logical_id, attribute]}


def deployed(parameters: dict | None = None, region: str = "us-east-1", **physical_ids: str) -> Stack:
    stack = Planned(load_template(), parameters, name="prod", region=region)
    stack.physical_ids.update(physical_ids)
    return stack


def _without(resource: dict, *keys: str) -> dict:
    return {key: value for key, value in resource.items() if key not in keys}


def _resolved(stack: Stack, section: str = "Resources") -> dict:
    return {name: stack.resolve(spec) for name, spec in stack.template[section].items()}


def _released_template(directory: Path) -> dict:
    try:
        text = subprocess.run(
            ["git", "show", f"{RELEASED}:template.yaml"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"0.18's template is read from git history, not available here: {error}")
    (directory / "template.yaml").write_text(text)
    return load_template(directory / "template.yaml")


def test_a_default_deploy_is_0_18s_resource_for_resource_but_the_changes_named(tmp_path):
    released, now = Stack(_released_template(tmp_path)).template, Stack(load_template()).template
    assert set(now["Resources"]) == set(released["Resources"])
    assert set(now["Outputs"]) == set(released["Outputs"])
    changed = {
        name
        for name, spec in released["Resources"].items()
        if _without(spec, "Condition", "DependsOn") != _without(now["Resources"][name], "Condition", "DependsOn")
        or spec.get("DependsOn") != now["Resources"][name].get("DependsOn")
    }
    assert changed == set(CHANGED_FROM_RELEASED)
    for name in ("KeysTable", "AuditTable", "OwnerUsageKeysTable", "PepperSecret", "PepperSecretPolicy"):
        assert now["Resources"][name]["Properties"] == released["Resources"][name]["Properties"], name
    for name in ("KeysTable", "AuditTable", "OwnerUsageKeysTable", "PepperSecret", "PepperKey"):
        assert now["Resources"].get(name, {}).get("DeletionPolicy") == released["Resources"].get(name, {}).get(
            "DeletionPolicy"
        )


# --- moving an existing stack's tables onto global tables: detach, import, then one replica per update ---

OWN = deployed(KeysTable=NAMES["KeysTableName"], AuditTable=NAMES["AuditTableName"], PepperSecret=PRIMARY_SECRET)
for _table, _name in (("KeysTable", NAMES["KeysTableName"]), ("AuditTable", NAMES["AuditTableName"])):
    OWN.arns[_table] = f"arn:aws:dynamodb:us-east-1:123456789012:table/{_name}"  # GetAtt Arn, as DynamoDB has it
DETACHED = deployed(NAMES, PepperSecret=PRIMARY_SECRET)
IMPORTED = deployed(NAMES | {"ReplicaRegions": "us-east-1"}, PepperSecret=PRIMARY_SECRET)
REPLICATED_ONCE = deployed(NAMES | {"ReplicaRegions": f"us-east-1,{REGION}"}, PepperSecret=PRIMARY_SECRET)
GLOBAL_TABLES = {"KeysGlobalTable", "AuditGlobalTable"}


def test_detaching_the_tables_keeps_every_function_on_the_same_tables_with_the_same_grants():
    """Step 1: the table names given, the stack lets go of its tables (Retain: they stay, with their keys);
    every function reads and writes the very same tables, with the same grants."""
    own, detached = _resolved(OWN), _resolved(DETACHED)
    assert set(own) - set(detached) == {"KeysTable", "AuditTable"} | {
        "AuditCopyFunction",
        "AuditCopyFunctionLogGroup",
    } | {"AuditCopyBehindAlarm"}
    assert OWN.template["Resources"]["KeysTable"]["DeletionPolicy"] == "Retain"
    for function in DETACHED.functions():  # history's verify pauses with the copy: nothing else changes
        environment = OWN.function_environment(function)
        environment.pop("AUDIT_COPY_LOG_GROUP", None)
        assert DETACHED.function_environment(function) == environment, function
        (before,), (after,) = (stack[function]["Properties"]["Policies"] for stack in (own, detached))
        kept = [grant for grant in before["Statement"] if not str(grant["Action"]).startswith("logs:")]
        assert after["Statement"] == kept, function
    assert detached["AuditCopyLogGroup"] == own["AuditCopyLogGroup"]
    assert _resolved(DETACHED, "Outputs") == _resolved(OWN, "Outputs")


def test_importing_the_tables_as_global_tables_adds_them_and_changes_nothing_else():
    """Step 2, a CloudFormation import: it may only add the resources imported; no other resource and no
    output may change in the same operation."""
    detached, imported = _resolved(DETACHED), _resolved(IMPORTED)
    assert set(imported) - set(detached) == GLOBAL_TABLES
    assert {name: imported[name] for name in detached} == detached
    assert _resolved(IMPORTED, "Outputs") == _resolved(DETACHED, "Outputs")
    for name in GLOBAL_TABLES:
        table = imported[name]
        assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
        assert [replica["Region"] for replica in table["Properties"]["Replicas"]] == ["us-east-1"]
    assert imported["KeysGlobalTable"]["Properties"]["TableName"] == NAMES["KeysTableName"]
    assert imported["AuditGlobalTable"]["Properties"]["TableName"] == NAMES["AuditTableName"]


@pytest.mark.parametrize(
    ("table", "global_table"), [("KeysTable", "KeysGlobalTable"), ("AuditTable", "AuditGlobalTable")]
)
def test_a_global_table_is_its_table_as_it_was(table, global_table):
    """Imported, a global table must describe the table as it is: same keys, index, stream, TTL,
    encryption and billing; per replica, the table's point-in-time recovery and deletion protection."""
    before = OWN.resolve(OWN.resource(table)["Properties"])
    after = IMPORTED.resolve(IMPORTED.resource(global_table)["Properties"])
    for name in ("AttributeDefinitions", "KeySchema", "BillingMode", "TimeToLiveSpecification", "StreamSpecification"):
        assert after[name] == before[name], name
    assert after.get("GlobalSecondaryIndexes") == before.get("GlobalSecondaryIndexes")
    assert after["SSESpecification"]["SSEEnabled"] == before["SSESpecification"]["SSEEnabled"]
    (replica,) = after["Replicas"]
    assert replica["PointInTimeRecoverySpecification"] == before["PointInTimeRecoverySpecification"]
    assert replica["DeletionProtectionEnabled"] == before["DeletionProtectionEnabled"]
    assert set(after) - set(before) == {"TableName", "Replicas"}  # nothing the table did not have


def test_each_region_added_adds_a_replica_of_both_tables_and_of_the_pepper_and_the_audit_copy_resumes():
    replicated = _resolved(REPLICATED_ONCE)
    for name in GLOBAL_TABLES:
        assert [replica["Region"] for replica in replicated[name]["Properties"]["Replicas"]] == ["us-east-1", REGION]
    assert replicated["PepperSecret"]["Properties"]["ReplicaRegions"] == [{"Region": REGION}]
    stream = replicated["AuditCopyFunction"]["Properties"]["Events"]["AuditTableStream"]["Properties"]
    assert stream["Stream"] == {"Fn::GetAtt": ["AuditGlobalTable", "StreamArn"]}
    assert stream["StartingPosition"] == "TRIM_HORIZON"  # the stream's last 24 hours: what the pause did not copy
    assert "ReplicaRegions" not in _resolved(IMPORTED)["PepperSecret"]["Properties"]
    three = deployed(NAMES | {"ReplicaRegions": f"{REGION},us-east-1,ap-southeast-2"}, PepperSecret=PRIMARY_SECRET)
    regions = [
        replica["Region"] for replica in three.resolve(three.resource("KeysGlobalTable"))["Properties"]["Replicas"]
    ]
    assert regions == ["us-east-1", REGION, "ap-southeast-2"]  # this region first, listed or not, and once


def test_the_primary_with_replicas_gives_a_regional_stack_its_parameters():
    output = REPLICATED_ONCE.resolve(REPLICATED_ONCE.template["Outputs"]["RegionalStackParameters"]["Value"])
    given = dict(pair.split("=", 1) for pair in output.split())
    assert given == {name: value for name, value in (REGIONAL | NAMES).items() if name != "KeysTableStreamArn"}
    assert "RegionalStackParameters" not in IMPORTED.template["Outputs"]


# --- what CloudFormation would refuse before changing anything (the template's Rules) ---


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"KeysTableName": "keys"}, "set together"),
        ({"ReplicaRegions": "us-east-1,eu-west-1"}, "needs KeysTableName"),
        (REPLICATED | {"PepperKmsKey": "true"}, "AWS managed key"),
        (REGIONAL | {"ReplicaRegions": "us-east-1"}, "primary stack only"),
        (REGIONAL | {"PepperSecretArn": ""}, "needs PepperSecretArn"),
        (REGIONAL | {"KeysTableStreamArn": ""}, "needs KeysTableStreamArn"),
        ({"PrimaryRegion": "us-east-1"}, "needs KeysTableName"),
        (REGIONAL | {"DeployDemo": "true"}, "demo runs in the primary only"),
    ],
    ids=["one-name", "replicas-unnamed", "replicas-own-key", "regional-replicas", "regional-no-secret",
         "regional-no-stream", "regional-no-tables", "regional-demo"],
)  # fmt: skip
def test_a_combination_that_cannot_work_is_refused_naming_what_is_missing(parameters, named):
    with pytest.raises(InvalidParameter, match=named):
        Stack(load_template(), parameters)


def test_replica_regions_must_be_regions():
    for value in ("us-east-1,", "us-east-1 eu-west-1", "US-EAST-1", "a,b,c,d,e"):
        with pytest.raises(InvalidParameter):
            Stack(load_template(), NAMES | {"ReplicaRegions": value})


# --- the regional stack ---

REGIONAL_STACK = deployed(REGIONAL, region=REGION)


def test_a_regional_stack_serves_only_the_authorizer_the_reads_and_its_flush():
    assert sorted(REGIONAL_STACK.functions()) == [
        "AuthorizerFunction", "ExplainKeyFunction", "GetKeyFunction", "KeyHistoryFunction", "ListKeysFunction",
        "ReplicaFlushFunction",
    ]  # fmt: skip
    kinds = {spec["Type"] for spec in REGIONAL_STACK.template["Resources"].values()}
    for kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable", "AWS::SecretsManager::Secret", "AWS::KMS::Key"):
        assert kind not in kinds  # no table, no secret: the primary's replicas
    for primary_only in ("LeakReportApi", "FlushScheduleRole", "LeakedKeyTopic", "AuditCopyLogGroup"):
        assert primary_only not in REGIONAL_STACK.template["Resources"]  # leaks, grace ends and the copy: the primary's


def test_a_regional_stack_reads_the_replicas_in_its_own_region():
    replica_secret = PRIMARY_SECRET.replace(":us-east-1:", f":{REGION}:")
    for function in REGIONAL_STACK.functions():
        environment = REGIONAL_STACK.function_environment(function)
        assert environment["KEYS_TABLE"] == REGIONAL["KeysTableName"], function
        assert environment["AUDIT_TABLE"] == REGIONAL["AuditTableName"], function
        assert environment["PEPPER_SECRET_ARN"] == replica_secret, function
    assert REGIONAL_STACK.function_environment("AuthorizerFunction")["PRIMARY_REGION"] == "us-east-1"
    assert "AUDIT_COPY_LOG_GROUP" not in REGIONAL_STACK.function_environment("KeyHistoryFunction")
    grants = json.dumps(_resolved(REGIONAL_STACK))
    assert f":dynamodb:{REGION}:" in grants and ":dynamodb:us-east-1:" not in grants


def test_no_function_of_a_regional_stack_may_write_a_key_or_anything_else_but_a_cache_flush():
    for function in REGIONAL_STACK.functions():
        for policy in REGIONAL_STACK.resolve(REGIONAL_STACK.resource(function)["Properties"].get("Policies", [])):
            for statement in policy["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for action in actions:
                    service, _, verb = action.partition(":")
                    if service == "apigateway":
                        assert (function, verb) == ("ReplicaFlushFunction", "DELETE"), action
                        assert all(resource.endswith("/cache/authorizers") for resource in statement["Resource"])
                    else:
                        assert verb.startswith(READS), (function, action)


def test_the_regional_flush_reads_the_replicas_stream_and_never_blocks_it_for_long():
    events = REGIONAL_STACK.resolve(REGIONAL_STACK.resource("ReplicaFlushFunction")["Properties"]["Events"])
    (stream,) = (event["Properties"] for event in events.values())
    assert stream["Stream"] == REGIONAL["KeysTableStreamArn"]
    assert stream["BisectBatchOnFunctionError"] and 0 < stream["MaximumRetryAttempts"] <= 10
    ttl_most = load_template()["Parameters"]["AuthorizerCacheTtl"]["MaxValue"]
    assert stream["MaximumRecordAgeInSeconds"] >= ttl_most  # no change is dropped while its answers may be cached
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["ReplicaFlushFailures", "Arn"]}
    alarm = REGIONAL_STACK.resource("ReplicaFlushAlarm")["Properties"]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ReplicaFlushFunction"}}]


def test_sams_transform_of_a_regional_stack_keeps_its_role_paths_and_lets_the_flush_set_a_batch_aside():
    transformed = sam_transform(load_template(), REGIONAL)
    regional = Planned(transformed, REGIONAL, region=REGION)
    secret_name = PRIMARY_SECRET.split(":")[6]
    for function in ("AuthorizerFunction", "ExplainKeyFunction"):
        role = regional.resolve(regional.resource(f"{function}Role")["Properties"])
        assert role["Path"] == f"/keygate-pepper-readers/{secret_name}/", function
    role = regional.resolve(regional.resource("GetKeyFunctionRole")["Properties"])
    assert "Path" not in role  # a function that does not read the pepper is not let through
    flush_role = json.dumps(regional.resolve(regional.resource("ReplicaFlushFunctionRole")["Properties"]))
    assert "sqs:SendMessage" in flush_role and "AWSLambdaDynamoDBExecutionRole" in flush_role


# --- promoting a region (docs/multi-region.md, "Promote a region"): its regional stack, updated in place ---

PROMOTED_STACK = deployed(PROMOTED, region=REGION)


def test_a_promoted_region_writes_keys_to_its_replicas_with_the_pepper_made_its_own():
    primary = deployed(NAMES)
    assert set(PROMOTED_STACK.functions()) == set(primary.functions()) - {"AuditCopyFunction"}  # no audit stream here
    kinds = {spec["Type"] for spec in PROMOTED_STACK.template["Resources"].values()}
    assert "AWS::SecretsManager::Secret" not in kinds and "AWS::DynamoDB::GlobalTable" not in kinds
    replica_secret = PRIMARY_SECRET.replace(":us-east-1:", f":{REGION}:")
    for function in PROMOTED_STACK.functions():
        environment = PROMOTED_STACK.function_environment(function)
        assert (environment["KEYS_TABLE"], environment["PEPPER_SECRET_ARN"]) == (
            REGIONAL["KeysTableName"],
            replica_secret,
        ), function
    assert PROMOTED_STACK.function_environment("AuthorizerFunction")["PRIMARY_REGION"] == ""  # it writes now


def test_promoting_keeps_the_regional_stacks_readers_and_their_roles():
    """Updated in place, the regional stack's functions stay, with the same roles (a role's path cannot
    change without replacing it), and the writers join them."""
    regional, promoted = _resolved(REGIONAL_STACK), _resolved(PROMOTED_STACK)
    assert set(regional) - set(promoted) == {
        "ReplicaFlushFunction", "ReplicaFlushLogGroup", "ReplicaFlushFailures", "ReplicaFlushAlarm",
    }  # fmt: skip
    for function in set(REGIONAL_STACK.functions()) - {"ReplicaFlushFunction"}:
        assert promoted[function]["Properties"].get("RolePath") == regional[function]["Properties"].get("RolePath")
        assert PROMOTED_STACK.function_environment(function) == REGIONAL_STACK.function_environment(function) | (
            {"PRIMARY_REGION": ""} if function == "AuthorizerFunction" else {}
        ), function


def test_a_promoted_region_may_own_the_global_tables_again_and_name_its_pepper_to_the_regions():
    """After a failover, the promoted primary imports the global tables and adds regions as any primary
    does; the pepper secret is its own copy, which it replicates by hand (docs/multi-region.md)."""
    promoted = deployed(PROMOTED | {"ReplicaRegions": f"{REGION},us-east-1"}, region=REGION)
    resources = promoted.template["Resources"]
    assert set(resources) >= GLOBAL_TABLES and "PepperSecret" not in resources and "AuditCopyFunction" in resources
    output = dict(
        pair.split("=", 1)
        for pair in promoted.resolve(promoted.template["Outputs"]["RegionalStackParameters"]["Value"]).split()
    )
    assert output["PrimaryRegion"] == REGION and output["PepperSecretArn"] == PRIMARY_SECRET


@pytest.mark.parametrize(
    ("regions", "watched"),
    [
        ("us-east-1", []),
        (f"us-east-1,{REGION}", [REGION]),
        (f"{REGION},us-east-1,ap-southeast-2", [REGION, "ap-southeast-2"]),
    ],
)
def test_the_primary_alarms_on_each_replica_of_the_keys_table_falling_behind(regions, watched):
    """The regions' share of the revocation bound is the replicas' lag: watched per receiving region."""
    stack = deployed(NAMES | {"ReplicaRegions": regions}, PepperSecret=PRIMARY_SECRET)
    if not watched:
        assert "ReplicationLatencyAlarm" not in stack.template["Resources"]
        return
    alarm = stack.resolve(stack.resource("ReplicationLatencyAlarm")["Properties"])
    (total, *latencies) = alarm["Metrics"]
    assert total["Expression"] == "MAX(METRICS())"
    assert [metric["MetricStat"]["Metric"]["Dimensions"] for metric in latencies] == [
        [{"Name": "TableName", "Value": NAMES["KeysTableName"]}, {"Name": "ReceivingRegion", "Value": region}]
        for region in watched
    ]
    assert {metric["MetricStat"]["Metric"]["MetricName"] for metric in latencies} == {"ReplicationLatency"}
    assert alarm["Threshold"] == 30000 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_a_stack_that_lets_go_of_its_pepper_leaves_the_secret_and_its_guard():
    """Failing back, the old primary becomes a regional stack: its secret and the policy denying every
    other reader leave the stack, and must stay on the secret, which still holds the live pepper."""
    released = OWN.template["Resources"]
    assert released["PepperSecret"]["DeletionPolicy"] == released["PepperSecretPolicy"]["DeletionPolicy"] == "Retain"
    assert not {"PepperSecret", "PepperSecretPolicy"} & set(REGIONAL_STACK.template["Resources"])
