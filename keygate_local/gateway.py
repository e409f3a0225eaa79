"""SAM CLI's own local API Gateway and Lambda invoke services, serving the template on 127.0.0.1.

Glue only: SAM CLI's providers read the routes, authorizers and functions from template.yaml, its
LocalApigwService evaluates the Lambda authorizers, and its LocalLambdaHttpService answers the Lambda
Invoke API. Where it differs from ``sam local start-api``:

- Each API resource gets its own port. ``sam local`` merges all APIs into one route table, where the
  HTTP API's ``GET /hello`` would hide the REST API's.
- An authorizer that raises ``Unauthorized`` answers 401, and one that fails otherwise 500, as API
  Gateway does (``sam local``: 502 for both).
- Each API has an id of its own in its events (``local_api_id``), as on AWS, so a key bound to one API
  is refused on the other (``sam local`` writes 1234567890 into every event).
- Authorizer answers are cached for ReauthorizeEvery seconds, and a route with ApiKeyRequired on a REST
  API whose ApiKeySourceType is AUTHORIZER is metered by its usage plan (``control_plane``).
- A refusal (401, 403) prints one line, not SAM CLI's "Lambda authorizer failed to invoke successfully",
  which it logs as an error for every refusal; a fault keeps that line.
"""

import copy
import hashlib
import io
import json
import logging
import threading

from flask import g, has_app_context, jsonify, make_response, request
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.lib.utils.stream_writer import StreamWriter
from samcli.local.apigw.exceptions import AuthorizerUnauthorizedRequest, LambdaResponseParseException
from samcli.local.apigw.local_apigw_service import LocalApigwService
from samcli.local.apigw.service_error_responses import ServiceErrorResponses
from samcli.local.lambda_service.local_lambda_http_service import LocalLambdaHttpService
from samcli.local.services.base_local_service import LambdaOutputParser
from werkzeug.serving import make_server

from keygate_local.control_plane import AuthorizerCache, NoUsagePlan, QuotaExceeded, UsageMeter
from keygate_local.worker import REFUSAL

LOG = logging.getLogger(__name__)
API_TYPES = {"AWS::Serverless::Api": "Api", "AWS::Serverless::HttpApi": "HttpApi"}
SAM_API_ID = "1234567890"  # the id SAM CLI writes into every event, of whichever API
# What SAM CLI's API Gateway logs, at ERROR, for every authorizer answer but an allow: a refusal too.
SAM_AUTHORIZER_FAILED = "Lambda authorizer failed to invoke successfully: %s"


class RefusalsAreNotErrors(logging.Filter):
    """Drops SAM CLI's "Lambda authorizer failed to invoke successfully" for an ordinary refusal (401, 403),
    which ApiGateway has reported in a line of its own; a fault's (500, 502) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == SAM_AUTHORIZER_FAILED and has_app_context() and g.get("keygate_refused"))


REFUSALS_ARE_NOT_ERRORS = RefusalsAreNotErrors()


def local_api_id(logical_id: str) -> str:
    """A stable id for an API of the template, 10 lower-case characters like API Gateway's."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:10]


def load_stacks(template: dict, region: str, parameters: dict | None = None) -> list:
    stacks, _ = SamLocalStackProvider.get_stacks(
        template_dictionary=template,
        parameter_overrides=parameters or {},
        global_parameter_overrides={"AWS::Region": region},
    )
    return stacks


def api_ids(template: dict) -> list[str]:
    return [name for name, resource in template["Resources"].items() if resource["Type"] in API_TYPES]


def stage_name(template: dict, api_id: str) -> str:
    """The stage an API of the template serves: its StageName, or an HTTP API's $default."""
    return template["Resources"][api_id].get("Properties", {}).get("StageName", "$default")


def only_api(template: dict, api_id: str) -> dict:
    """A copy of the template with one API resource and only the function events that route to it."""
    kept = copy.deepcopy(template)
    for name, resource in list(kept["Resources"].items()):
        if resource["Type"] in API_TYPES and name != api_id:
            del kept["Resources"][name]
        elif resource["Type"] == "AWS::Serverless::Function":
            events = resource.get("Properties", {}).get("Events", {})
            for event_name, event in list(events.items()):
                properties = event.get("Properties", {})
                target = properties.get("RestApiId", properties.get("ApiId"))
                if event.get("Type") not in API_TYPES.values() or target == {"Ref": api_id}:
                    continue
                if target is None:
                    LOG.warning("%s.%s is on SAM's implicit API, which the local stack does not serve; "
                                "give it a RestApiId or ApiId", name, event_name)  # fmt: skip
                del events[event_name]
    return kept


def lambda_runner(template: dict, runtime, region: str, environment: dict[str, dict[str, str]], cwd: str):
    """SAM CLI's runner over all the template's functions; ``environment`` overrides per function, in
    the shape of ``sam local --env-vars``."""
    functions = SamFunctionProvider(load_stacks(template, region))
    return LocalLambdaRunner(
        local_runtime=runtime, function_provider=functions, cwd=cwd, real_path=cwd,
        aws_region=region, env_vars_values=environment,
    )  # fmt: skip


class FunctionError(LambdaResponseParseException):
    """A function's error reply, kept (SAM CLI's own exception drops the message)."""

    def __init__(self, payload: dict):
        super().__init__(payload.get("errorMessage"))
        self.payload = payload


class ApiGateway(LocalApigwService):
    """LocalApigwService where an authorizer raising ``Unauthorized`` is a 401, as on API Gateway, and
    the API has its own id. A route function's error still reaches SAM CLI's own handling (500):
    FunctionError is its type."""

    def __init__(
        self,
        *args,
        api_id: str,
        cache: AuthorizerCache | None = None,
        cache_ttls: dict[str, int] | None = None,
        metered_routes: frozenset[tuple[str, str]] = frozenset(),
        meter: UsageMeter | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.api_id = api_id
        self.cache = cache or AuthorizerCache()
        self.cache_ttls = cache_ttls or {}  # authorizer name -> ReauthorizeEvery
        self.metered_routes = metered_routes  # (method, path) with ApiKeyRequired
        self.meter = meter

    def _invoke_parse_lambda_authorizer(self, lambda_authorizer, auth_lambda_event, route_lambda_event, route):
        """As SAM CLI does, with the answer cached per identity (the values of the authorizer's identity
        sources), as API Gateway does for ReauthorizeEvery seconds; the policy is checked on every call."""
        context = self._build_v1_context(route) if route.event_type == "Api" else self._build_v2_context(route)
        sources = {"headers": request.headers, "querystring": request.query_string.decode(), "context": context}
        identity = (lambda_authorizer.authorizer_name,) + tuple(
            source.find_identity_value(**sources, stageVariables=self.api.stage_variables)
            for source in lambda_authorizer.identity_sources
        )
        g.keygate_authorizer = (identity, self.cache_ttls.get(lambda_authorizer.authorizer_name, 0))
        try:
            super()._invoke_parse_lambda_authorizer(lambda_authorizer, auth_lambda_event, route_lambda_event, route)
        except (AuthorizerUnauthorizedRequest, FunctionError) as error:
            self._report_refusal(error, lambda_authorizer.authorizer_name)
            raise
        finally:
            g.keygate_authorizer = None

    def _report_refusal(self, error: Exception, authorizer_name: str) -> None:
        """One line for an ordinary refusal, in place of SAM CLI's error (RefusalsAreNotErrors): a deny (403)
        or the authorizer's ``Unauthorized`` (401). A fault is left to SAM CLI's line and the worker's traceback."""
        if isinstance(error, AuthorizerUnauthorizedRequest):
            status = "403 Forbidden"
        elif error.payload.get("errorMessage") == REFUSAL:
            status = "401 Unauthorized"
        else:
            return
        g.keygate_refused = True
        if self.stderr is not None:  # the authorizer's log names the API and route the same way
            route = f"{self.api_id}/{self.api.stage_name} {_printable(f'{request.method} {request.path}')}"
            self.stderr.write_str(f"{route}: {status}, refused by the authorizer {authorizer_name}\n")

    def _build_v2_context(self, route) -> dict:
        """HTTP API context variables, with the two identity sources keygate's cache key uses, which
        API Gateway has and SAM CLI's context lacks."""
        return super()._build_v2_context(route) | {"httpMethod": request.method, "path": request.path}

    def _create_method_arn(self, flask_request, event_type: str) -> str:
        """The ARN SAM CLI checks an authorizer's policy against."""
        return _with_own_id(super()._create_method_arn(flask_request, event_type), self.api_id)

    def _invoke_lambda_function(self, lambda_function_name: str, event: dict, tenant_id=None):
        authorizing = getattr(g, "keygate_authorizer", None)
        if authorizing is not None:
            identity, ttl = authorizing
            output = self.cache.get(identity)
            if output is None:
                output = self._invoke(lambda_function_name, event, tenant_id)
                self.cache.put(identity, output, ttl)
            answer = json.loads(output)
            g.keygate_usage_key = answer.get("usageIdentifierKey") if isinstance(answer, dict) else None
            return output
        if self.meter is not None and (request.method, self._get_current_route(request).path) in self.metered_routes:
            self.meter.charge(getattr(g, "keygate_usage_key", None), self.api_id, self.api.stage_name)
        return self._invoke(lambda_function_name, event, tenant_id)

    def _invoke(self, lambda_function_name: str, event: dict, tenant_id=None) -> str:
        event = dict(event)
        for arn in ("methodArn", "routeArn"):
            if isinstance(event.get(arn), str):
                event[arn] = _with_own_id(event[arn], self.api_id)
        if isinstance(event.get("requestContext"), dict):
            event["requestContext"] = event["requestContext"] | {"apiId": self.api_id}
        with io.StringIO() as stdout:
            self.lambda_runner.invoke(
                lambda_function_name, json.dumps(event, sort_keys=True),
                stdout=StreamWriter(stdout, auto_flush=True), stderr=self.stderr, tenant_id=tenant_id,
            )  # fmt: skip
            output, is_error = LambdaOutputParser.get_lambda_output(stdout)
        if is_error:
            raise FunctionError(json.loads(output))
        return output

    def create(self):
        super().create()
        logging.getLogger(LocalApigwService.__module__).addFilter(REFUSALS_ARE_NOT_ERRORS)  # once: the same filter
        self._app.register_error_handler(FunctionError, _authorizer_error)
        self._app.register_error_handler(QuotaExceeded, lambda _: _message("Limit Exceeded", 429))
        self._app.register_error_handler(NoUsagePlan, lambda _: _message("Forbidden", 403))


def _message(text: str, status: int):
    return make_response(jsonify({"message": text}), status)


def _printable(text: str, limit: int = 256) -> str:
    """Request text for one log line: a line break or control character in it cannot forge another line."""
    return "".join(character if character.isprintable() else repr(character)[1:-1] for character in text[:limit])


def _with_own_id(arn: str, api_id: str) -> str:
    return arn.replace(f":{SAM_API_ID}/", f":{api_id}/", 1)


def _authorizer_error(error: FunctionError):
    """Reached by authorizer errors only: SAM CLI handles a route function's error itself."""
    if error.payload.get("errorMessage") == REFUSAL:
        return ServiceErrorResponses.missing_lambda_auth_identity_sources()  # 401 {"message": "Unauthorized"}
    return _message("Internal Server Error", 500)


class Server:
    """A SAM CLI service's Flask app on a background thread (its own run() wants the main thread).

    The socket is bound first, so port 0 picks a free port, and the service, which writes its port into
    the events it makes, is built with the real one."""

    def __init__(self, make_service, host: str, port: int, api_stage: str | None = None):
        self.api_stage = api_stage  # an API's "API_ID/STAGE", as keys bound to it name it
        self._app = None
        try:
            self._httpd = make_server(host, port, lambda environ, respond: self._app(environ, respond), threaded=True)
        except SystemExit:  # werkzeug's answer to a port in use (it has printed why)
            raise OSError(f"cannot listen on {host}:{port}: the port is in use (0 picks a free one)") from None
        self.port = self._httpd.server_port
        self.url = f"http://{host}:{self.port}"
        service = make_service(self.port)
        service.create()
        self._app = service._app
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"keygate-local-{self.port}", daemon=True
        )

    def start(self) -> "Server":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def metered_routes(template: dict, api_id: str) -> frozenset[tuple[str, str]]:
    """(method, path) of the routes with ApiKeyRequired on an API whose ApiKeySourceType is AUTHORIZER."""
    if template["Resources"][api_id].get("Properties", {}).get("ApiKeySourceType") != "AUTHORIZER":
        return frozenset()
    routes = set()
    for resource in only_api(template, api_id)["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            properties = event.get("Properties", {})
            if event.get("Type") == "Api" and properties.get("Auth", {}).get("ApiKeyRequired"):
                routes.add((properties["Method"].upper(), properties["Path"]))
    return frozenset(routes)


def api_server(
    template: dict,
    api_id: str,
    runner,
    region: str,
    host: str,
    port: int,
    stderr,
    parameters: dict | None = None,
    cache: AuthorizerCache | None = None,
    cache_ttls: dict[str, int] | None = None,
    meter: UsageMeter | None = None,
) -> Server:
    api = ApiProvider(load_stacks(only_api(template, api_id), region, parameters)).api
    if api.stage_name is None:  # an HTTP API without StageName serves the $default stage
        api.stage_name = "$default"

    def make_service(bound_port: int) -> ApiGateway:
        return ApiGateway(
            api=api, lambda_runner=runner, static_dir=None, port=bound_port, host=host, stderr=stderr,
            api_id=local_api_id(api_id), cache=cache, cache_ttls=cache_ttls,
            metered_routes=metered_routes(template, api_id), meter=meter,
        )  # fmt: skip

    return Server(make_service, host, port, api_stage=f"{local_api_id(api_id)}/{api.stage_name}")


class FlaskService:
    """A Flask app in the shape Server serves: create(), then _app."""

    def __init__(self, app):
        self._app = app

    def create(self) -> None:
        pass


def lambda_server(runner, host: str, port: int, stderr) -> Server:
    def make_service(bound_port: int) -> LocalLambdaHttpService:
        return LocalLambdaHttpService(lambda_runner=runner, port=bound_port, host=host, stderr=stderr)

    return Server(make_service, host, port)
