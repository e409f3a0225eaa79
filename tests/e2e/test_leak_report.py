"""Leaked keys over HTTP, on the local stack with make demo's parameters: GitHub's signed alert to
LeakReportApi revokes a real key (flushing API Gateway's cached allow), forged or replayed alerts change
nothing, and `keygate report-leak` revokes a key read from standard input."""

import requests

from keygate import keys
from tests.e2e.conftest import TIMEOUT, keygate, run, status_of


def post_alert(stack, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{stack.leak_report}/github/secret-scanning", data=body, headers=headers, timeout=TIMEOUT)


def test_a_signed_alert_revokes_the_key_and_its_cached_allow(scoped_stack, github):
    leaked = run(scoped_stack, "issue", "--name", "leaky", "--owner", "o", "--scope", "demo")
    bystander = run(scoped_stack, "issue", "--name", "fine", "--owner", "o", "--scope", "demo")
    url = f"{scoped_stack.http}/whoami"
    assert status_of(url, leaked["api_key"]) == 200  # cached by the stage from here on
    body, headers = github.signed_alert(leaked["api_key"], keys.generate("kg").api_key)
    response = post_alert(scoped_stack, body, headers)
    assert response.status_code == 200
    assert [entry["label"] for entry in response.json()] == ["true_positive", "false_positive"]
    assert status_of(url, leaked["api_key"]) == 403  # the flush took the cached allow away
    assert status_of(url, bystander["api_key"]) == 200
    assert run(scoped_stack, "history", leaked["key_id"])["events"][-1]["actor"] == "secret-scanning:github"


def test_forged_and_replayed_alerts_are_refused_and_change_nothing(scoped_stack, github):
    key = run(scoped_stack, "issue", "--name", "target", "--owner", "o", "--scope", "demo")
    body, headers = github.signed_alert(key["api_key"])
    _, other_headers = github.signed_alert("kg_something_else")
    attempts = [
        {},  # unsigned
        {**headers, "Github-Public-Key-Signature": other_headers["Github-Public-Key-Signature"]},  # replayed
        {**headers, "Github-Public-Key-Identifier": "ab" * 32},
    ]
    for attempt in attempts:
        assert post_alert(scoped_stack, body, attempt).status_code == 401
    assert post_alert(scoped_stack, body.replace(b"content", b"commits"), headers).status_code == 401
    assert run(scoped_stack, "get", key["key_id"])["status"] == "active"


def test_report_leak_reads_the_key_from_stdin_and_revokes_it(scoped_stack):
    key = run(scoped_stack, "issue", "--name", "pasted", "--owner", "o", "--scope", "demo")
    done = keygate(scoped_stack, "report-leak", "--url", "https://chat.example/1", stdin=key["api_key"] + "\n")
    assert done.returncode == 0, done.stderr
    assert key["api_key"] not in done.stdout
    assert status_of(f"{scoped_stack.rest}/hello", key["api_key"]) == 401
