"""Build time only (src/Makefile runs it; no package ships it): the first-party source files a handler's
module imports, directly or through others, read from their import statements (modulefinder), never run.
Prints them one per line, relative to src/, each package's __init__.py included."""

import sys
from modulefinder import ModuleFinder
from pathlib import Path

SOURCES = Path(__file__).resolve().parent


def first_party_files(module: str) -> list[str]:
    finder = ModuleFinder(path=[str(SOURCES)])  # this tree only: the standard library and wheels are not looked at
    finder.run_script(str(SOURCES.joinpath(*module.split(".")).with_suffix(".py")))
    files = {Path(found.__file__).resolve() for found in finder.modules.values() if found.__file__}
    parents = {init for path in files for init in (path.parent / "__init__.py",) if init.is_file()}
    return sorted(str(path.relative_to(SOURCES)) for path in files | parents if path.is_relative_to(SOURCES))


if __name__ == "__main__":
    print("\n".join(first_party_files(sys.argv[1])))
