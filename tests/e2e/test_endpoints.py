"""The same stack, unchanged, against another DynamoDB endpoint named by AWS_ENDPOINT_URL_DYNAMODB."""

import json
import socket
import subprocess
import sys
import time

import boto3
import pytest
import requests

from tests.e2e.conftest import start_stack, stop_stack


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def other_dynamodb():
    """A separate moto server standing in for DynamoDB Local or any other endpoint."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise TimeoutError("the other DynamoDB endpoint did not start") from None
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_the_stack_keeps_its_keys_on_the_endpoint_the_environment_names(other_dynamodb):
    process, ready = start_stack({"AWS_ENDPOINT_URL_DYNAMODB": other_dynamodb})
    try:
        assert ready["aws"]["dynamodb"] == other_dynamodb
        assert ready["aws"]["secretsmanager"] != other_dynamodb  # still the embedded moto
        lambda_client = boto3.client(
            "lambda", endpoint_url=ready["lambda"], region_name="us-east-1",
            aws_access_key_id="e2e", aws_secret_access_key="e2e",
        )  # fmt: skip
        response = lambda_client.invoke(FunctionName="IssueKeyFunction", Payload=b'{"name": "n", "owner": "o"}')
        issued = json.loads(response["Payload"].read())
        dynamodb = boto3.client(
            "dynamodb", endpoint_url=other_dynamodb, region_name="us-east-1",
            aws_access_key_id="e2e", aws_secret_access_key="e2e",
        )  # fmt: skip
        (table,) = dynamodb.list_tables()["TableNames"]
        item = dynamodb.get_item(TableName=table, Key={"key_id": {"S": issued["key_id"]}})["Item"]
        assert item["hash"]["S"].startswith("$argon2id$")
        url = f"{ready['apis']['DemoRestApi']}/whoami"
        assert (
            requests.get(url, headers={"Authorization": f"Bearer {issued['api_key']}"}, timeout=30).status_code == 200
        )
    finally:
        assert stop_stack(process) == 0
    assert dynamodb.list_tables()["TableNames"] == []  # the stack deletes what it created
