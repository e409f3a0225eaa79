"""The local gateway glue: one API per port, each with exactly the routes that point at it."""

from keygate_local import gateway


def _events(template: dict) -> dict[str, dict]:
    return template["Resources"]["DemoFunction"]["Properties"]["Events"]


def test_the_template_has_a_rest_and_an_http_api(template):
    assert gateway.api_ids(template) == ["DemoRestApi", "DemoHttpApi"]


def test_each_api_keeps_only_its_own_routes(template):
    rest, http = gateway.only_api(template, "DemoRestApi"), gateway.only_api(template, "DemoHttpApi")
    assert "DemoHttpApi" not in rest["Resources"] and "DemoRestApi" not in http["Resources"]
    assert set(_events(rest)) == {"RestHello", "RestWhoami", "RestApiKeyWhoami"}
    assert set(_events(http)) == {"HttpHello", "HttpWhoami"}
    assert set(_events(template)) == set(_events(rest)) | set(_events(http))  # the original is untouched


def test_the_routes_and_authorizers_sam_cli_reads_for_each_api(template):
    rest = gateway.ApiProvider(gateway.load_stacks(gateway.only_api(template, "DemoRestApi"), "us-east-1")).api
    http = gateway.ApiProvider(gateway.load_stacks(gateway.only_api(template, "DemoHttpApi"), "us-east-1")).api
    rest_routes = {(route.path, route.authorizer_name) for route in rest.routes}
    assert rest_routes == {
        ("/hello", "KeygateToken"),
        ("/whoami", "KeygateToken"),
        ("/x-api-key/whoami", "KeygateRequest"),
    }
    assert {(route.path, route.authorizer_name) for route in http.routes} == {
        ("/hello", "KeygateLambda"),
        ("/whoami", "KeygateLambda"),
    }
    assert rest.stage_name == "demo"
