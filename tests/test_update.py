"""Update, disable and enable: only what is named changes, a disabled key is refused on the very next
call until enabled, a revoked key stays revoked, and no update silently overwrites another."""

import inspect
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import event, invoke
from tests.helpers.authorizer import SHAPES, decide, reasons, shaped

pytestmark = pytest.mark.dynamodb_local  # update, disable and enable: conditional transactions with their audit records


def _future(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_update_changes_only_the_fields_it_names(issued, admin, table_items):
    key = issued(name="before", description="kept", scopes=["a"], apis=["x/y"], expires_at=_future(days=2))
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "after", "scopes": ["b", "c"]})
    assert (answer["name"], answer["scopes"], answer["version"]) == ("after", ["b", "c"], 2)
    assert (answer["description"], answer["apis"], answer["expires_at"]) == ("kept", ["x/y"], key["expires_at"])
    (item,) = table_items()
    assert item["hash"] == {"S": item["hash"]["S"]} and item["name"] == {"S": "after"}


def test_expires_at_null_clears_the_expiry_and_its_purge_date(issued, admin, table_items):
    key = issued(expires_at=_future(days=2))
    assert "purge_at" in table_items()[0]
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "expires_at": None})
    assert answer["expires_at"] is None and "purge_at" not in table_items()[0]


def test_a_new_expiry_moves_the_purge_date(issued, admin, table_items):
    key = issued()
    expires = _future(days=3)
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "expires_at": expires})
    (item,) = table_items()
    expected = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) + timedelta(days=90)
    assert int(item["purge_at"]["N"]) == int(expected.timestamp())


@pytest.mark.parametrize("shape", SHAPES)
def test_a_disabled_key_is_refused_on_the_very_next_call_until_enabled(shape, issued, admin, authorizer, capsys):
    key = issued()
    request = shaped(shape, authorization=f"Bearer {key['api_key']}")
    assert decide(authorizer, request)[0]
    disabled = invoke(admin["UpdateKey"], event("disable-key.json", key_id=key["key_id"]))
    assert disabled["status"] == "disabled"
    capsys.readouterr()
    assert not decide(authorizer, request)[0]
    assert reasons(capsys) == ["DisabledKey"]
    assert invoke(admin["UpdateKey"], event("enable-key.json", key_id=key["key_id"]))["status"] == "active"
    assert decide(authorizer, request)[0]


def test_the_update_event_file_updates_a_key(issued, admin):
    key = issued()
    answer = invoke(admin["UpdateKey"], event("update-key.json", key_id=key["key_id"]))
    assert "error" not in answer and answer["version"] == 2


def test_a_revoked_key_cannot_be_updated_and_nothing_is_written(issued, admin, table_items):
    key = issued()
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    before = table_items()
    for change in ({"enabled": True}, {"name": "revived"}, {"expires_at": None}):
        answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], **change})
        assert answer["error"]["type"] == "KeyRevoked", change
    assert table_items() == before


def test_an_update_that_changes_nothing_writes_nothing(issued, admin, table_items):
    key = issued(name="same")
    before = table_items()
    assert invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "same"})["version"] == 1
    assert table_items() == before


def test_expected_version_guards_against_a_stale_read(issued, admin):
    key = issued()
    first = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "first", "expected_version": 1})
    assert first["version"] == 2
    stale = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "second", "expected_version": 1})
    assert stale["error"]["type"] == "VersionConflict" and "version 2, not 1" in stale["error"]["message"]
    assert invoke(admin["GetKey"], {"key_id": key["key_id"]})["name"] == "first"


def racing(admin, function: str, other_change: dict):
    """Make ``function``'s next write lose a race: another admin's update lands between its read and
    its write. (Deterministic: moto, unlike DynamoDB, is not atomic under real threads.)"""
    service = inspect.unwrap(admin[function]).__globals__["KEYS"]
    real_update, raced = service._store.update, []

    def update_after_another_writer(before, after, audit, along=()):
        if not raced:
            raced.append(True)
            invoke(admin["UpdateKey"], {"key_id": before.key_id, **other_change})
        return real_update(before, after, audit, along)

    service._store.update = update_after_another_writer
    return raced


def test_an_update_that_loses_a_race_reads_again_and_keeps_the_other_change(issued, admin):
    key = issued(scopes=["a"])
    raced = racing(admin, "UpdateKey", {"scopes": ["b"]})
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "description": "mine"})
    assert raced and (answer["description"], answer["scopes"], answer["version"]) == ("mine", ["b"], 3)
    history = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert [list(event["changes"]) for event in history[1:]] == [["scopes"], ["description"]]


def test_an_update_with_expected_version_that_loses_a_race_is_a_conflict(issued, admin):
    key = issued()
    raced = racing(admin, "UpdateKey", {"name": "theirs"})
    answer = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "name": "mine", "expected_version": 1})
    assert raced and answer["error"]["type"] == "VersionConflict"
    final = invoke(admin["GetKey"], {"key_id": key["key_id"]})
    assert (final["name"], final["version"]) == ("theirs", 2)


BAD_UPDATES = [
    ({}, "key_id", "Field required"),
    ({"name": None}, "name", "valid string"),
    ({"enabled": "no"}, "enabled", "valid boolean"),
    ({"expected_version": 0}, "expected_version", "greater than or equal to 1"),
    ({"apis": []}, "apis", "at least one API_ID/STAGE"),
    ({"scopes": ["a", "a"]}, "scopes", "must not repeat"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "in the future"),
    ({"owner": "someone else"}, "owner", "Extra inputs are not permitted"),
    ({"status": "active"}, "status", "Extra inputs are not permitted"),
    ({"actor": ""}, "actor", "at least 1 character"),
]


@pytest.mark.parametrize(("change", "field", "problem"), BAD_UPDATES, ids=[case[1] for case in BAD_UPDATES])
def test_a_bad_update_names_the_field_and_writes_nothing(change, field, problem, issued, admin, table_items):
    key = issued()
    before = table_items()
    request = ({"key_id": key["key_id"]} if field != "key_id" else {}) | change
    answer = invoke(admin["UpdateKey"], request)
    assert answer["error"]["type"] == "InvalidRequest"
    assert problem in answer["error"]["fields"][field]
    assert table_items() == before


def test_updating_an_unknown_key_is_a_clear_error(admin):
    assert invoke(admin["UpdateKey"], {"key_id": "A" * 16, "name": "n"})["error"]["type"] == "KeyNotFound"


# --- list by state ---


def test_list_filters_by_state(issued, admin, authorizer):
    active, disabled, revoked = issued(owner="o"), issued(owner="o"), issued(owner="o")
    expired = issued(owner="o", expires_at=_future(seconds=2))
    invoke(admin["UpdateKey"], {"key_id": disabled["key_id"], "enabled": False})
    invoke(admin["RevokeKey"], {"key_id": revoked["key_id"]})
    service = inspect.unwrap(admin["ListKeys"]).__globals__["KEYS"]
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    service._clock = lambda: later  # the expiring key is past its expiry now
    expected = {"active": active, "disabled": disabled, "revoked": revoked, "expired": expired}
    for state, key in expected.items():
        for owner in (None, "o"):  # a Scan, and a Query on the owner index
            request = {"status": state} | ({"owner": owner} if owner else {})
            listed = invoke(admin["ListKeys"], request)["keys"]
            assert [item["key_id"] for item in listed] == [key["key_id"]], (state, owner)
            assert listed[0]["status"] == state
    bad = invoke(admin["ListKeys"], {"status": "deleted"})
    assert bad["error"]["type"] == "InvalidRequest" and "status" in bad["error"]["fields"]
