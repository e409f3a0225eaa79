"""The pepper: read once per container, and rotated by adding a version without breaking old keys."""

import botocore.client

from tests.conftest import add_pepper_version, invoke, remove_pepper_version
from tests.helpers.authorizer import decide, log_records, refused_as_a_fault, shaped


def test_the_pepper_is_read_once_per_warm_container(issued, load, monkeypatch):
    keys = [issued()["api_key"] for _ in range(3)]
    authorizer = load("AuthorizerFunction")
    reads = []
    real = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        if operation == "GetSecretValue":
            reads.append(params["SecretId"])
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    for api_key in keys * 3:
        assert decide(authorizer, shaped("http-api", authorization=f"Bearer {api_key}"))[0]
    assert len(reads) == 1


def test_rotating_the_pepper_keeps_old_keys_and_hashes_new_ones_with_the_new_version(stack, issued, load):
    old_key = issued()
    authorizer = load("AuthorizerFunction")  # a warm container that has only ever seen v1
    assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {old_key['api_key']}"))[0]

    add_pepper_version(stack, "v2")

    new_key = invoke(load("IssueKeyFunction"), {"name": "after-rotation", "owner": "team-test"})
    assert new_key["pepper_version"] == "v2" and old_key["pepper_version"] == "v1"
    for key in (old_key, new_key):  # the warm container finds v2 without waiting for its cache to expire
        assert decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]


def test_in_a_grace_period_a_removed_pepper_version_of_the_previous_secret_is_a_fault_for_both(
    stack, issued, load, admin, capsys
):
    """The authorizer cannot tell which secret it is given without checking both: the previous one's pepper
    version gone, it fails closed on either, as for any missing version (never an allow on half a check)."""
    key = issued()
    add_pepper_version(stack, "v2")
    rotated = invoke(admin["RotateKey"], {"key_id": key["key_id"], "grace_seconds": 3600})  # new secret: v2
    remove_pepper_version(stack, "v1")  # the previous secret's, against the runbook
    authorizer = load("AuthorizerFunction")
    capsys.readouterr()
    for api_key in (rotated["api_key"], key["api_key"]):
        refused_as_a_fault(authorizer, shaped("http-api", authorization=f"Bearer {api_key}"))
    faults = [record for record in log_records(capsys.readouterr().out) if record.get("reason") == "Fault"]
    assert ["PepperVersionMissing" in record["fault"] for record in faults] == [True, True]
