"""The stack's own lifecycle: `make demo` end to end, and stopping leaves nothing behind."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from keygate import keys
from keygate_local.template import ROOT
from tests.e2e.conftest import local_client, start_stack


def children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_demo_shows_the_whole_lifecycle_and_exits_0():
    environment = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "keygate_local.demo"], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={name: value for name, value in environment.items() if not name.startswith("AWS_ENDPOINT_URL")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    done_line = (
        "Done: issued, scoped, refused, bound to one API, disabled, enabled, rotated, revoked, metered, "
        "leaked and revoked by a signed alert, audited."
    )
    assert done_line in done.stdout
    assert "-> 429" in done.stdout and "revocation bound: the next request" in done.stdout
    assert (
        "true_positive" in done.stdout
        and "false_positive" in done.stdout
        and "-> 401 401: the signature" in done.stdout
    )
    assert "BAD" not in done.stdout
    assert not re.search(r"kg_[0-9A-Za-z]{16}_[0-9A-Za-z]", done.stdout + done.stderr)  # no secret part shown


def test_two_quick_signals_still_stop_the_stack_and_its_workers():
    process, ready = start_stack()
    response = local_client("lambda", ready["lambda"]).invoke(
        FunctionName="IssueKeyFunction", Payload=b'{"name": "n", "owner": "o"}'
    )
    assert response["StatusCode"] == 200
    url = f"{ready['apis']['DemoRestApi']}/hello"
    unknown = keys.generate("kg").api_key  # well-formed, so the authorizer is invoked
    assert requests.get(url, headers={"Authorization": f"Bearer {unknown}"}, timeout=30).status_code == 401
    workers = children(process.pid)
    assert len(workers) >= 2  # the issue and authorizer functions' workers
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in workers)


def make_local_command() -> list[str]:
    """The Makefile's `local` recipe, on free ports."""
    recipe = re.search(r"^local:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1]
    command = recipe.replace("$(PY)", sys.executable).split()
    return [*command, "--rest-port", "0", "--http-port", "0", "--lambda-port", "0"]


def test_make_local_prints_the_urls_and_how_to_issue_a_key():
    command = make_local_command()
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_ENDPOINT_URL")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=environment)
    banner = []
    watchdog = threading.Timer(60, process.kill)  # bounds the wait: a kill ends readline with EOF
    watchdog.start()
    try:
        while not any("curl" in line for line in banner) and (line := process.stdout.readline()):
            banner.append(line)
    finally:
        watchdog.cancel()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
    text = "".join(banner)
    lambda_url = re.search(r"export KEYGATE_ENDPOINT_URL=(http://127\.0\.0\.1:\d+)", text)
    assert lambda_url and "keygate issue --name" in text, text
    assert re.search(r"http://127\.0\.0\.1:\d+/x-api-key/whoami", text)
    assert exit_code == 0


def test_with_the_templates_defaults_the_stack_serves_no_demo_api():
    process, ready = start_stack(parameters={"DeployDemo": "false"})
    try:
        assert set(ready["apis"]) == {"LeakReportApi"}
        functions = local_client("lambda", ready["lambda"])
        response = functions.invoke(FunctionName="IssueKeyFunction", Payload=b'{"name": "n", "owner": "o"}')
        assert "FunctionError" not in response
        with pytest.raises(ClientError, match="Function not found"):
            functions.invoke(FunctionName="DemoFunction", Payload=b"{}")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
