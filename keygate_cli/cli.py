"""keygate: issue, revoke, get and list API keys by invoking the admin functions.

Against the local stack (``--endpoint-url``, printed by ``make local``) the functions are called by
their template names; against a deployed stack (``--stack-name``) by the names in its outputs.
Prints the function's JSON answer; exits 1 when the function refuses the request, 3 on a fault.
"""

import argparse
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ACTIONS = {"issue": "IssueKey", "revoke": "RevokeKey", "get": "GetKey", "list": "ListKeys"}
EXIT_REFUSED, EXIT_FAULT = 1, 3


class Fault(RuntimeError):
    """The call did not reach the function, or the function failed."""


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="keygate", description=__doc__.split("\n")[0])
    target = cli.add_argument_group("target (default: the deployed stack named in KEYGATE_STACK_NAME, else 'keygate')")
    target.add_argument(
        "--endpoint-url",
        default=os.environ.get("KEYGATE_ENDPOINT_URL"),
        help="Lambda endpoint of a local stack [env KEYGATE_ENDPOINT_URL]",
    )
    target.add_argument(
        "--stack-name",
        default=os.environ.get("KEYGATE_STACK_NAME"),
        help="CloudFormation stack whose outputs name the functions [env KEYGATE_STACK_NAME]",
    )
    target.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    commands = cli.add_subparsers(dest="command", required=True)

    issue = commands.add_parser("issue", help="issue a key; its api_key is shown this once")
    issue.add_argument("--name", required=True)
    issue.add_argument("--owner", required=True)
    issue.add_argument("--description")
    issue.add_argument("--scope", action="append", dest="scopes", metavar="SCOPE", help="repeat for several")
    issue.add_argument(
        "--api",
        action="append",
        dest="apis",
        metavar="API_ID/STAGE",
        help="an API and stage the key may be used on, * for any run of characters (repeat for several; "
        "default: the deployment's DefaultKeyApis, else every API)",
    )
    issue.add_argument("--expires-at", help="ISO-8601 with a time zone, e.g. 2027-01-31T00:00:00Z")

    for name, text in (("revoke", "revoke a key (harmless if revoked already)"), ("get", "show a key's metadata")):
        command = commands.add_parser(name, help=text)
        command.add_argument("key_id")

    listing = commands.add_parser("list", help="list keys, newest first for an owner")
    listing.add_argument("--owner")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--next-token")
    return cli  # fmt: skip


def payload(arguments: argparse.Namespace) -> dict:
    """The admin event: only what was given, so the function's own defaults and checks apply."""
    fields = {
        "issue": ("name", "owner", "description", "scopes", "apis", "expires_at"),
        "revoke": ("key_id",),
        "get": ("key_id",),
        "list": ("owner", "limit", "next_token"),
    }[arguments.command]
    return {field: getattr(arguments, field) for field in fields if getattr(arguments, field) is not None}


def function_names(arguments: argparse.Namespace, session: boto3.session.Session) -> dict[str, str]:
    """Admin action -> function name: template names locally, stack outputs when deployed."""
    if arguments.endpoint_url and not arguments.stack_name:
        return {action: f"{logical}Function" for action, logical in ACTIONS.items()}
    stack_name = arguments.stack_name or "keygate"
    try:
        stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError) as error:
        raise Fault(f"cannot read stack {stack_name!r}: {error}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    missing = [f"{logical}FunctionName" for logical in ACTIONS.values() if f"{logical}FunctionName" not in outputs]
    if missing:
        raise Fault(f"stack {stack_name!r} has no outputs {', '.join(missing)}: is it a keygate stack?")
    return {action: outputs[f"{logical}FunctionName"] for action, logical in ACTIONS.items()}


def _session(arguments: argparse.Namespace) -> boto3.session.Session:
    try:
        session = boto3.session.Session(region_name=arguments.region or "us-east-1")
    except BotoCoreError as error:  # a named profile that does not exist, say
        raise Fault(str(error)) from None
    if arguments.endpoint_url and session.get_credentials() is None:  # a local stack checks no signature
        session = boto3.session.Session(
            aws_access_key_id="keygate-local", aws_secret_access_key="keygate-local", region_name=session.region_name
        )
    return session


def invoke(arguments: argparse.Namespace) -> dict:
    session = _session(arguments)
    name = function_names(arguments, session)[arguments.command]
    # One attempt: a retried issue whose first answer was lost would leave a key nobody ever saw.
    config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 1})
    client = session.client("lambda", endpoint_url=arguments.endpoint_url, config=config)
    try:
        response = client.invoke(FunctionName=name, Payload=json.dumps(payload(arguments)).encode())
        answer = json.loads(response["Payload"].read() or b"null")
    except (ClientError, BotoCoreError) as error:
        raise Fault(f"cannot invoke {name}: {error}") from None
    except ValueError:
        raise Fault(f"{name} answered something that is not JSON") from None
    if response.get("FunctionError"):
        message = answer.get("errorMessage") if isinstance(answer, dict) else answer
        raise Fault(f"{name} failed: {message}")
    return answer


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        answer = invoke(arguments)
    except Fault as fault:
        print(f"keygate: {fault}", file=sys.stderr)
        return EXIT_FAULT
    if isinstance(answer, dict) and "error" in answer:
        print(json.dumps(answer, indent=2), file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
