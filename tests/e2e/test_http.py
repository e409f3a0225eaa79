"""End to end over real HTTP: the template's APIs on the local stack, every authorizer shape."""

import concurrent.futures

import pytest
import requests

from keygate import keys
from tests.conftest import event, mistyped, wrong_secret
from tests.e2e.conftest import TIMEOUT, keys_table, local_client


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(
        url, headers={name.replace("_", "-"): value for name, value in headers.items()}, timeout=TIMEOUT
    )


def routes(stack) -> list[tuple[str, str, str]]:
    """(url, header name, header value template) for every protected route and authorizer shape."""
    return [
        (f"{stack.rest}/hello", "Authorization", "Bearer {}"),  # REST, TOKEN
        (f"{stack.rest}/whoami", "Authorization", "Bearer {}"),  # REST, TOKEN
        (f"{stack.rest}/x-api-key/whoami", "x-api-key", "{}"),  # REST, REQUEST
        (f"{stack.http}/hello", "Authorization", "Bearer {}"),  # HTTP API, simple responses
        (f"{stack.http}/whoami", "Authorization", "Bearer {}"),  # HTTP API, simple responses
    ]


def refused_status(url: str, stack) -> int:
    """API Gateway's answer to a refusal: 401 from a REST authorizer, 403 from an HTTP API one."""
    return 401 if url.startswith(stack.rest) else 403


def test_a_key_reaches_every_route_and_the_route_sees_the_authorizer_context(local_stack, issued):
    key = issued(owner="team-ctx", scopes=["orders:read", "orders:write"])
    for url, header, template in routes(local_stack):
        response = requests.get(url, headers={header: template.format(key["api_key"])}, timeout=TIMEOUT)
        assert response.status_code == 200, (url, response.text)
        body = response.json()
        assert (body["key_id"], body["owner"], body["scopes"]) == (
            key["key_id"],
            "team-ctx",
            "orders:read orders:write",
        )


@pytest.mark.parametrize("case", ["wrong secret", "unknown key id", "bad checksum", "not a key", "other scheme"])
def test_a_bad_key_is_refused_on_every_route(local_stack, issued, case):
    api_key = issued()["api_key"]
    presented = {
        "wrong secret": wrong_secret(api_key),
        "unknown key id": keys.generate("kg").api_key,
        "bad checksum": mistyped(api_key),
        "not a key": "hello",
        "other scheme": None,
    }[case]
    for url, header, template in routes(local_stack):
        value = template.format(presented) if presented else f"Basic {api_key}"
        response = requests.get(url, headers={header: value}, timeout=TIMEOUT)
        assert response.status_code == refused_status(url, local_stack), (url, case, response.text)
        assert api_key not in response.text


def test_the_rest_refusal_is_api_gateways_unauthorized(local_stack, issued):
    response = get(f"{local_stack.rest}/hello", Authorization=f"Bearer {wrong_secret(issued()['api_key'])}")
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})


def test_a_missing_identity_header_is_401_without_calling_the_authorizer(local_stack):
    for url, _, _ in routes(local_stack):
        assert get(url).status_code == 401, url


def test_the_x_api_key_route_needs_its_own_identity_header(local_stack, issued):
    api_key = issued()["api_key"]
    assert get(f"{local_stack.rest}/x-api-key/whoami", Authorization=f"Bearer {api_key}").status_code == 401
    assert get(f"{local_stack.rest}/x-api-key/whoami", x_api_key=api_key).status_code == 200


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive_over_http(local_stack, issued, scheme):
    api_key = issued()["api_key"]
    assert get(f"{local_stack.rest}/hello", Authorization=f"{scheme} {api_key}").status_code == 200
    assert get(f"{local_stack.http}/hello", Authorization=f"{scheme} {api_key}").status_code == 200


HOSTILE_HEADERS = [
    "Bearer " + "A" * 7000,
    "Bearer kg_" + "A" * 16 + "_" + "B" * 49 + " kg_" + "C" * 16,
    "Bearer\tkg_x",
    "Bearer kg_\u00e9\u00e9",
    "Bearer " + "%00" * 20,
]


@pytest.mark.parametrize("value", HOSTILE_HEADERS, ids=["huge", "two tokens", "tab", "latin-1", "nul escapes"])
def test_hostile_authorization_headers_are_refused(local_stack, value):
    for url in (f"{local_stack.rest}/hello", f"{local_stack.http}/hello"):
        response = requests.get(url, headers={"Authorization": value.encode("latin-1")}, timeout=TIMEOUT)
        assert response.status_code == refused_status(url, local_stack), (url, response.status_code)


@pytest.mark.parametrize("blank", ["\u00a0", "\u0085", "\u001c"], ids=ascii)
def test_a_blank_looking_header_beside_a_valid_key_is_refused_over_http(local_stack, issued, blank):
    api_key = issued()["api_key"]
    both = {"Authorization": f"Bearer {api_key}", "x-api-key": api_key}
    cases = [
        (f"{local_stack.rest}/x-api-key/whoami", both | {"x-api-key": blank}),  # identity source x-api-key
        (f"{local_stack.http}/whoami", both | {"Authorization": blank}),  # identity source Authorization
        (f"{local_stack.rest}/whoami", {"Authorization": f"Bearer {api_key}{blank}"}),
    ]
    for url, headers in cases:
        encoded = {name: value.encode("latin-1") for name, value in headers.items()}
        response = requests.get(url, headers=encoded, timeout=TIMEOUT)
        assert response.status_code == refused_status(url, local_stack), (url, headers.keys())
    assert get(f"{local_stack.http}/whoami", Authorization=f"Bearer {api_key}", x_api_key=api_key).status_code == 200


@pytest.mark.dynamodb_local
def test_a_revoked_key_is_refused_on_the_very_next_call_everywhere(local_stack, issued, invoke):
    key = issued()
    for url, header, template in routes(local_stack):
        assert requests.get(url, headers={header: template.format(key["api_key"])}, timeout=TIMEOUT).status_code == 200
    assert invoke("RevokeKeyFunction", {"key_id": key["key_id"]})["status"] == "revoked"
    for url, header, template in routes(local_stack):
        response = requests.get(url, headers={header: template.format(key["api_key"])}, timeout=TIMEOUT)
        assert response.status_code == refused_status(url, local_stack), url


def test_the_allow_policy_serves_other_routes_of_the_same_api(local_stack, issued):
    api_key = issued()["api_key"]
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {api_key}"
        for path in ("/hello", "/whoami", "/hello"):
            assert session.get(f"{local_stack.rest}{path}", timeout=TIMEOUT).status_code == 200


def test_concurrent_requests_with_several_keys_are_each_judged_alone(local_stack, issued):
    good = [issued()["api_key"] for _ in range(3)]
    bad = [wrong_secret(key) for key in good]
    requests_to_make = [(key, 200) for key in good * 3] + [(key, 401) for key in bad * 2]

    def call(key_and_status):
        key, _ = key_and_status
        return get(f"{local_stack.rest}/whoami", Authorization=f"Bearer {key}").status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(call, requests_to_make))
    assert statuses == [status for _, status in requests_to_make]


def test_the_console_events_work_through_the_lambda_invoke_api(local_stack, invoke):
    issued = invoke("IssueKeyFunction", event("issue-key.json"))
    assert issued["owner"] == "team-billing"
    shown = invoke("GetKeyFunction", event("get-key.json", key_id=issued["key_id"]))
    assert shown["key_id"] == issued["key_id"] and "api_key" not in shown
    listed = invoke("ListKeysFunction", event("list-keys.json"))
    assert issued["key_id"] in [key["key_id"] for key in listed["keys"]]
    assert invoke("RevokeKeyFunction", event("revoke-key.json", key_id=issued["key_id"]))["status"] == "revoked"


def test_a_fault_is_401_on_rest_and_500_on_http_apis_so_no_refusal_is_cached(local_stack, issued):
    key = issued()
    dynamodb = local_client("dynamodb", local_stack.aws["dynamodb"])
    table = keys_table(dynamodb)
    dynamodb.update_item(
        TableName=table,
        Key={"key_id": {"S": key["key_id"]}},
        UpdateExpression="SET #hash = :corrupt",
        ExpressionAttributeNames={"#hash": "hash"},
        ExpressionAttributeValues={":corrupt": {"S": "$argon2id$corrupt"}},
    )
    rest = get(f"{local_stack.rest}/hello", Authorization=f"Bearer {key['api_key']}")
    http = get(f"{local_stack.http}/hello", Authorization=f"Bearer {key['api_key']}")
    assert (rest.status_code, rest.json()) == (401, {"message": "Unauthorized"})
    assert (http.status_code, http.json()) == (500, {"message": "Internal Server Error"})


def test_a_key_bound_to_one_api_is_refused_with_403_on_the_other(local_stack, issued):
    rest_api, http_api = local_stack.api_stages["DemoRestApi"], local_stack.api_stages["DemoHttpApi"]
    assert rest_api.split("/")[0] != http_api.split("/")[0]  # each API has its own id, as on AWS
    rest_key, http_key = issued(apis=[rest_api])["api_key"], issued(apis=[http_api])["api_key"]
    assert get(f"{local_stack.rest}/hello", Authorization=f"Bearer {rest_key}").status_code == 200
    assert get(f"{local_stack.rest}/x-api-key/whoami", x_api_key=rest_key).status_code == 200
    assert get(f"{local_stack.http}/hello", Authorization=f"Bearer {rest_key}").status_code == 403
    assert get(f"{local_stack.http}/hello", Authorization=f"Bearer {http_key}").status_code == 200
    refused = get(f"{local_stack.rest}/hello", Authorization=f"Bearer {http_key}")
    assert refused.status_code == 403  # a valid key, not for this API: the Deny policy's answer
