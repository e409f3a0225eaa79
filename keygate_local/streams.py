"""Lambda's event source mapping for a DynamoDB stream, on the local stack: the table's stream read from its
start, in order, each batch handed to the function in the shape Lambda gives it; a batch the function
fails is offered again, and nothing after it goes first."""

import json
import logging
import threading
from collections.abc import Callable

BATCH = 100
LOG = logging.getLogger(__name__)


class StreamReader:
    """A DynamoDB stream's records, in order, from its start: ``pending`` shows the next batch until ``done``.
    Each read starts a fresh iterator after the last record handled (an iterator ages out, and DynamoDB Local
    calls one taken from an empty shard trimmed), so nothing is read twice or skipped."""

    def __init__(self, streams, stream_arn: str):
        self._streams = streams
        self._arn = stream_arn
        self._handled: dict[str, str] = {}  # shard id -> the sequence number of its last record handled
        self._shown: dict[str, str] = {}

    def pending(self) -> list[dict]:
        """The records after the last batch marked done (up to BATCH), as Lambda delivers them."""
        records, self._shown = [], {}
        for shard in self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]:
            if len(records) >= BATCH:  # a parent shard is listed before its children
                break
            shard_id = shard["ShardId"]
            after = self._handled.get(shard_id)
            position = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                if after
                else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            iterator = self._streams.get_shard_iterator(StreamArn=self._arn, ShardId=shard_id, **position)
            page = self._streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=BATCH - len(records))
            records += [as_lambda_delivers(record, self._arn) for record in page["Records"]]
            if page["Records"]:
                self._shown[shard_id] = page["Records"][-1]["dynamodb"]["SequenceNumber"]
        return records

    def done(self) -> None:
        """The batch ``pending`` last showed was handled: read on from after it."""
        self._handled |= self._shown


def as_lambda_delivers(record: dict, stream_arn: str) -> dict:
    """A stream record as Lambda puts it in an event: times in epoch seconds, the stream's ARN, and
    userIdentity's fields in lower case (boto3 names them PrincipalId and Type)."""
    event = dict(record) | {"eventSourceARN": stream_arn}
    change = dict(record["dynamodb"])
    if "ApproximateCreationDateTime" in change:
        change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
    event["dynamodb"] = change
    if "userIdentity" in record:
        identity = record["userIdentity"]
        event["userIdentity"] = {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}
    return event


class StreamPoller:
    """Polls a stream until stopped and invokes the function with each new batch; ``invoke`` returns whether
    the function handled it."""

    def __init__(self, reader: StreamReader, invoke: Callable[[bytes], bool], interval: float = 0.2):
        self._reader = reader
        self._invoke = invoke
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)

    def start(self) -> "StreamPoller":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                records = self._reader.pending()
                if records and self._invoke(json.dumps({"Records": records}).encode()):
                    self._reader.done()
            except Exception as error:  # an endpoint going away as the stack stops, say: the next poll tries again
                LOG.warning("stream poll failed: %s: %s", type(error).__name__, error)
