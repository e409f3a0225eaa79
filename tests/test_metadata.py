"""A key's metadata: set at issue, replaced whole by an update ({} clears it), shown by GetKey and ListKeys,
audited as a change, and forwarded by the authorizer as ``meta_<name>`` in every event shape, from the
same read, never logged. Anything but a small flat map of strings is refused, naming ``metadata``."""

import json

import pytest

from keygate_cli.cli import EXIT_USAGE, main
from tests.conftest import invoke, snapshot_of_writes
from tests.helpers.authorizer import SHAPES, appsync, decide, shaped, websocket

METADATA = {"plan": "gold", "tenant_id": "t-42", "region": "eu-west-1"}
FORWARDED = {"meta_plan": "gold", "meta_tenant_id": "t-42", "meta_region": "eu-west-1"}


def test_metadata_set_at_issue_is_shown_by_get_and_list(issued, admin):
    key = issued(metadata=METADATA, owner="team-meta")
    assert key["metadata"] == METADATA
    assert invoke(admin["GetKey"], {"key_id": key["key_id"]})["metadata"] == METADATA
    (listed,) = invoke(admin["ListKeys"], {"owner": "team-meta"})["keys"]
    assert listed["metadata"] == METADATA
    assert issued()["metadata"] == {}


def test_an_update_replaces_the_whole_map_and_an_empty_one_clears_it(issued, admin):
    key = issued(metadata=METADATA)
    replaced = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "metadata": {"plan": "silver"}})
    assert replaced["metadata"] == {"plan": "silver"}
    untouched = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "description": "d"})
    assert untouched["metadata"] == {"plan": "silver"}
    cleared = invoke(admin["UpdateKey"], {"key_id": key["key_id"], "metadata": {}})
    assert cleared["metadata"] == {} and cleared["version"] == 4
    cleared_change = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"][-1]["changes"]
    assert cleared_change == {"metadata": {"old": {"plan": "silver"}, "new": None}}  # an empty map recorded as null


def test_the_audit_trail_records_a_change_of_metadata(issued, admin):
    key = issued(metadata={"plan": "gold"})
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "metadata": {"plan": "silver"}})
    issue, update = invoke(admin["KeyHistory"], {"key_id": key["key_id"]})["events"]
    assert issue["changes"]["metadata"] == {"old": None, "new": {"plan": "gold"}}
    assert update["changes"] == {"metadata": {"old": {"plan": "gold"}, "new": {"plan": "silver"}}}


REFUSED = [
    ("a nested value", {"plan": {"tier": "gold"}}),
    ("a number", {"seats": 5}),
    ("a list", {"regions": ["eu", "us"]}),
    ("not a map", ["plan", "gold"]),
    ("seventeen entries", {f"k{n}": "v" for n in range(17)}),
    ("a name starting with a digit", {"1plan": "gold"}),
    ("a name with a dash", {"plan-tier": "gold"}),
    ("a name of 33 characters", {"a" * 33: "v"}),
    ("a value of 257 characters", {"plan": "x" * 257}),
    ("more than 2 KB in all", {f"k{n}": "v" * 250 for n in range(9)}),
    ("a line break in a value", {"plan": "gold\nX-Injected: 1"}),
]


@pytest.mark.parametrize("function", ["IssueKey", "UpdateKey"])
@pytest.mark.parametrize(("case", "metadata"), REFUSED, ids=[case for case, _ in REFUSED])
def test_metadata_that_is_not_a_small_flat_map_of_strings_is_refused_naming_it(
    function, case, metadata, issued, admin, stack
):
    key = issued()
    written = snapshot_of_writes(stack)
    before = written()
    request = {"name": "n", "owner": "o"} if function == "IssueKey" else {"key_id": key["key_id"]}
    answer = invoke(admin[function], request | {"metadata": metadata})
    assert answer["error"]["type"] == "InvalidRequest", case
    assert all(field.startswith("metadata") for field in answer["error"]["fields"]), answer
    assert written() == before


def test_the_largest_metadata_allowed_is_accepted(issued):
    words = ("a value of plain words, " * 6)[:124]  # not one long run, which the secrecy sweep would inspect
    at_the_limits = {f"k{n:02d}": words for n in range(15)} | {"a" * 32: ""}
    assert len(json.dumps(at_the_limits, separators=(",", ":")).encode()) <= 2048
    assert issued(metadata=at_the_limits)["metadata"] == at_the_limits


@pytest.mark.parametrize("shape", SHAPES)
def test_the_backend_receives_each_entry_as_meta_name(shape, issued, authorizer):
    key = issued(metadata=METADATA)
    allowed, response = decide(authorizer, shaped(shape, authorization=f"Bearer {key['api_key']}"))
    assert allowed and FORWARDED.items() <= response["context"].items()
    assert response["context"]["key_id"] == key["key_id"]  # keygate's own entries stay as they were


def test_a_websocket_connect_and_an_appsync_request_receive_it_too(issued, authorizer):
    key = issued(metadata=METADATA)
    connect = invoke(authorizer, websocket(authorization=f"Bearer {key['api_key']}"))
    assert FORWARDED.items() <= connect["context"].items()
    resolver = invoke(authorizer, appsync(f"Bearer {key['api_key']}"))
    assert resolver["isAuthorized"] and FORWARDED.items() <= resolver["resolverContext"].items()


def test_forwarding_metadata_costs_no_aws_call_and_logs_no_value(issued, authorizer, aws_calls, capsys):
    key = issued(metadata={"plan": "platinum-secretive-value"})
    request = shaped("http-api", authorization=f"Bearer {key['api_key']}")
    decide(authorizer, request)  # the first call verifies, and may write last_used_at
    aws_calls.clear()
    allowed, response = decide(authorizer, request)
    assert allowed and response["context"]["meta_plan"] == "platinum-secretive-value"
    assert aws_calls == ["GetItem"]
    assert "platinum-secretive-value" not in capsys.readouterr().out


def test_an_update_changes_what_the_backend_receives_on_the_next_call(issued, admin, authorizer):
    key = issued(metadata={"plan": "gold"})
    request = shaped("rest-request", authorization=f"Bearer {key['api_key']}")
    assert decide(authorizer, request)[1]["context"]["meta_plan"] == "gold"
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "metadata": {}})
    context = decide(authorizer, request)[1]["context"]
    assert not [name for name in context if name.startswith("meta_")]


def test_the_cli_sends_meta_entries_as_a_map_and_refuses_a_name_given_twice(monkeypatch, capsys):
    sent = []
    monkeypatch.setattr("keygate_cli.cli._call", lambda client, name, event: sent.append(event) or {"ok": True})
    local = ["--endpoint-url", "http://127.0.0.1:3002", "--actor", "me"]
    assert main([*local, "update", "K" * 16, "--meta", "plan=gold", "--meta", "note=a=b"]) == 0
    assert sent[-1]["metadata"] == {"plan": "gold", "note": "a=b"}
    assert main([*local, "update", "K" * 16, "--no-metadata"]) == 0
    assert sent[-1]["metadata"] == {}
    assert main([*local, "update", "K" * 16, "--meta", "plan=gold", "--meta", "plan=silver"]) == EXIT_USAGE
    assert "plan given more than once" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main([*local, "update", "K" * 16, "--meta", "plan"])
    assert usage.value.code == EXIT_USAGE


def test_the_admin_functions_log_no_metadata_value(issued, admin, capsys):
    key = issued(metadata={"plan": "issued-value"})
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "metadata": {"plan": "updated-value"}})
    invoke(admin["UpdateKey"], {"key_id": key["key_id"], "metadata": {"plan": "x" * 300}})  # refused
    logged = capsys.readouterr().out
    assert "key issued" in logged and "key updated" in logged and "admin request refused" in logged
    assert "issued-value" not in logged and "updated-value" not in logged and "x" * 300 not in logged


def test_new_metadata_flushes_api_gateway_s_cached_answers_and_the_same_again_does_not(issued, load, flushes):
    key = issued(metadata={"plan": "gold"})
    update = load("UpdateKeyFunction", AUTHORIZER_CACHE_TTL="300", CACHED_STAGES="rest:a1b2c3d4e5/prod")
    changed = invoke(update, {"key_id": key["key_id"], "metadata": {"plan": "silver"}})
    assert [operation for operation, _ in flushes] == ["FlushStageAuthorizersCache"]
    assert changed["authorizer_cache"]["flushed"] == ["rest:a1b2c3d4e5/prod"]
    again = invoke(update, {"key_id": key["key_id"], "metadata": {"plan": "silver"}})
    assert len(flushes) == 1 and "authorizer_cache" not in again
