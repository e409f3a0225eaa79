"""AuditCopyFunction: every write to the audit table, from its stream, appended to AuditCopyLogGroup, where
no keygate role may change or delete it (keygate/audit_copy.py). A failure raises: Lambda retries the
batch, in order, and a write copied twice counts once."""

import time

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config as BotoConfig

from keygate import audit_copy, config

logger = Logger()
COPY = audit_copy.AuditCopyLog(
    boto3.client("logs", config=BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard"})),
    config.load().audit_copy_log_group,
)


@logger.inject_lambda_context(log_event=False)
@event_source(data_class=DynamoDBStreamEvent)
def handler(event: DynamoDBStreamEvent, context: LambdaContext) -> None:
    copies = [audit_copy.from_stream_record(record.raw_event) for record in event.records]
    COPY.append(copies, at_ms=int(time.time() * 1000))
    logger.info("audit records copied", extra={"count": len(copies), "keys": len({copy.key_id for copy in copies})})
