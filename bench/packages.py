"""The size of each kind of package `sam build` made, unzipped and zipped as `sam deploy` zips it."""

import shutil
import tempfile
from pathlib import Path

from samcli.lib.package.utils import make_zip

from keygate_local.packages import BUILD_DIR, KINDS


def unzipped_bytes(package: Path) -> int:
    return sum(path.stat().st_size for path in package.rglob("*") if path.is_file())


def zipped_bytes(package: Path) -> int:
    """The size of the zip `sam deploy` uploads (SAM CLI's own make_zip: deflate, every file)."""
    with tempfile.TemporaryDirectory() as scratch:
        return Path(make_zip(str(Path(scratch) / "package"), str(package))).stat().st_size


def without_bytecode(package: Path, destination: Path) -> Path:
    """A copy of the package without its __pycache__ directories: what Lambda would compile at each cold start."""
    shutil.copytree(package, destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def package_sizes() -> dict[str, tuple[int, int]]:
    """(unzipped, zipped) bytes of each kind of package in .aws-sam/build, and of the authorizer's without its
    bytecode."""
    packages = {kind: BUILD_DIR / kind for kind in KINDS}
    with tempfile.TemporaryDirectory() as scratch:
        packages["AuthorizerFunction without bytecode"] = without_bytecode(
            BUILD_DIR / "AuthorizerFunction", Path(scratch) / "package"
        )
        return {label: (unzipped_bytes(package), zipped_bytes(package)) for label, package in packages.items()}
