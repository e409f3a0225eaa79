"""What `sam build` ships is what the functions import, at the versions the tests run.

Each function is built by src/Makefile (BuildMethod: makefile) for the Lambda runtime, python3.13 on arm64.
This machine cannot import arm64 binaries, so what a function imports is learnt from a twin of its package
built by the same recipe for this machine's platform, imported in a fresh interpreter that sees nothing but
the standard library and the package, with the function's environment (tracing on, so the X-Ray SDK counts).
"""

import ast
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from keygate_local.packages import BUILD_DIR, KINDS, build_twin, run_isolated
from keygate_local.template import HANDLER_PACKAGES, ROOT, Stack, load_template
from tests.helpers.regions import REGION, REGIONAL

# Installed because a dependency declares it, though the function never imports it: each with the reason.
NEVER_IMPORTED = {
    "cffi": "the Python half of cffi: the compiled argon2 and cryptography bindings load only its _cffi_backend",
    "pycparser": "cffi's, to compile C declarations at run time; the argon2 and cryptography bindings ship compiled",
    "s3transfer": "boto3's, for S3 transfers only",
}


@pytest.fixture(scope="module")
def built() -> Path:
    """`sam build`, as make build runs it (cached: quick after make build)."""
    environment = os.environ | {"PYTHON": sys.executable, "SAM_CLI_TELEMETRY": "0"}
    sam = Path(sys.executable).parent / "sam"
    subprocess.run([str(sam), "build"], cwd=ROOT, env=environment, check=True, capture_output=True, timeout=1200)
    return BUILD_DIR


@pytest.fixture(scope="module")
def stacks() -> list[Stack]:
    """The template with names standing for what a deploy would create, for the functions' environments: a
    primary with the demo, and a regional stack (which alone has ReplicaFlushFunction)."""
    primary = Stack(load_template(), {"DeployDemo": "true"})
    for logical_id, spec in primary.template["Resources"].items():
        if spec["Type"] in ("AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::Logs::LogGroup"):
            primary.physical_ids[logical_id] = f"keygate-{logical_id}"
    primary.physical_ids["PepperSecret"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keygate-pepper"
    regional = Stack(load_template(), REGIONAL, region=REGION)
    for logical_id, spec in regional.template["Resources"].items():
        if spec["Type"] in ("AWS::SNS::Topic", "AWS::Logs::LogGroup"):
            regional.physical_ids[logical_id] = f"keygate-{logical_id}"
    return [primary, regional]


def _functions(stacks: list[Stack]) -> list[tuple[Stack, str]]:
    """Every function of the template, with a stack that has it."""
    seen: dict[str, Stack] = {}
    for stack in stacks:
        for function in stack.functions():
            seen.setdefault(function, stack)
    return [(stack, function) for function, stack in seen.items()]


def _importable(package: Path) -> set[str]:
    """The top-level names a package holds that Python can import (packages, modules, extensions). Raises on
    anything else but distribution metadata: nothing ships that no import can reach."""
    names = set()
    for entry in package.iterdir():
        name = entry.name.split(".")[0]
        if entry.suffix in (".dist-info", ".data") or name == "__pycache__":
            continue
        assert name.isidentifier() and (entry.is_dir() or entry.suffix in (".py", ".so")), f"{entry} cannot be imported"
        names.add(name)
    return names


def _first_party_shipped(package: Path) -> set[str]:
    return {
        str(source.relative_to(package))
        for name in HANDLER_PACKAGES
        if (package / name).is_dir()
        for source in (package / name).rglob("*.py")
    }


def _distributions(package: Path) -> dict[str, str]:
    """name -> version of each distribution installed in a package."""
    found = {}
    for info in package.glob("*.dist-info"):
        fields = metadata.PathDistribution(info).metadata
        found[_normal(fields["Name"])] = fields["Version"]
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _loaded(stack: Stack, function: str, package: Path) -> set[Path]:
    """The files of the modules a fresh interpreter loads importing the function's handler from ``package``
    alone, as Lambda's init does."""
    _, module, _ = stack.handler_path(function)
    environment = stack.function_environment(function) | {
        "PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "false",
        "AWS_ACCESS_KEY_ID": "built", "AWS_SECRET_ACCESS_KEY": "built", "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    }  # fmt: skip
    code = f"import json, {module}; print(json.dumps([getattr(m, '__file__', None) for m in sys.modules.values()]))"
    return {Path(file) for file in json.loads(run_isolated(package, code, environment).stdout) if file}


@pytest.mark.parametrize("function", KINDS)
def test_each_package_holds_what_its_function_imports_and_nothing_else(function, built, stacks, tmp_path):
    (stack,) = {stack for stack, name in _functions(stacks) if name == function}
    twin = build_twin(function, tmp_path / "twin")
    loaded = {file.relative_to(twin) for file in _loaded(stack, function, twin) if file.is_relative_to(twin)}
    imported = {file.parts[0].split(".")[0] for file in loaded}
    shipped = _importable(built / function)
    assert _importable(twin) == shipped  # the twin is the package, but for its platform's binaries
    assert _first_party_shipped(twin) == _first_party_shipped(built / function)
    assert _first_party_shipped(built / function) == {str(file) for file in loaded if file.parts[0] in HANDLER_PACKAGES}
    unused = shipped - imported
    assert unused <= set(NEVER_IMPORTED), f"{function} ships {sorted(unused - set(NEVER_IMPORTED))} it never imports"


def test_no_module_of_src_imports_by_name_at_run_time():
    """src/imports.py reads import statements: a module imported from a string (importlib, __import__) would
    be left out of the package and missed by the test above, which imports the handler but calls nothing."""
    for source in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            named = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            imported = [alias.name for alias in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
            assert named not in ("__import__", "import_module") and "importlib" not in imported, source


@pytest.mark.parametrize("function", KINDS)
def test_every_module_ships_bytecode_the_runtime_reads_as_it_is(function, built):
    """Compiled for python3.13, and unchecked-hash (flags 0b01): the zip sam deploy makes dates every source
    1980-01-01, so bytecode checked against the source's time would be compiled again at every cold start."""
    for source in (built / function).rglob("*.py"):
        bytecode = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        assert bytecode.is_file(), f"{function}: {source.relative_to(built)} has no bytecode"
        assert bytecode.read_bytes()[4:8] == b"\x01\x00\x00\x00", f"{function}: {bytecode} is not unchecked-hash"


def test_the_authorizer_ships_no_admin_demo_or_leak_code_and_no_cryptography(built):
    shipped = _importable(built / "AuthorizerFunction")
    assert shipped & set(HANDLER_PACKAGES) == {"keygate", "authorizer"}
    assert not {"cryptography", "pydantic", "pydantic_core"} & shipped
    assert not (built / "AuthorizerFunction" / "keygate" / "secret_scanning.py").exists()


def test_every_function_has_a_package_of_its_own_kind(built, stacks):
    """Every function of the template is built by src/Makefile, and the admin functions alike."""
    functions = _functions(stacks)
    assert {function for _, function in functions} == {
        name for name, spec in load_template()["Resources"].items() if spec["Type"] == "AWS::Serverless::Function"
    }
    for stack, function in functions:
        assert stack.resource(function)["Metadata"]["BuildMethod"] == "makefile", function
        assert (built / function).is_dir(), function
    admin = [f for stack, f in functions if stack.handler_path(f)[1] == "admin.app"]
    assert len({frozenset(_distributions(built / f).items()) for f in admin}) == 1


def _pinned() -> dict[str, str]:
    lines = (ROOT / "src" / "requirements" / "constraints.txt").read_text().splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {_normal(pin.name): str(pin.specifier).removeprefix("==") for pin in pins}


def test_every_distribution_ships_at_the_version_the_tests_run(built, stacks):
    pinned = _pinned()
    for _, function in _functions(stacks):
        for name, version in _distributions(built / function).items():
            assert pinned.get(name) == version, f"{function}: {name} {version} is not pinned to it"
            assert metadata.version(name) == version, f"{function}: {name} {version}, but the tests run another"


def test_botocore_ships_only_with_the_boto3_released_with_it(built, stacks):
    for _, function in _functions(stacks):
        shipped = _distributions(built / function)
        if "botocore" not in shipped:
            continue
        assert "boto3" in shipped, f"{function} ships botocore without boto3: the runtime's boto3 would run on it"
        boto3_info = next((built / function).glob("boto3-*.dist-info"))
        requires = [Requirement(r) for r in metadata.PathDistribution(boto3_info).requires]
        (needs,) = [r for r in requires if r.name == "botocore" and r.marker is None]
        lowest = min(s.version for s in needs.specifier if s.operator == ">=")
        assert shipped["botocore"] == lowest, (
            f"{function}: boto3 {shipped['boto3']} was released with botocore {lowest}"
        )


def test_a_build_with_another_python_than_313_stops_saying_so(tmp_path):
    """Its bytecode would be dead weight in Lambda and pip would pick wheels for it: src/Makefile refuses it."""
    other_python = tmp_path / "python3.11"
    other_python.write_text("#!/bin/sh\nexit 1\n")  # fails the version check, as any other Python would
    other_python.chmod(0o755)
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT / "src"), "build-DemoFunction",
         f"ARTIFACTS_DIR={tmp_path / 'package'}", f"PYTHON={other_python}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "is not Python 3.13" in done.stderr
    assert not (tmp_path / "package").exists()  # nothing built
