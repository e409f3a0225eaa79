"""A key's whole life over HTTP, through the template's APIs on the local stack: scopes per route,
disable and enable, rotation with a grace period, and the audit trail, via the CLI where an operator
would use it."""

import json

import pytest
import requests

from tests.conftest import mistyped
from tests.e2e.conftest import TIMEOUT, keygate

pytestmark = pytest.mark.dynamodb_local  # the local_stack tests: a key's life through the stack's own workers

# What DEMO_ROUTE_SCOPES asks of each demo route: (method, path, a scope that opens it, one that does not)
ROUTES = [
    ("GET", "/orders", "orders:read", "demo"), ("GET", "/orders", "orders:write", "demo"),
    ("POST", "/orders", "orders:write", "orders:read"), ("GET", "/hello", "demo", "orders:read"),
    ("GET", "/whoami", "demo", "orders:write"),
]  # fmt: skip


def call(stack, api: str, method: str, path: str, api_key: str) -> requests.Response:
    base = stack.rest if api == "rest" else stack.http
    return requests.request(method, base + path, headers={"Authorization": f"Bearer {api_key}"}, timeout=TIMEOUT)


def issue(stack, *scopes: str) -> dict:
    done = keygate(stack, "issue", "--name", "e2e", "--owner", "team-e2e", *[f"--scope={s}" for s in scopes])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("api", ["rest", "http"])
def test_each_route_needs_its_scope_403_without_it_and_401_or_403_for_a_bad_key(scoped_stack, api):
    for method, path, opening, other in ROUTES:
        holder, lacking = issue(scoped_stack, opening)["api_key"], issue(scoped_stack, other)["api_key"]
        assert call(scoped_stack, api, method, path, holder).status_code == 200, (method, path, opening)
        assert call(scoped_stack, api, method, path, lacking).status_code == 403, (method, path, other)
    bad = mistyped(holder)
    assert call(scoped_stack, api, "GET", "/hello", bad).status_code == (401 if api == "rest" else 403)


def test_the_route_sees_the_scopes_that_matched(scoped_stack):
    key = issue(scoped_stack, "demo", "orders:read", "orders:write")
    for api in ("rest", "http"):
        body = call(scoped_stack, api, "POST", "/orders", key["api_key"]).json()
        assert body["scopes"] == "demo orders:read orders:write"


def test_a_disabled_key_is_refused_everywhere_until_enabled(local_stack):
    key = issue(local_stack)
    assert keygate(local_stack, "disable", key["key_id"]).returncode == 0
    assert call(local_stack, "rest", "GET", "/hello", key["api_key"]).status_code == 401
    assert call(local_stack, "http", "GET", "/hello", key["api_key"]).status_code == 403
    enabled = json.loads(keygate(local_stack, "enable", key["key_id"]).stdout)
    assert enabled["status"] == "active"
    assert call(local_stack, "rest", "GET", "/hello", key["api_key"]).status_code == 200


def test_rotation_keeps_the_old_secret_for_its_grace_and_not_beyond(local_stack):
    key = issue(local_stack)
    rotated = json.loads(keygate(local_stack, "rotate", key["key_id"]).stdout)
    for api_key in (key["api_key"], rotated["api_key"]):
        assert call(local_stack, "rest", "GET", "/whoami", api_key).status_code == 200
    again = json.loads(keygate(local_stack, "rotate", key["key_id"], "--grace-seconds", "0").stdout)
    assert call(local_stack, "http", "GET", "/whoami", rotated["api_key"]).status_code == 403
    assert call(local_stack, "http", "GET", "/whoami", key["api_key"]).status_code == 403
    assert call(local_stack, "http", "GET", "/whoami", again["api_key"]).status_code == 200


def test_the_history_names_each_change_and_who_made_it(local_stack):
    key = issue(local_stack)
    keygate(local_stack, "update", key["key_id"], "--description", "nightly export", "--actor", "alice")
    keygate(local_stack, "revoke", key["key_id"], "--actor", "bob")
    history = json.loads(keygate(local_stack, "history", key["key_id"]).stdout)
    actions = [(event["action"], event["actor"]) for event in history["events"]]
    assert actions[1:] == [("update", "alice"), ("revoke", "bob")] and actions[0][1].startswith("local:")
    assert history["events"][1]["changes"] == {"description": {"old": "", "new": "nightly export"}}


def test_pepper_status_counts_a_rotating_key_once_and_its_secret_in_grace_apart(local_stack):
    def active(status: dict, counts: str) -> int:
        return status[counts].get("v1", {}).get("active", 0)

    before = json.loads(keygate(local_stack, "pepper-status").stdout)
    key = issue(local_stack)
    keygate(local_stack, "rotate", key["key_id"])  # the old secret verifies for a day
    after = json.loads(keygate(local_stack, "pepper-status").stdout)
    assert set(after["versions"]) == {"v1"}
    assert active(after, "versions") - active(before, "versions") == 1
    assert active(after, "grace_secrets") - active(before, "grace_secrets") == 1
