"""Admin handlers: issue, update, rotate, revoke, get, list, history, pepper status, explain, a leaked key's
report and flushing the authorizer cache. Each takes a plain JSON event (see events/).

Bad input and unknown keys come back as ``{"error": {...}}`` naming what is wrong, so an operator's
typo does not count as a function error; a fault (DynamoDB down) raises and shows as one.
"""

import contextlib
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from admin.models import (
    AdminEvent,
    ExplainKey,
    FlushAuthorizerCache,
    IssueKey,
    KeyHistory,
    KeyRef,
    ListKeys,
    PepperStatus,
    ReportLeak,
    RotateKey,
    UpdateKey,
)
from keygate import config, service
from keygate.leaks import Label, LeakReport
from keygate.lifecycle import Changed, KeyRevoked, Update, VersionConflict
from keygate.records import format_time
from keygate.store import ConcurrentChange, InvalidNextToken, KeyNotFound
from keygate.usage_plans import UsagePlanNotFound

logger = Logger()
tracer = Tracer()
KEYS = service.from_config(config.load())
SHOWN_ONCE = "api_key is shown this once and cannot be recovered: store it now."
PEPPER_STATUS_PAGE = 1000  # keys a pepper-status call reads; the CLI follows next_token for the rest


def _error(kind: str, message: str, fields: dict[str, str] | None = None) -> dict:
    error = {"type": kind, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


MAX_FIELD_NAME = 32  # an unknown field is named back, cut to this: shorter than a key's secret part
MAX_FIELDS = 20  # fields named back at most: an event of a million unknown fields gets a short answer


def _invalid(error: ValidationError) -> dict:
    fields = {}
    problems = error.errors()
    for problem in problems[:MAX_FIELDS]:
        field = ".".join(_cut(str(part)) for part in problem["loc"]) or "(event)"
        fields[field] = problem["msg"].removeprefix("Value error, ")
    summary = "; ".join(f"{field}: {problem}" for field, problem in fields.items())
    more = f" (and {len(problems) - MAX_FIELDS} more)" if len(problems) > MAX_FIELDS else ""
    return _error("InvalidRequest", f"invalid request: {summary}{more}", fields)


def _cut(name: str) -> str:
    return name if len(name) <= MAX_FIELD_NAME else name[: MAX_FIELD_NAME - 1] + "…"


def admin_action[M: AdminEvent](model: type[M]) -> Callable:
    """Parse the event into ``model`` and turn the caller's mistakes into an error answer."""

    def decorate(action: Callable[[M], dict]) -> Callable[[dict, LambdaContext], dict]:
        @wraps(action)
        def handler(event: dict, context: LambdaContext) -> dict:
            try:
                return action(parse(event=event, model=model))
            except ValidationError as error:
                logger.info("admin request refused", extra={"action": action.__name__, "reason": "InvalidRequest"})
                return _invalid(error)
            except InvalidNextToken as error:
                return _error("InvalidRequest", f"invalid request: next_token: {error}", {"next_token": str(error)})
            except KeyNotFound as error:
                return _error("KeyNotFound", str(error))
            except KeyRevoked as error:
                return _error("KeyRevoked", str(error))
            except VersionConflict as error:
                return _error("VersionConflict", str(error))
            except ConcurrentChange as error:  # others kept changing the key: nothing of this one was written
                return _error("ConcurrentChange", f"{error}, on every attempt: nothing was written; try again")
            except UsagePlanNotFound as error:
                return _error("UsagePlanNotFound", str(error), {"usage_plan_id": str(error)})

        return logger.inject_lambda_context(log_event=False)(
            tracer.capture_lambda_handler(capture_response=False)(handler)
        )

    return decorate


@admin_action(IssueKey)
def issue_key(request: IssueKey) -> dict:
    new_key, issued = KEYS.issue(
        name=request.name,
        owner=request.owner,
        description=request.description,
        scopes=request.scopes,
        apis=request.apis,
        expires_at=request.expires_at,
        usage_plan_id=request.usage_plan_id,
        quota_per=request.quota_per,
        metadata=request.metadata,
        actor=request.actor,
    )
    record = issued.record
    logger.info("key issued", extra={"key_id": record.key_id, "owner": record.owner, "actor": request.actor})
    return {**_answer(issued), "api_key": new_key.api_key, "notice": SHOWN_ONCE}


@admin_action(UpdateKey)
def update_key(request: UpdateKey) -> dict:
    update = Update(**request.changes())
    changed = KEYS.update(request.key_id, update, expected_version=request.expected_version, actor=request.actor)
    record = changed.record
    logger.info("key updated", extra={"key_id": record.key_id, "version": record.version, "actor": request.actor})
    return _answer(changed)


def _answer(changed: Changed) -> dict:
    """A change's answer: the key, and what became of its API Gateway key and cached answers. A part
    that failed is logged: the change stands, and the answer says how to finish it."""
    key_id, sync, flush = changed.record.key_id, changed.usage_plan, changed.authorizer_cache
    if sync is not None and not sync["synced"]:
        logger.warning("usage plan sync failed", extra={"key_id": key_id, "fault": sync["error"]})
    if flush is not None and flush.failed:
        logger.warning("authorizer cache flush failed", extra={"key_id": key_id, **flush.view()})
    return changed.record.view(KEYS.now()) | changed.reports()


@admin_action(RotateKey)
def rotate_key(request: RotateKey) -> dict:
    grace = timedelta(seconds=request.grace_seconds)
    new_key, changed = KEYS.rotate(request.key_id, grace, actor=request.actor)
    record = changed.record
    logger.info("key rotated", extra={"key_id": record.key_id, "grace_seconds": request.grace_seconds})
    # When the secret before this one stops verifying: now, or at the end of the grace period.
    stops = record.previous_expires_at if record.previous_hash is not None else record.rotated_at
    return {
        **_answer(changed),
        "api_key": new_key.api_key,
        "previous_key_stops_working_at": format_time(stops),
        "notice": SHOWN_ONCE,
    }


@admin_action(KeyRef)
def revoke_key(request: KeyRef) -> dict:
    changed = KEYS.revoke(request.key_id, actor=request.actor)
    logger.info("key revoked", extra={"key_id": changed.record.key_id, "actor": request.actor})
    return _answer(changed)


@admin_action(KeyRef)
def get_key(request: KeyRef) -> dict:
    return KEYS.get(request.key_id).view(KEYS.now())


@admin_action(ListKeys)
def list_keys(request: ListKeys) -> dict:
    records, next_token = KEYS.list(
        request.owner, request.status, request.limit, request.next_token, request.unused_since
    )
    now = KEYS.now()
    return {"keys": [record.view(now) for record in records], "next_token": next_token}


@admin_action(KeyHistory)
def key_history(request: KeyHistory) -> dict:
    if request.verify and not KEYS.can_verify_history:  # a regional stack, or tables moving (docs/multi-region.md)
        problem = "this stack runs no copy of the audit trail to check against (a regional stack's is the primary's)"
        return _error("InvalidRequest", f"invalid request: verify: {problem}", {"verify": problem})
    events, next_token = KEYS.history(request.key_id, request.limit, request.next_token)
    answer = {"key_id": request.key_id, "events": [event.view() for event in events], "next_token": next_token}
    if request.verify:
        answer["verification"] = KEYS.verify_history(request.key_id).view()
        if not answer["verification"]["verified"]:
            logger.warning("audit trail does not match its copy", extra={"key_id": request.key_id})
    return answer


@admin_action(PepperStatus)
def pepper_status(request: PepperStatus) -> dict:
    versions, grace_secrets, next_token = KEYS.pepper_usage(PEPPER_STATUS_PAGE, request.next_token)
    return {"versions": versions, "grace_secrets": grace_secrets, "next_token": next_token}


@admin_action(FlushAuthorizerCache)
def flush_authorizer_cache(request: FlushAuthorizerCache) -> dict:
    if request.grace_of is not None:  # dropped first, so the regions flush on its replicated change too
        with contextlib.suppress(KeyNotFound):  # gone (the table's TTL): its secrets verify nowhere
            ended = KEYS.end_grace(request.grace_of.key_id, request.grace_of.version)
            if ended is not None:
                logger.info(
                    "grace period ended", extra={"key_id": ended.record.key_id, "version": ended.record.version}
                )
    report = KEYS.flush_authorizer_cache()
    if report is None:
        return {"flushed": [], "revocation_bound": "the next request: AuthorizerCacheTtl is 0, nothing is cached"}
    logger.info("authorizer cache flushed", extra={"reason": request.reason, **report.view()})
    if report.failed:  # an error: Lambda retries a scheduled (asynchronous) flush twice, and the admin alarm sees it
        raise FlushFailed(f"the flush of {', '.join(sorted(report.failed))} failed: {report.failed}")
    return report.view()


@admin_action(ReportLeak)
def report_leak(request: ReportLeak) -> dict:
    key = request.key.get_secret_value()
    report = LeakReport(  # nosec B106 # token_type is the name of a type of token, not a password
        key, url=request.url, source="operator", token_type="keygate_api_key"
    )
    (finding,) = KEYS.report_leaks([report], actor=request.actor)
    if finding.label is Label.FALSE_POSITIVE:
        logger.info("leak report: not a key of this deployment", extra={"actor": request.actor, **finding.view()})
        return finding.view() | {"message": "not a key of this deployment (or not its secret): nothing revoked"}
    logger.warning("leaked key revoked", extra={"actor": request.actor, "url": request.url, **finding.view()})
    return finding.view()


@admin_action(ExplainKey)
def explain_key(request: ExplainKey) -> dict:
    return KEYS.explain(request.key_id, request.route, request.api)


class FlushFailed(RuntimeError):
    """A stage's authorizer cache could not be flushed after the client's retries."""
