"""Keys bound to APIs and stages: the patterns, issuing with them or the deployment's default, and the
authorizer refusing a valid key on an API or stage its list does not name."""

import copy

import pytest

from keygate import apis
from keygate.apis import ApiStage
from keygate.config import ConfigError, load
from tests.conftest import REQUIRED, invoke, wrong_secret
from tests.helpers.authorizer import SHAPES, decide, log_records, reasons, refused_as_a_fault, shaped


@pytest.mark.parametrize(
    ("pattern", "target", "expected"),
    [
        ("a1b2c3d4e5/prod", "a1b2c3d4e5/prod", True),
        ("a1b2c3d4e5/prod", "a1b2c3d4e5/pro", False),
        ("a1b2c3d4e5/*", "a1b2c3d4e5/anything-at_all", True),
        ("*/prod", "a1b2c3d4e5/prod", True),
        ("a1b2*/prod", "a1b2zzzzzz/prod", True),
        ("a1b2*/prod", "zza1b2zzzz/prod", False),
        ("a1b2c3d4e5/$default", "a1b2c3d4e5/$default", True),
        ("a1b2c3d4e5/pr.d", "a1b2c3d4e5/prod", False),  # no character but * is special
    ],
)
def test_a_pattern_matches_api_and_stage_with_star_for_any_run(pattern, target, expected):
    assert apis.allows([pattern], ApiStage(*target.split("/"))) is expected


def test_no_list_means_every_api():
    assert apis.allows(None, ApiStage("anything00", "any"))


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("", None), ("  ", None), ("a1b2c3d4e5/prod", ("a1b2c3d4e5/prod",)), (" a/b , */prod ", ("a/b", "*/prod"))],
)
def test_an_api_list_is_comma_separated(text, parsed):
    assert apis.parse_api_list(text) == parsed


@pytest.mark.parametrize("text", ["prod", "a/b/c", "a/b,", ",a/b", "a b/c", "a/b;c/d", "a/b,,c/d", "a/" + "s" * 129])
def test_a_bad_default_key_apis_fails_at_start_naming_the_variable_and_entry(text):
    with pytest.raises(ConfigError, match="DEFAULT_KEY_APIS: .* is not API_ID/STAGE"):
        load(REQUIRED | {"DEFAULT_KEY_APIS": text})


def test_the_template_parameter_takes_exactly_what_the_code_takes(template):
    import re

    parameter = template["Parameters"]["DefaultKeyApis"]
    assert parameter["AllowedPattern"] == apis.API_LIST_PATTERN and parameter["Default"] == ""
    environment = template["Resources"]["IssueKeyFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["DEFAULT_KEY_APIS"] == {"Ref": "DefaultKeyApis"}
    for text in ["", "a/b", "a/b, c/*", "prod", "a/b/c", "a/b,", "a b/c"]:
        accepted = re.fullmatch(parameter["AllowedPattern"], text) is not None
        assert accepted == (_parses(text)), text


def _parses(text: str) -> bool:
    try:
        apis.parse_api_list(text)
    except ValueError:
        return False
    return True


# --- keys bound to APIs ---


def on_api(request: dict, api_id: str, stage: str) -> dict:
    """The same request, arriving on another API and stage."""
    request = copy.deepcopy(request)
    if request.get("version") == "2.0":
        request["requestContext"] |= {"apiId": api_id, "stage": stage}
        request["routeArn"] = f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/{stage}/GET/whoami"
        return request
    request["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/{stage}/GET/hello"
    if "requestContext" in request:
        request["requestContext"] |= {"apiId": api_id, "stage": stage}
    return request


# (the key's apis, API and stage of the request, allowed?)
API_BINDINGS = [
    (["abcdef1234/prod"], ("abcdef1234", "prod"), True),
    (["abcdef1234/prod"], ("abcdef1234", "dev"), False),
    (["abcdef1234/prod"], ("zzzzzz9999", "prod"), False),
    (["abcdef1234/*"], ("abcdef1234", "dev"), True),
    (["abcdef1234/*"], ("abcdef12345", "dev"), False),
    (["*/prod"], ("zzzzzz9999", "prod"), True),
    (["*/prod"], ("zzzzzz9999", "production"), False),
    (["abcdef1234/prod-*"], ("abcdef1234", "prod-eu"), True),
    (["zzzzzz9999/prod", "abcdef1234/$default"], ("abcdef1234", "$default"), True),
    (["*/*"], ("anything00", "any-stage"), True),
    (None, ("anything00", "any-stage"), True),
]


@pytest.mark.parametrize(("apis", "target", "expected"), API_BINDINGS, ids=lambda value: str(value))
@pytest.mark.parametrize("shape", SHAPES)
def test_a_key_works_only_on_the_apis_and_stages_it_names(shape, apis, target, expected, issued, authorizer, capsys):
    key = issued(**({"apis": apis} if apis is not None else {}))
    request = on_api(shaped(shape, authorization=f"Bearer {key['api_key']}"), *target)
    capsys.readouterr()
    allowed, response = decide(authorizer, request)
    assert allowed is expected
    (record,) = [r for r in log_records(capsys.readouterr().out) if "reason" in r]
    assert (record["reason"], record["api"]) == ("Allowed" if expected else "ApiNotAllowed", "/".join(target))


@pytest.mark.parametrize("shape", ["rest-token", "rest-request"])
def test_a_key_on_another_api_gets_a_deny_of_this_stage_only(shape, issued, authorizer):
    key = issued(apis=["otherapi99/demo"])
    request = shaped(shape, authorization=f"Bearer {key['api_key']}")
    response = invoke(authorizer, request)  # a 403, not a 401: the key is valid, just not here
    (statement,) = response["policyDocument"]["Statement"]
    assert (statement["Effect"], statement["Resource"]) == (
        "Deny",
        ["arn:aws:execute-api:us-east-1:123456789012:abcdef1234/demo/*/*"],
    )
    assert response["principalId"] == key["key_id"] and "context" not in response


def test_a_key_bound_to_an_api_cannot_be_used_without_a_valid_secret_to_learn_so(issued, authorizer, capsys):
    key = issued(apis=["otherapi99/demo"])
    capsys.readouterr()
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {wrong_secret(key['api_key'])}")) == (
        False,
        None,
    )
    assert reasons(capsys) == ["WrongSecret"]


def test_keys_issued_without_apis_get_the_deployments_default(load, authorizer):
    issue = load("IssueKeyFunction", DEFAULT_KEY_APIS="abcdef1234/*")
    defaulted = invoke(issue, {"name": "n", "owner": "o"})
    everywhere = invoke(issue, {"name": "n", "owner": "o", "apis": ["*/*"]})
    assert (defaulted["apis"], everywhere["apis"]) == (["abcdef1234/*"], ["*/*"])
    rest = shaped("rest-token", authorization=f"Bearer {defaulted['api_key']}")
    assert decide(authorizer, rest)[0]
    assert not decide(authorizer, on_api(rest, "otherapi99", "demo"))[0]
    assert decide(authorizer, on_api(shaped("http-api", api_key=everywhere["api_key"]), "otherapi99", "x"))[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_an_event_that_does_not_name_its_api_is_refused_as_a_fault(shape, issued, authorizer, capsys):
    request = shaped(shape, authorization=f"Bearer {issued()['api_key']}")
    if shape == "http-api":
        del request["requestContext"]["apiId"]
    else:
        request["methodArn"] = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234"
    capsys.readouterr()
    refused_as_a_fault(authorizer, request)
    assert reasons(capsys) == ["Fault"]


BAD_APIS = [
    ([], "at least one API_ID/STAGE"),
    (["prod"], "API_ID/STAGE"),
    (["a/b/c"], "API_ID/STAGE"),
    (["a/b", "a/b"], "must not repeat"),
    ("a/b", "valid list"),
    ([7], "valid string"),
    ([f"a{i}/b" for i in range(51)], "at most 50"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_APIS, ids=[case[1] for case in BAD_APIS])
def test_bad_apis_are_refused_naming_the_field_and_nothing_is_written(value, problem, admin, table_items):
    answer = invoke(admin["IssueKey"], {"name": "n", "owner": "o", "apis": value})
    assert answer["error"]["type"] == "InvalidRequest"
    assert any(field.startswith("apis") and problem in text for field, text in answer["error"]["fields"].items())
    assert table_items() == []


def test_the_apis_are_stored_and_shown_and_absent_means_every_api(issued, admin, table_items):
    bound, unbound = issued(apis=["a1b2c3d4e5/prod", "*/dev"]), issued()
    assert (bound["apis"], unbound["apis"]) == (["a1b2c3d4e5/prod", "*/dev"], None)
    stored = {item["key_id"]["S"]: item for item in table_items()}
    assert stored[bound["key_id"]]["apis"] == {"L": [{"S": "a1b2c3d4e5/prod"}, {"S": "*/dev"}]}
    assert "apis" not in stored[unbound["key_id"]]
    assert invoke(admin["GetKey"], {"key_id": bound["key_id"]})["apis"] == ["a1b2c3d4e5/prod", "*/dev"]
