"""`make load`: a bounded load run through the local stack that checks every answer.

8 clients (threads, a requests.Session each) call every protected route of the demo REST and HTTP APIs
with a mix of keys: valid ones (with every scope, read-only, with no scope of these routes, on the usage
plan, bound to the REST API, a rotated key's new secret), refused ones (rotated out with grace 0,
revoked, disabled, mistyped, forged with the real key id, of an unknown id) and none. Each answer is
checked against the decision API Gateway gives for that key on that route (``expected_status``), and a
200 against the caller the route saw. The stack runs with make demo's RouteScopes, once with the
authorizer cache off (every request runs the authorizer) and once on (300 s, as make demo): the keys
are first used while valid, then revoked, disabled and rotated, so a cached allow that outlived its
flush is a wrong decision too.

Fails (exit 1, naming the first wrong decisions) on any wrong decision, 5xx or request left without an
answer; else writes docs/load.md and docs/load.json.

Run: .venv/bin/python -m bench.load_mix [--rounds N] [--clients N] [--deadline-seconds S]
"""

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import requests

from bench.clients import lambda_client, run_concurrently
from bench.report import percentile, publish
from keygate import keys
from keygate_local.local_stack import DEMO_ROUTE_SCOPES, LocalStack, demo_parameters
from keygate_local.runtime import MAX_WORKERS_PER_FUNCTION

DOCS = Path(__file__).resolve().parent.parent / "docs"
REST, HTTP = "DemoRestApi", "DemoHttpApi"
API_LABELS = {REST: "REST API", HTTP: "HTTP API"}
AUTHORIZATION, X_API_KEY = "Authorization", "x-api-key"
TIMEOUT = (5, 30)  # seconds to connect, to read: one stuck request cannot hold the run
PREFIX = "kg"
CLIENTS = 8
DEFAULT_ROUNDS = 16  # 13 keys x 10 routes x 16 = 2,080 requests a phase


# --- the mix (pure) ---


@dataclass(frozen=True)
class Route:
    api: str  # the API's logical id in template.yaml
    method: str
    path: str
    header: str  # the identity source: Authorization (TOKEN, HTTP API) or x-api-key (REQUEST)
    scopes: frozenset[str]  # holding any one of them lets a key in (DEMO_ROUTE_SCOPES, written out)
    metered: bool = False  # ApiKeyRequired: the key must be on a usage plan of the stage

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


DEMO, READ, WRITE = "demo", "orders:read", "orders:write"
ROUTES = (
    Route(REST, "GET", "/hello", AUTHORIZATION, frozenset({DEMO})),
    Route(REST, "GET", "/whoami", AUTHORIZATION, frozenset({DEMO})),
    Route(REST, "GET", "/x-api-key/whoami", X_API_KEY, frozenset({DEMO})),
    Route(REST, "GET", "/orders", AUTHORIZATION, frozenset({READ, WRITE})),
    Route(REST, "POST", "/orders", AUTHORIZATION, frozenset({WRITE})),
    Route(REST, "GET", "/metered", AUTHORIZATION, frozenset({DEMO}), metered=True),
    Route(HTTP, "GET", "/hello", AUTHORIZATION, frozenset({DEMO})),
    Route(HTTP, "GET", "/whoami", AUTHORIZATION, frozenset({DEMO})),
    Route(HTTP, "GET", "/orders", AUTHORIZATION, frozenset({READ, WRITE})),
    Route(HTTP, "POST", "/orders", AUTHORIZATION, frozenset({WRITE})),
)
ROUTE_SCOPES = DEMO_ROUTE_SCOPES  # what ROUTES' scopes write out; a change to it shows as wrong decisions


class Kind(StrEnum):
    VALID = "valid"  # a live key's current secret
    ROTATED_OUT = "rotated out"  # the previous secret, after a rotation with grace_seconds 0
    REVOKED = "revoked"
    DISABLED = "disabled"
    MISTYPED = "mistyped"  # one character changed: the checksum fails
    FORGED = "forged"  # the real key id, another secret, a valid checksum
    UNKNOWN = "unknown"  # well-formed, a valid checksum, a key id no key has
    MISSING = "missing"  # no key header at all


ROTATED_IN = "valid, rotated: its new secret"  # the key rotated out, after its rotation
CHANGED = (Kind.ROTATED_OUT, Kind.REVOKED, Kind.DISABLED)  # valid with every scope until the load begins
EVERY_SCOPE = frozenset({DEMO, READ, WRITE})


@dataclass(frozen=True)
class KeyCase:
    label: str
    kind: Kind
    scopes: frozenset[str] = frozenset()
    apis: frozenset[str] | None = None  # the APIs the key is bound to; None: every API
    metered: bool = False  # issued on the demo usage plan


CASES = (
    KeyCase("valid, every scope", Kind.VALID, EVERY_SCOPE),
    KeyCase("valid, read-only (demo, orders:read)", Kind.VALID, frozenset({DEMO, READ})),
    KeyCase("valid, no scope of these routes", Kind.VALID, frozenset({"billing"})),
    KeyCase("valid, on the usage plan", Kind.VALID, EVERY_SCOPE, metered=True),
    KeyCase("valid, bound to the REST API", Kind.VALID, EVERY_SCOPE, apis=frozenset({REST})),
    KeyCase(ROTATED_IN, Kind.VALID, EVERY_SCOPE),
    KeyCase("rotated out: the previous secret, grace 0", Kind.ROTATED_OUT, EVERY_SCOPE),
    KeyCase("revoked", Kind.REVOKED, EVERY_SCOPE),
    KeyCase("disabled", Kind.DISABLED, EVERY_SCOPE),
    KeyCase("mistyped: one character changed", Kind.MISTYPED),
    KeyCase("forged: the real key id, another secret", Kind.FORGED),
    KeyCase("forged: an unknown key id", Kind.UNKNOWN),
    KeyCase("missing: no key header", Kind.MISSING),
)


def expected_status(case: KeyCase, route: Route) -> int:
    """API Gateway's answer for this key on this route.

    No identity header: 401 from API Gateway itself, on both APIs, without calling the authorizer.
    A key keygate refuses (malformed, unknown, wrong secret, revoked, disabled): a REST authorizer raises
    Unauthorized (401), an HTTP API one answers isAuthorized false (403). A live key that is not for this
    request (another API, no scope this route needs): a REST Deny policy (403), or isAuthorized false
    (403). A route with ApiKeyRequired and a key on no usage plan: 403.
    """
    if case.kind is Kind.MISSING:
        return 401
    if case.kind is not Kind.VALID:
        return 401 if route.api == REST else 403
    if case.apis is not None and route.api not in case.apis:
        return 403
    if not case.scopes & route.scopes:
        return 403
    if route.metered and not case.metered:
        return 403
    return 200


def plan(cases: Iterable[KeyCase], routes: Iterable[Route], rounds: int, seed: int) -> list[tuple[KeyCase, Route]]:
    """Every case on every route ``rounds`` times, in a shuffled (but repeatable) order."""
    requests_to_make = [(case, route) for case in cases for route in routes] * rounds
    random.Random(seed).shuffle(requests_to_make)
    return requests_to_make


def key_headers(route: Route, api_key: str | None) -> dict[str, str]:
    if api_key is None:
        return {}
    return {X_API_KEY: api_key} if route.header == X_API_KEY else {AUTHORIZATION: f"Bearer {api_key}"}


def mistyped(api_key: str) -> str:
    """The key with one character of its secret changed: still of the format, its checksum fails."""
    at = len(PREFIX) + 1 + keys.KEY_ID_LENGTH + 1 + 10
    return api_key[:at] + ("A" if api_key[at] != "A" else "B") + api_key[at + 1 :]


def forged(key_id: str) -> str:
    """A well-formed key with this key id, another secret and a valid checksum."""
    body = f"{PREFIX}_{key_id}_{keys.generate(PREFIX).secret}"
    return body + keys.checksum(body)


@dataclass(frozen=True)
class Outcome:
    api: str  # "REST API" or "HTTP API"
    route: str  # "GET /hello"
    case: str  # the KeyCase's label
    expected: int
    status: int | None  # None: no answer (timeout, connection refused)
    latency_ms: float
    problem: str | None = None  # why the answer is wrong; None: right

    def describe(self) -> str:
        return f"{self.api} {self.route} with {self.case!r}: {self.problem}"


def check(expected: int, status: int, body: object, key_id: str | None, route: str) -> str | None:
    """What is wrong with an answer, or None. A 200 must also show the route saw this very key."""
    if status != expected:
        return f"expected {expected}, got {status}"
    if status == 200:
        seen = (body.get("key_id"), body.get("route")) if isinstance(body, dict) else (None, None)
        if seen != (key_id, route):
            return f"200, but the route saw key_id {seen[0]!r} on {seen[1]!r}, not {key_id!r} on {route!r}"
    return None


def figures(outcomes: list[Outcome], elapsed_s: float) -> dict:
    """Counts and latency of some outcomes; requests a second over the phase's wall time."""
    answered = [outcome.latency_ms for outcome in outcomes if outcome.status is not None]
    latency = {f"p{p}": round(percentile(answered, p), 1) for p in (50, 90, 99)} if answered else {}
    return {
        "requests": len(outcomes),
        "wrong_decisions": sum(outcome.problem is not None for outcome in outcomes),
        "server_errors": sum(outcome.status is not None and outcome.status >= 500 for outcome in outcomes),
        "no_answer": sum(outcome.status is None for outcome in outcomes),
        "requests_per_second": round(len(outcomes) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "latency_ms": latency | ({"max": round(max(answered), 1)} if answered else {}),
    }


def summarize(name: str, parameters: dict, outcomes: list[Outcome], elapsed_s: float, planned: int) -> dict:
    """One phase's figures, per API and both together, and the answers each case got."""
    apis = {label: figures([o for o in outcomes if o.api == label], elapsed_s) for label in API_LABELS.values()}
    answers: dict[str, Counter] = {case.label: Counter() for case in CASES}
    for outcome in outcomes:
        answers.setdefault(outcome.case, Counter())[str(outcome.status)] += 1
    return {
        "name": name,
        "parameters": parameters,
        "planned": planned,
        "elapsed_s": round(elapsed_s, 2),
        "apis": apis | {"both": figures(outcomes, elapsed_s)},
        "answers": {case: dict(sorted(counts.items())) for case, counts in answers.items()},
        "first_wrong": [outcome.describe() for outcome in outcomes if outcome.problem is not None][:10],
    }


def failures(phases: list[dict]) -> list[str]:
    """Why the run fails: wrong decisions (5xx and no answer are wrong decisions too), or a phase cut
    short by its deadline. Empty: it passed."""
    found = []
    for phase in phases:
        both = phase["apis"]["both"]
        if both["wrong_decisions"]:
            found.append(
                f"{phase['name']}: {both['wrong_decisions']} wrong decision(s) ({both['server_errors']} 5xx, "
                f"{both['no_answer']} without an answer) of {both['requests']} requests; the first:"
            )
            found += [f"  {wrong}" for wrong in phase["first_wrong"]]
        if both["requests"] < phase["planned"]:
            found.append(f"{phase['name']}: stopped at its deadline, {both['requests']} of {phase['planned']} requests")
    return found


def render(report: dict) -> list[str]:
    """docs/load.md."""
    lines = [
        "# Load run through the local stack",
        "",
        f"Measured {report['date']} on {report['machine']['description']}, by `{report['command']}` "
        f"(`{report['module_command']}`); the whole run took {report['run_seconds']:.0f} s.",
        "",
        f"{report['clients']} concurrent clients (threads, a `requests.Session` each, {TIMEOUT[1]} s read timeout)"
        " call",
        "every protected route of the demo REST API (`/hello`, `/whoami`: TOKEN authorizer on `Authorization`;",
        "`/x-api-key/whoami`: REQUEST authorizer on `x-api-key`; `/orders` GET and POST; `/metered`, with",
        "ApiKeyRequired) and of the demo HTTP API (`/hello`, `/whoami`, `/orders` GET and POST) with each of",
        f"the {len(CASES)} kinds of key below, {report['rounds']} times each per phase, in a shuffled order. The stack",
        "runs with make demo's RouteScopes, and a quota on `/metered` the run does not reach:",
        "",
        f"    RouteScopes={ROUTE_SCOPES}",
        "",
        "Each answer is checked against the decision API Gateway gives: 401 for a missing key header (API",
        "Gateway's own answer, on both APIs); for a key keygate refuses, 401 from the REST API (the authorizer",
        "raises Unauthorized) and 403 from the HTTP API (`isAuthorized: false`); 403 for a live key that is",
        "not for the route (no scope it needs, or bound to the other API: a Deny policy on the REST API); 403",
        "on `/metered` for a live key on no usage plan. Each 200 is also checked against the key id and route",
        "the route function saw. Any wrong decision, 5xx or request without an answer fails the run.",
        "",
        "Two phases, each on a fresh stack: the authorizer cache off (`AuthorizerCacheTtl=0`: every request",
        "runs the authorizer, then the route function) and on (300 s with both stages in `CachedStages`, as",
        "make demo: a cached identity skips the authorizer, the route function still runs). In each, every",
        "key is first used on every route while valid (a warm-up, checked, not counted; it also starts the",
        "functions' workers), then one key is rotated with grace 0, one revoked and one disabled through the",
        "admin functions, and the load begins: an allow left in API Gateway's cache or in an authorizer's",
        "verified-key cache would be a wrong decision.",
        "",
        "| phase | API | requests | wrong decisions | 5xx | no answer | req/s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in report["phases"]:
        for api, shown in phase["apis"].items():
            latency = shown["latency_ms"]
            lines.append(
                f"| {phase['name']} | {api} | {shown['requests']} | {shown['wrong_decisions']} | "
                f"{shown['server_errors']} | {shown['no_answer']} | {shown['requests_per_second']:.1f} | "
                + " | ".join(f"{latency.get(p, 0):.1f}" for p in ("p50", "p90", "p99", "max"))
                + " |"
            )
    lines += [
        "",
        "req/s: the phase's requests (of that API) over the load's wall time; the two APIs share the clients.",
        "Latency: client to route function and back, as the client measured it. The load itself took "
        + " and ".join(f"{phase['elapsed_s']:.0f} s ({phase['name']})" for phase in report["phases"])
        + "; the rest of the run starts and stops the stacks, issues the keys and warms up.",
        "",
        "The answers each kind of key got, over both phases, on the routes above:",
        "",
        "| key | answers |",
        "|---|---|",
    ]
    total: dict[str, Counter] = {}
    for phase in report["phases"]:
        for case, counts in phase["answers"].items():
            total.setdefault(case, Counter()).update(counts)
    for case, counts in total.items():
        shown = ", ".join(f"{status}: {count}" for status, count in sorted(counts.items()))
        lines.append(f"| {case} | {shown} |")
    lines += [
        "",
        "What these figures are: correctness under concurrency, not AWS's latency. The local stack is one",
        "Python process (SAM CLI's API Gateway emulator on werkzeug, moto for DynamoDB, Secrets Manager and",
        "API Gateway's keys and plans) plus the functions' worker processes (at most "
        f"{MAX_WORKERS_PER_FUNCTION} per function), all on",
        f"this shared {report['machine']['nproc']}-core machine with the clients; API Gateway, Lambda and "
        "DynamoDB answer in other",
        "times. Other work on the machine (the load average above) moves them: back-to-back runs here have",
        "differed by a factor of two in req/s and latency. docs/load.json holds the raw figures.",
        "",
    ]
    return lines


# --- the run (the local stack) ---


@dataclass(frozen=True)
class Presented:
    case: KeyCase
    api_key: str | None
    key_id: str | None  # whose context a 200 must carry


class Admin:
    """The admin functions through the stack's Lambda Invoke API, as the CLI calls them."""

    def __init__(self, endpoint: str):
        self._client = lambda_client(endpoint)

    def __call__(self, function: str, payload: dict) -> dict:
        response = self._client.invoke(FunctionName=function, Payload=json.dumps(payload | {"actor": "bench:load"}))
        answer = json.loads(response["Payload"].read())
        if "FunctionError" in response or "error" in answer:
            raise SystemExit(f"{function} failed: {answer}")
        return answer


def _issue(admin: Admin, local: LocalStack, case: KeyCase) -> dict:
    event = {"name": "load", "owner": "bench-load", "scopes": sorted(case.scopes)}
    if case.apis is not None:
        event["apis"] = [local.urls.api_stages[api] for api in sorted(case.apis)]
    if case.metered:
        event["usage_plan_id"] = local.urls.usage_plans["DemoUsagePlan"]
    return admin("IssueKeyFunction", event)


def _keys(admin: Admin, local: LocalStack) -> tuple[list[Presented], list[Presented], dict[str, str]]:
    """(the keys as presented while all are valid, as presented in the load, the changes to make)."""
    by_kind = {case.kind: case for case in CASES if case.kind is not Kind.VALID}
    issued = {case.label: _issue(admin, local, case) for case in CASES if case.scopes and case.label != ROTATED_IN}
    every = issued[CASES[0].label]
    bad = {
        Kind.MISTYPED: mistyped(every["api_key"]),
        Kind.FORGED: forged(every["key_id"]),
        Kind.UNKNOWN: keys.generate(PREFIX).api_key,
        Kind.MISSING: None,
    }
    rotating = issued[by_kind[Kind.ROTATED_OUT].label]
    before, during = [], []
    for case in CASES:
        if case.kind in bad:
            during.append(Presented(case, bad[case.kind], None))
        elif case.label != ROTATED_IN:  # its secret exists once the key is rotated
            key = issued[case.label]
            during.append(Presented(case, key["api_key"], key["key_id"]))
    for presented in during:
        changes = presented.case.kind in CHANGED
        before.append(replace(presented, case=replace(presented.case, kind=Kind.VALID)) if changes else presented)
    changes = {
        "rotate": rotating["key_id"],
        "revoke": issued[by_kind[Kind.REVOKED].label]["key_id"],
        "disable": issued[by_kind[Kind.DISABLED].label]["key_id"],
    }
    return before, during, changes


def _change(admin: Admin, changes: dict[str, str], during: list[Presented]) -> list[Presented]:
    """Rotate (grace 0), revoke and disable; the load's keys with the rotated key's new secret."""
    rotated = admin("RotateKeyFunction", {"key_id": changes["rotate"], "grace_seconds": 0})
    admin("RevokeKeyFunction", {"key_id": changes["revoke"]})
    admin("UpdateKeyFunction", {"key_id": changes["disable"], "enabled": False})
    new_secret = next(case for case in CASES if case.label == ROTATED_IN)
    return [*during, Presented(new_secret, rotated["api_key"], changes["rotate"])]


def _call(session: requests.Session, urls: dict[str, str], presented: Presented, route: Route) -> Outcome:
    expected = expected_status(presented.case, route)
    api = API_LABELS[route.api]
    started = time.perf_counter()
    try:
        response = session.request(
            route.method, urls[route.api] + route.path, headers=key_headers(route, presented.api_key), timeout=TIMEOUT
        )
    except requests.RequestException as error:  # named by type: its text may hold the header, the key in it
        elapsed = (time.perf_counter() - started) * 1000
        problem = f"no answer: {type(error).__name__}"
        return Outcome(api, route.label, presented.case.label, expected, None, elapsed, problem)
    elapsed = (time.perf_counter() - started) * 1000
    try:
        body = response.json()
    except ValueError:
        body = None
    problem = check(expected, response.status_code, body, presented.key_id, route.label)
    return Outcome(api, route.label, presented.case.label, expected, response.status_code, elapsed, problem)


def _hammer(
    urls: dict[str, str], work: list[tuple[Presented, Route]], clients: int, deadline: float, name: str
) -> tuple[list[Outcome], float]:
    """Send the work from ``clients`` threads; (the outcomes, seconds it took). Prints progress."""

    def progress(outcomes: list[Outcome], elapsed: float) -> None:
        wrong = sum(outcome.problem is not None for outcome in outcomes)
        rate = len(outcomes) / elapsed
        print(f"   {name}: {len(outcomes)}/{len(work)} requests, {rate:.0f} req/s, {wrong} wrong", flush=True)

    return run_concurrently(work, clients, lambda session, item: _call(session, urls, *item), deadline, progress)


def run_phase(name: str, parameters: dict, rounds: int, clients: int, deadline_s: float, seed: int, log) -> dict:
    """One fresh stack: issue the keys, warm up, change three keys, then the load."""
    print(f"{name}: starting the local stack", flush=True)
    with LocalStack(log=log, parameters=parameters) as local:
        admin = Admin(local.urls.lambda_endpoint)
        before, during, changes = _keys(admin, local)
        deadline = time.monotonic() + deadline_s
        warm_work = [(p, route) for p in before for route in ROUTES]
        warm, warm_s = _hammer(local.urls.apis, warm_work, clients, deadline, f"{name}, warm-up")
        wrong = [outcome.describe() for outcome in warm if outcome.problem is not None]
        if wrong or len(warm) < len(warm_work):
            raise SystemExit(f"{name}: the warm-up went wrong ({len(warm)} of {len(warm_work)}):\n" + "\n".join(wrong))
        presented = _change(admin, changes, during)
        by_case = {p.case.label: p for p in presented}
        work = [(by_case[case.label], route) for case, route in plan(CASES, ROUTES, rounds, seed)]
        outcomes, elapsed = _hammer(local.urls.apis, work, clients, deadline, name)
    phase = summarize(name, parameters, outcomes, elapsed, len(work))
    phase["warm_up"] = {"requests": len(warm), "seconds": round(warm_s, 2)}
    return phase


def machine() -> dict:
    cores = len(os.sched_getaffinity(0))  # what nproc prints
    load = os.getloadavg()[0]
    description = (
        f"{platform.machine()}, {cores} cores (nproc), Python {platform.python_version()}, "
        f"load average {load:.2f} at the start"
    )
    return {"nproc": cores, "machine": platform.machine(), "python": platform.python_version(),
            "load_average_at_start": round(load, 2), "description": description}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="each key on each route, per phase")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--deadline-seconds", type=float, default=150, help="per phase, warm-up included")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    started = time.perf_counter()
    base = demo_parameters() | {"RouteScopes": ROUTE_SCOPES, "DemoQuotaPerDay": "1000000"}
    phases_to_run = {"cache off": base | {"AuthorizerCacheTtl": "0"}, "cache on": base}
    report = {
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "machine": machine(),
        "command": "make load",
        "module_command": " ".join(["python -m bench.load_mix", *sys.argv[1:]]),
        "clients": arguments.clients,
        "rounds": arguments.rounds,
        "seed": arguments.seed,
        "phases": [],
    }
    with tempfile.NamedTemporaryFile("w+", prefix="keygate-load-", suffix=".log") as log:
        for name, parameters in phases_to_run.items():
            phase = run_phase(
                name, parameters, arguments.rounds, arguments.clients, arguments.deadline_seconds, arguments.seed, log
            )
            report["phases"].append(phase)
            both = phase["apis"]["both"]
            print(f"{name}: {both['requests']} requests in {phase['elapsed_s']:.1f} s, "
                  f"{both['wrong_decisions']} wrong, {both['server_errors']} 5xx", flush=True)  # fmt: skip
        report["run_seconds"] = round(time.perf_counter() - started, 1)
        found = failures(report["phases"])
        if found:
            log.seek(0)
            print("\n".join(render(report)))
            print(f"Function logs (the end):\n{log.read()[-4000:]}", file=sys.stderr)
            print("make load FAILED:\n" + "\n".join(found), file=sys.stderr)
            return 1
    (DOCS / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    publish("load.md", render(report))
    print(f"make load passed in {report['run_seconds']:.0f} s: docs/load.md, docs/load.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
