"""Every module in the code packages stays short, and every class small (issue 19): one test
lists all the offenders at once."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("credit_risk", "serving", "plugins", "dags")
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
MAX_CLASS_METHODS = 25


def offenders(root: Path = ROOT) -> list[str]:
    """One line per module or class over a limit, sorted by path."""
    found = []
    for path in sorted(p for package in PACKAGES for p in (root / package).rglob("*.py")):
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{rel}: {lines} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, filename=str(rel))):
            if not isinstance(node, ast.ClassDef):
                continue
            size = node.end_lineno - node.lineno + 1
            methods = sum(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in node.body)
            if size > MAX_CLASS_LINES:
                found.append(f"{rel}:{node.lineno} class {node.name}: {size} lines "
                             f"(limit {MAX_CLASS_LINES})")
            if methods > MAX_CLASS_METHODS:
                found.append(f"{rel}:{node.lineno} class {node.name}: {methods} methods "
                             f"(limit {MAX_CLASS_METHODS})")
    return found


def test_modules_and_classes_are_within_the_size_limits():
    found = offenders()
    if found:
        pytest.fail(f"{len(found)} over the size limits:\n" + "\n".join(found), pytrace=False)


def test_the_check_names_every_offender(tmp_path):
    package = tmp_path / "serving"
    package.mkdir()
    many = "class Many:\n" + "".join(f"    def m{i}(self): pass\n"
                                      for i in range(MAX_CLASS_METHODS + 1))
    long = "class Long:\n" + "    x = 0\n" * MAX_CLASS_LINES
    (package / "big.py").write_text(many + long + "y = 0\n" * MAX_MODULE_LINES)
    (package / "small.py").write_text("class Small:\n    def m(self): pass\n")
    lines = MAX_CLASS_METHODS + 2 + MAX_CLASS_LINES + 1 + MAX_MODULE_LINES
    assert offenders(tmp_path) == [
        f"serving/big.py: {lines} lines (limit {MAX_MODULE_LINES})",
        f"serving/big.py:1 class Many: {MAX_CLASS_METHODS + 1} methods "
        f"(limit {MAX_CLASS_METHODS})",
        f"serving/big.py:{MAX_CLASS_METHODS + 3} class Long: {MAX_CLASS_LINES + 1} lines "
        f"(limit {MAX_CLASS_LINES})",
    ]
