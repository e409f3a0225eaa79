"""The whole template on 127.0.0.1: AWS services, the template's resources, its functions in warm
workers, its APIs behind SAM CLI's API Gateway emulator, and the Lambda Invoke API for the CLI.

AWS is moto in server mode unless the environment names an endpoint (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_SECRETS_MANAGER``, or ``AWS_ENDPOINT_URL`` for both) or ``real_aws`` is set, in
which case the stack uses that endpoint, or AWS itself with the ambient credentials, unchanged.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO

import boto3
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from samcli.lib.utils.stream_writer import StreamWriter

from keygate_local import gateway
from keygate_local.control_plane import AuthorizerCache, ControlPlane, UsageMeter
from keygate_local.github import FakeGitHub
from keygate_local.runtime import WorkerRuntime
from keygate_local.streams import StreamPoller, StreamReader
from keygate_local.template import ROOT, Stack, load_template, wait_for_table

SERVICES = {
    "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "apigateway": "AWS_ENDPOINT_URL_API_GATEWAY",  # the functions get the control plane in front of it
    "scheduler": "AWS_ENDPOINT_URL_SCHEDULER",
    "sns": "AWS_ENDPOINT_URL_SNS",
    "logs": "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
}
# Any value passes a local endpoint, but DynamoDB Local refuses an access key id of anything but letters and digits.
LOCAL_CREDENTIAL = "keygatelocal"
LOCAL_PARAMETERS = {"TableDeletionProtection": "false"}  # a local table is deleted when the stack stops
# The demo APIs and their function, which a deploy leaves out by default: make demo, make local, the
# end-to-end tests, make load and make bench call them.
DEMO = {"DeployDemo": "true"}
# The demo's map of scopes to the demo APIs' routes (make demo; --demo-parameters).
DEMO_ROUTE_SCOPES = (
    "GET /orders*=orders:read orders:write; POST /orders*=orders:write; GET /hello=demo; GET /whoami=demo; "
    "GET /x-api-key/whoami=demo; GET /metered=demo"
)


def demo_parameters() -> dict[str, str]:
    """make demo's parameters: the demo APIs, its RouteScopes; API Gateway's authorizer cache on (five
    minutes) with both demo stages in CachedStages, so a change of a key flushes them; a quota of 3 a day
    on /metered."""
    cached = f"rest:{gateway.local_api_id('DemoRestApi')}/demo,http:{gateway.local_api_id('DemoHttpApi')}/$default"
    return DEMO | {
        "RouteScopes": DEMO_ROUTE_SCOPES, "AuthorizerCacheTtl": "300", "CachedStages": cached, "DemoQuotaPerDay": "3",
    }  # fmt: skip


@dataclass
class Urls:
    apis: dict[str, str]  # API logical id -> base URL
    api_stages: dict[str, str]  # API logical id -> its "API_ID/STAGE" in events, for keys bound to it
    lambda_endpoint: str  # the Lambda Invoke API, for the CLI and boto3
    aws_endpoints: dict[str, str] = field(default_factory=dict)  # empty: real AWS
    usage_plans: dict[str, str] = field(default_factory=dict)  # usage plan logical id -> its id
    cached_stages: dict[str, str] = field(default_factory=dict)  # API logical id -> its CachedStages entry
    topics: dict[str, str] = field(default_factory=dict)  # SNS topic logical id -> its ARN


class _SamCliLog:
    """Per-request access lines (ours and moto's) are noise; SAM CLI's own errors go to the stack's log
    while it runs (its fidelity banner, a warning, is left out)."""

    def __init__(self, log: IO | None):
        self._handler = logging.StreamHandler(log) if log is not None else None

    def attach(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        samcli = logging.getLogger("samcli")
        samcli.setLevel(logging.ERROR)
        if self._handler is not None:
            samcli.addHandler(self._handler)
            samcli.propagate = False

    def detach(self) -> None:
        if self._handler is not None:
            samcli = logging.getLogger("samcli")
            samcli.removeHandler(self._handler)
            samcli.propagate = True


class LocalStack:
    def __init__(
        self,
        host: str = "127.0.0.1",
        api_ports: dict[str, int] | None = None,
        lambda_port: int = 0,
        region: str | None = None,
        real_aws: bool = False,
        log: IO | None = None,
        parameters: dict[str, str] | None = None,
    ):
        self.host, self.real_aws = host, real_aws
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._api_ports = api_ports or {}
        self._lambda_port = lambda_port
        self._endpoints: dict[str, str] = {}
        self._log = log
        self._parameters = LOCAL_PARAMETERS | (parameters or {})
        self._sam_log = _SamCliLog(log)
        self._moto: ThreadedMotoServer | None = None
        self._servers: list[gateway.Server] = []
        self._pollers: list[StreamPoller] = []
        self._runtime: WorkerRuntime | None = None
        self.stack: Stack | None = None
        self.urls: Urls | None = None
        self.authorizer_caches: dict[str, AuthorizerCache] = {}  # API logical id -> its stage's cache
        self.github = FakeGitHub()  # signs secret scanning alerts; GitHubPublicKeysUrl points at its keys
        self.started_in: float | None = None

    # --- lifecycle ---

    def start(self) -> "LocalStack":
        started = time.perf_counter()
        self._sam_log.attach()
        try:
            endpoints = self._endpoints = self._aws_endpoints()
            if "GitHubPublicKeysUrl" not in self._parameters:
                self._servers.append(self.github.serve(self.host))
                self._parameters["GitHubPublicKeysUrl"] = self.github.keys_url
            self._create_resources(endpoints)
            self._serve(endpoints)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Stop what was started and delete what was created, each step even if an earlier one failed."""
        steps = [poller.stop for poller in self._pollers] + [server.stop for server in self._servers]
        steps += [self._runtime.close] if self._runtime is not None else []
        steps += [self._delete_resources]
        steps += [self._moto.stop] if self._moto is not None else []
        steps += [self._sam_log.detach]
        self._servers, self._pollers, self._runtime, self._moto = [], [], None, None
        errors = []
        for step in steps:
            try:
                step()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- parts ---

    def _aws_endpoints(self) -> dict[str, str]:
        """The endpoint of each service the functions use: from the environment, else embedded moto."""
        from_environment = {
            service: os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL")
            for service, variable in SERVICES.items()
        }
        if self.real_aws:
            if any(from_environment.values()):
                raise ValueError("--real-aws with AWS_ENDPOINT_URL* set: unset them to use AWS itself")
            return {}
        os.environ.setdefault("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIAL)  # local endpoints check no signature
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIAL)
        if all(from_environment.values()):
            return from_environment
        self._moto = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._moto.start()
        moto_url = "http://{}:{}".format(*self._moto.get_host_and_port())
        return {service: url or moto_url for service, url in from_environment.items()}

    def _client(self, service: str, endpoints: dict[str, str]):
        return boto3.client(service, region_name=self.region, endpoint_url=endpoints.get(service))

    def _create_resources(self, endpoints: dict[str, str]) -> None:
        self.stack = Stack(load_template(), self._parameters)  # first, so stop() finds whatever gets created
        self.stack.create_tables(self._client("dynamodb", endpoints))
        self.stack.create_pepper_secret(self._client("secretsmanager", endpoints))
        self.stack.create_topics(self._client("sns", endpoints))
        self.stack.create_log_groups(self._client("logs", endpoints))

    def _delete_resources(self) -> None:
        if self.stack is None:
            return
        for logical_id in self.stack.tables():
            if table := self.stack.physical_ids.pop(logical_id, None):
                dynamodb = self._client("dynamodb", self._endpoints)
                wait_for_table(dynamodb, table)  # a table still being created cannot be deleted yet
                dynamodb.delete_table(TableName=table)
        for logical_id, spec in self.stack.template["Resources"].items():
            if spec["Type"] == "AWS::ApiGateway::UsagePlan" and (plan := self.stack.physical_ids.pop(logical_id, None)):
                self._client("apigateway", self._endpoints).delete_usage_plan(usagePlanId=plan)
        for logical_id in self.stack.topics():
            if topic := self.stack.physical_ids.pop(logical_id, None):
                self._client("sns", self._endpoints).delete_topic(TopicArn=topic)
        for logical_id in self.stack.log_groups():
            if group := self.stack.physical_ids.pop(logical_id, None):
                self._client("logs", self._endpoints).delete_log_group(logGroupName=group)
        if secret := self.stack.physical_ids.pop("PepperSecret", None):
            self._client("secretsmanager", self._endpoints).delete_secret(
                SecretId=secret, ForceDeleteWithoutRecovery=True
            )

    def _serve(self, endpoints: dict[str, str]) -> None:
        template = self.stack.template
        served = {
            api: (gateway.local_api_id(api), gateway.stage_name(template, api)) for api in gateway.api_ids(template)
        }
        worker_environment = {SERVICES[service]: url for service, url in endpoints.items()}
        usage_plans, meter = {}, None
        if "apigateway" in endpoints:  # not on real AWS: the cache and usage plans are API Gateway's there
            apigateway = self._client("apigateway", endpoints)
            usage_plans = self.stack.create_usage_plans(apigateway, served)
            meter = UsageMeter(apigateway)
            self.authorizer_caches = {api: AuthorizerCache() for api in served}
            control = ControlPlane(
                {served[api]: cache for api, cache in self.authorizer_caches.items()}, endpoints["apigateway"]
            )
            control_server = gateway.Server(lambda _port: gateway.FlaskService(control.app), self.host, 0)
            self._servers.append(control_server.start())
            worker_environment["AWS_ENDPOINT_URL_API_GATEWAY"] = control_server.url
            worker_environment["AWS_ENDPOINT_URL_APIGATEWAYV2"] = control_server.url
        worker_environment["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon here
        self._runtime = WorkerRuntime(worker_environment, self._log)
        environment = {function: self.stack.function_environment(function) for function in self.stack.functions()}
        runner = gateway.lambda_runner(template, self._runtime, self.region, environment, str(ROOT))
        stderr = StreamWriter(self._log or sys.stderr, auto_flush=True)
        apis, api_stages, cached_stages = {}, {}, {}
        for api_id in gateway.api_ids(template):
            port = self._api_ports.get(api_id, 0)
            server = gateway.api_server(
                template, api_id, runner, self.region, self.host, port, stderr, self.stack.parameters,
                cache=self.authorizer_caches.get(api_id), cache_ttls=self._cache_ttls(api_id), meter=meter,
            )  # fmt: skip
            self._servers.append(server.start())
            apis[api_id], api_stages[api_id] = server.url, server.api_stage
            kind = "rest" if template["Resources"][api_id]["Type"] == "AWS::Serverless::Api" else "http"
            if self._cache_ttls(api_id):  # an API with an authorizer (LeakReportApi has none)
                cached_stages[api_id] = f"{kind}:{server.api_stage}"
        lambda_server = gateway.lambda_server(runner, self.host, self._lambda_port, stderr)
        self._servers.append(lambda_server.start())
        self._pollers = [poller.start() for poller in self._stream_pollers(endpoints, lambda_server.url)]
        topics = {logical_id: self.stack.physical_ids[logical_id] for logical_id in self.stack.topics()}
        self.urls = Urls(apis, api_stages, lambda_server.url, endpoints, usage_plans, cached_stages, topics)

    def _stream_pollers(self, endpoints: dict[str, str], lambda_url: str) -> list[StreamPoller]:
        """Lambda's event source mapping for each function's DynamoDB stream event."""
        streams = boto3.client("dynamodbstreams", region_name=self.region, endpoint_url=endpoints.get("dynamodb"))
        functions = boto3.client("lambda", region_name=self.region, endpoint_url=lambda_url)

        def invoker(function: str):
            def invoke(payload: bytes) -> bool:
                return "FunctionError" not in functions.invoke(FunctionName=function, Payload=payload)

            return invoke

        pollers = []
        for function in self.stack.functions():
            for event in self.stack.resource(function)["Properties"].get("Events", {}).values():
                if event["Type"] == "DynamoDB":
                    reader = StreamReader(streams, self.stack.resolve(event["Properties"]["Stream"]))
                    pollers.append(StreamPoller(reader, invoker(function)))
        return pollers

    def _cache_ttls(self, api_id: str) -> dict[str, int]:
        """Each of the API's authorizers' ReauthorizeEvery, resolved with the stack's parameters."""
        authorizers = self.stack.resource(api_id)["Properties"].get("Auth", {}).get("Authorizers", {})
        return {
            name: int(self.stack.resolve(spec.get("Identity", {}).get("ReauthorizeEvery", 300)))
            for name, spec in authorizers.items()
        }
