"""Two regions on moto, for the multi-region tests and bench: the primary (us-east-1, the test stack) and a
region whose keys table is a replica, written by a Replicator as DynamoDB global tables replicate: each
change of the primary's stream, in order, after a lag; a delivery that fails is tried again, and nothing
after it goes first. The region's pepper secret is the primary's, replicated."""

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import pytest

from keygate_local.streams import StreamPoller, StreamReader
from keygate_local.template import Stack, load_template
from tests.conftest import load_function

REGION = "eu-west-1"
PRIMARY_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:PepperSecret-AbCdEfGhIjKl-a1B2c3"
# A regional stack's parameters, for the tests that read the template without AWS: the names are examples.
REGIONAL = {
    "PrimaryRegion": "us-east-1",
    "KeysTableName": "keygate-keys",
    "AuditTableName": "keygate-audit",
    "PepperSecretArn": PRIMARY_SECRET,
    "KeysTableStreamArn": f"arn:aws:dynamodb:{REGION}:123456789012:table/keygate-keys/stream/2026-12-07T00:00:00.000",
}
# REGION's regional stack promoted to primary (docs/multi-region.md, "Promote a region"): it writes keys to
# its replicas, with the pepper secret's replica made its own.
PROMOTED = {name: value for name, value in REGIONAL.items() if name not in ("PrimaryRegion", "KeysTableStreamArn")}
# A primary stack whose tables are global tables with a replica in REGION.
REPLICATED = {
    "KeysTableName": "keygate-keys",
    "AuditTableName": "keygate-audit",
    "ReplicaRegions": f"us-east-1,{REGION}",
}
LOG = logging.getLogger(__name__)
POLL_SECONDS = 0.005


def never(attempt: int) -> bool:
    return False


@dataclass
class Applied:
    key_id: str
    read_at: float  # when the replicator read it from the primary's stream (within POLL_SECONDS of the write)
    writing_at: float  # when its write to the replica began
    applied_at: float  # when that write returned
    change: dict  # the stream record's change


class Replicator:
    """The primary's keys table, replicated to REGION's table of the same name after ``lag`` seconds.
    ``fails(attempt)`` says whether a delivery attempt (numbered from 0, across the run) fails; a failed
    one is tried again ``retry_after`` seconds later, holding back everything after it."""

    def __init__(self, stack, lag: float = 0.0, fails: Callable[[int], bool] = never, retry_after: float = 0.05):
        self.table = stack.physical_ids["KeysTable"]
        self.lag, self._fails, self._retry_after = lag, fails, retry_after
        self.replica = boto3.client("dynamodb", region_name=REGION)
        spec = stack.resource("KeysTable")["Properties"]
        created = self.replica.create_table(
            TableName=self.table,
            AttributeDefinitions=spec["AttributeDefinitions"],
            KeySchema=spec["KeySchema"],
            GlobalSecondaryIndexes=spec["GlobalSecondaryIndexes"],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        self.replica_stream = created["TableDescription"]["LatestStreamArn"]  # the lag may be changed as it runs
        self._reader = StreamReader(
            boto3.client("dynamodbstreams", region_name="us-east-1"), stack.stream_arns["KeysTable"]
        )
        self._queue: deque[tuple[float, float, dict]] = deque()  # (when read, when due, the stream record)
        self._lock = threading.Lock()  # the reader and the queue, between this thread and caught_up
        self._attempts = 0
        self.applied: list[Applied] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replicator", daemon=True)

    def __enter__(self) -> "Replicator":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the replicator did not stop"

    def caught_up(self, timeout: float = 10.0) -> None:
        """Until every change the primary's stream holds now is in the replica."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._reader.pending() and not self._queue:
                    return
            assert self._thread.is_alive(), "the replicator stopped (its error is in the log)"
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(POLL_SECONDS)

    def _run(self) -> None:
        try:
            while not self._stopping.wait(POLL_SECONDS):
                self._replicate()
        except Exception:
            LOG.exception("the replicator stopped")

    def _replicate(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._queue.extend((now, now + self.lag, record) for record in self._reader.pending())
            self._reader.done()
        while self._queue and self._queue[0][1] <= time.monotonic():
            read_at, _, record = self._queue[0]
            self._attempts += 1
            if self._fails(self._attempts - 1):
                self._queue[0] = (read_at, time.monotonic() + self._retry_after, record)
                return
            writing_at = time.monotonic()
            self._apply(record["dynamodb"])
            key_id = record["dynamodb"]["Keys"]["key_id"]["S"]
            self.applied.append(Applied(key_id, read_at, writing_at, time.monotonic(), record["dynamodb"]))
            with self._lock:
                self._queue.popleft()

    def _apply(self, change: dict) -> None:
        if "NewImage" in change:
            self.replica.put_item(TableName=self.table, Item=change["NewImage"])
        else:
            self.replica.delete_item(TableName=self.table, Key=change["Keys"])


def regional_stack(stack, replica_stream: str, **parameters: str) -> Stack:
    """The template as a regional stack in REGION deploys it beside ``stack``, the primary: the primary's
    tables and pepper secret (replicated to REGION here, all its versions, as Secrets Manager replicates
    it) by the names its RegionalStackParameters output gives, and the replica's stream."""
    secret = stack.physical_ids["PepperSecret"]
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    if not secrets.describe_secret(SecretId=secret).get("ReplicationStatus"):
        secrets.replicate_secret_to_regions(SecretId=secret, AddReplicaRegions=[{"Region": REGION}])
    names = {
        "PrimaryRegion": "us-east-1",
        "KeysTableName": stack.physical_ids["KeysTable"],
        "AuditTableName": stack.physical_ids["AuditTable"],
        "PepperSecretArn": secret,
        "KeysTableStreamArn": replica_stream,
    }
    return Stack(load_template(), names | parameters, name="keygate-regional", region=REGION)


def replica_stream_to(replicator: Replicator, handler: Callable[[dict], None]) -> StreamPoller:
    """The replica's stream handed to ``handler`` in batches, as Lambda's event source mapping does."""

    def invoke(payload: bytes) -> bool:
        try:
            handler(json.loads(payload))
        except Exception as error:
            LOG.warning("the replica's batch failed, and is offered again: %s: %s", type(error).__name__, error)
            return False
        return True

    reader = StreamReader(boto3.client("dynamodbstreams", region_name=REGION), replicator.replica_stream)
    return StreamPoller(reader, invoke, interval=POLL_SECONDS).start()


def regional_handler(regional: Stack, logical_id: str) -> Callable:
    """A function of the regional stack, as it runs there: the template's environment for ``logical_id``,
    its AWS clients bound to REGION. The test's environment is left as it was."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        return load_function(regional, patch, logical_id, AWS_DEFAULT_REGION=REGION)
