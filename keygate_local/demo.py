"""`make demo`: a key's whole life over HTTP, through the template's own API definitions.

Starts the local stack with the demo's RouteScopes, and with the keygate CLI issues a key, calls the
protected REST and HTTP API routes with it (a route it lacks the scope for too), with a wrong key and a
key bound to the other API, disables and enables it, rotates it, revokes it (flushing API Gateway's
authorizer cache), meters a key on a usage plan past its quota, has a leaked key revoked by a signed
GitHub secret scanning alert (and an operator's report), and shows the history;
prints each step, stops everything, and exits non-zero if any answer is not what API Gateway would give.
"""

import json
import re
import subprocess  # nosec B404 # runs the keygate CLI as a user would, argv lists, never a shell
import sys
import tempfile
import time

import requests

from keygate import keys
from keygate_local.local_stack import LocalStack, demo_parameters

REFUSED_REST = "401: a REST authorizer that raises Unauthorized"
REFUSED_HTTP = "403: an HTTP API authorizer answering isAuthorized=false"
FORBIDDEN = "403: POST /orders needs orders:write"


def keygate(endpoint: str, *arguments: str, stdin: str | None = None) -> dict:
    """Run the keygate CLI as a user would, and return its JSON answer."""
    command = [sys.executable, "-m", "keygate_cli.cli", "--endpoint-url", endpoint, *arguments]
    piped = f"{masked(stdin.strip())} | " if stdin else ""
    print(f"   $ {piped}keygate {' '.join(arguments)}")
    done = subprocess.run(  # nosec B603 # this Python running our CLI module, an argv list, no shell
        command, capture_output=True, text=True, timeout=60, input=stdin
    )
    if done.returncode != 0:
        raise SystemExit(f"keygate {arguments[0]} failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout)


class Calls:
    def __init__(self):
        self.failures = 0

    def expect(self, status: int, url: str, headers: dict[str, str], why: str, method: str = "GET") -> None:
        started = time.perf_counter()
        response = requests.request(method, url, headers=headers, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        ok = response.status_code == status
        self.failures += not ok
        shown = ", ".join(f"{name}: {masked(value)}" for name, value in headers.items()) or "no key"
        print(
            f"   {'ok ' if ok else 'BAD'} {method} {url} [{shown}] -> {response.status_code} ({elapsed:.0f} ms) {why}"
        )
        if status == 200 and ok:
            body = response.json()
            print(f"       the route saw key_id={body['key_id']} owner={body['owner']} scopes={body['scopes']!r}")

    def report(self, status: int, url: str, body: bytes, headers: dict[str, str], why: str) -> list | dict:
        """POST a secret scanning alert; the answer is GitHub's feedback (or the refusal)."""
        response = requests.post(url, data=body, headers=headers, timeout=60)
        ok = response.status_code == status
        self.failures += not ok
        print(f"   {'ok ' if ok else 'BAD'} POST {url} -> {response.status_code} {why}")
        return response.json()


def made_up(key_id: str) -> str:
    """A token in the key's format, with its key id and a valid checksum but not its secret."""
    body = f"kg_{key_id}_{'x' * keys.SECRET_LENGTH}"
    return body + keys.checksum(body)


def masked(text: str) -> str:
    """A key with its secret part hidden: the demo's output may end up in a CI log or a screenshot."""
    return re.sub(r"(kg_[0-9A-Za-z]{16}_)[0-9A-Za-z]+", r"\1...", text)


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def main() -> int:
    with tempfile.NamedTemporaryFile("w+", prefix="keygate-demo-", suffix=".log") as log:
        parameters = demo_parameters()
        print("1. Starting the local stack from template.yaml, with the parameters:")
        for name, value in parameters.items():
            print(f"   {name}={value}")
        with LocalStack(log=log, parameters=parameters) as local:
            rest, http = local.urls.apis["DemoRestApi"], local.urls.apis["DemoHttpApi"]
            endpoint = local.urls.lambda_endpoint
            print(f"   up in {local.started_in:.1f} s: REST API {rest}, HTTP API {http}, Lambda {endpoint}")
            calls = Calls()

            print("2. Issue a key with the CLI:")
            issued = keygate(
                endpoint, "issue", "--name", "demo-client", "--owner", "team-demo",
                "--scope", "demo", "--scope", "orders:read",
            )  # fmt: skip
            api_key, key_id = issued["api_key"], issued["key_id"]
            print(f"   key_id {key_id}, api_key {masked(api_key)} (shown this once; its secret is not printed here)")
            wrong_key = made_up(key_id)

            print("3. Call the protected routes with the key:")
            calls.expect(200, f"{rest}/hello", bearer(api_key), "REST, TOKEN authorizer")
            calls.expect(200, f"{rest}/x-api-key/whoami", {"x-api-key": api_key}, "REST, REQUEST authorizer")
            calls.expect(200, f"{http}/whoami", bearer(api_key), "HTTP API")

            print("4. Scopes per route: the key holds orders:read, not orders:write:")
            calls.expect(200, f"{rest}/orders", bearer(api_key), "REST, GET /orders needs orders:read")
            calls.expect(403, f"{rest}/orders", bearer(api_key), FORBIDDEN, method="POST")
            calls.expect(403, f"{http}/orders", bearer(api_key), FORBIDDEN, method="POST")

            print("5. With a wrong key, and with none:")
            calls.expect(401, f"{rest}/whoami", bearer(wrong_key), REFUSED_REST)
            calls.expect(403, f"{http}/whoami", bearer(wrong_key), REFUSED_HTTP)
            calls.expect(401, f"{rest}/whoami", {}, "401: no identity header, the authorizer is not called")

            print("6. A key bound to the REST API (issued with --api API_ID/STAGE) is refused on the HTTP API:")
            rest_api = local.urls.api_stages["DemoRestApi"]
            bound = keygate(
                endpoint, "issue", "--name", "rest-only", "--owner", "team-demo", "--scope", "demo", "--api", rest_api
            )
            calls.expect(200, f"{rest}/whoami", bearer(bound["api_key"]), f"REST API, {rest_api}")
            calls.expect(403, f"{http}/whoami", bearer(bound["api_key"]), "403: a valid key, not for this API")

            print("7. Disable the key, then enable it again:")
            print(f"   status {keygate(endpoint, 'disable', key_id)['status']}")
            calls.expect(401, f"{rest}/hello", bearer(api_key), REFUSED_REST)
            print(f"   status {keygate(endpoint, 'enable', key_id)['status']}")
            calls.expect(200, f"{rest}/hello", bearer(api_key), "enabled again")

            print("8. Rotate the key: a new secret; the old one works for the grace period (here an hour):")
            rotated = keygate(endpoint, "rotate", key_id, "--grace-seconds", "3600")
            new_key = rotated["api_key"]
            print(f"   new api_key {masked(new_key)}; the old one stops at {rotated['previous_key_stops_working_at']}")
            calls.expect(200, f"{http}/whoami", bearer(api_key), "the old secret, in its grace period")
            calls.expect(200, f"{http}/whoami", bearer(new_key), "the new secret")
            latest = keygate(endpoint, "rotate", key_id, "--grace-seconds", "0")["api_key"]
            calls.expect(403, f"{http}/whoami", bearer(new_key), "rotated again with no grace: refused at once")

            print("9. Revoke the key with the CLI, and call again (its allow was cached by API Gateway):")
            calls.expect(200, f"{rest}/x-api-key/whoami", {"x-api-key": latest}, "cached for AuthorizerCacheTtl")
            revoked = keygate(endpoint, "revoke", key_id)
            print(f"   status {revoked['status']} at {revoked['revoked_at']}; flushed "
                  f"{', '.join(revoked['authorizer_cache']['flushed'])}")  # fmt: skip
            print(f"   revocation bound: {revoked['authorizer_cache']['revocation_bound']}")
            calls.expect(401, f"{rest}/x-api-key/whoami", {"x-api-key": latest}, REFUSED_REST)

            print("10. A key on the demo usage plan (a quota of 3 a day) hits it on GET /metered:")
            plan = local.urls.usage_plans["DemoUsagePlan"]
            metered = keygate(
                endpoint, "issue", "--name", "metered", "--owner", "team-demo", "--scope", "demo",
                "--usage-plan-id", plan,
            )  # fmt: skip
            print(f"   usage_plan_id {metered['usage_plan_id']}, API Gateway key {metered['usage_key_id']}")
            for call in range(1, 4):
                calls.expect(200, f"{rest}/metered", bearer(metered["api_key"]), f"request {call} of 3")
            calls.expect(429, f"{rest}/metered", bearer(metered["api_key"]), "429 Limit Exceeded: over the quota")
            calls.expect(200, f"{rest}/hello", bearer(metered["api_key"]), "a route without ApiKeyRequired")

            print("11. A key leaks: GitHub's secret scanning finds it in a public repository and sends a signed alert:")
            leaked = keygate(endpoint, "issue", "--name", "leaky", "--owner", "team-demo", "--scope", "demo")
            calls.expect(200, f"{http}/whoami", bearer(leaked["api_key"]), "the key works")
            endpoint_url = f"{local.urls.apis['LeakReportApi']}/github/secret-scanning"
            # with a made-up token of the same key: a false positive (a revoked key's would be a true one)
            body, headers = local.github.signed_alert(leaked["api_key"], made_up(leaked["key_id"]))
            forged = {**headers, "Github-Public-Key-Signature": local.github.sign(b"another body")}
            calls.report(401, endpoint_url, body, forged, "401: the signature is not GitHub's over this body")
            feedback = calls.report(200, endpoint_url, body, headers, "a signed alert: both tokens checked")
            for entry in feedback:
                print(f"       token_hash {entry['token_hash'][:16]}... {entry['label']}")
            calls.expect(403, f"{http}/whoami", bearer(leaked["api_key"]), "revoked by the alert (cache flushed)")
            trail = keygate(endpoint, "history", leaked["key_id"])["events"][-1]
            print(f"       audit: {trail['action']} by {trail['actor']}, found at {trail['details']['url']}")

            print("12. An operator finds a key in a chat log and reports it (the key is read from stdin):")
            pasted = keygate(endpoint, "issue", "--name", "pasted", "--owner", "team-demo", "--scope", "demo")
            reported = keygate(endpoint, "report-leak", "--url", "https://chat.example/msg/1", stdin=pasted["api_key"])
            print(f"   {reported['label']}: key {reported['key_id']} revoked {reported['revoked']}, "
                  f"notification {reported['notification']}")  # fmt: skip
            calls.expect(401, f"{rest}/hello", bearer(pasted["api_key"]), REFUSED_REST)

            print("13. The first key's history, from the audit trail:")
            for change in keygate(endpoint, "history", key_id)["events"]:
                print(f"   v{change['version']} {change['at']} {change['action']:<8} by {change['actor']}: "
                      f"{', '.join(change['changes'])}")  # fmt: skip
        print("14. Stopped the stack: servers, workers, moto; tables, secret, topic and usage plan deleted.")
        if calls.failures:
            log.seek(0)
            print(f"{calls.failures} answer(s) were not what API Gateway gives. Function logs:\n{log.read()[-4000:]}")
            return 1
    print(
        "Done: issued, scoped, refused, bound to one API, disabled, enabled, rotated, revoked, metered, "
        "leaked and revoked by a signed alert, audited."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
