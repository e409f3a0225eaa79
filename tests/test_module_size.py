"""Short modules with one job: a module under src/ that grows past 400 lines is doing two."""

from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
MAX_LINES = 400


def test_no_module_under_src_is_over_400_lines():
    sizes = {path.relative_to(SRC): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")}
    assert len(sizes) > 30  # the tree was found
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}
