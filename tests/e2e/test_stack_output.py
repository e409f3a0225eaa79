"""What `make local` prints for a request: one line for an ordinary refusal (401, 403), and a crashed
authorizer's traceback. Each refusal used to print the worker's traceback of the authorizer's
``Unauthorized`` and SAM CLI's "Lambda authorizer failed to invoke successfully" (issue 22, part 8)."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from keygate import keys
from tests.e2e.conftest import TIMEOUT, local_client, start_stack, stop_stack
from tests.secrecy_sweep import SWEEP, checked_answer


@dataclass
class Printed:
    """A local stack's stderr, in a file."""

    path: Path

    def mark(self) -> int:
        return self.path.stat().st_size

    def since(self, mark: int) -> str:
        """What the stack printed after ``mark``. All of a request's output is written before its answer."""
        with self.path.open("rb") as printed:
            printed.seek(mark)
            text = printed.read().decode()
        SWEEP.sweep("the local stack's output", text)
        return text


def stack_lines(text: str) -> list[str]:
    """The stack's own lines: the functions' structured logs (JSON lines) aside."""
    return [line for line in text.splitlines() if not line.startswith("{")]


def printed_stack(tmp_path_factory, parameters: dict[str, str] | None = None):
    path = tmp_path_factory.mktemp("stack-output") / "stderr"
    with path.open("w") as output:
        process, ready = start_stack(parameters=parameters, output=output)
    yield ready, Printed(path)
    assert stop_stack(process) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from printed_stack(tmp_path_factory)


@dataclass(frozen=True)
class IssuedKey:
    api_key: str = field(repr=False)  # a failure report shows the test's arguments


@pytest.fixture(scope="module")
def http_only_key(stack) -> IssuedKey:
    """A real key, bound to the HTTP API: the REST API's authorizer denies it (403)."""
    ready, _ = stack
    payload = {"name": "output", "owner": "team-output", "apis": [ready["api_stages"]["DemoHttpApi"]]}
    answer = local_client("lambda", ready["lambda"]).invoke(
        FunctionName="IssueKeyFunction", Payload=json.dumps(payload).encode()
    )
    return IssuedKey(checked_answer(json.loads(answer["Payload"].read()))["api_key"])


UNKNOWN_KEY = keys.generate("kg").api_key
# (API, path, header, its value, status, authorizer). The value names its key, never holds it: a failure report
# shows the test's arguments, and the secrecy sweep counts a made-up key as a secret too.
REFUSALS = [
    pytest.param(
        "DemoRestApi", "/whoami", "Authorization", "Bearer {unknown}", "401 Unauthorized", "KeygateToken",
        id="rest-token-unknown-key",
    ),
    pytest.param(
        "DemoRestApi", "/x-api-key/whoami", "x-api-key", "{unknown}", "401 Unauthorized", "KeygateRequest",
        id="rest-request-unknown-key",
    ),
    pytest.param(
        "DemoRestApi", "/hello", "Authorization", "Bearer {of_another_api}", "403 Forbidden", "KeygateToken",
        id="rest-token-key-of-another-api",
    ),
    pytest.param(
        "DemoHttpApi", "/whoami", "Authorization", "Bearer {unknown}", "403 Forbidden", "KeygateLambda",
        id="http-unknown-key",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("api", "path", "header", "value", "status", "authorizer"), REFUSALS)
def test_an_ordinary_refusal_prints_one_line_and_no_traceback(
    stack, http_only_key, api, path, header, value, status, authorizer
):
    ready, printed = stack
    mark = printed.mark()
    url = ready["apis"][api] + path
    response = requests.get(
        url, headers={header: value.format(unknown=UNKNOWN_KEY, of_another_api=http_only_key.api_key)}, timeout=TIMEOUT
    )
    assert response.status_code == int(status.split()[0])
    output = printed.since(mark)
    assert "Traceback" not in output and "failed to invoke" not in output, output
    assert stack_lines(output) == [
        f"{ready['api_stages'][api]} GET {path}: {status}, refused by the authorizer {authorizer}"
    ]
    assert '"message":"key refused"' in output  # the authorizer's own log says why


@pytest.fixture(scope="module")
def crashing_stack(tmp_path_factory):
    """A stack whose authorizer cannot start: RouteScopes has no AllowedPattern (its parser is the rule), so
    the stack takes this one and the authorizer's import fails on it."""
    yield from printed_stack(tmp_path_factory, {"RouteScopes": "GET /hello"})


@pytest.mark.parametrize("api", ["DemoRestApi", "DemoHttpApi"])
def test_a_crashed_authorizer_still_prints_its_traceback_and_answers_500(crashing_stack, api):
    ready, printed = crashing_stack
    mark = printed.mark()
    response = requests.get(
        f"{ready['apis'][api]}/whoami", headers={"Authorization": f"Bearer {UNKNOWN_KEY}"}, timeout=TIMEOUT
    )
    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})
    output = printed.since(mark)
    assert "Traceback (most recent call last)" in output and "ConfigError: ROUTE_SCOPES" in output, output
    assert "Lambda authorizer failed to invoke successfully: ROUTE_SCOPES" in output  # SAM CLI's line, kept
    assert "refused by the authorizer" not in output
