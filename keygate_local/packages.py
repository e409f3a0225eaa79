"""A function's package as src/Makefile builds it, for this machine, and a fresh interpreter that sees nothing but
that package and the standard library, as Lambda's runtime sees /var/task. The Lambda packages are arm64 and this
machine may not import arm64 binaries: the twin is the same recipe with this machine's wheels. The tests learn
from it what a function imports; make bench times its cold start."""

import platform
import subprocess  # nosec B404 # runs make and this Python, argv lists, never a shell
import sys
from pathlib import Path

from keygate_local.template import ROOT

BUILD_DIR = ROOT / ".aws-sam" / "build"  # where sam build puts each function's package
# One function of each package the Makefile builds (the admin functions share one).
KINDS = [
    "AuthorizerFunction", "IssueKeyFunction", "LeakReportFunction", "AuditCopyFunction", "DemoFunction",
    "ReplicaFlushFunction",
]  # fmt: skip


def build_twin(function: str, directory: Path) -> Path:
    """The function's package built by the same recipe for this machine (x86_64 or aarch64 Linux)."""
    machine = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    platforms = f"manylinux_2_34_{machine} manylinux_2_28_{machine} manylinux2014_{machine}"
    directory.mkdir()
    subprocess.run(  # nosec B603 B607 # src/Makefile's recipe, run by the make on PATH as make build runs it
        ["make", "--no-print-directory", "-C", str(ROOT / "src"), f"build-{function}",
         f"ARTIFACTS_DIR={directory}", f"PYTHON={sys.executable}", f"PLATFORMS={platforms}"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return directory


def run_isolated(package: Path, code: str, environment: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that sees only the standard library and ``package`` and writes no
    bytecode (/var/task is read-only). ``options`` go to the interpreter (``-X importtime``). Raises if it fails."""
    path = f"import sys; sys.path.insert(0, {str(package)!r}); "
    done = subprocess.run(  # nosec B603 # this Python, on code of the tests and the bench, an argv list
        [sys.executable, "-I", "-S", "-B", *options, "-c", path + code],
        env=environment, cwd="/", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{code!r} failed:\n{done.stderr[-2000:]}")
    return done
