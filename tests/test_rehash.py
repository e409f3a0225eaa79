"""Lazy re-hash: a key verified under an old pepper or old Argon2 parameters is re-hashed with the current
ones, conditionally, and the decision never depends on that write. And pepper-status, which tells when
an old pepper version can be retired."""

import inspect
import json
import sys
from dataclasses import replace

import boto3
import pytest
from argon2 import extract_parameters

from keygate import keys
from keygate.hashing import Argon2id, Argon2Params, Hasher
from tests.conftest import add_pepper_version, event, fail_calls, invoke
from tests.helpers.authorizer import decide, log_records, shaped
from tests.scrypt_scheme import Scrypt

ARGON2 = Argon2Params(memory_kib=19456, time_cost=2, parallelism=1)  # the template's
pytestmark = pytest.mark.dynamodb_local  # the re-hash's condition on the old hash, and pepper-status's projection


def item_of(table_items, key_id: str) -> dict:
    return next(item for item in table_items() if item["key_id"]["S"] == key_id)


def test_a_key_under_an_old_pepper_is_rehashed_on_its_next_use(stack, issued, load, table_items, capsys):
    key = issued()
    old_hash = item_of(table_items, key["key_id"])["hash"]["S"]
    add_pepper_version(stack, "v2")
    authorizer = load("AuthorizerFunction")
    capsys.readouterr()
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    item = item_of(table_items, key["key_id"])
    assert (item["pepper_version"]["S"], item["version"]["N"]) == ("v2", "1")  # not a change of the key
    assert item["hash"]["S"] != old_hash
    assert any(r["message"].startswith("key re-hashed") for r in log_records(capsys.readouterr().out))
    for _ in range(2):  # the new hash verifies, and nothing is re-hashed again
        assert decide(authorizer, shaped("http-api", authorization=f"Bearer {key['api_key']}"))[0]
    assert item_of(table_items, key["key_id"])["hash"] == item["hash"]


def test_a_key_under_old_argon2_parameters_is_rehashed_with_the_configured_ones(stack, issued, load, table_items):
    key = invoke(load("IssueKeyFunction", ARGON2_MEMORY_KIB="8192"), {"name": "n", "owner": "o"})
    authorizer = load("AuthorizerFunction")  # the template's 19456 KiB
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    assert extract_parameters(item_of(table_items, key["key_id"])["hash"]["S"]).memory_cost == 19456


def test_a_key_hashed_by_an_older_scheme_verifies_and_is_rehashed_with_the_first(stack, issued, load, table_items):
    """A move to a new scheme: the authorizer holds [Argon2id, Scrypt]; a key whose stored hash is scrypt's
    (written before the move) is allowed, and its next use stores an Argon2id hash in its place."""
    key = issued()
    ring = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=stack.physical_ids["PepperSecret"])["SecretString"]
    )
    secret = keys.parse(key["api_key"], stack.parameters["KeyPrefix"]).secret
    scrypt_hash = Hasher([Scrypt()]).hash(secret, ring[ring["current"]].encode())
    boto3.client("dynamodb").update_item(
        TableName=stack.physical_ids["KeysTable"], Key={"key_id": {"S": key["key_id"]}},
        UpdateExpression="SET #h = :h", ExpressionAttributeNames={"#h": "hash"},
        ExpressionAttributeValues={":h": {"S": scrypt_hash}},
    )  # fmt: skip
    handler = load("AuthorizerFunction")
    service = sys.modules[handler.__module__].KEYS
    service.authorizer = replace(service.authorizer, hasher=Hasher([Argon2id(ARGON2), Scrypt()]))
    assert decide(handler, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    stored = item_of(table_items, key["key_id"])["hash"]["S"]
    assert stored.startswith("$argon2id$") and extract_parameters(stored).memory_cost == ARGON2.memory_kib
    assert decide(handler, shaped("http-api", authorization=f"Bearer {key['api_key']}"))[0]  # the new hash holds


def test_a_failed_rehash_is_logged_and_the_key_is_still_allowed(stack, issued, load, monkeypatch, capsys):
    key = issued()
    add_pepper_version(stack, "v2")
    authorizer = load("AuthorizerFunction")
    fail_calls(monkeypatch, "UpdateItem", code="ThrottlingException")
    capsys.readouterr()
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    records = log_records(capsys.readouterr().out)
    (warning,) = [r for r in records if r.get("message", "").startswith("key re-hash failed")]
    assert "ThrottlingException" in warning["fault"] and warning["key_id"] == key["key_id"]


def test_a_rehash_that_meets_an_admin_transaction_on_the_key_is_dropped_and_done_on_the_next_use(
    stack, issued, load, table_items, monkeypatch, capsys
):
    key = issued()
    add_pepper_version(stack, "v2")
    authorizer = load("AuthorizerFunction", LAST_USED_INTERVAL_MINUTES="0")  # the re-hash is the only write
    fail_calls(monkeypatch, "UpdateItem", code="TransactionConflictException", times=1)
    capsys.readouterr()
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    records = log_records(capsys.readouterr().out)
    assert [r["message"] for r in records if r.get("message", "").startswith("key re-hash")] == [
        "key re-hash skipped: the key changed since it was read"
    ]
    assert not [r for r in records if r.get("level") == "WARNING"]  # a lost race, not a fault
    assert item_of(table_items, key["key_id"])["pepper_version"]["S"] == "v1"
    assert decide(authorizer, shaped("http-api", authorization=f"Bearer {key['api_key']}"))[0]
    assert item_of(table_items, key["key_id"])["pepper_version"]["S"] == "v2"


def test_a_rehash_never_overwrites_a_rotation_that_came_first(stack, issued, admin, load, table_items):
    key = issued()
    add_pepper_version(stack, "v2")
    authorizer = load("AuthorizerFunction")
    store = inspect.unwrap(authorizer).__globals__["KEYS"].authorizer.store
    real_rehash = store.rehash

    def rotated_meanwhile(before, after):
        invoke(admin["RotateKey"], {"key_id": before.key_id})  # lands between the read and the re-hash
        return real_rehash(before, after)

    store.rehash = rotated_meanwhile
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]
    item = item_of(table_items, key["key_id"])
    history = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert item["version"]["N"] == "2" and history[-1]["action"] == "rotate"
    assert item["hash"]["S"] != item["previous_hash"]["S"]  # the rotation's two hashes, not the re-hash's


@pytest.mark.parametrize("shape", ["rest-token", "http-api"])
def test_a_revoked_or_refused_key_is_not_rehashed(shape, stack, issued, admin, load, table_items):
    key = issued()
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    add_pepper_version(stack, "v2")
    assert not decide(load("AuthorizerFunction"), shaped(shape, authorization=f"Bearer {key['api_key']}"))[0]
    assert item_of(table_items, key["key_id"])["pepper_version"]["S"] == "v1"


# --- pepper-status ---


def test_pepper_status_counts_each_key_once_and_secrets_in_a_grace_period_apart(stack, issued, admin, load):
    active, revoked, rotating = issued(), issued(), issued()
    invoke(admin["RevokeKey"], {"key_id": revoked["key_id"]})
    add_pepper_version(stack, "v2")
    rotate = load("RotateKeyFunction")
    invoke(rotate, {"key_id": rotating["key_id"]})  # v2 now, v1 still verifies during its grace
    status = invoke(admin["PepperStatus"], event("pepper-status.json"))
    assert status == {
        "versions": {"v1": {"active": 1, "revoked": 1}, "v2": {"active": 1}},
        "grace_secrets": {"v1": {"active": 1}},
        "next_token": None,
    }
    assert active["pepper_version"] == "v1"


def test_pepper_status_pages_through_the_table(issued, admin):
    for _ in range(3):
        issued()
    status = inspect.unwrap(admin["PepperStatus"]).__globals__
    status["PEPPER_STATUS_PAGE"] = 2
    first = invoke(admin["PepperStatus"], {})
    second = invoke(admin["PepperStatus"], {"next_token": first["next_token"]})
    assert first["next_token"] and second["next_token"] is None
    assert first["versions"]["v1"]["active"] + second["versions"]["v1"]["active"] == 3
