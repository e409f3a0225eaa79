"""Least privilege, checked against behaviour: each function is granted exactly the AWS calls (action,
resource, and what a condition limits) that its code makes, recorded while it does its job. Grants come
from the function's own policies and from resource policies that name its role."""

import time
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from urllib.parse import quote

import boto3
import botocore.client
import botocore.exceptions
import pytest

from keygate import keys
from keygate.records import UPDATABLE
from keygate_local.streams import StreamReader
from tests.conftest import add_pepper_version, invoke
from tests.helpers.authorizer import decide, shaped
from tests.helpers.iam import TRANSACTION_ACTIONS, attributes, granted, satisfies
from tests.helpers.leak_report import http_event
from tests.helpers.regions import REGION, Replicator, regional_handler, regional_stack


@pytest.fixture
def recorded(monkeypatch, stack) -> list[tuple[str, str, dict]]:
    """(IAM action, resource ARN, condition context) of every AWS call made while it is active."""
    calls: list[tuple[str, str, dict]] = []
    real = botocore.client.BaseClient._make_api_call

    def apigateway_calls(client, operation: str, params: dict) -> list[tuple[str, str, dict]]:
        """API Gateway's IAM action is the HTTP method, its resource the request's path. Tags given to a new
        API key are authorized as tagging it too; an API key's own tags are the context of a change to it."""
        region = client.meta.region_name
        method, path = APIGATEWAY_ROUTES[operation]
        action, resource = f"apigateway:{method}", f"arn:aws:apigateway:{region}::{path.format(**params)}"
        if operation == "CreateApiKey":
            tags = params.get("tags", {})
            context = {f"aws:RequestTag/{name}": value for name, value in tags.items()} | {"aws:TagKeys": set(tags)}
            new_key = quote(f"arn:aws:apigateway:{region}::/apikeys/*", safe="*")
            tagging = [("apigateway:PUT", f"arn:aws:apigateway:{region}::/tags/{new_key}", context)] if tags else []
            return [(action, resource, context), *tagging]
        if operation in ("UpdateApiKey", "DeleteApiKey"):
            tags = real(client, "GetApiKey", {"apiKey": params["apiKey"]}).get("tags", {})
            return [(action, resource, {f"aws:ResourceTag/{name}": value for name, value in tags.items()})]
        return [(action, resource, {})]

    def dynamodb_call(region: str, operation: str, params: dict) -> tuple[str, str, dict]:
        resource = f"arn:aws:dynamodb:{region}:123456789012:table/{params['TableName']}"  # the region's replica
        if "IndexName" in params:
            resource += f"/index/{params['IndexName']}"
        context = {"dynamodb:Attributes": attributes(params)}  # and, as IAM, the others only when sent
        context |= {f"dynamodb:{name}": params[name] for name in ("ReturnValues", "Select") if name in params}
        return f"dynamodb:{operation}", resource, context

    def recording(self, operation, params):
        service, region = self.meta.service_model.service_name, self.meta.region_name
        if operation == "TransactWriteItems":  # IAM authorizes each item as its own action
            for item in params["TransactItems"]:
                ((kind, request),) = item.items()
                calls.append(dynamodb_call(region, TRANSACTION_ACTIONS[kind], request))
        elif operation == "BatchGetItem":  # ... and each table's part of a batch
            for table, request in params["RequestItems"].items():
                calls.append(dynamodb_call(region, operation, {"TableName": table, **request}))
        elif service == "dynamodb":
            calls.append(dynamodb_call(region, operation, params))
        elif service in ("apigateway", "apigatewayv2"):
            calls.extend(apigateway_calls(self, operation, params))
            if operation in ("FlushStageAuthorizersCache", "ResetAuthorizersCache"):
                return {}  # moto has no authorizer cache: the call is recorded, and answered as API Gateway does
        elif service == "scheduler":
            resource = f"arn:aws:scheduler:{region}:123456789012:schedule/{params['GroupName']}/{params['Name']}"
            calls.append((f"scheduler:{operation}", resource, {}))
            calls.append(
                ("iam:PassRole", params["Target"]["RoleArn"], {"iam:PassedToService": "scheduler.amazonaws.com"})
            )
        elif service == "sns":
            calls.append((f"sns:{operation}", params["TopicArn"], {}))
        elif service == "dynamodbstreams":  # the event source mapping's reads: SAM grants them with the event
            pass
        elif service == "logs" and operation == "DescribeLogGroups":  # a listing: IAM names no one group
            calls.append(("logs:DescribeLogGroups", f"arn:aws:logs:{region}:123456789012:log-group:*", {}))
        elif service == "logs":
            group, log_stream = params["logGroupName"], params["logStreamName"]
            resource = f"arn:aws:logs:{region}:123456789012:log-group:{group}:log-stream:{log_stream}"
            calls.append((f"logs:{operation}", resource, {}))
        else:
            calls.append((f"{service}:{operation}", params["SecretId"], {}))
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


# API Gateway operation -> (IAM action's HTTP method, resource path); the flush calls are not in moto.
APIGATEWAY_ROUTES = {
    "CreateApiKey": ("POST", "/apikeys"),
    "DeleteApiKey": ("DELETE", "/apikeys/{apiKey}"),
    "UpdateApiKey": ("PATCH", "/apikeys/{apiKey}"),
    "GetUsagePlan": ("GET", "/usageplans/{usagePlanId}"),
    "GetUsagePlans": ("GET", "/usageplans"),
    "CreateUsagePlan": ("POST", "/usageplans"),  # the tests' own set-up
    "CreateUsagePlanKey": ("POST", "/usageplans/{usagePlanId}/keys"),
    "DeleteUsagePlanKey": ("DELETE", "/usageplans/{usagePlanId}/keys/{keyId}"),
    "FlushStageAuthorizersCache": ("DELETE", "/restapis/{restApiId}/stages/{stageName}/cache/authorizers"),
    "ResetAuthorizersCache": ("DELETE", "/apis/{ApiId}/stages/{StageName}/cache/authorizers"),
}


# Grants that only a failure uses (an API Gateway key deleted again when its record could not be written):
# test_what_a_failed_write_undoes_is_granted calls them.
ONLY_ON_FAILURE = {
    ("IssueKeyFunction", "apigateway:DELETE", "arn:aws:apigateway:us-east-1::/apikeys/*"),
    ("IssueKeyFunction", "apigateway:DELETE", "arn:aws:apigateway:us-east-1::/usageplans/*/keys/*"),
    ("UpdateKeyFunction", "apigateway:DELETE", "arn:aws:apigateway:us-east-1::/apikeys/*"),
}


def assert_exactly_granted(stack, function: str, calls: list[tuple[str, str, dict]]) -> None:
    """Every call is granted by a statement whose condition it meets; every grant serves some call; and a
    ForAllValues condition allows exactly the attributes of the calls it serves, no more."""
    grants, served = assert_granted(stack, function, calls)
    unused = {(action, pattern) for (action, pattern), conditions in grants.items()
              for n in range(len(conditions)) if (action, pattern, n) not in served}  # fmt: skip
    unused -= {(action, pattern) for name, action, pattern in ONLY_ON_FAILURE if name == function}
    assert not unused, f"granted but never called: {unused}"
    for (action, pattern, n), contexts in served.items():
        for operator, tests in grants[action, pattern][n].items():
            if operator.startswith("ForAllValues:"):
                for key, allowed in tests.items():
                    used = set().union(*(context[key] for context in contexts))
                    assert set(allowed) == used, f"{action} {key} allows {set(allowed) - used} that no call uses"


def assert_granted(stack, function: str, calls: list[tuple[str, str, dict]]) -> tuple[dict, dict]:
    """Every call is granted by a statement whose condition it meets; (grants, the calls each served)."""
    grants = granted(stack, function)
    served: dict[tuple[str, str, int], list[dict]] = {}
    for action, resource, context in calls:
        matching = [
            (pattern, n)
            for (granted_action, pattern), conditions in grants.items()
            if granted_action == action and fnmatchcase(resource, pattern)
            for n, condition in enumerate(conditions)
            if satisfies(condition, context)
        ]
        assert matching, f"{action} on {resource} with {context} is not granted"
        for pattern, n in matching:
            served.setdefault((action, pattern, n), []).append(context)
    return grants, served


def test_authorizer_is_granted_exactly_what_it_calls(stack, issued, load, recorded):
    key = issued()
    add_pepper_version(stack)  # so the first verify re-hashes the key under the new pepper
    authorizer = load("AuthorizerFunction")
    recorded.clear()
    for shape in ("rest-token", "rest-request", "http-api"):
        assert decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))[0]
    assert ("dynamodb:UpdateItem", stack.arns["KeysTable"]) in {(a, r) for a, r, _ in recorded}  # it did
    assert_exactly_granted(stack, "AuthorizerFunction", recorded)


def _in_a_day() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


NEVER_ISSUED = "A" * 16
CACHED = {"AUTHORIZER_CACHE_TTL": "300", "CACHED_STAGES": "rest:a1b2c3d4e5/prod,http:f6g7h8i9j0/$default"}
REGIONAL_CACHED = {"AuthorizerCacheTtl": 300, "CachedStages": "rest:a1b2c3d4e5/prod,http:f6g7h8i9j0/$default"}
# Each admin function, with the requests that exercise every AWS call and attribute it can touch (given
# a key on a first usage plan, a second plan, a key on no plan, and a key sharing its owner's quota on the
# first plan).
ADMIN_JOBS = {
    "IssueKeyFunction": lambda key_id, plan, plain, shared: [
        {"name": "n", "owner": "o"},
        {"name": "n", "owner": "o", "usage_plan_id": plan},
        {"name": "n", "owner": "o", "usage_plan_id": plan, "quota_per": "owner"},  # the owner's first: made
    ],
    "UpdateKeyFunction": lambda key_id, plan, plain, shared: [
        {
            "key_id": key_id,
            "name": "m",
            "description": "d",
            "scopes": ["s"],
            "apis": ["a/b"],
            "metadata": {"plan": "gold"},
            "expires_at": _in_a_day(),
            "enabled": False,
        },
        {"key_id": key_id, "expires_at": None, "enabled": True, "usage_plan_id": plan},  # onto another plan
        {"key_id": key_id, "usage_plan_id": None},
        {"key_id": plain, "usage_plan_id": plan},  # a key's first plan: its API Gateway key is made
        {"key_id": shared, "enabled": False},  # off its owner's live keys
        {"key_id": shared, "enabled": True},  # back on
        {"key_id": shared, "usage_plan_id": plan},  # to its owner's shared key on another plan, made
    ],  # fmt: skip
    "RotateKeyFunction": lambda key_id, plan, plain, shared: [
        {"key_id": key_id, "grace_seconds": 60},
        {"key_id": key_id, "grace_seconds": 0},
    ],
    "RevokeKeyFunction": lambda key_id, plan, plain, shared: [{"key_id": key_id}, {"key_id": shared}],
    "GetKeyFunction": lambda key_id, plan, plain, shared: [{"key_id": key_id}],
    "ListKeysFunction": lambda key_id, plan, plain, shared: [
        {"owner": "team-test"},
        {"unused_since": "2026-01-01T00:00:00Z"},
    ],
    "KeyHistoryFunction": lambda key_id, plan, plain, shared: [
        {"key_id": key_id},
        {"key_id": NEVER_ISSUED},  # then a GetItem
        {"key_id": key_id, "verify": True},  # the whole trail, and its copy
    ],
    "PepperStatusFunction": lambda key_id, plan, plain, shared: [{}],
    "FlushAuthorizerCacheFunction": lambda key_id, plan, plain, shared: [
        {"reason": "test"},
        {"reason": "grace of a key ends", "grace_of": {"key_id": plain, "version": 2}},  # its previous secret dropped
    ],
    "ExplainKeyFunction": lambda key_id, plan, plain, shared: [{"key_id": key_id, "route": "GET /x", "api": "a1/b"}],
}


def test_the_update_requests_here_set_every_field_an_update_may_set():
    """So the exact-grant check above sees every attribute UpdateKeyFunction's code can write."""
    named = set().union(*ADMIN_JOBS["UpdateKeyFunction"]("k", "p", "q", "s"))
    assert {*UPDATABLE, "enabled"} <= named


def usage_plan(name: str) -> str:
    return boto3.client("apigateway").create_usage_plan(name=name)["id"]


@pytest.mark.parametrize("function", ADMIN_JOBS)
def test_each_admin_function_is_granted_exactly_what_it_calls(function, stack, issued, load, recorded):
    plan, other_plan = usage_plan("first"), usage_plan("second")
    key, plain = issued(usage_plan_id=plan), issued()
    shared, _ = (issued(usage_plan_id=plan, quota_per="owner") for _ in range(2))  # one stays live on the plan
    if function == "FlushAuthorizerCacheFunction":  # a rotation (version 2) whose grace period is over
        invoke(load("RotateKeyFunction"), {"key_id": plain["key_id"], "grace_seconds": 1})
        time.sleep(1.1)
    add_pepper_version(stack)  # so a rotation hashes under another pepper version, as it may
    handler = load(function, **CACHED)
    recorded.clear()
    for request in ADMIN_JOBS[function](key["key_id"], other_plan, plain["key_id"], shared["key_id"]):
        answer = invoke(handler, request)
        if request.get("key_id") == NEVER_ISSUED:
            assert answer["error"]["type"] == "KeyNotFound"
        else:
            assert "error" not in answer
    assert_exactly_granted(stack, function, recorded)


@pytest.mark.parametrize("function", ["IssueKeyFunction", "UpdateKeyFunction"])
def test_what_a_failed_write_undoes_is_granted(function, stack, issued, load, recorded, monkeypatch):
    plan = usage_plan("plan")
    key = issued()
    handler = load(function)
    recording = botocore.client.BaseClient._make_api_call

    def refused_writes(self, operation, params):
        if operation == "TransactWriteItems":
            raise botocore.exceptions.ClientError({"Error": {"Code": "InternalServerError"}}, operation)
        return recording(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refused_writes)
    recorded.clear()
    request = {"name": "n", "owner": "o"} if function == "IssueKeyFunction" else {"key_id": key["key_id"]}
    with pytest.raises(botocore.exceptions.ClientError):
        invoke(handler, request | {"usage_plan_id": plan})
    assert "apigateway:DELETE" in {action for action, _, _ in recorded}  # the API Gateway key made for it
    assert_granted(stack, function, recorded)


def test_leak_reports_are_granted_exactly_what_they_call(stack, issued, load, recorded, github):
    plan = usage_plan("plan")
    first = issued(usage_plan_id=plan)  # a key of its own, and three sharing their owner's (one stays live)
    shared, second, _ = (issued(usage_plan_id=plan, quota_per="owner") for _ in range(3))
    add_pepper_version(stack)
    leak_report = load("LeakReportFunction", GITHUB_KEYS_URL=github.keys_url, **CACHED)
    report_leak = load("ReportLeakFunction", **CACHED)
    body, headers = github.signed_alert(first["api_key"], shared["api_key"], keys.generate("kg").api_key)
    for function, call in (
        ("LeakReportFunction", lambda: invoke(leak_report, http_event(body, headers))["statusCode"] == 200),
        ("ReportLeakFunction", lambda: invoke(report_leak, {"key": second["api_key"]})["revoked"] == "now"),
    ):
        recorded.clear()
        assert call()
        assert {"sns:Publish", "apigateway:PATCH", "apigateway:DELETE"} <= {action for action, _, _ in recorded}
        assert ("dynamodb:UpdateItem", stack.arns["OwnerUsageKeysTable"]) in {(a, r) for a, r, _ in recorded}
        assert_exactly_granted(stack, function, recorded)


def test_the_audit_copy_is_granted_exactly_what_it_calls(stack, issued, load, recorded):
    key = issued()
    records = StreamReader(boto3.client("dynamodbstreams"), stack.stream_arns["AuditTable"]).pending()
    copy_function = load("AuditCopyFunction")
    recorded.clear()
    invoke(copy_function, {"Records": records})  # its key's log stream made, then written
    assert [action for action, _, _ in recorded] == ["logs:PutLogEvents", "logs:CreateLogStream", "logs:PutLogEvents"]
    assert key["key_id"] in recorded[-1][1]
    assert_exactly_granted(stack, "AuditCopyFunction", recorded)


REGIONAL_JOBS = {  # a regional stack's functions, with the requests that exercise every call each makes
    "GetKeyFunction": ADMIN_JOBS["GetKeyFunction"],
    "ListKeysFunction": ADMIN_JOBS["ListKeysFunction"],
    "KeyHistoryFunction": lambda key_id, *_: [{"key_id": key_id}, {"key_id": NEVER_ISSUED}],  # no copy to verify
    "ExplainKeyFunction": ADMIN_JOBS["ExplainKeyFunction"],
}


def test_a_regional_stacks_functions_are_granted_exactly_what_they_call(stack, issued, admin, recorded):
    """In the region: the replicas (tables and pepper) there, read and never written; this region's caches."""
    with Replicator(stack) as replicator:
        key = issued()
        audit = stack.resource("AuditTable")["Properties"]  # its replica, empty here: history then reads the key
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=stack.physical_ids["AuditTable"], AttributeDefinitions=audit["AttributeDefinitions"],
            KeySchema=audit["KeySchema"], BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        regional = regional_stack(stack, replicator.replica_stream, **REGIONAL_CACHED)
        replicator.caught_up()
        checked = {}
        authorizer = regional_handler(regional, "AuthorizerFunction")
        recorded.clear()
        for shape in ("rest-token", "rest-request", "http-api"):
            assert decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))[0]
        checked["AuthorizerFunction"] = list(recorded)
        for function, job in REGIONAL_JOBS.items():
            handler = regional_handler(regional, function)
            recorded.clear()
            for request in job(key["key_id"], None, None, None):
                answer = invoke(handler, request)
                assert "error" not in answer or answer["error"]["type"] == "KeyNotFound", answer
            checked[function] = list(recorded)
        invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
        replicator.caught_up()
        (change,) = StreamReader(
            boto3.client("dynamodbstreams", region_name=REGION), replicator.replica_stream
        ).pending()[1:]
        flush = regional_handler(regional, "ReplicaFlushFunction")
        recorded.clear()
        invoke(flush, {"Records": [change]})
        checked["ReplicaFlushFunction"] = list(recorded)
    assert set(checked) == set(regional.functions())
    for function, calls in checked.items():
        assert calls and all(f":{REGION}:" in resource for _, resource, _ in calls), function
        assert_exactly_granted(regional, function, calls)


def test_every_function_is_checked_here(stack):
    others = {"AuthorizerFunction", "LeakReportFunction", "ReportLeakFunction", "AuditCopyFunction"}
    assert set(stack.functions()) == set(ADMIN_JOBS) | others  # DeployDemo=false


def test_revoke_may_not_write_other_attributes_or_read_back(stack):
    (condition,) = granted(stack, "RevokeKeyFunction")["dynamodb:UpdateItem", stack.arns["KeysTable"]]
    change_owner = {"dynamodb:Attributes": {"key_id", "owner", "version"}}
    read_back = {"dynamodb:Attributes": {"key_id", "status"}, "dynamodb:ReturnValues": "ALL_NEW"}
    revoke = {"dynamodb:Attributes": {"key_id", "status", "version"}}  # as revoke sends it: no ReturnValues
    assert not satisfies(condition, change_owner) and not satisfies(condition, read_back)
    assert satisfies(condition, revoke) and satisfies(condition, revoke | {"dynamodb:ReturnValues": "NONE"})


def _api_gateway(path: str) -> str:
    return f"arn:aws:apigateway:us-east-1::{path}"


OTHER_APPLICATIONS_SECRETS = ["/usageplans/p1/keys", "/usageplans/p1/keys/k1", "/apikeys", "/apikeys/k1"]


def test_no_role_may_read_a_usage_plan_s_keys_or_an_api_key_s_value(stack):
    for function in stack.functions():
        for action, pattern in granted(stack, function):
            if action in ("apigateway:GET", "apigateway:*"):
                readable = [path for path in OTHER_APPLICATIONS_SECRETS if fnmatchcase(_api_gateway(path), pattern)]
                assert not readable, f"{function} may read {readable} through {pattern}"


def test_only_keygate_s_own_api_keys_may_be_changed_or_deleted(stack):
    ours = {"aws:ResourceTag/keygate:keys-table": stack.physical_ids["KeysTable"]}
    foreign = [{}, {"aws:ResourceTag/keygate:keys-table": "another-table"}, {"aws:ResourceTag/owner": "x"}]
    checked = set()
    for function in stack.functions():
        for (action, pattern), conditions in granted(stack, function).items():
            if action in ("apigateway:PATCH", "apigateway:DELETE") and fnmatchcase(
                _api_gateway("/apikeys/k1"), pattern
            ):
                checked.add(function)
                for condition in conditions:
                    assert satisfies(condition, ours), (function, action)
                    assert not any(satisfies(condition, context) for context in foreign), (function, action)
    assert checked == {
        "IssueKeyFunction",
        "UpdateKeyFunction",
        "RevokeKeyFunction",
        "LeakReportFunction",
        "ReportLeakFunction",
    }


@pytest.mark.parametrize("function", ["IssueKeyFunction", "UpdateKeyFunction"])
def test_api_keys_are_made_with_keygate_s_tag_and_no_other_and_nothing_else_is_tagged(stack, function):
    table = stack.physical_ids["KeysTable"]

    def made_with(tags: dict) -> dict:
        return {f"aws:RequestTag/{name}": value for name, value in tags.items()} | {"aws:TagKeys": set(tags)}

    grants = granted(stack, function)
    tagging = [(pattern, conditions) for (action, pattern), conditions in grants.items() if action == "apigateway:PUT"]
    (create,) = grants["apigateway:POST", _api_gateway("/apikeys")]
    ((tags_pattern, (tag,)),) = tagging
    for condition in (create, tag):
        assert satisfies(condition, made_with({"keygate:keys-table": table}))
        for wrong in ({}, {"keygate:keys-table": "another-table"}, {"keygate:keys-table": table, "extra": "x"}):
            assert not satisfies(condition, made_with(wrong)), wrong
    assert fnmatchcase(_api_gateway("/tags/" + quote(_api_gateway("/apikeys/*"), safe="*")), tags_pattern)
    for other in ("/restapis/a1", "/usageplans/p1", "/domainnames/x"):
        assert not fnmatchcase(_api_gateway("/tags/" + quote(_api_gateway(other), safe="")), tags_pattern)
