"""Rotation with a grace period: a new secret for the same key id; the old one verifies until the grace
ends, then only the new one; rotating again ends the older grace at once (two secrets at most)."""

from datetime import UTC, datetime, timedelta

import pytest

from keygate import keys
from tests.conftest import event, invoke
from tests.helpers.authorizer import SHAPES, at, decide, reasons, shaped

pytestmark = pytest.mark.dynamodb_local  # rotation's two hashes and their expiry, written and read back


def allowed(authorizer, api_key: str, shape: str = "rest-token") -> bool:
    return decide(authorizer, shaped(shape, authorization=f"Bearer {api_key}"))[0]


def test_the_rotate_event_file_rotates_a_key_shown_once(issued, admin):
    key = issued(scopes=["orders:read"], owner="team-r")
    answer = invoke(admin["RotateKey"], event("rotate-key.json", key_id=key["key_id"]))
    assert answer["key_id"] == key["key_id"] and answer["api_key"] != key["api_key"]
    assert keys.parse(answer["api_key"], "kg").key_id == key["key_id"]
    assert (answer["scopes"], answer["owner"], answer["version"]) == (["orders:read"], "team-r", 2)
    rotated = datetime.strptime(answer["rotated_at"], "%Y-%m-%dT%H:%M:%SZ")
    stops = datetime.strptime(answer["previous_key_stops_working_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert (
        stops - rotated == timedelta(days=1)
        and answer["previous_key_expires_at"] == answer["previous_key_stops_working_at"]
    )
    assert "shown this once" in answer["notice"]
    assert "api_key" not in invoke(admin["GetKey"], {"key_id": key["key_id"]})


@pytest.mark.parametrize("shape", SHAPES)
def test_both_secrets_verify_during_the_grace_period_and_only_the_new_one_after(shape, issued, admin, authorizer):
    old = issued()["api_key"]
    rotated = invoke(admin["RotateKey"], {"key_id": keys.parse(old, "kg").key_id, "grace_seconds": 3600})
    new = rotated["api_key"]
    ends = datetime.strptime(rotated["previous_key_stops_working_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    at(authorizer, ends - timedelta(seconds=1))
    assert allowed(authorizer, old, shape) and allowed(authorizer, new, shape)
    at(authorizer, ends)
    assert not allowed(authorizer, old, shape) and allowed(authorizer, new, shape)


def test_rotating_again_ends_the_older_grace_at_once(issued, admin, authorizer, capsys):
    first = issued()["api_key"]
    key_id = keys.parse(first, "kg").key_id
    second = invoke(admin["RotateKey"], {"key_id": key_id})["api_key"]
    third = invoke(admin["RotateKey"], {"key_id": key_id})["api_key"]
    capsys.readouterr()
    assert [allowed(authorizer, key) for key in (first, second, third)] == [False, True, True]
    assert reasons(capsys)[0] == "WrongSecret"


def test_a_grace_of_zero_stops_the_old_secret_at_once(issued, admin, authorizer):
    old = issued()["api_key"]
    answer = invoke(admin["RotateKey"], {"key_id": keys.parse(old, "kg").key_id, "grace_seconds": 0})
    assert answer["previous_key_stops_working_at"] == answer["rotated_at"]
    assert answer["previous_key_expires_at"] is None
    assert not allowed(authorizer, old) and allowed(authorizer, answer["api_key"])


def test_the_hash_of_the_old_secret_is_kept_only_for_the_grace_and_never_shown(issued, admin, table_items):
    key = issued()
    invoke(admin["RotateKey"], {"key_id": key["key_id"]})
    (item,) = table_items()
    assert item["previous_hash"]["S"].startswith("$argon2id$") and item["previous_hash"] != item["hash"]
    shown = repr(invoke(admin["GetKey"], {"key_id": key["key_id"]}))
    assert "argon2" not in shown and key["api_key"] not in shown
    invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 0})
    assert "previous_hash" not in table_items()[0]


def test_a_revoked_key_cannot_be_rotated_and_nothing_is_written(issued, admin, table_items):
    key = issued()
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    before = table_items()
    answer = invoke(admin["RotateKey"], {"key_id": key["key_id"]})
    assert answer["error"]["type"] == "KeyRevoked" and "api_key" not in answer
    assert table_items() == before


def test_a_disabled_key_rotates_and_stays_disabled(issued, admin, authorizer):
    key = issued()
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "enabled": False})
    rotated = invoke(admin["RotateKey"], {"key_id": key["key_id"]})
    assert rotated["status"] == "disabled" and not allowed(authorizer, rotated["api_key"])


@pytest.mark.parametrize(
    ("request_", "field", "problem"),
    [({"grace_seconds": -1}, "grace_seconds", "greater than or equal to 0"),
     ({"grace_seconds": 30 * 86400 + 1}, "grace_seconds", "less than or equal to 2592000"),
     ({"grace_seconds": "1d"}, "grace_seconds", "valid integer"), ({"key_id": "short"}, "key_id", "a key id")],
)  # fmt: skip
def test_a_bad_rotation_names_the_field_and_writes_nothing(request_, field, problem, issued, admin, table_items):
    key = issued()
    before = table_items()
    answer = invoke(admin["RotateKey"], {"key_id": key["key_id"]} | request_)
    assert problem in answer["error"]["fields"][field]
    assert table_items() == before
