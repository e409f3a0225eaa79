"""GitHub secret scanning's partner endpoint: a signed alert of leaked tokens in, each real keygate key
revoked, GitHub's feedback (token_hash, token_type, label) out. An alert that cannot be worked through
within ALERT_BUDGET_SECONDS gets 503 once what was checked is done, and GitHub's retry goes on from there.

Behind its own HTTP API route with no authorizer: GitHub's signature is the authentication. An unsigned
or badly signed request gets 401 and a signed body that is not an alert payload 400; neither changes
anything. The tokens are never logged: a finding is logged by key id and token hash.
"""

import base64
import binascii
import json
from collections.abc import Iterable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from keygate import config, service
from keygate.leak_alerts import BudgetSpent
from keygate.leaks import Label, LeakFinding, LeakReport
from leak_report.secret_scanning import MAX_BODY_BYTES, GitHubPublicKeys, MalformedAlert, Unauthenticated, parse_alerts

# Seconds an alert may spend settling tokens: GitHub and the HTTP API give up at 30 s. The budget also leaves
# FLUSH_RESERVE_SECONDS of the invocation's time (template.yaml's Timeout, less what a cold start and GitHub's
# keys took) for the token in progress and the flush.
ALERT_BUDGET_SECONDS = 20.0
FLUSH_RESERVE_SECONDS = 8.0
logger = Logger()
metrics = Metrics()
KEYS = service.from_config(config.load())
GITHUB = GitHubPublicKeys(KEYS.config.github_keys_url)
ACTOR = "secret-scanning:github"


@logger.inject_lambda_context(log_event=False)  # the body carries the tokens: never log it
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    try:
        body = _raw_body(event)
        headers = _headers(event)
        GITHUB.verify(body, headers.get("github-public-key-identifier"), headers.get("github-public-key-signature"))
        reports = parse_alerts(body)
    except (Unauthenticated, MalformedAlert) as error:
        status = 401 if isinstance(error, Unauthenticated) else 400
        metrics.add_metric(name="LeakReportRefused", unit=MetricUnit.Count, value=1)
        logger.warning("leak report refused", extra={"status": status, "reason": str(error)})
        return _answer(status, {"message": str(error)})
    try:
        budget = min(ALERT_BUDGET_SECONDS, context.get_remaining_time_in_millis() / 1000 - FLUSH_RESERVE_SECONDS)
        findings = KEYS.report_leaks(reports, actor=ACTOR, budget=budget)
    except BudgetSpent as spent:  # what was checked is done; GitHub retries a 5xx, and the retry goes on
        _record(spent.findings)
        metrics.add_metric(name="LeakReportUnfinished", unit=MetricUnit.Count, value=1)
        logger.warning("leak report unfinished", extra={"reason": str(spent), "tokens": len(reports)})
        return _answer(503, {"message": str(spent)})
    _record(zip(reports, findings, strict=True))
    return _answer(200, [finding.feedback() for finding in findings])


def _record(findings: Iterable[tuple[LeakReport, LeakFinding]]) -> None:
    for report, finding in findings:
        if finding.label is Label.TRUE_POSITIVE:
            metrics.add_metric(name="LeakedKeyRevoked", unit=MetricUnit.Count, value=1)
            logger.warning("leaked key revoked", extra={**finding.view(), "url": report.url, "source": report.source})
        else:
            logger.info("leak report: not a key of this deployment", extra=finding.view())


def _raw_body(event: dict) -> bytes:
    """The body exactly as GitHub sent and signed it. API Gateway passes text as it came and base64-encodes
    anything else."""
    if not isinstance(event, dict):
        raise MalformedAlert("the event is not an API Gateway request")
    body = event.get("body") or ""
    if not isinstance(body, str) or len(body) > 2 * MAX_BODY_BYTES:
        raise MalformedAlert(f"the body must be at most {MAX_BODY_BYTES} bytes")
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise MalformedAlert("the body is not valid base64 or UTF-8") from None
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedAlert(f"the body must be at most {MAX_BODY_BYTES} bytes")
    return raw


def _headers(event: dict) -> dict[str, str]:
    """The request's headers by lower-case name; anything not a string (never sent by API Gateway) is absent,
    so the request is unsigned."""
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return {}
    return {name.lower(): value for name, value in headers.items() if isinstance(name, str) and isinstance(value, str)}


def _answer(status: int, body: object) -> dict:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
