"""AuditCopyFunction: every write to the audit table, from its stream, appended to AuditCopyLogGroup, where
no keygate role may change or delete it (keygate/audit_copy.py). No record can make it fail (one it cannot
read is copied as it is); an AWS fault raises, Lambda retries the batch in order, and a write copied twice
counts once."""

import time

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config as BotoConfig

from keygate import audit_copy, config

logger = Logger()
# CloudWatch Logs throttles PutLogEvents by the second: five attempts, then the batch fails and Lambda retries it.
LOGS_CLIENT = BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 5})
COPY = audit_copy.AuditCopyLog(boto3.client("logs", config=LOGS_CLIENT), config.load().audit_copy_log_group)


@logger.inject_lambda_context(log_event=False)
@event_source(data_class=DynamoDBStreamEvent)
def handler(event: DynamoDBStreamEvent, context: LambdaContext) -> None:
    lines = [audit_copy.copy_of(record.raw_event) for record in event.records]
    COPY.append(lines, at_ms=int(time.time() * 1000))
    unreadable = sum(stream == audit_copy.UNREADABLE for stream, _ in lines)
    logger.info("audit records copied", extra={"count": len(lines), "unreadable": unreadable})
    if unreadable:
        logger.warning("audit records that are not a key's, copied to their own stream", extra={"count": unreadable})
