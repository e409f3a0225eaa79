"""The admin functions: issue, revoke, get and list, with the events/ files and bad input."""

import inspect
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from argon2 import extract_parameters

from tests.conftest import event, invoke

pytestmark = pytest.mark.dynamodb_local  # the store's every call, on DynamoDB Local too

VIEW_FIELDS = {
    "key_id", "name", "owner", "description", "scopes", "apis", "metadata", "status", "created_at", "expires_at",
    "revoked_at",
    "last_used_at", "rotated_at", "previous_key_expires_at", "pepper_version", "usage_plan_id", "quota_per",
    "usage_key_id", "version",
}  # fmt: skip


def _future(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- issue ---


def test_issue_event_file_issues_a_key_shown_once(admin, table_items):
    answer = invoke(admin["IssueKey"], event("issue-key.json"))
    assert set(answer) == VIEW_FIELDS | {"api_key", "notice"}
    assert answer["api_key"].startswith(f"kg_{answer['key_id']}_")
    assert (answer["name"], answer["owner"], answer["scopes"]) == ("billing-service", "team-billing", ["invoices:read"])
    assert answer["metadata"] == {"plan": "gold"}
    assert (answer["status"], answer["version"], answer["pepper_version"]) == ("active", 1, "v1")
    assert answer["expires_at"] is None and answer["revoked_at"] is None
    (item,) = table_items()
    assert item["key_id"]["S"] == answer["key_id"]


def test_stored_item_holds_an_argon2id_hash_never_the_key(issued, table_items):
    answer = issued()
    secret = answer["api_key"].split("_")[2][:-6]
    (item,) = table_items()
    flat = repr(item)
    assert answer["api_key"] not in flat and secret not in flat
    parameters = extract_parameters(item["hash"]["S"])
    assert item["hash"]["S"].startswith("$argon2id$")
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    assert item["pepper_version"]["S"] == "v1"


def test_argon2_cost_comes_from_the_template_parameters(stack, load, table_items):
    issue = load("IssueKeyFunction", ARGON2_MEMORY_KIB="8192", ARGON2_TIME_COST="3")
    invoke(issue, {"name": "n", "owner": "o"})
    (item,) = table_items()
    parameters = extract_parameters(item["hash"]["S"])
    assert (parameters.memory_cost, parameters.time_cost) == (8192, 3)


def test_issue_with_expiry_normalises_it_to_utc_seconds_and_schedules_purge(issued, table_items):
    year = datetime.now(UTC).year + 2
    answer = issued(expires_at=f"{year}-06-30T12:00:00.123456+02:00")
    assert answer["expires_at"] == f"{year}-06-30T10:00:00Z"
    (item,) = table_items()
    expected_purge = datetime(year, 6, 30, 10, tzinfo=UTC) + timedelta(days=90)
    assert int(item["purge_at"]["N"]) == int(expected_purge.timestamp())


def test_a_key_without_expiry_is_never_purged_while_active(issued, table_items):
    issued()
    (item,) = table_items()
    assert "purge_at" not in item


def test_retention_zero_keeps_records_forever(load, table_items):
    issue = load("IssueKeyFunction", RETENTION_DAYS="0")
    invoke(issue, {"name": "n", "owner": "o", "expires_at": _future(days=1)})
    (item,) = table_items()
    assert "purge_at" not in item


def test_a_key_uses_the_prefix_parameter(load):
    issue = load("IssueKeyFunction", KEY_PREFIX="acme")
    assert invoke(issue, {"name": "n", "owner": "o"})["api_key"].startswith("acme_")


BAD_ISSUES = [
    ({"owner": "o"}, "name", "Field required"),
    ({"name": "n"}, "owner", "Field required"),
    ({"name": 7, "owner": "o"}, "name", "valid string"),
    ({"name": "", "owner": "o"}, "name", "at least 1 character"),
    ({"name": "n" * 129, "owner": "o"}, "name", "at most 128"),
    ({"name": "line\nbreak", "owner": "o"}, "name", "pattern"),
    ({"name": "n", "owner": "o" * 129}, "owner", "at most 128"),
    ({"name": "n", "owner": "o", "description": "d" * 1025}, "description", "at most 1024"),
    ({"name": "n", "owner": "o", "scopes": "read"}, "scopes", "valid list"),
    ({"name": "n", "owner": "o", "scopes": ["a b"]}, "scopes.0", "a scope per entry"),
    ({"name": "n", "owner": "o", "scopes": ["read", "read"]}, "scopes", "must not repeat"),
    ({"name": "n", "owner": "o", "scopes": [f"s{i}" for i in range(51)]}, "scopes", "at most 50"),
    ({"name": "n", "owner": "o", "expires_at": "next week"}, "expires_at", "ISO-8601"),
    ({"name": "n", "owner": "o", "expires_at": "2099-01-01T00:00:00"}, "expires_at", "time zone"),
    ({"name": "n", "owner": "o", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "in the future"),
    ({"name": "n", "owner": "o", "expires_at": 4102444800}, "expires_at", "must be a string"),
    ({"name": "n", "owner": "o", "expires_at": "9999-12-31T23:59:59Z"}, "expires_at", "within ten years"),
    ({"name": "n", "owner": "o", "expires_at": "9999-12-31T23:30:00-01:00"}, "expires_at", "within ten years"),
    ({"name": "right\u202eleft", "owner": "o"}, "name", "pattern"),
    ({"name": "n", "owner": "line\u2028separator"}, "owner", "pattern"),
    ({"name": "n", "owner": "o", "description": "next\u0085line"}, "description", "pattern"),
    ({"name": "zero\u200bwidth", "owner": "o"}, "name", "pattern"),
    ({"name": "n", "owner": "o", "api_key": "kg_mine"}, "api_key", "Extra inputs are not permitted"),
    ({"name": "n", "owner": "o", "status": "revoked"}, "status", "Extra inputs are not permitted"),
    ([], "(event)", "valid dictionary"),
]


@pytest.mark.parametrize(
    ("request_", "field", "problem"), BAD_ISSUES, ids=[f"{case[1]}-{n}" for n, case in enumerate(BAD_ISSUES)]
)
def test_bad_issue_request_names_the_field_and_writes_nothing(request_, field, problem, admin, table_items):
    answer = invoke(admin["IssueKey"], request_)
    assert answer["error"]["type"] == "InvalidRequest"
    assert problem in answer["error"]["fields"][field]
    assert field in answer["error"]["message"]
    assert table_items() == []


# --- revoke ---


def test_revoke_event_file_revokes_the_key(issued, admin, table_items):
    key = issued()
    answer = invoke(admin["RevokeKey"], event("revoke-key.json", key_id=key["key_id"]))
    assert (answer["key_id"], answer["status"], answer["version"]) == (key["key_id"], "revoked", 2)
    assert answer["revoked_at"] is not None and "api_key" not in answer
    (item,) = table_items()
    revoked_at = datetime.strptime(item["revoked_at"]["S"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(item["purge_at"]["N"]) == int((revoked_at + timedelta(days=90)).timestamp())


def test_revoking_twice_is_harmless_and_changes_nothing(issued, admin, table_items):
    key = issued()
    first = invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    items_after_first = table_items()
    second = invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    assert second == first
    assert table_items() == items_after_first


def test_revoking_an_unknown_key_is_a_clear_error(admin, table_items):
    answer = invoke(admin["RevokeKey"], {"key_id": "A" * 16})
    assert answer == {"error": {"type": "KeyNotFound", "message": "no key with key_id 'AAAAAAAAAAAAAAAA'"}}
    assert table_items() == []


@pytest.mark.parametrize("action", ["RevokeKey", "GetKey"])
@pytest.mark.parametrize("request_", [{}, {"key_id": "short"}, {"key_id": 5}, {"key_id": "A" * 16, "x": 1}])
def test_bad_key_reference_is_refused(action, request_, admin):
    answer = invoke(admin[action], request_)
    assert answer["error"]["type"] == "InvalidRequest"


def test_a_revoke_that_loses_a_race_reads_again_and_keeps_the_other_change(issued, admin, monkeypatch):
    key = issued()
    service = inspect.unwrap(admin["RevokeKey"]).__globals__["KEYS"]
    store = service._store
    real_update = store.update
    raced = []

    def update_after_another_writer(before, after, audit, along=()):
        if not raced:  # another admin changes the key between our read and our write
            raced.append(True)
            update = inspect.unwrap(admin["RevokeKey"]).__globals__["Update"]  # the container's own, as loaded
            service.update(before.key_id, update(description="changed meanwhile"), actor="someone else")
        return real_update(before, after, audit, along)

    monkeypatch.setattr(store, "update", update_after_another_writer)
    answer = invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    assert (answer["status"], answer["version"], answer["description"]) == ("revoked", 3, "changed meanwhile")
    history = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert [(event["version"], event["action"]) for event in history] == [(1, "issue"), (2, "update"), (3, "revoke")]


def test_revoke_leaves_attributes_it_does_not_know_in_place(issued, admin, stack):
    key = issued()
    dynamodb = boto3.client("dynamodb")
    table = stack.physical_ids["KeysTable"]
    dynamodb.update_item(
        TableName=table, Key={"key_id": {"S": key["key_id"]}},
        UpdateExpression="SET ticket = :ticket", ExpressionAttributeValues={":ticket": {"S": "OPS-42"}},
    )  # fmt: skip
    invoke(admin["RevokeKey"], {"key_id": key["key_id"]})
    item = dynamodb.get_item(TableName=table, Key={"key_id": {"S": key["key_id"]}})["Item"]
    assert item["ticket"] == {"S": "OPS-42"} and item["status"] == {"S": "revoked"}


def test_revoke_with_no_retention_leaves_no_purge_date(issued, load, table_items):
    key = issued(expires_at=_future(days=1))  # issued with a purge date: expiry + 90 days
    revoke = load("RevokeKeyFunction", RETENTION_DAYS="0")
    invoke(revoke, {"key_id": key["key_id"]})
    (item,) = table_items()
    assert "purge_at" not in item and item["status"] == {"S": "revoked"}


# --- get ---


def test_get_event_file_shows_metadata_and_never_the_hash(issued, admin):
    key = issued(description="d", scopes=["a"])
    answer = invoke(admin["GetKey"], event("get-key.json", key_id=key["key_id"]))
    assert set(answer) == VIEW_FIELDS
    assert answer == {field: key[field] for field in VIEW_FIELDS}
    assert "$argon2" not in repr(answer)


def test_get_shows_an_active_key_past_its_expiry_as_expired(issued, admin, monkeypatch):
    key = issued(expires_at=_future(hours=1))
    service = inspect.unwrap(admin["GetKey"]).__globals__["KEYS"]
    monkeypatch.setattr(service, "_clock", lambda: datetime.now(UTC) + timedelta(hours=2))
    assert invoke(admin["GetKey"], {"key_id": key["key_id"]})["status"] == "expired"


def test_get_unknown_key_is_a_clear_error(admin):
    assert invoke(admin["GetKey"], {"key_id": "B" * 16})["error"]["type"] == "KeyNotFound"


# --- list ---


def _list_all(admin, **request) -> list[dict]:
    pages, token = [], None
    for _ in range(50):
        answer = invoke(admin["ListKeys"], request | ({"next_token": token} if token else {}))
        assert "error" not in answer, answer
        pages.append(answer["keys"])
        token = answer["next_token"]
        if token is None:
            return [key for page in pages for key in page]
    raise AssertionError("list never ended")


def test_list_event_file_lists_the_owners_keys(admin):
    issued = [invoke(admin["IssueKey"], event("issue-key.json")) for _ in range(2)]
    invoke(admin["IssueKey"], {"name": "other", "owner": "team-other"})
    answer = invoke(admin["ListKeys"], event("list-keys.json"))
    assert sorted(key["key_id"] for key in answer["keys"]) == sorted(key["key_id"] for key in issued)
    assert all(set(key) == VIEW_FIELDS for key in answer["keys"])


def test_list_by_owner_pages_through_every_key_once_newest_first(issued, admin, monkeypatch):
    service = inspect.unwrap(admin["IssueKey"]).__globals__["KEYS"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for minute in range(7):
        monkeypatch.setattr(service, "_clock", lambda minute=minute: start + timedelta(minutes=minute))
        ids.append(issued(owner="team-a")["key_id"])
    issued(owner="team-b")
    listed = _list_all(admin, owner="team-a", limit=3)
    assert [key["key_id"] for key in listed] == list(reversed(ids))


def test_list_without_owner_pages_through_all_keys(issued, admin):
    ids = {issued(owner=f"team-{n % 3}")["key_id"] for n in range(7)}
    listed = _list_all(admin, limit=2)
    assert sorted(key["key_id"] for key in listed) == sorted(ids)


def test_list_of_nothing_is_an_empty_page(admin):
    assert invoke(admin["ListKeys"], {"owner": "nobody"}) == {"keys": [], "next_token": None}


BAD_LISTS = [
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "10"}, "limit"),
    ({"owner": ""}, "owner"),
    ({"next_token": "!!!not-base64!!!"}, "next_token"),
    ({"next_token": "eyJ4IjogMX0="}, "next_token"),  # {"x": 1}
    ({"next_token": "eyJrZXlfaWQiOiB7IlMiOiAxMjN9fQ=="}, "next_token"),  # {"key_id": {"S": 123}}
    ({"color": "red"}, "color"),
]


@pytest.mark.parametrize(("request_", "field"), BAD_LISTS)
def test_bad_list_request_names_the_field(request_, field, admin):
    answer = invoke(admin["ListKeys"], request_)
    assert answer["error"]["type"] == "InvalidRequest"
    assert field in answer["error"]["fields"]


def test_a_next_token_of_one_owner_is_refused_for_another(issued, admin):
    for _ in range(3):
        issued(owner="team-a")
    token = invoke(admin["ListKeys"], {"owner": "team-a", "limit": 1})["next_token"]
    answer = invoke(admin["ListKeys"], {"owner": "team-b", "next_token": token})
    assert answer["error"]["fields"]["next_token"] == "next_token belongs to a list of another owner"


# --- faults ---


def test_a_dynamodb_fault_in_admin_raises_rather_than_answering(issued, admin, stack):
    key = issued()
    dynamodb = boto3.client("dynamodb")
    table = stack.physical_ids["KeysTable"]
    dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False)
    dynamodb.delete_table(TableName=table)
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        invoke(admin["RevokeKey"], {"key_id": key["key_id"]})


def test_a_whole_key_given_as_a_key_id_is_refused_saying_so_without_echoing_it(issued, admin):
    key = issued()
    answer = invoke(admin["GetKey"], {"key_id": key["api_key"]})
    assert answer["error"]["type"] == "InvalidRequest"
    assert "not a whole key" in answer["error"]["fields"]["key_id"]
    assert key["api_key"].split("_")[2] not in json.dumps(answer)  # the secret part, nowhere


def test_scopes_written_with_a_comma_are_refused_saying_a_scope_per_entry(admin):
    answer = invoke(admin["IssueKey"], {"name": "n", "owner": "o", "scopes": ["orders:read,orders:write"]})
    assert answer["error"]["type"] == "InvalidRequest"
    assert "a scope per entry" in answer["error"]["fields"]["scopes.0"]
