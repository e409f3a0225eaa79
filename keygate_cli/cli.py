"""keygate: issue, update, disable, enable, rotate, revoke, get, list, explain and audit API keys, report a
leaked one, and flush the authorizer cache, by invoking the admin functions.

Against the local stack (``--endpoint-url``, printed by ``make local``) the functions are called by
their template names; against a deployed stack (``--stack-name``) by the names in its outputs.
Prints the function's answer as JSON, or with ``--output table`` as text tables for people. Exit codes:
0 done; 1 the function refused the request (its error on stderr); 2 a usage error (a missing or
contradictory option, a wrong endpoint); 3 a fault (AWS or the function failed); 4 `history --verify`
found the trail does not match its copy.
Every change is recorded with who asked: ``--actor``, else your AWS identity (STS GetCallerIdentity),
else, on a local stack, your user name.
"""

import argparse
import datetime
import getpass
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from keygate_cli import tables

# verb -> the admin function it invokes (template logical id, without "Function")
ACTIONS = {
    "issue": "IssueKey", "update": "UpdateKey", "disable": "UpdateKey", "enable": "UpdateKey",
    "rotate": "RotateKey", "revoke": "RevokeKey", "get": "GetKey", "list": "ListKeys",
    "history": "KeyHistory", "pepper-status": "PepperStatus", "flush-cache": "FlushAuthorizerCache",
    "report-leak": "ReportLeak", "explain": "ExplainKey",
}  # fmt: skip
CHANGES = {"issue", "update", "disable", "enable", "rotate", "revoke", "report-leak"}  # they record an actor
FIELDS = {
    "issue": ("name", "owner", "description", "scopes", "apis", "expires_at", "usage_plan_id", "quota_per", "metadata"),
    "update": (
        "key_id", "name", "description", "scopes", "apis", "expires_at", "usage_plan_id", "metadata",
        "expected_version",
    ),
    "disable": ("key_id",), "enable": ("key_id",), "rotate": ("key_id", "grace_seconds"),
    "revoke": ("key_id",), "get": ("key_id",), "list": ("owner", "status", "unused_since", "limit", "next_token"),
    "history": ("key_id", "limit", "next_token", "verify"), "pepper-status": (), "flush-cache": ("reason",),
    "report-leak": ("url",), "explain": ("key_id", "route", "api"),
}  # fmt: skip
PEPPER_STATUS_PAGES = 1000  # a bound on the pages pepper-status follows (1000 keys each)
EXIT_REFUSED, EXIT_USAGE, EXIT_FAULT, EXIT_UNVERIFIED = 1, 2, 3, 4  # EXIT_USAGE is argparse's own too
OUTPUTS = ("json", "table")  # as the AWS CLI's --output: JSON for scripts (the default), tables for people
NO_EXPIRY = object()
NO_USAGE_PLAN = object()


class Fault(RuntimeError):
    """The call did not reach the function, or the function failed."""


class UsageError(ValueError):
    """The command cannot be sent as given: the message says what was expected."""


def _endpoint(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(
            "must be a URL, http://HOST:PORT: the local stack's Lambda endpoint, which make local prints"
        )
    return text


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="keygate", description=" ".join(__doc__.split("\n\n")[0].split()))
    cli.add_argument(
        "--output", choices=OUTPUTS, default=os.environ.get("KEYGATE_OUTPUT") or "json",
        help="json (the default, for scripts) or table (for people) [env KEYGATE_OUTPUT]",
    )  # fmt: skip
    target = cli.add_argument_group("target (default: the deployed stack named in KEYGATE_STACK_NAME, else 'keygate')")
    target.add_argument(
        "--endpoint-url",
        type=_endpoint,
        default=os.environ.get("KEYGATE_ENDPOINT_URL"),
        help="Lambda endpoint of a local stack [env KEYGATE_ENDPOINT_URL]",
    )
    target.add_argument(
        "--stack-name",
        default=os.environ.get("KEYGATE_STACK_NAME"),
        help="CloudFormation stack whose outputs name the functions [env KEYGATE_STACK_NAME]",
    )
    target.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    target.add_argument("--actor", help="who is asking, for the audit trail (default: your AWS identity)")
    commands = cli.add_subparsers(dest="command", required=True)

    issue = commands.add_parser("issue", help="issue a key; its api_key is shown this once")
    issue.add_argument("--name", required=True)
    issue.add_argument("--owner", required=True)
    issue.add_argument("--description")
    _key_fields(issue)

    update = commands.add_parser(
        "update",
        help="change a key's name, description, scopes, APIs, expiry or metadata (--scope, --api and --meta replace "
        "the whole list or map)",
    )
    update.add_argument("key_id")
    update.add_argument("--name")
    update.add_argument("--description")
    _key_fields(update, clearable=True)
    update.add_argument("--expected-version", type=int, help="change only if the key is still at this version")

    rotate = commands.add_parser("rotate", help="a new secret for a key; the old one works for --grace-seconds")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-seconds", type=int, help="0 to 2592000 (30 days); default 86400")

    for name, text in (
        ("disable", "refuse a key until it is enabled again"), ("enable", "let a disabled key in again"),
        ("revoke", "revoke a key for good (harmless if revoked already)"), ("get", "show a key, never its secret"),
    ):  # fmt: skip
        commands.add_parser(name, help=text).add_argument("key_id")

    listing = commands.add_parser("list", help="list keys, newest first for an owner")
    listing.add_argument("--owner")
    listing.add_argument("--status", choices=["active", "disabled", "expired", "revoked"])
    listing.add_argument(
        "--unused-since", metavar="DATE", type=_instant,
        help="keys not used since then, or never: a date (2026-11-01, midnight UTC) or an ISO-8601 instant",
    )  # fmt: skip
    listing.add_argument("--limit", type=int)
    listing.add_argument("--next-token")

    history = commands.add_parser("history", help="a key's audit trail, oldest first")
    history.add_argument("key_id")
    history.add_argument("--limit", type=int)
    history.add_argument("--next-token")
    history.add_argument(
        "--verify", action="store_const", const=True,
        help="check the whole trail against its tamper-evident copy; exit 4 if it does not match",
    )  # fmt: skip

    commands.add_parser("pepper-status", help="keys per pepper version and state; secrets in a grace period apart")
    flush = commands.add_parser("flush-cache", help="flush API Gateway's authorizer cache on every CachedStages stage")
    flush.add_argument("--reason", help="why, for the function's log")
    explain = commands.add_parser(
        "explain", help="what the authorizer would decide for a key on a route, and why (no secret needed)"
    )
    explain.add_argument("key_id")
    explain.add_argument("--route", required=True, help='METHOD /path, e.g. "GET /orders/7"')
    explain.add_argument("--api", metavar="API_ID/STAGE", help="the API and stage the request would come in on")
    leak = commands.add_parser(
        "report-leak",
        help="revoke a key found in the open, if it is a real key of this deployment; the key is read from "
        "standard input (or prompted for), never from the command line, where shell history would keep it",
    )
    leak.add_argument("--url", help="where it was found, for the audit trail and the notification")
    for verb in CHANGES:  # --actor after the verb too (SUPPRESS: absent, it keeps the one given before)
        commands.choices[verb].add_argument("--actor", default=argparse.SUPPRESS, help="who is asking")
    return cli


def _key_fields(command: argparse.ArgumentParser, clearable: bool = False) -> None:
    """The key's fields; ``clearable`` (update) adds the --no-* option beside each, and refuses both at once."""

    def group():
        return command.add_mutually_exclusive_group() if clearable else command

    scopes = group()
    scopes.add_argument("--scope", action="append", dest="scopes", metavar="SCOPE", help="repeat for several")
    command.add_argument(
        "--api", action="append", dest="apis", metavar="API_ID/STAGE",
        help="an API and stage the key may be used on, * for any run of characters (repeat for several; "
        "default at issue: the deployment's DefaultKeyApis, else every API)",
    )  # fmt: skip
    expiry = group()
    expiry.add_argument("--expires-at", help="ISO-8601 with a time zone, e.g. 2027-01-31T00:00:00Z")
    plan = group()
    plan.add_argument(
        "--usage-plan-id", help="an API Gateway usage plan that meters the key (quota, throttling) on REST APIs"
    )
    if not clearable:  # chosen at issue, for the key's life
        command.add_argument(
            "--quota-per", choices=("key", "owner"),
            help="with --usage-plan-id: whose quota the key counts against, its own (default) or its owner's, "
            "shared by the owner's live keys on the plan",
        )  # fmt: skip
    metadata = group()
    metadata.add_argument(
        "--meta", action="append", dest="metadata", metavar="NAME=VALUE", type=_entry,
        help="an entry the backend receives as context meta_NAME (repeat for several; on update, the entries "
        "given replace the whole map). Not for secrets",
    )  # fmt: skip
    if clearable:
        metadata.add_argument(
            "--no-metadata", action="store_const", const=[], dest="metadata", help="remove every entry"
        )
        scopes.add_argument("--no-scopes", action="store_const", const=[], dest="scopes", help="remove every scope")
        expiry.add_argument("--no-expiry", action="store_const", const=NO_EXPIRY, dest="expires_at")
        plan.add_argument(
            "--no-usage-plan", action="store_const", const=NO_USAGE_PLAN, dest="usage_plan_id",
            help="take it off its plan",
        )  # fmt: skip


def _entry(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError("must be NAME=VALUE")
    return name, value


def _metadata(entries: list[tuple[str, str]]) -> dict[str, str]:
    names = [name for name, _ in entries]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise UsageError(f"--meta: {', '.join(repeated)} given more than once")
    return dict(entries)


def _instant(text: str) -> str:
    """A date alone means its midnight in UTC; anything else goes to the function as given, to check."""
    try:
        return datetime.date.fromisoformat(text).isoformat() + "T00:00:00Z"
    except ValueError:
        return text


def payload(arguments: argparse.Namespace) -> dict:
    """The admin event: only what was given, so the function's own defaults and checks apply."""
    given = {field: getattr(arguments, field) for field in FIELDS[arguments.command]}
    event = {field: value for field, value in given.items() if value is not None}
    if event.get("expires_at") is NO_EXPIRY:
        event["expires_at"] = None
    if event.get("usage_plan_id") is NO_USAGE_PLAN:
        event["usage_plan_id"] = None
    if "metadata" in event:
        event["metadata"] = _metadata(event["metadata"])
    if arguments.command in ("disable", "enable"):
        event["enabled"] = arguments.command == "enable"
    if arguments.command == "report-leak":
        event["key"] = _leaked_key()
    return event


def _leaked_key() -> str:
    """The reported key, from standard input when it is piped, else a prompt that does not echo it."""
    key = sys.stdin.readline() if not sys.stdin.isatty() else getpass.getpass("leaked key (not echoed): ")
    key = key.strip(" \t\r\n")
    if not key:
        raise UsageError("report-leak: no key on standard input (pipe it in, or run it at a terminal to be asked)")
    return key


def function_names(arguments: argparse.Namespace, session: boto3.session.Session) -> dict[str, str]:
    """Admin action -> function name: template names locally, stack outputs when deployed."""
    if arguments.endpoint_url and not arguments.stack_name:
        return {verb: f"{logical}Function" for verb, logical in ACTIONS.items()}
    stack_name = arguments.stack_name or "keygate"
    try:
        stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError) as error:
        raise Fault(f"cannot read stack {stack_name!r}: {error}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    wanted = f"{ACTIONS[arguments.command]}FunctionName"  # only the one this command needs: an older stack
    if wanted not in outputs and "ReplicaFlushFunctionName" in outputs:  # docs/multi-region.md
        raise Fault(
            f"stack {stack_name!r} is a regional stack, which writes no key: {arguments.command} in the primary"
        )
    if wanted not in outputs:  # still answers the commands it has
        raise Fault(f"stack {stack_name!r} has no output {wanted}: is it a keygate stack of this version?")
    return {arguments.command: outputs[wanted]}


def actor(arguments: argparse.Namespace, session: boto3.session.Session) -> str:
    """Who is asking: --actor, else the caller's AWS identity, else (a local stack) the local user."""
    if arguments.actor:
        return arguments.actor
    if arguments.endpoint_url and not arguments.stack_name:
        return f"local:{getpass.getuser()}"
    try:
        return session.client("sts").get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as error:
        raise Fault(f"cannot tell who you are for the audit trail ({error}): pass --actor") from None


def _session(arguments: argparse.Namespace) -> boto3.session.Session:
    try:
        session = boto3.session.Session(region_name=arguments.region or "us-east-1")
    except BotoCoreError as error:  # a named profile that does not exist, say
        raise Fault(str(error)) from None
    if arguments.endpoint_url and session.get_credentials() is None:  # a local stack checks no signature
        session = boto3.session.Session(  # nosec B106 # placeholders: the local stack checks no signature
            aws_access_key_id="keygate-local", aws_secret_access_key="keygate-local", region_name=session.region_name
        )
    return session


def invoke(arguments: argparse.Namespace) -> dict:
    session = _session(arguments)
    name = function_names(arguments, session)[arguments.command]
    event = payload(arguments)
    if arguments.command in CHANGES:
        event["actor"] = actor(arguments, session)
    # One attempt: a retried issue whose first answer was lost would leave a key nobody ever saw.
    config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 1})
    client = session.client("lambda", endpoint_url=arguments.endpoint_url, config=config)
    if arguments.command == "pepper-status":
        return _pepper_status(client, name)
    return _call(client, name, event)


def _call(client, name: str, event: dict) -> dict:
    try:
        response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
        answer = json.loads(response["Payload"].read() or b"null")
    except ClientError as error:
        if "Missing Authentication Token" in str(error):  # API Gateway's answer to an unknown path
            raise UsageError(
                f"{client.meta.endpoint_url} is an API's endpoint, not the Lambda endpoint: make local prints that "
                "one (its --lambda-port, 3002 by default)"
            ) from None
        raise Fault(f"cannot invoke {name}: {error}") from None
    except BotoCoreError as error:
        raise Fault(f"cannot invoke {name}: {error}") from None
    except ValueError:
        raise Fault(f"{name} answered something that is not JSON") from None
    if response.get("FunctionError"):
        message = answer.get("errorMessage") if isinstance(answer, dict) else answer
        raise Fault(f"{name} failed: {message}")
    return answer


def _pepper_status(client, name: str) -> dict:
    """Every page of the function's counts, summed: keys per pepper version and state, and the secrets in
    a rotation's grace period apart."""
    totals: dict[str, dict[str, dict[str, int]]] = {"versions": {}, "grace_secrets": {}}
    event: dict = {}
    for _ in range(PEPPER_STATUS_PAGES):
        answer = _call(client, name, event)
        if "error" in answer:
            return answer
        for counts, total in totals.items():
            for version, states in answer.get(counts, {}).items():  # a function before 0.17 has no grace_secrets
                for state, count in states.items():
                    total.setdefault(version, {}).setdefault(state, 0)
                    total[version][state] += count
        if answer["next_token"] is None:
            return totals
        event = {"next_token": answer["next_token"]}
    raise Fault(f"{name}: more than {PEPPER_STATUS_PAGES} pages of keys; counts are incomplete")


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    arguments = cli.parse_args(argv)
    if arguments.output not in OUTPUTS:  # argparse checks choices on the command line, not in a default
        cli.error(f"KEYGATE_OUTPUT: invalid choice: {arguments.output!r} (choose from {', '.join(OUTPUTS)})")
    try:
        answer = invoke(arguments)
    except UsageError as mistake:
        print(f"keygate: {mistake}", file=sys.stderr)
        return EXIT_USAGE
    except Fault as fault:
        print(f"keygate: {fault}", file=sys.stderr)
        return EXIT_FAULT
    table = arguments.output == "table"
    if isinstance(answer, dict) and "error" in answer:
        print(tables.refusal(answer) if table else json.dumps(answer, indent=2), file=sys.stderr)
        return EXIT_REFUSED
    print(tables.render(arguments.command, answer) if table else json.dumps(answer, indent=2))
    verification = answer.get("verification", {}) if isinstance(answer, dict) else {}
    return EXIT_UNVERIFIED if verification.get("verified") is False else 0


if __name__ == "__main__":
    sys.exit(main())
