"""`make local`: serve the template on 127.0.0.1 until interrupted.

python -m keygate_local [--rest-port 3000] [--http-port 3001] [--lambda-port 3002] [--real-aws] [--ready-json]
                        [--parameter-overrides Name=Value ...] [--demo-parameters]

The template's defaults serve no demo API: `make local` passes DeployDemo=true.
"""

import argparse
import json
import signal
import sys
import threading

from keygate_local.local_stack import LocalStack, demo_parameters


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python -m keygate_local", description=__doc__.split("\n")[0])
    options.add_argument("--rest-port", type=int, default=3000, help="DemoRestApi, if deployed (0: any free port)")
    options.add_argument("--http-port", type=int, default=3001, help="DemoHttpApi, if deployed (0: any free port)")
    options.add_argument("--lambda-port", type=int, default=3002, help="Lambda Invoke API for the CLI")
    options.add_argument("--real-aws", action="store_true", help="use AWS with the ambient credentials, not moto")
    options.add_argument("--ready-json", action="store_true", help="print one JSON line of URLs when ready")
    options.add_argument(
        "--parameter-overrides", nargs="+", default=[], metavar="Name=Value", help="template parameters, as sam's"
    )
    options.add_argument(
        "--demo-parameters", action="store_true", help=f"the parameters make demo sets: {demo_parameters()}"
    )
    arguments = options.parse_args(argv)
    parameters = demo_parameters() if arguments.demo_parameters else {}
    for override in arguments.parameter_overrides:
        name, equals, value = override.partition("=")
        if not equals:
            options.error(f"--parameter-overrides: {override!r} is not Name=Value")
        parameters[name] = value

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    ports = {"DemoRestApi": arguments.rest_port, "DemoHttpApi": arguments.http_port}
    local = LocalStack(
        api_ports=ports, lambda_port=arguments.lambda_port, real_aws=arguments.real_aws, parameters=parameters
    )
    try:
        local.start()
    except (OSError, ValueError, KeyError) as error:
        print(f"keygate local: cannot start: {error}", file=sys.stderr)
        return 1
    try:
        urls = local.urls
        if arguments.ready_json:
            ready = {"apis": urls.apis, "api_stages": urls.api_stages, "lambda": urls.lambda_endpoint}
            ready |= {"usage_plans": urls.usage_plans, "cached_stages": urls.cached_stages}
            print(json.dumps(ready | {"aws": urls.aws_endpoints}), flush=True)
        else:
            print(_banner(local), flush=True)
        while not stopping.wait(0.5):  # a timed wait: a signal landing on another thread still wakes us
            pass
    finally:
        local.stop()
    return 0


def _banner(local: LocalStack) -> str:
    urls = local.urls
    aws = ", ".join(f"{service} {url}" for service, url in urls.aws_endpoints.items()) or "AWS (ambient credentials)"
    up = f"keygate local stack up in {local.started_in:.1f} s (Ctrl-C stops it and deletes its table and secret)"
    endpoints = f"""  Lambda Invoke API             {urls.lambda_endpoint}
  AWS                           {aws}
"""
    issue = f"""  export KEYGATE_ENDPOINT_URL={urls.lambda_endpoint}
  .venv/bin/keygate issue --name my-client --owner my-team
"""
    if "DemoRestApi" not in urls.apis:  # DeployDemo=false: the functions only
        return f"{up}\n{endpoints}\nIssue a key:\n{issue}"
    rest, http, on = urls.apis["DemoRestApi"], urls.apis["DemoHttpApi"], urls.api_stages
    return f"""{up}
  REST API (TOKEN authorizer)   {rest}/hello   {rest}/whoami   (keys: --api {on["DemoRestApi"]})
  REST API (REQUEST, x-api-key) {rest}/x-api-key/whoami
  REST API (usage plan {urls.usage_plans.get("DemoUsagePlan", "-")}) {rest}/metered
  HTTP API (simple responses)   {http}/hello   {http}/whoami   (keys: --api '{on["DemoHttpApi"]}')
{endpoints}
Issue a key, then call a route with it:
{issue}  curl -H "Authorization: Bearer <api_key>" {rest}/whoami
"""


if __name__ == "__main__":
    sys.exit(main())
