"""No plaintext key, secret part or pepper in any log line, metric, response after issue, or item."""

import json
import logging

import boto3

from tests.conftest import event, invoke, mistyped
from tests.helpers.authorizer import SHAPES, decide, shaped


def _fault_paths(stack, load, api_key: str, key_id: str) -> list:
    """The paths that put error text into logs: a corrupt item, then an unreadable pepper."""
    dynamodb, secrets = boto3.client("dynamodb"), boto3.client("secretsmanager")
    dynamodb.update_item(
        TableName=stack.physical_ids["KeysTable"],
        Key={"key_id": {"S": key_id}},
        UpdateExpression="SET #status = :active, #hash = :bad",
        ExpressionAttributeNames={"#status": "status", "#hash": "hash"},
        ExpressionAttributeValues={":active": {"S": "active"}, ":bad": {"S": "$argon2id$v=19$garbage"}},
    )
    answers = [
        answer_or_error(load("AuthorizerFunction", **LOUDEST), shaped("rest-token", authorization=f"Bearer {api_key}"))
    ]
    secrets.delete_secret(SecretId=stack.physical_ids["PepperSecret"], ForceDeleteWithoutRecovery=True)
    answers.append(answer_or_error(load("AuthorizerFunction", **LOUDEST), shaped("http-api", api_key=api_key)))
    return answers


def answer_or_error(handler, request: dict) -> object:
    """What the function answers, or the text of the error it raises (which Lambda reports)."""
    try:
        return invoke(handler, request)
    except Exception as error:
        return f"{type(error).__name__}: {error}"


LOUDEST = {"POWERTOOLS_LOG_LEVEL": "DEBUG", "POWERTOOLS_LOGGER_LOG_EVENT": "true"}


def test_no_key_secret_or_pepper_reaches_any_output_even_at_debug(stack, load, capsys, caplog, table_items):
    logging.getLogger("botocore").setLevel(logging.NOTSET)  # as in a new container
    actions = (
        "IssueKey", "UpdateKey", "RotateKey", "RevokeKey", "GetKey", "ListKeys", "KeyHistory", "PepperStatus",
        "FlushAuthorizerCache",
    )  # fmt: skip
    # with the authorizer cache on, so flushes (failing on moto, which has none) are logged too
    cached = {"AUTHORIZER_CACHE_TTL": "300", "CACHED_STAGES": "rest:a1b2c3d4e5/prod"}
    admin = {action: load(f"{action}Function", **LOUDEST, **cached) for action in actions}
    authorizer = load("AuthorizerFunction", **LOUDEST)
    caplog.set_level(logging.DEBUG)  # as Lambda's ApplicationLogLevel=DEBUG does to the root logger
    pepper_ring = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=stack.physical_ids["PepperSecret"])["SecretString"]
    )
    pepper = pepper_ring[pepper_ring["current"]]
    plan = boto3.client("apigateway").create_usage_plan(name="plan")["id"]
    issued = invoke(admin["IssueKey"], event("issue-key.json") | {"usage_plan_id": plan})
    api_key, key_id = issued["api_key"], issued["key_id"]
    usage_key_value = boto3.client("apigateway").get_api_key(apiKey=issued["usage_key_id"], includeValue=True)["value"]
    secret = api_key.split("_")[2][:-6]
    typo = mistyped(api_key)
    answers = []
    for shape in SHAPES:
        for presented in (api_key, typo, api_key.upper()):
            answers.append(decide(authorizer, shaped(shape, authorization=f"Bearer {presented}")))
            answers.append(decide(authorizer, shaped(shape, api_key=presented)))
    rotated = invoke(admin["RotateKey"], {"key_id": key_id})  # its new key is shown this once, and only there
    new_key = rotated["api_key"]
    for presented in (api_key, new_key):  # the old secret in its grace period, the new one
        answers.append(decide(authorizer, shaped("rest-request", api_key=presented)))
    answers.append(invoke(admin["UpdateKey"], {"key_id": key_id, "enabled": False}))
    answers.append(invoke(admin["GetKey"], {"key_id": key_id}))
    answers.append(invoke(admin["ListKeys"], {}))
    answers.append(invoke(admin["KeyHistory"], {"key_id": key_id}))
    answers.append(invoke(admin["PepperStatus"], {}))
    answers.append(invoke(admin["RevokeKey"], {"key_id": key_id}))
    answers.append(answer_or_error(admin["FlushAuthorizerCache"], {}))
    answers.append(decide(authorizer, shaped("http-api", authorization=f"Bearer {api_key}")))
    answers.extend(_fault_paths(stack, load, api_key, key_id))

    captured = capsys.readouterr()
    records = "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records)
    everything = {
        "stdout": captured.out,
        "stderr": captured.err,
        "log records": records,
        "answers after issue": repr(answers),
        "table": repr(table_items()),
    }
    assert key_id in captured.out  # the key id is logged: the check below is looking at real output
    assert '"reason":"Fault"' in captured.out  # and the fault paths ran
    assert "authorizer cache flush failed" in captured.out  # and the flush's
    # API Gateway's identifier goes to API Gateway only, in the REST authorizer's answers
    for where, text in {"stdout": captured.out, "log records": records, "issue's answer": repr(issued)}.items():
        assert usage_key_value not in text, f"the usage key value reached {where}"
    assert usage_key_value in repr(answers)  # where it is meant to go: the check above can see it
    everything["audit table"] = repr(boto3.client("dynamodb").scan(TableName=stack.physical_ids["AuditTable"])["Items"])
    for where, text in everything.items():
        for needle in (api_key, secret, typo, pepper, new_key, new_key.split("_")[2][:-6]):
            assert needle not in text, f"a secret reached {where}"
