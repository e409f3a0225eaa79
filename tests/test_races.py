"""Races, with real threads and several warm containers, over real HTTP: to moto server (whose writes the
proxy applies atomically, as DynamoDB does) and to DynamoDB Local, directly. Keys issued at once are
distinct and all verify; once a revoke has returned no container allows the key; concurrent changes of
one key lose nothing, and its audit trail replays exactly to its final state."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import invoke
from tests.helpers.authorizer import decide, shaped

pytestmark = pytest.mark.dynamodb_local  # real concurrent transactions, without the proxy (conftest.served)

CONTAINERS = 4
DEADLINE = 120  # seconds: every race below ends well within it, or fails


def containers(served_load, function: str, count: int = CONTAINERS) -> list[Callable]:
    return [served_load(function) for _ in range(count)]


def test_a_hundred_keys_issued_at_once_are_distinct_and_all_verify(served_load):
    issuers, authorizers = containers(served_load, "IssueKeyFunction"), containers(served_load, "AuthorizerFunction")

    def issue(n: int) -> dict:
        return invoke(issuers[n % CONTAINERS], {"name": f"race-{n}", "owner": "team-race"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(issue, range(100), timeout=DEADLINE))
    assert all("api_key" in answer for answer in answers), [a for a in answers if "api_key" not in a][:1]
    assert len({answer["key_id"] for answer in answers}) == len({answer["api_key"] for answer in answers}) == 100

    def verifies(n: int) -> bool:
        request = shaped("rest-token", authorization=f"Bearer {answers[n]['api_key']}")
        return decide(authorizers[n % CONTAINERS], request)[0]

    with ThreadPoolExecutor(CONTAINERS) as pool:
        assert all(pool.map(verifies, range(100), timeout=DEADLINE))
    listed = invoke(served_load("ListKeysFunction"), {"owner": "team-race", "limit": 100})
    assert {key["key_id"] for key in listed["keys"]} == {answer["key_id"] for answer in answers}


def test_once_revoke_has_returned_no_warm_container_allows_the_key(served_load):
    key = invoke(served_load("IssueKeyFunction"), {"name": "race", "owner": "team-race"})
    authorizers = containers(served_load, "AuthorizerFunction")
    request = shaped("http-api", authorization=f"Bearer {key['api_key']}")
    revoked_at: list[float] = []
    verifications: list[tuple[float, bool]] = []  # (started, allowed)
    allowed_once = [threading.Event() for _ in authorizers]
    stop = threading.Event()
    deadline = time.monotonic() + DEADLINE

    def hammer(n: int) -> None:
        refusals_after_revoke = 0
        while not stop.is_set() and refusals_after_revoke < 20 and time.monotonic() < deadline:
            started = time.monotonic()
            allowed = decide(authorizers[n], request)[0]
            verifications.append((started, allowed))
            if allowed:
                allowed_once[n].set()
            refusals_after_revoke += bool(revoked_at) and not allowed

    with ThreadPoolExecutor(CONTAINERS) as pool:
        hammering = [pool.submit(hammer, n) for n in range(CONTAINERS)]
        try:
            for event in allowed_once:  # every container is verifying the key (from its cache) when the revoke comes
                assert event.wait(max(0.0, deadline - time.monotonic())), "a container never allowed the key"
            assert invoke(served_load("RevokeKeyFunction"), {"key_id": key["key_id"]})["status"] == "revoked"
            revoked_at.append(time.monotonic())
            for future in hammering:
                future.result(timeout=max(0.0, deadline - time.monotonic()))  # a thread's error fails the test
        finally:
            stop.set()
    after = [allowed for started, allowed in verifications if started > revoked_at[0]]
    assert len(after) >= CONTAINERS * 10 and not any(after)
    assert any(allowed for started, allowed in verifications if started < revoked_at[0])  # the race was real


OPERATIONS = [  # (function, event) of each concurrent change; the actor names it in the audit trail
    *[("UpdateKeyFunction", {"name": f"name-{n}"}) for n in range(4)],
    *[("UpdateKeyFunction", {"scopes": [f"scope-{n}"]}) for n in range(3)],
    ("UpdateKeyFunction", {"enabled": False}),
    ("UpdateKeyFunction", {"enabled": True}),
    ("UpdateKeyFunction", {"description": "described"}),
    *[("RotateKeyFunction", {"grace_seconds": 60}) for _ in range(3)],
    ("RevokeKeyFunction", {}),
]


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_changes_of_one_key_lose_nothing_and_the_audit_trail_replays_to_its_state(round_, served_load):
    key = invoke(served_load("IssueKeyFunction"), {"name": "race", "owner": "team-race"})
    functions = {name: containers(served_load, name, 2) for name in {name for name, _ in OPERATIONS}}

    def change(n: int) -> dict:
        function, fields = OPERATIONS[n]
        event = {"key_id": key["key_id"], "actor": f"op-{n}"} | fields
        return invoke(functions[function][n % 2], event)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(change, range(len(OPERATIONS)), timeout=DEADLINE))
    history = invoke(served_load("KeyHistoryFunction"), {"key_id": key["key_id"], "limit": 100})["events"]
    final = invoke(served_load("GetKeyFunction"), {"key_id": key["key_id"]})
    # one record per version, none missing, none twice; the last one is the key's version
    assert [event["version"] for event in history] == list(range(1, len(history) + 1))
    assert final["version"] == len(history)
    # replayed, each record changes exactly the state the one before left (no change made on a stale read)
    state: dict = {}
    for event in history:
        for field, change_ in event["changes"].items():
            assert state.get(field) == change_["old"], (event["version"], field)
            state[field] = change_["new"]
    assert {field: final.get(field) for field in state} == state
    # every change that answered success is in the trail, by its actor; the revoke is the last change
    succeeded = {f"op-{n}" for n, answer in enumerate(answers) if "error" not in answer}
    audited = {event["actor"] for event in history[1:]}
    assert audited <= succeeded and final["status"] == "revoked" and history[-1]["action"] == "revoke"
    refused = [answer["error"]["type"] for answer in answers if "error" in answer]
    assert set(refused) <= {"KeyRevoked"}, refused  # only changes that came after the revoke were refused
    no_ops = succeeded - audited  # a change that found the key already as asked wrote nothing
    assert all(OPERATIONS[int(actor[3:])][0] == "UpdateKeyFunction" for actor in no_ops), no_ops
