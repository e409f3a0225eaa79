"""The same stack, unchanged, against another DynamoDB endpoint named by AWS_ENDPOINT_URL_DYNAMODB: DynamoDB Local."""

import json

import requests

from tests.e2e.conftest import local_client, start_stack, stop_stack


def test_the_stack_keeps_its_keys_on_the_endpoint_the_environment_names(dynamodb_local):
    """On DynamoDB Local, which also refuses an access key id of anything but letters and digits."""
    dynamodb = local_client("dynamodb", dynamodb_local.endpoint)
    before = set(dynamodb.list_tables()["TableNames"])  # other tests' stacks may share it
    process, ready = start_stack({"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint})
    try:
        assert ready["aws"]["dynamodb"] == dynamodb_local.endpoint
        assert ready["aws"]["secretsmanager"] != dynamodb_local.endpoint  # still the embedded moto
        response = local_client("lambda", ready["lambda"]).invoke(
            FunctionName="IssueKeyFunction", Payload=b'{"name": "n", "owner": "o"}'
        )
        issued = json.loads(response["Payload"].read())
        (table,) = [name for name in set(dynamodb.list_tables()["TableNames"]) - before if "-KeysTable-" in name]
        item = dynamodb.get_item(TableName=table, Key={"key_id": {"S": issued["key_id"]}})["Item"]
        assert item["hash"]["S"].startswith("$argon2id$")
        url = f"{ready['apis']['DemoRestApi']}/whoami"
        response = requests.get(url, headers={"Authorization": f"Bearer {issued['api_key']}"}, timeout=30)
        assert response.status_code == 200
    finally:
        exit_code = stop_stack(process)
    assert exit_code == 0
    assert set(dynamodb.list_tables()["TableNames"]) == before  # the stack deletes what it created
