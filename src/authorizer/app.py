"""The Lambda authorizer: API Gateway REST TOKEN, REST REQUEST, HTTP API (simple responses) and WebSocket
$connect, and AppSync (AWS_LAMBDA authorization)."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from authorizer.request import AuthorizerFault, AuthRequest, Unauthorized, is_http_api
from keygate import config, service
from keygate.authorize import Decision, Reason
from keygate.routes import RequestRoute

# How a presented secret was checked, as the metric counting it: the verified-key cache knew the answer (a
# match or a refusal), or Argon2 worked it out. Their ratio is the cache's hit ratio, on the operators' dashboard.
VERIFIED_BY = {"cache": "VerifiedKeyCacheHit", "argon2": "VerifiedKeyCacheMiss"}
# The one line per decision, by these messages: the operators' Contributor Insights rules and saved queries
# count requests by them (the re-hash and last_used_at lines carry the same fields, and must not count twice).
ALLOWED, REFUSED, FAILED_CLOSED = "key allowed", "key refused", "authorization failed closed"
logger = Logger()
metrics = Metrics()
KEYS = service.from_config(config.load())


def _decide(event: dict) -> tuple[Decision, RequestRoute | None, dict | None]:
    route = None
    try:
        request = AuthRequest.from_event(event)
        route = request.route
        decision = KEYS.authorize(request.authorization, request.api_key, request.route)
        return decision, route, request.response(decision, KEYS.config)
    except Exception as error:  # fail closed: a fault outside the core is a refusal too
        return Decision(Reason.FAULT, fault=type(error).__name__), route, None


@logger.inject_lambda_context(log_event=False)  # the event carries the key: never log it
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    decision, route, response = _decide(event)
    _record(decision, route)
    if response is None:
        raise AuthorizerFault() if is_http_api(event) else Unauthorized()
    return response


def _record(decision: Decision, route: RequestRoute | None) -> None:
    metrics.add_metric(name=decision.reason, unit=MetricUnit.Count, value=1)
    if decision.verified_by is not None:
        metrics.add_metric(name=VERIFIED_BY[decision.verified_by], unit=MetricUnit.Count, value=1)
    details = {"reason": decision.reason.value, "key_id": decision.key_id, "verified_by": decision.verified_by}
    if decision.record is not None:
        details["owner"] = decision.record.owner
    if route is not None:
        details |= {"api": f"{route.api.api_id}/{route.api.stage}", "route": f"{route.method} {route.path[:256]}"}
    if decision.rehash == "rehashed":
        logger.info("key re-hashed with the current pepper and Argon2 parameters", extra=details)
    elif decision.rehash == "skipped":
        logger.info("key re-hash skipped: the key changed since it was read", extra=details)
    elif decision.rehash is not None:
        logger.warning("key re-hash failed; the decision stands", extra={**details, "fault": decision.rehash})
    if decision.last_used is not None:
        logger.warning("last_used_at not written; the decision stands", extra={**details, "fault": decision.last_used})
    if decision.reason is Reason.FAULT:
        logger.error(FAILED_CLOSED, extra={**details, "fault": decision.fault})
    elif decision.allowed:
        logger.info(ALLOWED, extra=details)
    else:
        logger.info(REFUSED, extra=details)


# The X-Ray SDK behind powertools' Tracer costs ~0.1 s of every cold start, so the authorizer loads it
# only when asked for subsegments (AuthorizerTraceSubsegments); Lambda's Active tracing needs no SDK.
if KEYS.config.tracing:
    from aws_lambda_powertools import Tracer

    handler = Tracer().capture_lambda_handler(capture_response=False)(handler)
