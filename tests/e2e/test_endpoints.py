"""The same stack, unchanged, against another DynamoDB endpoint named by AWS_ENDPOINT_URL_DYNAMODB."""

import json
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.conftest import free_port, keys_table, local_client, start_stack, stop_stack


@pytest.fixture
def other_dynamodb():
    """A separate moto server standing in for DynamoDB Local or any other endpoint."""
    port = free_port()
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
    dynamodb = local_client("dynamodb", other_dynamodb)
    process, ready = start_stack({"AWS_ENDPOINT_URL_DYNAMODB": other_dynamodb})
    try:
        assert ready["aws"]["dynamodb"] == other_dynamodb
        assert ready["aws"]["secretsmanager"] != other_dynamodb  # still the embedded moto
        response = local_client("lambda", ready["lambda"]).invoke(
            FunctionName="IssueKeyFunction", Payload=b'{"name": "n", "owner": "o"}'
        )
        issued = json.loads(response["Payload"].read())
        table = keys_table(dynamodb)
        item = dynamodb.get_item(TableName=table, Key={"key_id": {"S": issued["key_id"]}})["Item"]
        assert item["hash"]["S"].startswith("$argon2id$")
        url = f"{ready['apis']['DemoRestApi']}/whoami"
        response = requests.get(url, headers={"Authorization": f"Bearer {issued['api_key']}"}, timeout=30)
        assert response.status_code == 200
    finally:
        exit_code = stop_stack(process)
    assert exit_code == 0
    assert dynamodb.list_tables()["TableNames"] == []  # the stack deletes what it created
