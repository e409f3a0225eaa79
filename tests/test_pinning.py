"""Every requirement file pins each package to one exact version, so a build is reproducible and an audit
(make audit) checks the versions that really get installed. Offline: this reads the files, nothing else."""

import re
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from keygate_local.template import ROOT

REQUIREMENT_FILES = [
    "src/requirements.txt", "requirements-dev.txt", "requirements-bench.txt", "requirements-scan.txt",
    *(f"src/requirements/{name}.txt" for name in ("base", "authorizer", "admin", "leak_report", "audit_copy", "demo")),
    "src/requirements/replica_flush.txt",
    "src/requirements/constraints.txt",
]  # fmt: skip
CONSTRAINTS = ROOT / "src" / "requirements" / "constraints.txt"


def _pins(path: Path) -> dict[str, str]:
    lines = (re.sub(r"(^|\s+)#.*$", "", line).strip() for line in path.read_text().splitlines())
    return {Requirement(text).name.lower(): str(Requirement(text).specifier) for text in lines if text}


def _under_constraints(path: Path) -> bool:
    """Whether installing the file applies constraints.txt: it names it (-c), or includes a file that does."""
    for line in path.read_text().splitlines():
        if line.startswith("-c ") and (path.parent / line[3:].strip()) == CONSTRAINTS:
            return True
        if line.startswith("-r ") and _under_constraints(path.parent / line[3:].strip()):
            return True
    return False


def pin_problem(line: str, directory: Path = ROOT, constrained: dict[str, str] | None = None) -> str | None:
    """Why a line of a requirement file in ``directory`` is not an exact pin; None when it is one, or needs none.
    ``constrained``: the pins of the constraints file the file names (-c), which pin its bare names."""
    text = re.sub(r"(^|\s+)#.*$", "", line).strip()  # pip's comments: "#" at the start or after whitespace
    if not text or text == "-e .":  # -e .: keygate itself, the working tree
        return None
    if text.startswith(("-r ", "-c ")):  # an included file is checked on its own; here only that it is there
        included = directory / text[3:].strip()
        return None if included.is_file() else f"includes {included}, which does not exist"
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        return f"not a requirement pip installs by name and version: {error}"
    specifiers = list(requirement.specifier)
    if not specifiers and constrained is not None and requirement.url is None:
        return None if requirement.name.lower() in constrained else "not pinned here nor by the constraints"
    exact = len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version
    return None if exact and requirement.url is None else "not pinned to one exact version with =="


def test_every_requirement_file_of_the_repository_is_checked():
    found = [*ROOT.glob("requirements*.txt"), *ROOT.glob("src/requirements*.txt"), *ROOT.glob("src/requirements/*")]
    assert sorted(path.relative_to(ROOT).as_posix() for path in found) == sorted(REQUIREMENT_FILES)


@pytest.mark.parametrize("name", REQUIREMENT_FILES)
def test_every_requirement_is_pinned_to_an_exact_version(name):
    path = ROOT / name
    text = path.read_text()
    constrained = _pins(CONSTRAINTS) if _under_constraints(path) else None
    problems = [
        f"{name}:{number}: {line.strip()!r}: {problem}"
        for number, line in enumerate(text.splitlines(), start=1)
        if (problem := pin_problem(line, path.parent, constrained))
    ]
    assert not problems, "\n".join(problems)


def test_a_bare_name_passes_only_where_the_constraints_pin_it():
    constrained = _pins(CONSTRAINTS)
    assert pin_problem("boto3", constrained=constrained) is None and constrained["boto3"].startswith("==")
    assert pin_problem("requests", constrained=constrained) is not None
    assert pin_problem("boto3") is not None  # no constraints named: a bare name is not a pin


@pytest.mark.parametrize(
    "line",
    ["boto3==1.43.108", "moto[dynamodb,secretsmanager,server]==5.2.5", "cryptography==50.0.2  # why, after a pin",
     "aws-lambda-powertools[parser,tracer]==3.37.0", "# a comment", "   ", "-e .", "-r src/requirements.txt",
     "pydantic==2.13.5 ; python_version >= '3.13'"],
)  # fmt: skip
def test_an_exact_pin_an_include_a_comment_and_the_project_itself_pass(line):
    assert pin_problem(line) is None


@pytest.mark.parametrize(
    "line",
    ["boto3", "boto3>=1.43", "boto3~=1.43.0", "boto3==1.*", "boto3==1.43.108,<2", "boto3!=1.0", "boto3===1.43.108",
     "boto3 @ https://example.com/boto3-1.43.108-py3-none-any.whl", "-e ../elsewhere", "-e git+https://example.com/x",
     "-r requirements-missing.txt", "--extra-index-url https://example.com/simple", "boto3#==1.43.108"],
)  # fmt: skip
def test_what_is_not_one_exact_version_is_refused(line):
    assert pin_problem(line) is not None
