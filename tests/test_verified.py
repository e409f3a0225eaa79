"""The verified-key cache: Argon2 once per key per container, while every call still reads the item, so a
revoked, disabled or expired key is refused on the very next call in every container; an entry counts
only while the item holds the hash it was checked against; repeated wrong secrets cost no Argon2."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from argon2 import PasswordHasher

from keygate import keys
from keygate.verified import VerifiedKeys, _Lru
from keygate_local.template import ROOT
from tests.conftest import add_pepper_version, invoke, wrong_secret
from tests.helpers.authorizer import SHAPES, at, decide, log_records, service_of, shaped


@pytest.fixture
def argon2_verifies(monkeypatch) -> list[str]:
    """The PHC string of every Argon2 verify, in order."""
    calls: list[str] = []
    real = PasswordHasher.verify
    monkeypatch.setattr(
        PasswordHasher, "verify", lambda self, phc, password: calls.append(phc) or real(self, phc, password)
    )
    return calls


def verified_by(authorizer, api_key: str, capsys, shape: str = "rest-token") -> tuple[str, str | None]:
    """(reason, verified_by) of one call, from the authorizer's log line."""
    capsys.readouterr()
    decide(authorizer, shaped(shape, authorization=f"Bearer {api_key}"))
    decisions = ("key allowed", "key refused", "authorization failed closed")
    (record,) = [r for r in log_records(capsys.readouterr().out) if r.get("message") in decisions]
    return record["reason"], record.get("verified_by")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_key_pays_argon2_once_and_is_still_read_on_every_call(
    shape, issued, authorizer, argon2_verifies, capsys, monkeypatch
):
    key = issued()
    reads = []
    store = service_of(authorizer)._store
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda key_id: reads.append(key_id) or real_get(key_id))
    assert verified_by(authorizer, key["api_key"], capsys, shape) == ("Allowed", "argon2")
    for _ in range(3):
        assert verified_by(authorizer, key["api_key"], capsys, shape) == ("Allowed", "cache")
    assert len(argon2_verifies) == 1 and reads == [key["key_id"]] * 4


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"enabled": False}, "DisabledKey"), ({"expires_at": "past"}, "ExpiredKey"), ("revoke", "RevokedKey")],
)
def test_a_cached_key_is_refused_on_the_next_call_in_every_container(change, reason, issued, admin, load, capsys):
    key = issued(expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    containers = [load("AuthorizerFunction"), load("AuthorizerFunction")]
    for container in containers:
        verified_by(container, key["api_key"], capsys)
        assert verified_by(container, key["api_key"], capsys) == ("Allowed", "cache")
    if change == "revoke":
        invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    elif change == {"expires_at": "past"}:
        for container in containers:
            at(container, datetime.now(UTC) + timedelta(hours=2))
    else:
        invoke(admin["UpdateKey"], {"key_id": key["key_id"], **change})
    for container in containers:
        assert verified_by(container, key["api_key"], capsys)[0] == reason


def test_a_re_enabled_key_is_allowed_from_the_cache_as_its_hash_did_not_change(
    issued, admin, authorizer, argon2_verifies, capsys
):
    key = issued()
    verified_by(authorizer, key["api_key"], capsys)
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": False})
    assert verified_by(authorizer, key["api_key"], capsys) == ("DisabledKey", "cache")
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": True})
    assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "cache")
    assert len(argon2_verifies) == 1


def test_an_entry_counts_only_while_the_item_holds_the_hash_it_was_checked_against(
    issued, stack, authorizer, argon2_verifies, capsys
):
    key = issued()
    verified_by(authorizer, key["api_key"], capsys)
    client = boto3.client("dynamodb")
    table = stack.physical_ids["KeysTable"]
    item = client.get_item(TableName=table, Key={"key_id": {"S": key["key_id"]}})["Item"]
    client.put_item(TableName=table, Item=item | {"hash": {"S": item["hash"]["S"][:-4] + "AAAA"}})
    assert verified_by(authorizer, key["api_key"], capsys) == ("WrongSecret", "argon2")
    client.put_item(TableName=table, Item=item)
    assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "cache")  # the same hash again
    assert len(argon2_verifies) == 2


def test_rotation_old_secret_from_the_cache_during_grace_refused_after(
    issued, admin, authorizer, argon2_verifies, capsys
):
    key = issued()
    verified_by(authorizer, key["api_key"], capsys)
    rotated = invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 3600})
    assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "cache")  # the old hash, now previous
    assert verified_by(authorizer, rotated["api_key"], capsys) == ("Allowed", "argon2")
    assert verified_by(authorizer, rotated["api_key"], capsys) == ("Allowed", "cache")
    at(authorizer, datetime.now(UTC) + timedelta(hours=2))
    assert verified_by(authorizer, key["api_key"], capsys) == ("WrongSecret", "argon2")
    assert verified_by(authorizer, key["api_key"], capsys) == ("WrongSecret", "cache")
    assert verified_by(authorizer, rotated["api_key"], capsys) == ("Allowed", "cache")


def test_a_re_hashed_key_stays_in_the_cache(issued, stack, authorizer, argon2_verifies, capsys):
    key = issued()
    add_pepper_version(stack)
    assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "argon2")  # and re-hashed under v2
    assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "cache")
    assert len(argon2_verifies) == 1


def _set_pepper_ring(stack, ring: dict) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.physical_ids["PepperSecret"], SecretString=json.dumps(ring)
    )


@pytest.mark.parametrize(
    ("ring", "reason"),
    [
        ({"current": "v2", "v2": "n" * 64}, "Fault"),  # v1 removed while the key still needs it
        ({"current": "v1", "v1": "n" * 64}, "WrongSecret"),  # v1's value replaced (a regenerated secret)
    ],
)
def test_a_cached_key_counts_only_while_its_pepper_holds_the_same_value(ring, reason, stack, issued, load, capsys):
    key = issued()
    authorizer = load("AuthorizerFunction", PEPPER_CACHE_SECONDS="0")  # the container sees the change at once
    verified_by(authorizer, key["api_key"], capsys)
    assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "cache")
    _set_pepper_ring(stack, ring)
    assert verified_by(authorizer, key["api_key"], capsys)[0] == reason


def test_a_cached_key_is_a_fault_when_the_pepper_cannot_be_read(stack, issued, load, capsys):
    key = issued()
    authorizer = load("AuthorizerFunction", PEPPER_CACHE_SECONDS="0")
    verified_by(authorizer, key["api_key"], capsys)
    boto3.client("secretsmanager").delete_secret(
        SecretId=stack.physical_ids["PepperSecret"], ForceDeleteWithoutRecovery=True
    )
    assert verified_by(authorizer, key["api_key"], capsys)[0] == "Fault"


def test_a_repeated_wrong_secret_costs_no_argon2_but_each_new_one_does(issued, authorizer, argon2_verifies, capsys):
    key = issued()
    guess = wrong_secret(key["api_key"])
    assert verified_by(authorizer, guess, capsys) == ("WrongSecret", "argon2")
    assert verified_by(authorizer, guess, capsys) == ("WrongSecret", "cache")
    other_guess = keys.generate("kg", key_id=key["key_id"]).api_key
    assert verified_by(authorizer, other_guess, capsys) == ("WrongSecret", "argon2")
    assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "argon2")
    assert len(argon2_verifies) == 3


def test_a_refusal_during_a_grace_period_is_not_reused_once_the_previous_secret_changes(
    issued, admin, authorizer, capsys
):
    key = issued()
    invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 0})  # the first secret stops at once
    assert verified_by(authorizer, key["api_key"], capsys) == ("WrongSecret", "argon2")
    invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 3600})
    assert verified_by(authorizer, key["api_key"], capsys) == ("WrongSecret", "argon2")  # new hashes: checked again


def test_with_a_size_of_zero_every_call_pays_argon2(issued, load, argon2_verifies, capsys):
    authorizer = load("AuthorizerFunction", VERIFIED_KEY_CACHE_SIZE="0")
    key = issued()
    for _ in range(3):
        assert verified_by(authorizer, key["api_key"], capsys) == ("Allowed", "argon2")
    assert len(argon2_verifies) == 3


def test_the_cache_keeps_its_most_recently_used_entries():
    lru = _Lru[str](2)
    lru.put(b"a", "1"), lru.put(b"b", "2")
    assert lru.get(b"a") == "1"  # now the most recent
    lru.put(b"c", "3")
    assert (lru.get(b"a"), lru.get(b"b"), lru.get(b"c"), len(lru)) == ("1", None, "3", 2)


def test_entries_hold_a_keyed_digest_never_the_key_and_mean_nothing_in_another_container():
    new_key = keys.generate("kg")
    parsed = keys.parse(new_key.api_key, "kg")
    one, other = VerifiedKeys(10), VerifiedKeys(10)
    one.remember_match(one.digest(parsed), ("$argon2id$...", "v1", one.fingerprint(b"p" * 64)))
    held = repr(vars(one)) + repr(vars(one._matched)) + repr(vars(one._refused))
    assert new_key.secret not in held and new_key.api_key not in held and "p" * 64 not in held
    assert one.digest(parsed) != other.digest(parsed) and other.matched(other.digest(parsed)) is None


def test_the_template_sets_the_size_and_loads_the_x_ray_sdk_only_when_asked(stack):
    environment = stack.function_environment("AuthorizerFunction")
    assert environment["VERIFIED_KEY_CACHE_SIZE"] == "10000" and environment["POWERTOOLS_TRACE_DISABLED"] == "true"
    code = "import sys, authorizer.app; print('aws_xray_sdk' in sys.modules)"
    loaded = {}
    for disabled in ("true", "false"):
        env = environment | {
            "POWERTOOLS_TRACE_DISABLED": disabled,
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(ROOT / "src"),
        }
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
        )
        loaded[disabled] = run.stdout.strip()
    assert loaded == {"true": "False", "false": "True"}
