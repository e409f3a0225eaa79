"""What the functions import must be what `sam build` packages (src/requirements.txt) or what the
Lambda runtime provides (the standard library, boto3). The dev environment has far more installed
(moto, SAM CLI, pytest...), so a missing requirement would pass every local test and fail deployed."""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from keygate_local.template import Stack, load_template

SRC = Path(__file__).resolve().parent.parent / "src"
RUNTIME_PROVIDED = ["boto3"]  # the python3.13 Lambda runtime ships boto3 and its dependencies
# botocore and urllib3 import these only when they happen to be installed (here, because SAM CLI and
# moto need them); on Lambda they are absent and nothing requires them. _distutils_hack is
# setuptools' start-up hook.
USED_WHEN_PRESENT = {"awscrt", "_awscrt", "certifi", "cryptography", "_openssl", "OpenSSL", "_distutils_hack"}


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions these requirements install, extras included."""
    seen: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for dependency in metadata.requires(requirement.name) or []:
            needed = Requirement(dependency)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(needed)
    return seen


def packaged_distributions() -> set[str]:
    lines = (SRC / "requirements.txt").read_text().splitlines()
    specifiers = (line.partition("#")[0].strip() for line in lines)  # pip allows comments after a requirement
    requirements = [Requirement(specifier) for specifier in specifiers if specifier]
    return _closure(requirements + [Requirement(name) for name in RUNTIME_PROVIDED])


def imported_top_level_modules() -> set[str]:
    """What importing every handler of the template loads, in a fresh interpreter, as Lambda's init would."""
    stack = Stack(load_template())
    modules = sorted({stack.handler_path(function)[1] for function in stack.functions()})
    code = f"import json, sys; [__import__(m) for m in {modules!r}]; print(json.dumps(sorted(sys.modules)))"
    environment = {
        "PATH": os.environ["PATH"], "PYTHONPATH": str(SRC), "AWS_DEFAULT_REGION": "us-east-1",
        "KEYS_TABLE": "t", "PEPPER_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:p",
        "POWERTOOLS_SERVICE_NAME": "keygate", "POWERTOOLS_METRICS_NAMESPACE": "keygate",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], env=environment, cwd="/", capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in json.loads(done.stdout)}


def test_handlers_import_only_packaged_or_runtime_provided_modules():
    allowed = packaged_distributions()
    distributions = metadata.packages_distributions()
    ours = {path.name for path in SRC.iterdir() if path.is_dir()}
    strays = {}
    for module in imported_top_level_modules() - set(sys.stdlib_module_names) - ours - USED_WHEN_PRESENT:
        owners = {name.lower().replace("_", "-") for name in distributions.get(module, [])}
        if module.startswith("_") and not owners:
            continue  # the interpreter's own (__main__, _sysconfigdata...) and pip's editable-install hook
        if not owners & allowed:
            strays[module] = sorted(owners)
    assert strays == {}, f"imported but not packaged by sam build: {strays}"


def test_the_check_knows_a_dev_only_package_when_it_sees_one():
    assert "moto" not in packaged_distributions() and "aws-lambda-powertools" in packaged_distributions()
    assert "pydantic-core" in packaged_distributions()  # through the parser extra
