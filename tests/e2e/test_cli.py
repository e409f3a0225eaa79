"""The keygate CLI, as installed, against the running local stack."""

import json
import subprocess
import time

import pytest

from tests.e2e.conftest import KEYGATE, free_port, keygate, local_client


@pytest.mark.dynamodb_local
def test_issue_get_list_revoke_round_trip(local_stack):
    issued = keygate(local_stack, "issue", "--name", "cli", "--owner", "team-cli", "--scope", "a", "--scope", "b")
    assert issued.returncode == 0, issued.stderr
    key = json.loads(issued.stdout)
    assert key["api_key"].startswith(f"kg_{key['key_id']}_") and key["scopes"] == ["a", "b"]

    shown = json.loads(keygate(local_stack, "get", key["key_id"]).stdout)
    assert shown["status"] == "active" and "api_key" not in shown

    listed = json.loads(keygate(local_stack, "list", "--owner", "team-cli", "--limit", "5").stdout)
    assert [item["key_id"] for item in listed["keys"]] == [key["key_id"]]

    revoked = keygate(local_stack, "revoke", key["key_id"])
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["status"] == "revoked"


@pytest.mark.dynamodb_local
def test_a_refused_request_exits_1_with_the_error_on_stderr(local_stack):
    done = keygate(local_stack, "issue", "--name", "cli", "--owner", "o", "--expires-at", "yesterday")
    assert done.returncode == 1 and done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["type"] == "InvalidRequest" and "expires_at" in error["fields"]

    unknown = keygate(local_stack, "revoke", "A" * 16)
    assert unknown.returncode == 1 and json.loads(unknown.stderr)["error"]["type"] == "KeyNotFound"


def test_a_table_lists_a_key_just_issued_in_its_row(local_stack):
    key = json.loads(keygate(local_stack, "issue", "--name", "tabled", "--owner", "team-table", "--scope", "a").stdout)
    done = keygate(local_stack, "--output", "table", "list", "--owner", "team-table")
    assert done.returncode == 0, done.stderr
    header, rule, *rows = done.stdout.splitlines()
    assert header.split() == ["key_id", "name", "owner", "status", "scopes", "expires_at", "last_used_at"]
    assert [row.split() for row in rows if row.startswith(key["key_id"])] == [
        [key["key_id"], "tabled", "team-table", "active", "a", "-", "-"]
    ]
    assert key["api_key"] not in done.stdout


def test_an_unreachable_endpoint_exits_3_with_a_clear_message(local_stack):
    done = keygate(local_stack, "get", "A" * 16, endpoint=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 3
    assert done.stderr.startswith("keygate: cannot invoke GetKeyFunction:")


def test_an_api_endpoint_in_place_of_the_lambda_one_exits_2_naming_the_right_one(local_stack):
    origin = "/".join(local_stack.rest.split("/")[:3])  # the REST API's port, where make local's users land
    done = keygate(local_stack, "get", "A" * 16, endpoint=origin)
    assert done.returncode == 2, done.stderr
    assert "not the Lambda endpoint" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_profile_exits_3_without_a_traceback(local_stack):
    command = [KEYGATE, "--stack-name", "keygate", "get", "A" * 16]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env={"AWS_PROFILE": "nope", "PATH": ""})
    assert done.returncode == 3 and done.stderr.startswith("keygate: ") and "Traceback" not in done.stderr


def test_usage_errors_exit_2():
    done = subprocess.run([KEYGATE, "issue", "--name", "only"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--owner" in done.stderr


@pytest.mark.dynamodb_local
def test_history_verify_names_a_record_changed_in_the_table(local_stack):
    """Through the local stack's own stream poller and AuditCopyFunction: the copy catches up within
    seconds, then a record overwritten in the table is named and the CLI exits 4."""
    key = json.loads(keygate(local_stack, "issue", "--name", "cli", "--owner", "team-cli").stdout)
    assert keygate(local_stack, "update", key["key_id"], "--name", "renamed").returncode == 0
    deadline = time.monotonic() + 30
    while (done := keygate(local_stack, "history", key["key_id"], "--verify")).returncode != 0:
        assert done.returncode == 4 and time.monotonic() < deadline, done.stdout + done.stderr  # the copy lags
        time.sleep(0.2)
    assert json.loads(done.stdout)["verification"] == {"verified": True, "records": 2, "findings": []}
    dynamodb = local_client("dynamodb", local_stack.aws["dynamodb"])
    (table,) = [name for name in dynamodb.list_tables()["TableNames"] if "-AuditTable-" in name]
    record = {"key_id": {"S": key["key_id"]}, "version": {"N": "2"}}
    item = dynamodb.get_item(TableName=table, Key=record)["Item"]
    dynamodb.put_item(TableName=table, Item=item | {"actor": {"S": "somebody else"}})
    done = keygate(local_stack, "history", key["key_id"], "--verify")
    assert done.returncode == 4
    findings = json.loads(done.stdout)["verification"]["findings"]
    assert [(finding["version"], finding["problem"]) for finding in findings] == [(2, "changed")]
