"""ReplicaFlushFunction, in a regional stack: the stream of the region's replica of the keys table, and a
flush of this region's CachedStages whenever a change replicated from the primary makes a cached answer
stale (keygate/replicated_changes.py). A flush that fails raises: Lambda retries the batch, in order,
until it succeeds, so no stale allow outlives the change by more than the retries."""

from datetime import UTC, datetime

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from keygate import config, replicated_changes
from keygate.authorizer_cache import AuthorizerCache

logger = Logger()
CONFIG = config.load()
CACHE = AuthorizerCache(
    CONFIG.authorizer_cache_ttl,
    CONFIG.cached_stages,
    boto3.client("apigateway", config=config.GATEWAY_CLIENT_CONFIG),
    boto3.client("apigatewayv2", config=config.GATEWAY_CLIENT_CONFIG),
)


class FlushFailed(RuntimeError):
    """A stage's cache could not be flushed: the batch is retried."""


@logger.inject_lambda_context(log_event=False)
@event_source(data_class=DynamoDBStreamEvent)
def handler(event: DynamoDBStreamEvent, context: LambdaContext) -> None:
    stale = replicated_changes.stale_keys((record.raw_event for record in event.records), datetime.now(UTC))
    if not stale:
        return
    report = CACHE.flush()
    flushed = report.view() if report else {"flushed": [], "revocation_bound": "nothing is cached"}
    logger.info("replicated change flushed", extra={"key_ids": stale, **flushed})
    if report is not None and report.failed:
        raise FlushFailed(f"the flush of {', '.join(sorted(report.failed))} failed")
