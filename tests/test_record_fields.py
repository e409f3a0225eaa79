"""A key's fields are declared once, on KeyRecord: what is stored, shown, audited, updated, and which
function may write each. These tests hold the rest of the house to that declaration, above all the IAM
grants: a field added to an update, and forgotten in UpdateKeyFunction's dynamodb:Attributes, fails here
rather than as AccessDenied in AWS. (tests/test_iam.py holds the grants to the functions' real calls.)"""

import json
import re
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from admin.models import UpdateKey
from keygate.audit import Action, AuditRecord, audited_view
from keygate.lifecycle import Update
from keygate.records import DECLARED, KeyRecord, QuotaPer, Status, Writer, written_by
from keygate.store import CorruptRecord, KeyStore, UndeclaredWrite, from_item, to_item
from keygate_local.template import Stack
from tests.helpers.iam import attributes
from tests.helpers.regions import REGION, REGIONAL, REPLICATED

# The functions that change a key after issue, and what their code writes as.
WRITERS_OF = {
    "AuthorizerFunction": {Writer.REHASH, Writer.TOUCH},
    "UpdateKeyFunction": {Writer.UPDATE},
    "RotateKeyFunction": {Writer.ROTATE},
    "RevokeKeyFunction": {Writer.REVOKE},
    "ReportLeakFunction": {Writer.REVOKE},
    "LeakReportFunction": {Writer.REVOKE},
    "FlushAuthorizerCacheFunction": {Writer.GRACE_END},
}
ACTION_OF = {
    Writer.UPDATE: Action.UPDATE,
    Writer.ROTATE: Action.ROTATE,
    Writer.REVOKE: Action.REVOKE,
    Writer.GRACE_END: Action.GRACE_END,
}
NOW = datetime(2026, 12, 7, tzinfo=UTC)
EVERY_FIELD_SET = KeyRecord(
    key_id="K" * 16,
    phc_hash="$argon2id$current",
    pepper_version="v2",
    name="n",
    owner="o",
    created_at=NOW - timedelta(days=9),
    description="d",
    scopes=("orders:read",),
    apis=("a1b2c3/prod",),
    metadata=(("plan", "gold"), ("region", "eu")),
    status=Status.DISABLED,
    expires_at=NOW + timedelta(days=9),
    revoked_at=NOW - timedelta(days=1),
    last_used_at=NOW - timedelta(days=2),
    rotated_at=NOW - timedelta(days=3),
    previous_hash="$argon2id$previous",
    previous_pepper_version="v1",
    previous_expires_at=NOW + timedelta(days=1),
    purge_at=NOW + timedelta(days=99),
    access_changed_at=NOW - timedelta(days=4),
    usage_plan_id="plan1",
    quota_per=QuotaPer.OWNER,
    usage_key_id="apikey1",
    usage_key_value="apikey-value",
    version=7,
)


class RecordingClient:
    """Stands in for boto3's DynamoDB client: keeps each key write as sent, and answers nothing."""

    def __init__(self):
        self.writes: list[dict] = []
        self.meta = SimpleNamespace(events=SimpleNamespace(register=lambda *args, **kwargs: None))

    def transact_write_items(self, TransactItems: list[dict]) -> None:  # noqa: N803 (boto3's name)
        self.writes.append(TransactItems[0]["Update"])

    def update_item(self, **params) -> None:
        self.writes.append(params)


def _other(value: object) -> object:
    """A different value of the same kind."""
    match value:
        case Status():
            return Status.REVOKED if value is not Status.REVOKED else Status.ACTIVE
        case str():
            return value + "-changed"
        case bool():
            raise AssertionError("no field of a key is a bool")
        case int():
            return value + 1
        case datetime():
            return value + timedelta(days=1)
        case ((str(), str()), *_):  # a map's pairs
            return (*value, ("changed", "value"))
        case tuple():
            return (*value, "changed")
    raise AssertionError(f"no different value for {value!r}: teach _other this kind")


def sent_by(writer: Writer) -> set[str]:
    """The attributes the store's write names, as IAM's dynamodb:Attributes sees them, when ``writer``
    changes every field it is declared to write."""
    client = RecordingClient()
    store = KeyStore("keys", client, "audit")
    before = EVERY_FIELD_SET
    changes = {name: _other(getattr(before, name)) for name, declared in DECLARED.items() if writer in declared.writers}
    after = replace(before, **changes)
    if writer is Writer.REHASH:
        store.rehash(before, after)
    elif writer is Writer.TOUCH:
        store.touch(before.key_id, after.last_used_at, due=NOW)
    else:
        store.update(before, after, AuditRecord(before.key_id, after.version, ACTION_OF[writer], "t", NOW, {}))
    (write,) = client.writes
    return attributes(write)


def granted_key_writes(template: dict, function: str) -> set[frozenset[str]]:
    """The dynamodb:Attributes list of each of the function's grants of UpdateItem on the keys table
    (every grant of UpdateItem on a resource naming it, however written, must have one)."""
    grants = set()
    for policy in template["Resources"][function]["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if {"dynamodb:UpdateItem", "dynamodb:*"} & set(actions) and re.search(
                r"\bKeysTable(Name)?\b",
                json.dumps(statement["Resource"]),  # not OwnerUsageKeysTable
            ):
                grants.add(frozenset(statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]))
    return grants


@pytest.mark.parametrize("parameters", [{}, REPLICATED], ids=["own-tables", "global-tables"])
@pytest.mark.parametrize("function", WRITERS_OF)
def test_each_function_may_write_exactly_the_attributes_its_writers_are_declared_to(template, function, parameters):
    deployed = Stack(template, parameters).template
    assert granted_key_writes(deployed, function) == {frozenset(sent_by(writer)) for writer in WRITERS_OF[function]}


@pytest.mark.parametrize(
    ("parameters", "writers"), [({}, set(WRITERS_OF)), (REPLICATED, set(WRITERS_OF)), (REGIONAL, set())],
    ids=["own-tables", "global-tables", "regional"],
)  # fmt: skip
def test_every_function_that_may_change_a_key_is_checked_here_and_none_in_a_regional_stack(
    template, parameters, writers
):
    stack = Stack(template, parameters, region=REGION if parameters is REGIONAL else "us-east-1")
    assert {function for function in stack.functions() if granted_key_writes(stack.template, function)} == writers


def test_a_write_sends_the_declared_attributes_and_the_key_and_version_it_is_conditional_on():
    assert sent_by(Writer.REVOKE) == written_by(Writer.REVOKE) | {"key_id"}
    assert sent_by(Writer.REHASH) == written_by(Writer.REHASH) | {"key_id", "version"}
    assert sent_by(Writer.TOUCH) == {"key_id", "last_used_at"}


@pytest.mark.parametrize("writer", [Writer.UPDATE, Writer.ROTATE, Writer.REVOKE])
def test_a_change_its_writer_is_not_declared_to_make_is_refused_before_anything_is_sent(writer):
    client = RecordingClient()
    after = replace(EVERY_FIELD_SET, owner="someone else", version=EVERY_FIELD_SET.version + 1)
    audit = AuditRecord(after.key_id, after.version, ACTION_OF[writer], "t", NOW, {})
    with pytest.raises(UndeclaredWrite, match="may not change owner"):
        KeyStore("keys", client, "audit").update(EVERY_FIELD_SET, after, audit)
    assert client.writes == []


def test_a_rehash_that_would_change_more_than_the_hash_is_refused():
    client = RecordingClient()
    with pytest.raises(UndeclaredWrite, match="rehash may not change scopes"):
        KeyStore("keys", client, "audit").rehash(EVERY_FIELD_SET, replace(EVERY_FIELD_SET, scopes=()))
    assert client.writes == []


def test_an_update_event_names_exactly_the_fields_declared_updatable():
    update_fields = {each.name for each in fields(Update)}  # built from UPDATABLE, with enabled
    assert set(UpdateKey.model_fields) - {"key_id", "expected_version", "actor"} == update_fields


@pytest.mark.parametrize(
    "record", [EVERY_FIELD_SET, KeyRecord("K" * 16, "$argon2id$h", "v1", "n", "o", NOW)], ids=["full", "least"]
)
def test_a_record_is_stored_and_read_back_unchanged(record):
    assert from_item(to_item(record)) == record


def test_a_field_left_unset_is_not_stored():
    item = to_item(KeyRecord("K" * 16, "$argon2id$h", "v1", "n", "o", NOW))
    stored = {"key_id", "hash", "pepper_version", "name", "owner", "created_at", "description", "scopes"}
    assert set(item) == stored | {"status", "quota_per", "version"}  # no empty metadata map


REQUIRED = ["key_id", "hash", "pepper_version", "name", "owner", "created_at", "status", "version"]


def test_only_the_attributes_every_item_has_held_since_the_first_are_required():
    """A new field is optional (read as its default from older items), or every key would read as corrupt
    and be refused; a missing status or version is corrupt, never active or version 1."""
    assert [declared.attribute for declared in DECLARED.values() if declared.required] == REQUIRED
    oldest = {name: value for name, value in to_item(EVERY_FIELD_SET).items() if name in REQUIRED}
    assert from_item(oldest) == KeyRecord(**{
        name: getattr(EVERY_FIELD_SET, name) for name, declared in DECLARED.items() if declared.required
    })  # fmt: skip


@pytest.mark.parametrize("attribute", REQUIRED)
def test_an_item_without_a_required_attribute_is_a_corrupt_record(attribute):
    item = to_item(EVERY_FIELD_SET)
    del item[attribute]
    with pytest.raises(CorruptRecord, match=attribute):
        from_item(item)


def test_an_admin_sees_the_fields_declared_shown_and_nothing_of_the_others():
    view = EVERY_FIELD_SET.view(NOW)
    hidden = [name for name, declared in DECLARED.items() if declared.shown_as is None]
    assert set(view) == {declared.shown_as for declared in DECLARED.values() if declared.shown_as}
    assert sorted(hidden) == [
        "access_changed_at", "phc_hash", "previous_hash", "previous_pepper_version", "purge_at", "usage_key_value",
    ]  # fmt: skip
    for secret in ("$argon2id$current", "$argon2id$previous", "apikey-value"):
        assert secret not in json.dumps(view)


def test_the_audit_trail_records_changes_of_the_fields_declared_audited():
    audited = {declared.shown_as for declared in DECLARED.values() if declared.audited}
    assert set(audited_view(EVERY_FIELD_SET, NOW)) == audited
    assert audited == {
        "name", "owner", "description", "scopes", "apis", "metadata", "status", "expires_at", "revoked_at",
        "rotated_at", "previous_key_expires_at", "pepper_version", "usage_plan_id", "quota_per", "usage_key_id",
    }  # fmt: skip
    assert audited_view(EVERY_FIELD_SET, NOW)["status"] == "disabled"  # as stored: an expiry is not a change
